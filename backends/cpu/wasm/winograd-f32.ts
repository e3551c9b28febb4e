// The float32 Winograd F(4x4, 3x3) kernels in WebAssembly SIMD, generated with the emitter in
// module.ts: the input, output and output-gradient transforms of ../winograd.ts, four at a
// time (one per f32x4 lane), macro.ts's kernel for the 36 GEMMs, and a row copier for
// zero padding. The transforms write their results straight into the packed panels the macro
// kernel reads (row panels of 4, column panels of 8, k-major), so the GEMMs need no packing.
// ../winograd-wasm.ts drives them.
//
// Two shapes of function cover the three transforms:
//   gather   each lane loaded from its own address (v128.load32_lane), then L·X·Lᵀ, then one
//            f32x4 store per tile position ξ into a panel: d -> Bᵀ d B and dY -> A dY Aᵀ;
//   scatter  one f32x4 load per ξ from a GEMM result, then L·X·Lᵀ, then each lane stored to its
//            own address (v128.store32_lane): M -> Aᵀ M A.
// Lane addresses come from a table the driver fills (4 i32 per outer step) plus a stride per inner
// step, so lanes can be four tiles (the forward's A panels) or four channels (the filter
// gradient's, and every output).
import { transforms, type Matrix } from '../../winograd-f4x3.js';
import { DEFAULT_TILE } from './gemm-f32.js';
import { addMacro, F32, relaxedMaddChosen, type Macro } from './macro.js';
import { heap, heapAllocate, heapBuffer, heapOwner, heapRelease, HEAP_MAX_PAGES } from '../heap.js';
import { kernelMemory, sharedMemories } from './memory.js';
import { ModuleBuilder, type FunctionBuilder, type Local } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

const LANES = 4;
/** The memory's limit in 64 KiB pages (1 GiB): a shared memory reserves its maximum up front. */
const MAX_PAGES = HEAP_MAX_PAGES;

/**
 * Push Σ coefficient·term on the stack (f32x4), skipping zero coefficients; terms are pushed by
 * their callbacks. Zero terms give a zero vector.
 */
function combination(f: FunctionBuilder, terms: readonly (readonly [number, () => void])[]): void {
  const used = terms.filter(([c]) => c !== 0);
  if (used.length === 0) { f.v128Zero(); return; }
  used.forEach(([c, push], i) => {
    push();
    if (Math.abs(c) !== 1) f.f32x4Const(Math.abs(c)).simd(SimdOp.f32x4_mul);
    if (i === 0) { if (c < 0) f.simd(SimdOp.f32x4_neg); }
    else f.simd(c < 0 ? SimdOp.f32x4_sub : SimdOp.f32x4_add);
  });
}

/**
 * out = L · X · Lᵀ on f32x4 locals, as ../winograd-f4x3.ts's sandwichLines orders it: X (q x q,
 * row-major in `x`), t = L·X into locals, then `store(r, s, push)` for each out[r][s], r-major,
 * where `push` leaves the value on the stack.
 */
function sandwich(f: FunctionBuilder, L: Matrix, x: readonly Local[], store: (r: number, s: number, push: () => void) => void): void {
  const p = L.length, q = L[0]!.length;
  const t: Local[] = [];
  for (let r = 0; r < p; r++) {
    for (let c = 0; c < q; c++) {
      combination(f, L[r]!.map((w, k) => [w, () => f.get(x[k * q + c]!)] as const));
      t.push(f.local(ValType.v128));
      f.set(t[r * q + c]!);
    }
  }
  for (let r = 0; r < p; r++)
    for (let s = 0; s < p; s++) store(r, s, () => combination(f, L[s]!.map((w, k) => [w, () => f.get(t[r * q + k]!)] as const)));
}

/** Load lane bases `table[o]` (4 byte addresses at table + 16·o) into `lanes`. */
function loadLanes(f: FunctionBuilder, table: Local, o: Local, lanes: readonly Local[]): void {
  for (let l = 0; l < LANES; l++) f.get(table).get(o).i32(4).op(Op.i32_shl).op(Op.i32_add).memory(Op.i32_load, 2, 4 * l).set(lanes[l]!);
}

/**
 * gather(table, outer, inner, innerSrc, dst, outerDst, pairDst, halfDst, xiStride, rowBytes):
 * for each outer step o and inner step i, lane l's q x q tile X starts at table[o][l] + i·innerSrc
 * (rows rowBytes apart, f32 elements 4 bytes apart); L·X·Lᵀ's element ξ goes to
 * dst + o·outerDst + (i>>1)·pairDst + (i&1)·halfDst + ξ·xiStride. The pair/half split lets four
 * lanes fill either half of an 8-wide column panel.
 */
function addGather(m: ModuleBuilder, name: string, L: Matrix): void {
  const q = L[0]!.length;
  const f = m.addFunction(name, new Array<ValType>(10).fill(ValType.i32), []);
  const [table, outer, inner, innerSrc, dst, outerDst, pairDst, halfDst, xiStride, rowBytes] = f.paramTuple(10);
  const o = f.local(ValType.i32), i = f.local(ValType.i32), out = f.local(ValType.i32);
  const lanes = Array.from({ length: LANES }, () => f.local(ValType.i32));
  const rows = Array.from({ length: LANES }, () => f.local(ValType.i32));
  const x = Array.from({ length: q * q }, () => f.local(ValType.v128));
  f.forLoop(o, outer, () => {
    loadLanes(f, table, o, lanes);
    f.forLoop(i, inner, () => {
      for (let k = 0; k < q; k++) {
        for (let l = 0; l < LANES; l++) {
          if (k === 0) f.get(lanes[l]!).set(rows[l]!);
          else f.advance(rows[l]!, rowBytes);
        }
        for (let c = 0; c < q; c++) {
          const e = x[k * q + c]!;
          f.get(rows[0]!).simdMemory(SimdOp.v128_load32_splat, 2, 4 * c).set(e);
          for (let l = 1; l < LANES; l++) f.get(rows[l]!).get(e).laneMemory(SimdOp.v128_load32_lane, 2, 4 * c, l).set(e);
        }
      }
      f.get(dst).get(o).get(outerDst).op(Op.i32_mul).op(Op.i32_add)
        .get(i).i32(1).op(Op.i32_shr_u).get(pairDst).op(Op.i32_mul).op(Op.i32_add)
        .get(i).i32(1).op(Op.i32_and).get(halfDst).op(Op.i32_mul).op(Op.i32_add).set(out);
      sandwich(f, L, x, (_r, _s, push) => {
        f.get(out);
        push();
        f.simdMemory(SimdOp.v128_store, 4, 0);
        f.advance(out, xiStride);
      });
      for (const l of lanes) f.advance(l, innerSrc);
    });
  });
}

/**
 * scatter(src, outer, inner, outerSrc, innerSrc, xiStride, table, innerDst, rowBytes): for each
 * outer step o and inner step i, X's element ξ is the f32x4 at src + o·outerSrc + i·innerSrc +
 * ξ·xiStride; lane l of L·X·Lᵀ (p x p) goes to the tile at table[o][l] + i·innerDst (rows
 * rowBytes apart).
 */
function addScatter(m: ModuleBuilder, name: string, L: Matrix): void {
  const q = L[0]!.length;
  const f = m.addFunction(name, new Array<ValType>(9).fill(ValType.i32), []);
  const [src, outer, inner, outerSrc, innerSrc, xiStride, table, innerDst, rowBytes] = f.paramTuple(9);
  const o = f.local(ValType.i32), i = f.local(ValType.i32), from = f.local(ValType.i32);
  const lanes = Array.from({ length: LANES }, () => f.local(ValType.i32));
  const rows = Array.from({ length: LANES }, () => f.local(ValType.i32));
  const x = Array.from({ length: q * q }, () => f.local(ValType.v128));
  const value = f.local(ValType.v128);
  f.forLoop(o, outer, () => {
    loadLanes(f, table, o, lanes);
    f.forLoop(i, inner, () => {
      f.get(src).get(o).get(outerSrc).op(Op.i32_mul).op(Op.i32_add).get(i).get(innerSrc).op(Op.i32_mul).op(Op.i32_add).set(from);
      x.forEach((e, n) => {
        f.get(from).simdMemory(SimdOp.v128_load, 4, 0).set(e);
        if (n + 1 < x.length) f.advance(from, xiStride);
      });
      sandwich(f, L, x, (r, s, push) => {
        if (s === 0) {
          for (let l = 0; l < LANES; l++) {
            if (r === 0) f.get(lanes[l]!).set(rows[l]!);
            else f.advance(rows[l]!, rowBytes);
          }
        }
        push();
        f.set(value);
        for (let l = 0; l < LANES; l++) f.get(rows[l]!).get(value).laneMemory(SimdOp.v128_store32_lane, 2, 4 * s, l);
      });
      for (const l of lanes) f.advance(l, innerDst);
    });
  });
}

/**
 * copy(src, dst, images, planes, rows, rowBytes, srcRow, srcPlane, srcImage, dstRow, dstPlane,
 * dstImage): `rowBytes` bytes of each row of each plane of each image, with the given byte
 * strides on each side (memory.copy per row). Pads planes on the way in and unpads them on the
 * way out.
 */
function addCopy(m: ModuleBuilder): void {
  const f = m.addFunction('copy', new Array<ValType>(12).fill(ValType.i32), []);
  const [src, dst, images, planes, rows, rowBytes, srcRow, srcPlane, srcImage, dstRow, dstPlane, dstImage] = f.paramTuple(12);
  const n = f.local(ValType.i32), pl = f.local(ValType.i32), r = f.local(ValType.i32);
  const s = f.local(ValType.i32), d = f.local(ValType.i32);
  f.forLoop(n, images, () => {
    f.forLoop(pl, planes, () => {
      f.get(src).get(n).get(srcImage).op(Op.i32_mul).op(Op.i32_add).get(pl).get(srcPlane).op(Op.i32_mul).op(Op.i32_add).set(s);
      f.get(dst).get(n).get(dstImage).op(Op.i32_mul).op(Op.i32_add).get(pl).get(dstPlane).op(Op.i32_mul).op(Op.i32_add).set(d);
      f.forLoop(r, rows, () => {
        f.get(d).get(s).get(rowBytes).memoryCopy();
        f.advance(s, srcRow);
        f.advance(d, dstRow);
      });
    });
  });
}

/**
 * The module: imports `env.memory` (growable, `shared` or not: memory.ts) and exports macro, the
 * three transforms and copy.
 */
export function emitWinogradModule(fused: boolean, shared: boolean): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder().importMemory('env', 'memory', 1, MAX_PAGES, shared);
  addMacro(m, DEFAULT_TILE, F32, fused);
  addGather(m, 'inputTransform', transforms.input);
  addGather(m, 'outputGradTransform', transforms.outputGradient);
  addScatter(m, 'outputTransform', transforms.output);
  addCopy(m);
  return m.encode();
}

type Gather = (table: number, outer: number, inner: number, innerSrc: number, dst: number, outerDst: number,
  pairDst: number, halfDst: number, xiStride: number, rowBytes: number) => void;
type Scatter = (src: number, outer: number, inner: number, outerSrc: number, innerSrc: number, xiStride: number,
  table: number, innerDst: number, rowBytes: number) => void;
type Copy = (src: number, dst: number, images: number, planes: number, rows: number, rowBytes: number,
  srcRow: number, srcPlane: number, srcImage: number, dstRow: number, dstPlane: number, dstImage: number) => void;

/** This thread's compiled kernels and their memory. */
export interface WinogradWasm {
  readonly macro: Macro;
  /** d (6x6) -> Bᵀ d B */
  readonly inputTransform: Gather;
  /** dY (4x4) -> A dY Aᵀ (6x6) */
  readonly outputGradTransform: Gather;
  /** M (6x6) -> Aᵀ M A (4x4) */
  readonly outputTransform: Scatter;
  readonly copy: Copy;
  /**
   * Views of the memory and the byte address of this thread's scratch of at least `bytes` (in
   * the heap where the module imports it; views taken before a growth go stale), or null when
   * the heap has no room for it (the caller then runs the TypeScript path).
   */
  views(bytes: number): { f32: Float32Array; i32: Int32Array; base: number } | null;
  /** Whether the module's memory is the heap (../heap.ts), so heap arrays can be read in place. */
  readonly inHeap: boolean;
}

let compiled: WinogradWasm | undefined;
let available: boolean | undefined;

/** Whether this engine validates the module (SIMD with lane loads and stores, bulk memory). */
export function wasmWinogradAvailable(): boolean {
  if (available === undefined) {
    try {
      available = typeof WebAssembly === 'object' && WebAssembly.validate(emitWinogradModule(false, sharedMemories()));
    } catch {
      available = false;
    }
  }
  return available;
}

/** Compile (once per thread) and return the kernels. */
export function winogradWasm(): WinogradWasm {
  if (compiled) return compiled;
  const shared = heap();
  const memory = shared ?? kernelMemory(1, MAX_PAGES);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(emitWinogradModule(relaxedMaddChosen(), shared !== null || sharedMemories())), { env: { memory } });
  const e = instance.exports;
  const buffer = (): ArrayBufferLike => (shared ? heapBuffer(shared) : memory.buffer);
  let f32 = new Float32Array(buffer()), i32 = new Int32Array(buffer());
  // In the heap, a block that is replaced by a bigger one when a problem needs more.
  let scratch: { at: number; bytes: number } | null = null;
  compiled = {
    macro: e.macro as Macro,
    inputTransform: e.inputTransform as Gather,
    outputGradTransform: e.outputGradTransform as Gather,
    outputTransform: e.outputTransform as Scatter,
    copy: e.copy as Copy,
    inHeap: shared !== null,
    views(bytes: number) {
      let base = 0;
      if (shared) {
        if (!scratch || scratch.bytes < bytes) {
          const size = Math.max(bytes, 2 * (scratch?.bytes ?? 0));
          const at = heapAllocate(size);
          if (at === null) return null;
          if (scratch && heapOwner()) heapRelease(scratch.at, scratch.bytes);
          scratch = { at, bytes: size };
        }
        base = scratch.at;
      } else {
        const have = memory.buffer.byteLength;
        if (have < bytes) memory.grow(Math.ceil((bytes - have) / 65536));
      }
      const b = buffer();
      if (f32.buffer !== b) { f32 = new Float32Array(b); i32 = new Int32Array(b); }
      return { f32, i32, base };
    },
  };
  return compiled;
}
