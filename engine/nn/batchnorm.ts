// BatchNorm2d as PyTorch defines it: batch statistics in training (biased variance for the
// normalisation, unbiased for the running estimate), running statistics in eval.
import { noGrad } from '../autograd.js';
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { full, getDefaultBackend, shapeString } from '../ops/core.js';
import { add, div, mul, scale, shift, sqrt, square, sub } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { reshape } from '../ops/shape.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

export interface BatchNormOptions {
  eps?: number;
  momentum?: number;
  dtype?: DType;
  backend?: Backend;
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly eps: number;
  readonly momentum: number;
  constructor(readonly channels: number, o: BatchNormOptions = {}) {
    super();
    const opts = { dtype: o.dtype ?? 'float32', backend: o.backend ?? getDefaultBackend() };
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum ?? 0.1;
    this.weight = this.registerParameter('weight', full([channels], 1, opts));
    this.bias = this.registerParameter('bias', full([channels], 0, opts));
    this.runningMean = this.registerBuffer('running_mean', full([channels], 0, opts));
    this.runningVar = this.registerBuffer('running_var', full([channels], 1, opts));
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.channels)
      throw new Error(`BatchNorm2d: expected [N, ${this.channels}, H, W], got ${shapeString(x)}`);
    const perChannel = (t: Tensor): Tensor => reshape(t, [1, this.channels, 1, 1]);
    let mu: Tensor, variance: Tensor;
    if (this.training) {
      mu = mean(x, [0, 2, 3], true);
      variance = mean(square(sub(x, mu)), [0, 2, 3], true);
      const n = x.size / this.channels;
      noGrad(() => {
        const blend = (running: Tensor, batch: Tensor): Tensor => add(scale(running, 1 - this.momentum), scale(reshape(batch, [this.channels]), this.momentum));
        this.runningMean.assign(blend(this.runningMean, mu));
        this.runningVar.assign(blend(this.runningVar, scale(variance, n / Math.max(n - 1, 1))));
      });
    } else {
      mu = perChannel(this.runningMean);
      variance = perChannel(this.runningVar);
    }
    const normalized = div(sub(x, mu), sqrt(shift(variance, this.eps)));
    return add(mul(normalized, perChannel(this.weight)), perChannel(this.bias));
  }
}
