// Matrix products. A transposed operand is passed to the kernel as a flag, not copied, so
// x Wᵀ (linear layers) and the transposed products of the backward cost no extra memory.
import { record } from '../graph.js';
import type { Tensor } from '../tensor.js';
import { checkCompatible, checkRank, defineOp, empty, shapeString } from './core.js';
import { add } from './elementwise.js';
import { contiguous, transpose } from './shape.js';

/** The operand as a row-major buffer plus a transpose flag (copying only if neither fits). */
function asKernelOperand(t: Tensor): [Tensor, boolean] {
  const [rows, cols] = t.shape as [number, number];
  const [rs, cs] = t.strides as [number, number];
  if ((cs === 1 || cols === 1) && (rs === cols || rows === 1)) return [t, false];
  if ((rs === 1 || rows === 1) && (cs === rows || cols === 1)) return [t, true];
  return [contiguous(t), false];
}

/** a [M,K] times b [K,N]. */
export const matmul = defineOp('matmul', true, (a: Tensor, b: Tensor): Tensor => {
  checkCompatible('matmul', { a, b });
  checkRank('matmul', 'a', a, 2);
  checkRank('matmul', 'b', b, 2);
  if (a.shape[1] !== b.shape[0])
    throw new Error(`matmul: inner dimensions differ: a is ${shapeString(a)}, b is ${shapeString(b)}`);
  const [av, transA] = asKernelOperand(a);
  const [bv, transB] = asKernelOperand(b);
  const out = empty([a.shape[0]!, b.shape[1]!], a.dtype, a.backend);
  a.backend.matmul(av, transA, bv, transB, out.storage);
  // Skip the product nobody needs (the data operand of a first layer, a frozen weight). A
  // gradient is computed in its operand's layout: for a transposed view (the Wᵀ of a linear
  // layer) as (gᵀ a)ᵀ rather than aᵀ g, so the transpose's own backward hands the weight a
  // contiguous gradient instead of a strided one that must be copied (10M floats for the
  // Table-5 encoder's last layer, 48 ms a step on the CPU).
  const gradA = (g: Tensor): Tensor => (transA ? transpose(matmul(b, transpose(g))) : matmul(g, transpose(b)));
  const gradB = (g: Tensor): Tensor => (transB ? transpose(matmul(transpose(g), a)) : matmul(transpose(a), g));
  return record(out, 'matmul', [a, b], (g) => [a.requiresGrad ? gradA(g) : null, b.requiresGrad ? gradB(g) : null]);
});

/** PyTorch's linear layer: x [B,in] Wᵀ + bias, with W stored [out,in]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  if (x.rank !== 2 || weight.rank !== 2 || x.shape[1] !== weight.shape[1])
    throw new Error(`linear: input ${shapeString(x)} does not fit weight ${shapeString(weight)} (expected [batch, ${weight.shape[1]}])`);
  const y = matmul(x, transpose(weight));
  return bias ? add(y, bias) : y;
}
