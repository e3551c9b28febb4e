// Optimisers with PyTorch's update rules and per-parameter groups (the paper trains parts of
// the model with separate optimisers and learning rates).
import { noGrad } from './graph.js';
import { zeros } from './ops/core.js';
import { scale, sub } from './ops/elementwise.js';
import { clone } from './ops/shape.js';
import type { Tensor } from './tensor.js';

export interface ParamGroup<H> {
  params: readonly Tensor[];
  options?: Partial<H>;
}

abstract class Optimizer<H extends object> {
  readonly groups: { params: readonly Tensor[]; options: H }[];
  constructor(groups: readonly Tensor[] | readonly ParamGroup<H>[], defaults: H) {
    const list = groups.length > 0 && !('params' in groups[0]!) ? [{ params: groups as readonly Tensor[] }] : (groups as readonly ParamGroup<H>[]);
    this.groups = list.map((g) => ({ params: g.params, options: { ...defaults, ...g.options } }));
  }

  /** Drop every parameter's gradient (releasing its memory). */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  step(): void {
    noGrad(() => {
      for (const g of this.groups) for (const p of g.params) if (p.grad) this.update(p, p.grad, g.options);
    });
  }

  protected abstract update(param: Tensor, grad: Tensor, options: H): void;
}

export interface SGDOptions { lr: number }

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: readonly Tensor[] | readonly ParamGroup<SGDOptions>[], defaults: SGDOptions) {
    super(params, defaults);
  }
  protected update(param: Tensor, grad: Tensor, { lr }: SGDOptions): void {
    param.assign(sub(param, scale(grad, lr)));
  }
}

export interface AdamWOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export const adamwDefaults: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 };

/**
 * AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW: decoupled weight decay
 * p <- p (1 - lr wd), then the bias-corrected Adam step.
 */
export class AdamW extends Optimizer<AdamWOptions> {
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor; step: number }>();

  constructor(params: readonly Tensor[] | readonly ParamGroup<AdamWOptions>[], defaults: Partial<AdamWOptions> = {}) {
    super(params, { ...adamwDefaults, ...defaults });
  }

  protected update(param: Tensor, grad: Tensor, o: AdamWOptions): void {
    let s = this.state.get(param);
    if (!s) {
      const like = { dtype: param.dtype, backend: param.backend };
      s = { m: zeros(param.shape, like).keep(), v: zeros(param.shape, like).keep(), step: 0 };
      this.state.set(param, s);
    }
    s.step++;
    const g = grad.isContiguous && grad.offset === 0 ? grad : clone(grad);
    param.backend.adamw(param.storage, g.storage, s.m.storage, s.v.storage, {
      lr: o.lr, beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay, step: s.step,
    });
    if (g !== grad) g.dispose();
  }

  /** A parameter's moments and step count (undefined before its first step), for checkpoints. */
  stateOf(param: Tensor): { m: Tensor; v: Tensor; step: number } | undefined {
    return this.state.get(param);
  }

  /** Restore what stateOf returned (tensors are copied in). */
  restoreState(param: Tensor, saved: { m: Tensor; v: Tensor; step: number }): void {
    this.state.get(param)?.m.dispose();
    this.state.get(param)?.v.dispose();
    this.state.set(param, { m: clone(saved.m).keep(), v: clone(saved.v).keep(), step: saved.step });
  }

  /** Frees the moments (a GPU backend holds them in device memory until then). */
  dispose(): void {
    for (const { m, v } of this.state.values()) {
      m.dispose();
      v.dispose();
    }
    this.state.clear();
  }
}
