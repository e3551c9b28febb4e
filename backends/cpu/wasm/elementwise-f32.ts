// The float32 pointwise ops whose loops show in a training step's profile (bias adds, ReLU and
// its gradient, scaling), in WebAssembly SIMD, four elements per f32x4. Each one gives the bits
// of elementwise.ts's TypeScript loop, the reference test/cpu-wasm.test.ts checks it against:
// float32 +, -, ×, ÷ and √ round the same as float64 arithmetic rounded to float32, and the
// comparisons become lane masks (NaN compares false, as in JavaScript). Only a NaN's payload
// may differ. scale and shift qualify only when p is a float32 value, for the same reason.
//
// Operands in the CPU backend's heap (../heap.ts), which the module imports, are used where they
// lie; others pass through a staging area in blocks of BLOCK elements (a TypedArray.set is much
// cheaper than a scalar JavaScript loop over the same elements: docs/performance-log.md, "CPU
// elementwise ops in WebAssembly SIMD").
import type { BinaryOp, UnaryOp } from '../../../engine/backend.js';
import { heapAddress, kernelPlace } from '../heap.js';
import { ModuleBuilder, type FunctionBuilder, type Local } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/** Elements per operand per block: a, b and the output sit at 0, 1 and 2 times BLOCK·4 bytes. */
const BLOCK = 4096;

/** Pushes one f32x4 result from the operand vectors a and b and the splat parameter p. */
type Body = (f: FunctionBuilder, a: Local, b: Local, p: Local) => void;

const positive = (f: FunctionBuilder, x: Local): FunctionBuilder => f.get(x).v128Zero().simd(SimdOp.f32x4_gt);

export const unaryBodies: Partial<Record<UnaryOp, Body>> = {
  neg: (f, a) => f.get(a).simd(SimdOp.f32x4_neg),
  abs: (f, a) => f.get(a).simd(SimdOp.f32x4_abs),
  sqrt: (f, a) => f.get(a).simd(SimdOp.f32x4_sqrt),
  square: (f, a) => f.get(a).get(a).simd(SimdOp.f32x4_mul),
  reciprocal: (f, a) => f.f32x4Const(1).get(a).simd(SimdOp.f32x4_div),
  // a > 0 ? a : 0 as a mask: all ones where a > 0, so a's bits or +0.
  relu: (f, a) => positive(f, a).get(a).simd(SimdOp.v128_and),
  step: (f, a) => positive(f, a).f32x4Const(1).simd(SimdOp.v128_and),
  scale: (f, a, _b, p) => f.get(a).get(p).simd(SimdOp.f32x4_mul),
  shift: (f, a, _b, p) => f.get(a).get(p).simd(SimdOp.f32x4_add),
};

export const binaryBodies: Partial<Record<BinaryOp, Body>> = {
  add: (f, a, b) => f.get(a).get(b).simd(SimdOp.f32x4_add),
  sub: (f, a, b) => f.get(a).get(b).simd(SimdOp.f32x4_sub),
  mul: (f, a, b) => f.get(a).get(b).simd(SimdOp.f32x4_mul),
  div: (f, a, b) => f.get(a).get(b).simd(SimdOp.f32x4_div),
  greater: (f, a, b) => f.get(a).get(b).simd(SimdOp.f32x4_gt).f32x4Const(1).simd(SimdOp.v128_and),
  keepWherePositive: (f, a, b) => positive(f, b).get(a).simd(SimdOp.v128_and),
};

/** How an operand's block is read: a run of elements, or one element for the whole block. */
export type Layout = 'vector' | 'scalar';
/** The variants each op is emitted in: unary ops read a vector; binary ops any mix but two scalars. */
const binaryLayouts: readonly (readonly [Layout, Layout])[] = [['vector', 'vector'], ['vector', 'scalar'], ['scalar', 'vector']];

const exportName = (op: string, a: Layout, b: Layout | null): string => `${op}_${a[0]}${b?.[0] ?? ''}`;

/**
 * The module: imports `env.memory` (the heap, or a memory of its own) and exports, per op and
 * layout, `name(vectors, p, a, b, out)`: 4·vectors elements of out from a and b, all byte
 * addresses (a scalar operand's one element at its address).
 */
export function emitElementwiseModule(shared: boolean, pages: number, maxPages: number): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder().importMemory('env', 'memory', pages, maxPages, shared);
  const emit = (name: string, body: Body, aLayout: Layout, bLayout: Layout | null): void => {
    const f = m.addFunction(name, [ValType.i32, ValType.f32, ValType.i32, ValType.i32, ValType.i32], []);
    const [vectors, scalar, aAt, bAt, outAt] = f.paramTuple(5);
    const end = f.local(ValType.i32);
    const a = f.local(ValType.v128), b = f.local(ValType.v128), p = f.local(ValType.v128);
    f.get(scalar).simd(SimdOp.f32x4_splat).set(p);
    // A scalar operand is splat once.
    if (aLayout === 'scalar') f.get(aAt).simdMemory(SimdOp.v128_load32_splat, 2, 0).set(a);
    if (bLayout === 'scalar') f.get(bAt).simdMemory(SimdOp.v128_load32_splat, 2, 0).set(b);
    f.get(vectors).i32(4).op(Op.i32_shl).get(outAt).op(Op.i32_add).set(end);
    f.block(() => f.loop(() => {
      f.get(outAt).get(end).op(Op.i32_ge_u).brIf(1);
      if (aLayout === 'vector') f.get(aAt).simdMemory(SimdOp.v128_load, 2, 0).set(a);
      if (bLayout === 'vector') f.get(bAt).simdMemory(SimdOp.v128_load, 2, 0).set(b);
      f.get(outAt);
      body(f, a, b, p);
      f.simdMemory(SimdOp.v128_store, 2, 0);
      f.get(outAt).i32(16).op(Op.i32_add).set(outAt);
      if (aLayout === 'vector') f.get(aAt).i32(16).op(Op.i32_add).set(aAt);
      if (bLayout === 'vector') f.get(bAt).i32(16).op(Op.i32_add).set(bAt);
      f.br(0);
    }));
  };
  for (const [op, body] of Object.entries(unaryBodies)) emit(exportName(op, 'vector', null), body, 'vector', null);
  for (const [op, body] of Object.entries(binaryBodies)) {
    for (const [a, b] of binaryLayouts) emit(exportName(op, a, b), body, a, b);
  }
  return m.encode();
}

type Block = (vectors: number, p: number, a: number, b: number, out: number) => void;

/** This thread's module and its staging area: 3 blocks of BLOCK floats from element `scratch` of `f32`. */
let compiled: { exports: WebAssembly.Exports; f32: Float32Array; scratch: number } | undefined;

function instance(): { exports: WebAssembly.Exports; f32: Float32Array; scratch: number } {
  if (!compiled) {
    const place = kernelPlace(3 * BLOCK * 4);
    const module = new WebAssembly.Module(emitElementwiseModule(place.shared, place.pages, place.maxPages));
    const exports = new WebAssembly.Instance(module, { env: { memory: place.memory } }).exports;
    compiled = { exports, f32: new Float32Array(place.buffer), scratch: place.scratch / 4 };
  }
  return compiled;
}

/** One row of an elementwise op: n elements of out from a and, for a binary op, b. */
export interface Row {
  out: Float32Array; outAt: number;
  a: Float32Array; aAt: number; aLayout: Layout;
  b: Float32Array | null; bAt: number; bLayout: Layout;
  n: number;
}

/** The block function of op (`unary` or `binary` table) for these layouts, or null where there is none. */
export function elementwiseBlock(op: UnaryOp | BinaryOp, binary: boolean, aLayout: Layout, bLayout: Layout): Block | null {
  const table: Partial<Record<string, Body>> = binary ? binaryBodies : unaryBodies;
  if (!table[op] || (binary ? aLayout === 'scalar' && bLayout === 'scalar' : aLayout !== 'vector')) return null;
  return instance().exports[exportName(op, aLayout, binary ? bLayout : null)] as Block;
}

/**
 * Runs `block` over one row and returns how many of its elements it computed. Operands in the
 * module's memory (the heap) are read and written where they lie, four at a time, and the last
 * n mod 4 are left to the caller (a vector there would write past the row). Others pass through
 * the staging area BLOCK elements at a time, and all n are done.
 */
export function elementwiseRow(block: Block, r: Row, p: number): number {
  const { f32, scratch } = instance();
  const out = heapAddress(r.out), a = heapAddress(r.a), b = r.b ? heapAddress(r.b) : 0;
  if (out !== null && a !== null && b !== null && heapAddress(f32) !== null) {
    const vectors = r.n >> 2;
    block(vectors, p, a + (r.aAt << 2), r.b ? b + (r.bAt << 2) : 0, out + (r.outAt << 2));
    return vectors << 2;
  }
  const [A, B, O] = [scratch, scratch + BLOCK, scratch + 2 * BLOCK];
  for (let s = 0; s < r.n; s += BLOCK) {
    const n = Math.min(BLOCK, r.n - s);
    if (r.aLayout === 'vector') f32.set(r.a.subarray(r.aAt + s, r.aAt + s + n), A);
    else f32[A] = r.a[r.aAt]!;
    if (r.b && r.bLayout === 'vector') f32.set(r.b.subarray(r.bAt + s, r.bAt + s + n), B);
    else if (r.b) f32[B] = r.b[r.bAt]!;
    // Lanes past n compute on stale values and are not copied back.
    block(Math.ceil(n / 4), p, A * 4, B * 4, O * 4);
    r.out.set(f32.subarray(O, O + n), r.outAt + s);
  }
  return r.n;
}
