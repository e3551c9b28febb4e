// Modules hold named parameters (tensors that train) and buffers (state that does not, such
// as batch-norm running statistics), nest like PyTorch's, and name their state the same way
// ("0.weight", "encoder.conv1.bias") so safetensors files read naturally in PyTorch.
import { noGrad } from '../graph.js';
import { tensor } from '../ops/core.js';
import { clone } from '../ops/shape.js';
import type { Tensor } from '../tensor.js';

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  protected registerParameter(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    this.params.set(name, t.keep());
    return t;
  }

  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.buffers.set(name, t.keep());
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** Every trainable tensor with its dotted name, depth first in registration order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const own = [...this.params].map(([n, t]): [string, Tensor] => [prefix + n, t]);
    const nested = [...this.children].flatMap(([n, m]) => m.namedParameters(`${prefix}${n}.`));
    return [...own, ...nested];
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Parameters and buffers: everything a checkpoint must hold. */
  stateDict(prefix = ''): Map<string, Tensor> {
    const state = new Map<string, Tensor>([...this.params, ...this.buffers].map(([n, t]) => [prefix + n, t]));
    for (const [n, m] of this.children) for (const [k, t] of m.stateDict(`${prefix}${n}.`)) state.set(k, t);
    return state;
  }

  /**
   * Copy values in by name; every name must be present with the same shape. A value of another
   * dtype or on another backend is converted to the model's (as PyTorch's copy_ does), through
   * the host: a file's F32 weights load into a float64 model, its I64 counters into float32.
   */
  loadStateDict(state: ReadonlyMap<string, Tensor>): void {
    const own = this.stateDict();
    for (const [name, target] of own) {
      const source = state.get(name);
      if (!source) throw new Error(`loadStateDict: missing '${name}' (expected shape [${target.shape}])`);
      if (source.shape.length !== target.shape.length || source.shape.some((d, i) => d !== target.shape[i]))
        throw new Error(`loadStateDict: '${name}' has shape [${source.shape}] but the model expects [${target.shape}]`);
      if (source.dtype === target.dtype && source.backend === target.backend) {
        target.assign(noGrad(() => clone(source)));
        continue;
      }
      const { readSync } = source.backend;
      if (!readSync)
        throw new Error(`loadStateDict: '${name}' is ${source.dtype} on ${source.backend.name} but the model holds ${target.dtype} on ${target.backend.name}, `
          + `and ${source.backend.name} cannot be read synchronously to convert it: load the file onto the model's backend`);
      target.assign(tensor(readSync.call(source.backend, source), target.shape, { dtype: target.dtype, backend: target.backend }));
    }
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    if (unexpected.length) throw new Error(`loadStateDict: unexpected entries ${unexpected.join(', ')}`);
  }

  train(mode = true): this {
    this.training = mode;
    for (const m of this.children.values()) m.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }
}
