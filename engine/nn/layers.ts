// The layers of the paper's networks, initialised as PyTorch initialises them (so results
// are comparable with PyTorch runs): weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// which is what kaiming_uniform(a = sqrt(5)) reduces to.
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { conv2d, convTranspose2d } from '../ops/conv.js';
import { getDefaultBackend } from '../ops/core.js';
import { add, logSigmoid, relu, shift, scale, sigmoid, softplus } from '../ops/elementwise.js';
import { linear } from '../ops/matmul.js';
import { uniform } from '../ops/random.js';
import { flatten, reshape } from '../ops/shape.js';
import type { RandomStream } from '../random.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

export interface LayerOptions {
  /** Where the initial weights come from: a seeded stream, so runs are reproducible. */
  stream: RandomStream;
  dtype?: DType;
  backend?: Backend;
  bias?: boolean;
}

/** U(-bound, bound) with bound = 1/sqrt(fanIn). */
function uniformInit(shape: readonly number[], fanIn: number, o: LayerOptions): Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  const u = uniform(shape, o.stream, { dtype: o.dtype ?? 'float32', backend: o.backend ?? getDefaultBackend() });
  return shift(scale(u, 2 * bound), -bound);
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | undefined;
  constructor(readonly inFeatures: number, readonly outFeatures: number, o: LayerOptions) {
    super();
    this.weight = this.registerParameter('weight', uniformInit([outFeatures, inFeatures], inFeatures, o));
    this.bias = o.bias === false ? undefined : this.registerParameter('bias', uniformInit([outFeatures], inFeatures, o));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export interface ConvOptions extends LayerOptions {
  stride?: number;
  padding?: number;
}

/** Weight, optional per-channel bias, stride and padding: what both convolutions hold. */
abstract class ConvLayer extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | undefined;
  readonly stride: number;
  readonly padding: number;
  constructor(weightShape: readonly number[], fanIn: number, biasSize: number, o: ConvOptions) {
    super();
    this.stride = o.stride ?? 1;
    this.padding = o.padding ?? 0;
    this.weight = this.registerParameter('weight', uniformInit(weightShape, fanIn, o));
    this.bias = o.bias === false ? undefined : this.registerParameter('bias', uniformInit([biasSize], fanIn, o));
  }
  protected addBias(y: Tensor): Tensor {
    return this.bias ? add(y, reshape(this.bias, [1, -1, 1, 1])) : y;
  }
}

export class Conv2d extends ConvLayer {
  constructor(inChannels: number, outChannels: number, kernelSize: number, o: ConvOptions) {
    super([outChannels, inChannels, kernelSize, kernelSize], inChannels * kernelSize * kernelSize, outChannels, o);
  }
  forward(x: Tensor): Tensor {
    return this.addBias(conv2d(x, this.weight, this.stride, this.padding));
  }
}

export class ConvTranspose2d extends ConvLayer {
  constructor(inChannels: number, outChannels: number, kernelSize: number, o: ConvOptions) {
    // PyTorch computes fan_in from weight.size(1) = outChannels for transposed convolutions.
    super([inChannels, outChannels, kernelSize, kernelSize], outChannels * kernelSize * kernelSize, outChannels, o);
  }
  forward(x: Tensor): Tensor {
    return this.addBias(convTranspose2d(x, this.weight, this.stride, this.padding));
  }
}

/** A module made of a pointwise function (activations, flatten). */
class Lambda extends Module {
  constructor(private readonly fn: (x: Tensor) => Tensor) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.fn(x);
  }
}

export const ReLU = (): Module => new Lambda(relu);
export const Sigmoid = (): Module => new Lambda(sigmoid);
export const Softplus = (): Module => new Lambda(softplus);
export const LogSigmoid = (): Module => new Lambda(logSigmoid);
export const Flatten = (): Module => new Lambda((x) => flatten(x, 1));
/** Reshape each example to `shape` (the batch axis is kept). */
export const Unflatten = (shape: readonly number[]): Module => new Lambda((x) => reshape(x, [x.shape[0]!, ...shape]));

export class Sequential extends Module {
  readonly layers: readonly Module[];
  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }
  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, m) => m.forward(h), x);
  }
}
