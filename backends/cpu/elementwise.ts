// Strided elementwise loops, generated once per op from one template (so adding a pointwise
// op is one line in a table, never a copied loop). Dimensions that are contiguous in every
// operand are merged first, so the common case is a single flat loop. Float32 ops whose rows
// are contiguous (or broadcast along the row) run wasm/elementwise-f32.ts's SIMD loops instead,
// which give the same bits; these loops stay the reference and serve everything else.
import type { BinaryOp, UnaryOp } from '../../engine/backend.js';
import type { FloatArray } from '../../engine/dtype.js';
import { coalesce } from '../strides.js';
import { getCpuKernels } from './gemm.js';
import { generatedFunction } from './generated.js';
import { defineKernel, PARALLEL_MIN_WORK, parallelFor } from './parallel.js';
import { elementwiseBlock, elementwiseRow, type Layout } from './wasm/elementwise-f32.js';

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

export type Loop = (shape: readonly number[], out: Operand, a: Operand, b: Operand, p: number) => void;

/**
 * The template: iterate `shape` with an index vector, innermost axis as a tight loop.
 * `body` assigns to o[io] from a[ia] (and b[ib]). A reduction also gives `fold`, the same
 * update on a local `acc`: when the innermost axis is the one reduced (o's stride 0 there) it
 * runs in a register instead of a store and reload of o[io] per element, a dependency through
 * memory that made a conv layer's bias gradient (sum over batch and pixels) 3-4x slower.
 */
function generateLoop(name: string, body: string, fold?: string): Loop {
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
  // Named (unary_exp, binary_add, sum, ...) so that profiles say which op a loop is.
  return generatedFunction<Loop>(name, ['shape', 'out', 'A', 'B', 'p'], source);
}

const cache = new Map<string, Loop>();

function loopFor(name: string, body: string, fold?: string): Loop {
  let loop = cache.get(name);
  if (!loop) cache.set(name, (loop = generateLoop(name, body, fold)));
  return loop;
}

/** `coalesce` (../strides.ts) over operands: the merged dims and each operand on them. */
function coalesceOperands(shape: readonly number[], operands: readonly Operand[]): [number[], Operand[]] {
  const { dims, strides } = coalesce(shape, operands.map((op) => op.strides));
  return [dims, operands.map((op, k) => ({ data: op.data, offset: op.offset, strides: strides[k]! }))];
}

const unaryOps = Object.keys(unaryExpressions) as UnaryOp[];
const binaryOps = Object.keys(binaryExpressions) as BinaryOp[];
const unaryLoop = (op: UnaryOp): Loop => loopFor(`unary_${op}`, `o[io] = ${unaryExpressions[op]}`);
const binaryLoop = (op: BinaryOp): Loop => loopFor(`binary_${op}`, `o[io] = ${binaryExpressions[op]}`);

/** Rows shorter than this stay in TypeScript: a Wasm call and its copies cost more than they save. */
const WASM_MIN_ROW = 32;

/** Calls `row(io, ia, ib)` with each row's start in out, A and B, rows in order. */
function forEachRow(shape: readonly number[], out: Operand, A: Operand, B: Operand, row: (io: number, ia: number, ib: number) => void): void {
  const rank = shape.length;
  const index = new Array<number>(rank - 1).fill(0);
  let io = out.offset, ia = A.offset, ib = B.offset;
  for (;;) {
    row(io, ia, ib);
    let d = rank - 2;
    for (; d >= 0; d--) {
      io += out.strides[d]!; ia += A.strides[d]!; ib += B.strides[d]!;
      if (++index[d]! < shape[d]!) break;
      io -= out.strides[d]! * shape[d]!; ia -= A.strides[d]! * shape[d]!; ib -= B.strides[d]! * shape[d]!;
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

/**
 * The Wasm SIMD loop for this op and these coalesced operands, or null where it does not apply
 * (not float32, a row not contiguous in out, a short row, an op without one, scale or shift by a
 * p that float32 cannot hold, or SILENTGRAD_CPU_KERNELS=js).
 */
export function wasmLoop(binary: boolean, op: UnaryOp | BinaryOp, p: number, dims: readonly number[], [o, x, y]: readonly Operand[]): Loop | null {
  const rank = dims.length;
  if (rank === 0 || dims[rank - 1]! < WASM_MIN_ROW || getCpuKernels() !== 'wasm') return null;
  if (!(o!.data instanceof Float32Array && x!.data instanceof Float32Array && y!.data instanceof Float32Array)) return null;
  if ((op === 'scale' || op === 'shift') && Math.fround(p) !== p) return null;
  const layout = (operand: Operand): Layout | null => {
    const stride = operand.strides[rank - 1];
    return stride === 1 ? 'vector' : stride === 0 ? 'scalar' : null;
  };
  const aLayout = layout(x!), bLayout = binary ? layout(y!) : 'vector';
  if (o!.strides[rank - 1] !== 1 || !aLayout || !bLayout) return null;
  const block = elementwiseBlock(op, binary, aLayout, bLayout);
  if (!block) return null;
  // A row's last few elements, where the Wasm loop leaves them, take the TypeScript loop.
  const tail = binary ? binaryLoop(op as BinaryOp) : unaryLoop(op as UnaryOp);
  const from = (operand: Operand, at: number, layout: Layout, done: number): Operand =>
    ({ data: operand.data, offset: layout === 'vector' ? at + done : at, strides: [layout === 'vector' ? 1 : 0] });
  return (shape, out, A, B, scalar) => forEachRow(shape, out, A, B, (outAt, aAt, bAt) => {
    const n = shape[rank - 1]!;
    const done = elementwiseRow(block, {
      out: out.data as Float32Array, outAt, a: A.data as Float32Array, aAt, aLayout,
      b: binary ? B.data as Float32Array : null, bAt, bLayout, n,
    }, scalar);
    if (done < n) tail([n - done], from(out, outAt, 'vector', done), from(A, aAt, aLayout, done), from(B, bAt, bLayout, done), scalar);
  });
}

/** Rows shorter than this are copied by the loop: a TypedArray.set call costs more than it saves. */
const SET_MIN_ROW = 16;

/**
 * A copy whose rows are contiguous in both operands (a slice of a wider matrix, a strided
 * destination) as one native TypedArray.set a row, which converts between float32 and float64
 * as the loop's assignment does; null where rows are strided or short.
 */
function rowCopy(dims: readonly number[], [o, x]: readonly Operand[]): Loop | null {
  const rank = dims.length;
  if (rank === 0 || dims[rank - 1]! < SET_MIN_ROW || o!.strides[rank - 1] !== 1 || x!.strides[rank - 1] !== 1) return null;
  return (shape, out, A, B) => forEachRow(shape, out, A, B, (outAt, aAt) => out.data.set(A.data.subarray(aAt, aAt + shape[rank - 1]!), outAt));
}

/**
 * The loop an op runs on these operands: a native copy or Wasm SIMD where it applies, else the
 * generated one.
 */
function chooseLoop(binary: boolean, opIndex: number, p: number, dims: readonly number[], operands: readonly Operand[]): Loop {
  const op = binary ? binaryOps[opIndex]! : unaryOps[opIndex]!;
  return (op === 'copy' ? rowCopy(dims, operands) : null) ?? wasmLoop(binary, op, p, dims, operands)
    ?? (binary ? binaryLoop(op as BinaryOp) : unaryLoop(op as UnaryOp));
}

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
  chooseLoop(a[0] === 1, a[1]!, a[2]!, dims, operands)(dims, operands[0]!, operands[1]!, operands[2]!, a[2]!);
});

/**
 * Runs `loop` over coalesced operands, split over the thread pool along the outermost axis
 * when there is enough work (a ReLU over a 64x32x28x28 activation: 1.6M elements).
 */
function runSplit(binary: boolean, opIndex: number, dims: number[], [o, x, y]: Operand[], p: number): void {
  const size = dims.reduce((n, d) => n * d, 1);
  if (dims.length === 0 || size < PARALLEL_MIN_WORK) return chooseLoop(binary, opIndex, p, dims, [o!, x!, y!])(dims, o!, x!, y!, p);
  const ops = [o!, x!, y!];
  parallelFor(elementwiseKernel, ops.map((op) => op.data),
    [binary ? 1 : 0, opIndex, p, dims.length, ...dims, ...ops.map((op) => op.offset), ...ops.flatMap((op) => op.strides)],
    dims[0]!, 1, size);
}

export function runUnary(op: UnaryOp, shape: readonly number[], out: Operand, a: Operand, p: number): void {
  const [dims, [o, x]] = coalesceOperands(shape, [out, a]);
  runSplit(false, unaryOps.indexOf(op), dims, [o!, x!, x!], p);
}

export function runBinary(op: BinaryOp, shape: readonly number[], out: Operand, a: Operand, b: Operand): void {
  const [dims, [o, x, y]] = coalesceOperands(shape, [out, a, b]);
  runSplit(true, binaryOps.indexOf(op), dims, [o!, x!, y!], 0);
}

/** out (strides 0 along reduced axes) accumulates a: the same loop, reading o[io] as it goes. */
export function runAccumulate(op: 'sum' | 'max', shape: readonly number[], out: Operand, a: Operand): void {
  const [dims, [o, x]] = coalesceOperands(shape, [out, a]);
  const body = op === 'sum' ? 'o[io] += a' : 'if (a > o[io] || a !== a) o[io] = a';
  const fold = op === 'sum' ? 'acc += a' : 'if (a > acc || a !== a) acc = a';
  loopFor(op, body, fold)(dims, o!, x!, x!, 0);
}
