// Random draws as tensors. Not differentiable: estimators build their gradients from these
// samples (reparameterization, Gumbel-Softmax) or around them (REINFORCE).
import type { RandomKind } from '../backend.js';
import type { DType } from '../dtype.js';
import type { RandomStream } from '../random.js';
import type { Tensor } from '../tensor.js';
import { defineOp, empty, getDefaultBackend, type CreateOptions } from './core.js';
import { greater, log, neg } from './elementwise.js';

function draw(kind: RandomKind) {
  return defineOp(kind, false, (shape: readonly number[], stream: RandomStream, options: CreateOptions = {}): Tensor => {
    const dtype: DType = options.dtype ?? 'float32';
    const out = empty(shape, dtype, options.backend ?? getDefaultBackend());
    out.backend.random(kind, stream.seed, stream.take(out.size), out.storage);
    return out;
  });
}

/** Uniform on (0, 1). */
export const uniform = draw('uniform');
/** Standard normal. */
export const normal = draw('normal');

/** Bernoulli(p) draws as 0/1, with p any tensor of probabilities. */
export const bernoulli = (p: Tensor, stream: RandomStream): Tensor =>
  greater(p, uniform(p.shape, stream, { dtype: p.dtype, backend: p.backend }));

/** Standard Gumbel draws, -log(-log u). */
export const gumbel = (shape: readonly number[], stream: RandomStream, options: CreateOptions = {}): Tensor =>
  neg(log(neg(log(uniform(shape, stream, options)))));
