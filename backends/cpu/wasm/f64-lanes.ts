// Emitting float64 arithmetic over rows of float32 or float64 elements, two at a time (f64x2)
// with one scalar element at the end of a row of odd length. The CPU backend's generated
// JavaScript loops compute in float64 whatever the element type; kernels written with these
// helpers do the same arithmetic in the same order, so they give those loops' bits (used by
// the silent ELBO's epilogue and weight loops).
import type { DType } from '../../../engine/dtype.js';
import { ModuleBuilder, type FunctionBuilder, type Local } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/** How one width loads, stores and computes: f64x2 (two elements) or f64 (one). */
export interface Lanes {
  readonly type: ValType;
  readonly vector: boolean;
  /** Pops an address, pushes its element(s) widened to float64. */
  load(f: FunctionBuilder): void;
  /** Pops an address and float64 value(s), stores them narrowed to the element type. */
  store(f: FunctionBuilder): void;
  /** Pushes a float64 array's element(s), whatever the element type (sums kept in float64). */
  loadF64(f: FunctionBuilder): void;
  storeF64(f: FunctionBuilder): void;
  constant(f: FunctionBuilder, value: number): void;
  /** Appends the instruction of an arithmetic operator. */
  readonly ops: Readonly<Record<'+' | '-' | '*' | '/' | 'negate', (f: FunctionBuilder) => void>>;
}

const plain = (op: number) => (f: FunctionBuilder): void => void f.op(op);
const simd = (sub: number) => (f: FunctionBuilder): void => void f.simd(sub);

export function lanes(vector: boolean, dtype: DType): Lanes {
  const f32 = dtype === 'float32';
  if (!vector) return {
    type: ValType.f64, vector,
    load: (f) => (f32 ? f.memory(Op.f32_load, 2, 0).op(Op.f64_promote_f32) : f.memory(Op.f64_load, 3, 0)),
    store: (f) => (f32 ? f.op(Op.f32_demote_f64).memory(Op.f32_store, 2, 0) : f.memory(Op.f64_store, 3, 0)),
    loadF64: (f) => f.memory(Op.f64_load, 3, 0),
    storeF64: (f) => f.memory(Op.f64_store, 3, 0),
    constant: (f, value) => f.f64(value),
    ops: { '+': plain(Op.f64_add), '-': plain(Op.f64_sub), '*': plain(Op.f64_mul), '/': plain(Op.f64_div), negate: plain(Op.f64_neg) },
  };
  return {
    type: ValType.v128, vector,
    // Two float32s widen exactly to two float64s, and narrow back as a Float32Array store rounds.
    load: (f) => (f32 ? f.simdMemory(SimdOp.v128_load64_zero, 2, 0).simd(SimdOp.f64x2_promote_low_f32x4) : f.simdMemory(SimdOp.v128_load, 3, 0)),
    store: (f) => (f32 ? f.simd(SimdOp.f32x4_demote_f64x2_zero).laneMemory(SimdOp.v128_store64_lane, 2, 0, 0) : f.simdMemory(SimdOp.v128_store, 3, 0)),
    loadF64: (f) => f.simdMemory(SimdOp.v128_load, 3, 0),
    storeF64: (f) => f.simdMemory(SimdOp.v128_store, 3, 0),
    constant: (f, value) => f.f64x2Const(value),
    ops: { '+': simd(SimdOp.f64x2_add), '-': simd(SimdOp.f64x2_sub), '*': simd(SimdOp.f64x2_mul), '/': simd(SimdOp.f64x2_div), negate: simd(SimdOp.f64x2_neg) },
  };
}

/** The loop's position: its row, its column, and both as byte offsets for `size`-byte elements. */
export interface RowPosition { row: Local; column: Local; element: Local; columnBytes: Local }

/**
 * for (row = rowStart; row < rowEnd; row++) { beforeRow(); each pair of columns of [0, width)
 * as f64x2, then the last column alone if width is odd; afterRow(); }. `body` is emitted twice,
 * once per width, and reads the position's locals (element = (row·width + column)·size).
 */
export function forEachPairInRows(f: FunctionBuilder, rowStart: Local, rowEnd: Local, width: Local, size: number,
  body: (lane: Lanes, at: RowPosition) => void, dtype: DType,
  hooks: { beforeRow?: (at: RowPosition) => void; afterRow?: (at: RowPosition) => void } = {}): void {
  const [row, column, pairs, element, columnBytes] = f.locals(ValType.i32, 5);
  const at: RowPosition = { row, column, element, columnBytes };
  const locate = (): void => {
    f.get(column).i32(size).op(Op.i32_mul).set(columnBytes);
    f.get(row).get(width).op(Op.i32_mul).i32(size).op(Op.i32_mul).get(columnBytes).op(Op.i32_add).set(element);
  };
  f.get(width).i32(-2).op(Op.i32_and).set(pairs);
  f.get(rowStart).set(row);
  f.block(() => f.loop(() => {
    f.get(row).get(rowEnd).op(Op.i32_ge_u).brIf(1);
    hooks.beforeRow?.(at);
    f.i32(0).set(column);
    f.block(() => f.loop(() => {
      f.get(column).get(pairs).op(Op.i32_ge_u).brIf(1);
      locate();
      body(lanes(true, dtype), at);
      f.get(column).i32(2).op(Op.i32_add).set(column);
      f.br(0);
    }));
    f.block(() => {
      f.get(column).get(width).op(Op.i32_ge_u).brIf(0);
      locate();
      body(lanes(false, dtype), at);
    });
    hooks.afterRow?.(at);
    f.get(row).i32(1).op(Op.i32_add).set(row);
    f.br(0);
  }));
}

let available: boolean | undefined;

/**
 * Whether this engine validates what the helpers emit (f64x2 arithmetic, 64-bit lane loads and
 * stores, float32 widening and narrowing): kernels built on them fall back to JavaScript if not.
 */
export function f64LanesAvailable(): boolean {
  if (available === undefined) {
    try {
      const m = new ModuleBuilder().importMemory('env', 'memory', 1);
      for (const dtype of ['float32', 'float64'] as const) {
        const f = m.addFunction(`copy_${dtype}`, [ValType.i32, ValType.i32, ValType.i32, ValType.i32, ValType.i32], []);
        const [rowStart, rowEnd, width, from, to] = f.paramTuple(5);
        forEachPairInRows(f, rowStart, rowEnd, width, dtype === 'float32' ? 4 : 8, (lane, { element, columnBytes }) => {
          f.get(to).get(element).op(Op.i32_add).get(from).get(element).op(Op.i32_add);
          lane.load(f);
          lane.ops.negate(f);
          lane.store(f);
          f.get(to).get(columnBytes).op(Op.i32_add).get(from).get(columnBytes).op(Op.i32_add);
          lane.loadF64(f);
          for (const op of ['+', '-', '*', '/'] as const) { lane.constant(f, 2); lane.ops[op](f); }
          lane.storeF64(f);
        }, dtype);
      }
      available = typeof WebAssembly === 'object' && WebAssembly.validate(m.encode());
    } catch {
      available = false;
    }
  }
  return available;
}
