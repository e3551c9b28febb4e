// Movement ops. Most are free views onto the same storage (reshape of a contiguous tensor,
// permute, expand, slice); a copy happens only when a kernel needs contiguous memory.
import { record } from '../graph.js';
import { Tensor, contiguousStrides, sizeOf } from '../tensor.js';
import { checkCompatible, defineOp, emptyLike, shapeString, zeros } from './core.js';
import { sumAxes } from './reduce.js';

function normalizeAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** A contiguous copy, or the tensor itself when it already is one. */
export const contiguous = defineOp('contiguous', true, (x: Tensor): Tensor => {
  if (x.isContiguous) return x;
  const out = emptyLike(x);
  x.backend.unary('copy', x, out, 0);
  return record(out, 'contiguous', [x], (g) => [g]);
});

/** A fresh contiguous copy (gradient passes straight through). */
export const clone = defineOp('clone', true, (x: Tensor): Tensor => {
  const out = emptyLike(x);
  x.backend.unary('copy', x, out, 0);
  return record(out, 'clone', [x], (g) => [g]);
});

export const reshape = defineOp('reshape', true, (x: Tensor, shape: readonly number[]): Tensor => {
  const inferred = shape.indexOf(-1);
  const known = sizeOf(shape.filter((d) => d !== -1));
  const target = shape.map((d) => (d === -1 ? x.size / known : d));
  if (shape.filter((d) => d === -1).length > 1 || (inferred >= 0 && !Number.isInteger(target[inferred])) || sizeOf(target) !== x.size)
    throw new Error(`reshape: cannot reshape ${shapeString(x)} (${x.size} elements) into [${shape}]`);
  const source = contiguous(x);
  const out = source.view(target, contiguousStrides(target), source.offset);
  return record(out, 'reshape', [source], (g) => [reshape(g, source.shape)]);
});

export const flatten = (x: Tensor, fromAxis = 1): Tensor =>
  reshape(x, [...x.shape.slice(0, fromAxis), sizeOf(x.shape.slice(fromAxis))]);

export const permute = defineOp('permute', true, (x: Tensor, order: readonly number[]): Tensor => {
  if (order.length !== x.rank || [...order].sort((a, b) => a - b).some((a, i) => a !== i))
    throw new Error(`permute: [${order}] is not a permutation of the ${x.rank} axes of ${shapeString(x)}`);
  const out = x.view(order.map((a) => x.shape[a]!), order.map((a) => x.strides[a]!), x.offset);
  const inverse = order.map((_, i) => order.indexOf(i));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
});

/** Swap the last two axes (a free view; matmul reads it as a transposed operand). */
export const transpose = (x: Tensor): Tensor => {
  if (x.rank < 2) throw new Error(`transpose: needs rank >= 2, got ${shapeString(x)}`);
  const order = x.shape.map((_, i) => i);
  order[x.rank - 2] = x.rank - 1;
  order[x.rank - 1] = x.rank - 2;
  return permute(x, order);
};

/** NumPy broadcasting of two shapes, or an error naming the op and both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`${op}: cannot broadcast shapes [${a}] and [${b}]`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Sum a broadcast gradient back down to `shape`: the one un-broadcast helper. */
export function unbroadcast(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  return reshape(sumAxes(g, axes), shape);
}

/** x seen with `shape` (stride 0 along broadcast axes), or x itself if the shape is already that. */
export function broadcastView(x: Tensor, shape: readonly number[]): Tensor {
  if (x.rank === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  const target = broadcastShapes('expand', x.shape, shape);
  if (target.some((d, i) => d !== shape[i])) throw new Error(`expand: cannot expand ${shapeString(x)} to [${shape}]`);
  const lead = shape.length - x.rank;
  const strides = shape.map((d, i) => (i < lead || x.shape[i - lead] !== d ? 0 : x.strides[i - lead]!));
  return x.view(shape, strides, x.offset);
}

/** Broadcast to a larger shape as a stride-0 view: no memory is copied. */
export const expand = defineOp('expand', true, (x: Tensor, shape: readonly number[]): Tensor => {
  const out = broadcastView(x, shape);
  if (out === x) return x;
  return record(out, 'expand', [x], (g) => [unbroadcast(g, x.shape)]);
});

function sliceView(x: Tensor, axis: number, start: number, end: number): Tensor {
  const shape = [...x.shape];
  shape[axis] = end - start;
  return x.view(shape, x.strides, x.offset + start * x.strides[axis]!);
}

/** x[..., start:end, ...] along one axis: a view. */
export const slice = defineOp('slice', true, (x: Tensor, axis: number, start: number, end: number): Tensor => {
  const a = normalizeAxis('slice', axis, x.rank);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > x.shape[a]! || start > end)
    throw new Error(`slice: range ${start}:${end} is outside axis ${a} of ${shapeString(x)}`);
  const out = sliceView(x, a, start, end);
  return record(out, 'slice', [x], (g) => [padSlice(g, x.shape, a, start)]);
});

/** The adjoint of slice: zeros of `shape` with x written at [start, start + len) along axis. */
export const padSlice = defineOp('padSlice', true, (x: Tensor, shape: readonly number[], axis: number, start: number): Tensor => {
  const out = zeros(shape, { dtype: x.dtype, backend: x.backend });
  const region = sliceView(out, axis, start, start + x.shape[axis]!);
  x.backend.unary('copy', x, region, 0);
  region.dispose();
  return record(out, 'padSlice', [x], (g) => [slice(g, axis, start, start + x.shape[axis]!)]);
});

export const concat = defineOp('concat', true, (xs: readonly Tensor[], axis: number): Tensor => {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor');
  const first = xs[0]!;
  const a = normalizeAxis('concat', axis, first.rank);
  checkCompatible('concat', Object.fromEntries(xs.map((t, i) => [`tensors[${i}]`, t])));
  for (const [i, t] of xs.entries())
    if (t.rank !== first.rank || t.shape.some((d, k) => k !== a && d !== first.shape[k]))
      throw new Error(`concat: tensors[${i}] has shape ${shapeString(t)}, incompatible with ${shapeString(first)} along axis ${a}`);
  const shape = [...first.shape];
  shape[a] = xs.reduce((n, t) => n + t.shape[a]!, 0);
  const out = emptyLike(first, shape);
  const starts: number[] = [];
  let start = 0;
  for (const t of xs) {
    starts.push(start);
    const region = sliceView(out, a, start, start + t.shape[a]!);
    t.backend.unary('copy', t, region, 0);
    region.dispose();
    start += t.shape[a]!;
  }
  return record(out, 'concat', xs, (g) => xs.map((t, i) => slice(g, a, starts[i]!, starts[i]! + t.shape[a]!)));
});
