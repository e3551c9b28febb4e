// Strided elementwise loops, generated once per op from one template (so adding a pointwise
// op is one line in a table, never a copied loop). Dimensions that are contiguous in every
// operand are merged first, so the common case is a single flat loop.
import type { BinaryOp, UnaryOp } from '../../engine/backend.js';
import type { FloatArray } from '../../engine/dtype.js';
import { coalesce } from '../strides.js';
import { defineKernel, PARALLEL_MIN_WORK, parallelFor } from './parallel.js';

/** The JavaScript expression of each pointwise op, in terms of a, b and the parameter p. */
const unaryExpressions: Record<UnaryOp, string> = {
  copy: 'a',
  neg: '-a',
  exp: 'Math.exp(a)',
  log: 'Math.log(a)',
  sqrt: 'Math.sqrt(a)',
  abs: 'Math.abs(a)',
  sign: 'Math.sign(a)',
  square: 'a * a',
  reciprocal: '1 / a',
  relu: 'a > 0 ? a : 0',
  // A comparison converted to a number compiles without a branch: 5x faster than a ?: on
  // random signs (2M floats: 2.6 vs 13.7 ms), same values (NaN > 0 is false). relu keeps ?:,
  // since a * +(a > 0) would turn -Infinity into NaN.
  step: '+(a > 0)',
  // The branches keep exp() from overflowing for large |a|.
  sigmoid: 'a >= 0 ? 1 / (1 + Math.exp(-a)) : Math.exp(a) / (1 + Math.exp(a))',
  softplus: 'a > 0 ? a + Math.log1p(Math.exp(-a)) : Math.log1p(Math.exp(a))',
  logSigmoid: 'a < 0 ? a - Math.log1p(Math.exp(a)) : -Math.log1p(Math.exp(-a))',
  tanh: 'Math.tanh(a)',
  scale: 'a * p',
  shift: 'a + p',
  pow: 'Math.pow(a, p)',
};

const binaryExpressions: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  maximum: 'a >= b || b !== b ? a : b',
  minimum: 'a <= b || b !== b ? a : b',
  greater: '+(a > b)',
  keepWherePositive: 'b > 0 ? a : 0',
};

/** A strided operand: data plus offset and per-axis strides (in elements). */
export interface Operand { data: FloatArray; offset: number; strides: readonly number[] }

type Loop = (shape: readonly number[], out: Operand, a: Operand, b: Operand, p: number) => void;

/**
 * The template: iterate `shape` with an index vector, innermost axis as a tight loop.
 * `body` assigns to o[io] from a[ia] (and b[ib]). A reduction also gives `fold`, the same
 * update on a local `acc`: when the innermost axis is the one reduced (o's stride 0 there) it
 * runs in a register instead of a store and reload of o[io] per element, a dependency through
 * memory that made a conv layer's bias gradient (sum over batch and pixels) 3-4x slower.
 */
function generateLoop(body: string, fold?: string): Loop {
  const source = `
    const rank = shape.length;
    const o = out.data, x = A.data, y = B.data;
    const inner = rank ? shape[rank - 1] : 1;
    const so = rank ? out.strides[rank - 1] : 0, sa = rank ? A.strides[rank - 1] : 0, sb = rank ? B.strides[rank - 1] : 0;
    let outer = 1;
    for (let d = 0; d < rank - 1; d++) outer *= shape[d];
    const index = new Int32Array(Math.max(rank - 1, 1));
    let baseO = out.offset, baseA = A.offset, baseB = B.offset;
    for (let n = 0; n < outer; n++) {
      let io = baseO, ia = baseA, ib = baseB;
      ${fold ? `if (so === 0) {
        let acc = o[io];
        for (let i = 0; i < inner; i++) {
          const a = x[ia];
          ${fold};
          ia += sa;
        }
        o[io] = acc;
      } else` : ''} {
        for (let i = 0; i < inner; i++) {
          const a = x[ia], b = y[ib];
          ${body};
          io += so; ia += sa; ib += sb;
        }
      }
      for (let d = rank - 2; d >= 0; d--) {
        index[d]++;
        baseO += out.strides[d]; baseA += A.strides[d]; baseB += B.strides[d];
        if (index[d] < shape[d]) break;
        baseO -= out.strides[d] * shape[d]; baseA -= A.strides[d] * shape[d]; baseB -= B.strides[d] * shape[d];
        index[d] = 0;
      }
    }`;
  return new Function('shape', 'out', 'A', 'B', 'p', source) as Loop;
}

const cache = new Map<string, Loop>();

function loopFor(key: string, body: string, fold?: string): Loop {
  let loop = cache.get(key);
  if (!loop) cache.set(key, (loop = generateLoop(body, fold)));
  return loop;
}

/** `coalesce` (../strides.ts) over operands: the merged dims and each operand on them. */
function coalesceOperands(shape: readonly number[], operands: readonly Operand[]): [number[], Operand[]] {
  const { dims, strides } = coalesce(shape, operands.map((op) => op.strides));
  return [dims, operands.map((op, k) => ({ data: op.data, offset: op.offset, strides: strides[k]! }))];
}

const unaryOps = Object.keys(unaryExpressions) as UnaryOp[];
const binaryOps = Object.keys(binaryExpressions) as BinaryOp[];
const unaryLoop = (op: UnaryOp): Loop => loopFor(`u:${op}`, `o[io] = ${unaryExpressions[op]}`);
const binaryLoop = (op: BinaryOp): Loop => loopFor(`b:${op}`, `o[io] = ${binaryExpressions[op]}`);

/**
 * A share of an elementwise op: rows [start, end) of the outermost (coalesced) axis. Args:
 * binary?, op index, p, rank, the dims, the three offsets, then each operand's strides.
 */
const elementwiseKernel = defineKernel('silentgrad.elementwise', import.meta.url, (arrays, a, start, end) => {
  const rank = a[3]!;
  const dims = Array.from({ length: rank }, (_, d) => a[4 + d]!);
  dims[0] = end - start;
  const operands = arrays.map((data, k): Operand => {
    const strides = Array.from({ length: rank }, (_, d) => a[7 + rank + k * rank + d]!);
    return { data, offset: a[4 + rank + k]! + start * strides[0]!, strides };
  });
  const loop = a[0] === 1 ? binaryLoop(binaryOps[a[1]!]!) : unaryLoop(unaryOps[a[1]!]!);
  loop(dims, operands[0]!, operands[1]!, operands[2]!, a[2]!);
});

/**
 * Runs `loop` over coalesced operands, split over the thread pool along the outermost axis
 * when there is enough work (a ReLU over a 64x32x28x28 activation: 1.6M elements).
 */
function runSplit(binary: boolean, opIndex: number, loop: Loop, dims: number[], [o, x, y]: Operand[], p: number): void {
  const size = dims.reduce((n, d) => n * d, 1);
  if (dims.length === 0 || size < PARALLEL_MIN_WORK) return loop(dims, o!, x!, y!, p);
  const ops = [o!, x!, y!];
  parallelFor(elementwiseKernel, ops.map((op) => op.data),
    [binary ? 1 : 0, opIndex, p, dims.length, ...dims, ...ops.map((op) => op.offset), ...ops.flatMap((op) => op.strides)],
    dims[0]!, 1, size);
}

export function runUnary(op: UnaryOp, shape: readonly number[], out: Operand, a: Operand, p: number): void {
  const [dims, [o, x]] = coalesceOperands(shape, [out, a]);
  runSplit(false, unaryOps.indexOf(op), unaryLoop(op), dims, [o!, x!, x!], p);
}

export function runBinary(op: BinaryOp, shape: readonly number[], out: Operand, a: Operand, b: Operand): void {
  const [dims, [o, x, y]] = coalesceOperands(shape, [out, a, b]);
  runSplit(true, binaryOps.indexOf(op), binaryLoop(op), dims, [o!, x!, y!], 0);
}

/** out (strides 0 along reduced axes) accumulates a: the same loop, reading o[io] as it goes. */
export function runAccumulate(op: 'sum' | 'max', shape: readonly number[], out: Operand, a: Operand): void {
  const [dims, [o, x]] = coalesceOperands(shape, [out, a]);
  const body = op === 'sum' ? 'o[io] += a' : 'if (a > o[io] || a !== a) o[io] = a';
  const fold = op === 'sum' ? 'acc += a' : 'if (a > acc || a !== a) acc = a';
  loopFor(`r:${op}`, body, fold)(dims, o!, x!, x!, 0);
}
