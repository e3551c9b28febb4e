// Reductions over axes. sum is the one differentiable primitive; mean and the rest compose it.
import { record } from '../graph.js';
import type { Tensor } from '../tensor.js';
import { defineOp, emptyLike, shapeString } from './core.js';
import { scale } from './elementwise.js';
import { expand, reshape } from './shape.js';

function normalizeAxes(op: string, x: Tensor, axes: readonly number[] | undefined): number[] {
  const all = x.shape.map((_, i) => i);
  if (axes === undefined) return all;
  const normalized = axes.map((a) => (a < 0 ? a + x.rank : a));
  for (const a of normalized)
    if (!Number.isInteger(a) || a < 0 || a >= x.rank) throw new Error(`${op}: axes [${axes}] out of range for ${shapeString(x)}`);
  return [...new Set(normalized)].sort((a, b) => a - b);
}

const keptShape = (x: Tensor, axes: readonly number[]): number[] => x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
const droppedShape = (x: Tensor, axes: readonly number[]): number[] => x.shape.filter((_, i) => !axes.includes(i));

/** Sum over `axes` (all by default). */
export const sumAxes = defineOp('sum', true, (x: Tensor, axes?: readonly number[], keepDims = false): Tensor => {
  const ax = normalizeAxes('sum', x, axes);
  const kept = keptShape(x, ax);
  const out = emptyLike(x, kept);
  x.backend.reduce('sum', x, ax, out.storage);
  const result = keepDims ? out : reshape(out, droppedShape(x, ax));
  return record(result, 'sum', [x], (g) => [expand(reshape(g, kept), x.shape)]);
});

/** Max over `axes`; not differentiable here (nothing in the models needs its gradient). */
export const maxAxes = defineOp('max', false, (x: Tensor, axes?: readonly number[], keepDims = false): Tensor => {
  const ax = normalizeAxes('max', x, axes);
  const out = emptyLike(x, keptShape(x, ax));
  x.backend.reduce('max', x, ax, out.storage);
  return keepDims ? out : reshape(out, droppedShape(x, ax));
});

export const sum = (x: Tensor, axes?: readonly number[], keepDims = false): Tensor => sumAxes(x, axes, keepDims);

export const mean = (x: Tensor, axes?: readonly number[], keepDims = false): Tensor => {
  const ax = normalizeAxes('mean', x, axes);
  const count = ax.reduce((n, a) => n * x.shape[a]!, 1);
  return scale(sumAxes(x, ax, keepDims), 1 / count);
};
