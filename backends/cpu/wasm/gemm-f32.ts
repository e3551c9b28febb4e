// Float32 GEMM with its inner loops in WebAssembly SIMD, generated at run time by the emitter in
// module.ts. The blocking is gemm.ts's (GotoBLAS: B packed in KC×NC blocks as column panels of
// NR, A in MC×KC blocks as row panels of MR, both k-major, missing lanes zero); the packing is
// done here in TypeScript, straight into the Wasm memory, as float32. The generated function
// `macro` then walks every MR×NR tile of the packed block and keeps the tile in MR·NR/4 f32x4
// registers across the kc steps: per step it loads NR/4 vectors of B, broadcasts each of the MR
// values of A (v128.load32_splat) and does MR·NR/4 multiply-adds. Tiles are written to a C block
// in the same memory, and TypeScript adds (or copies) the valid mc×nc part into C.
//
// Unlike gemm.ts's kernel, which accumulates in float64, this one accumulates in float32, as
// BLAS sgemm does; results differ from the reference kernel by float32 rounding. Float64
// products stay on the TypeScript kernel.
//
// Each thread (worker_threads) that imports this module compiles its own instance with its own
// memory. Copying the operands into that memory is the price of this first step; operating on
// the caller's SharedArrayBuffer directly (a shared WebAssembly.Memory that the backend
// allocates tensors from) would remove the copy-in of C and let the workers share one module.
import { packContiguous, packStrided } from '../pack.js';
import { ModuleBuilder, type Local } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/** Register block: MR rows by NR columns (NR a multiple of 4). */
export interface TileShape { readonly mr: number; readonly nr: number }

/**
 * The default tile: 4×8, 8 accumulators plus 2 vectors of B and one of A. It measured fastest of
 * 4x8, 6x8, 8x8, 4x16 and 3x16 (docs/performance-log.md, "CPU GEMM: float32 micro-kernel in
 * WebAssembly SIMD").
 */
export const DEFAULT_TILE: TileShape = { mr: 4, nr: 8 };

const KC = 256;
const NC = 1024; // a multiple of every NR used
const MC_TARGET = 128;

/** Whether this engine validates relaxed SIMD (Node 20: only with --experimental-wasm-relaxed-simd). */
export function relaxedSimdSupported(): boolean {
  const m = new ModuleBuilder();
  const f = m.addFunction('f', [ValType.v128, ValType.v128, ValType.v128], [ValType.v128]);
  f.get(f.param(0)).get(f.param(1)).get(f.param(2)).simd(SimdOp.f32x4_relaxed_madd);
  return WebAssembly.validate(m.encode());
}

/**
 * The module for one tile shape: imports `env.memory` (at least `pages` pages) and exports
 * `macro(kc, mc, nc, aPtr, bPtr, cPtr, ldcBytes)`. aPtr/bPtr are byte addresses of the packed
 * A block (ceil(mc/MR) panels of MR×kc) and B block (ceil(nc/NR) panels of kc×NR); tile (ir, jr)
 * of the result is stored at cPtr + ir·ldcBytes + jr·4, row-major, all MR×NR of it.
 * `fused` uses f32x4.relaxed_madd instead of f32x4.mul then f32x4.add.
 */
export function emitGemmModule(tile: TileShape, pages: number, fused: boolean): Uint8Array<ArrayBuffer> {
  const { mr, nr } = tile;
  if (!Number.isInteger(mr) || mr < 1 || !Number.isInteger(nr) || nr < 4 || nr % 4 !== 0) {
    throw new RangeError(`emitGemmModule: bad tile ${mr}x${nr}`);
  }
  const vecs = nr / 4; // f32x4 vectors per row of the tile
  const m = new ModuleBuilder().importMemory('env', 'memory', pages);
  const i32 = ValType.i32;
  const f = m.addFunction('macro', [i32, i32, i32, i32, i32, i32, i32], []);
  const [kc, mc, nc, aPtr, bPtr, cPtr, ldc] = [0, 1, 2, 3, 4, 5, 6].map((i) => f.param(i)) as
    [Local, Local, Local, Local, Local, Local, Local];
  const jcol = f.local(i32), bPanel = f.local(i32), irow = f.local(i32), aPanel = f.local(i32);
  const ap = f.local(i32), bp = f.local(i32), p = f.local(i32), row = f.local(i32);
  const acc: Local[] = [];
  for (let i = 0; i < mr * vecs; i++) acc.push(f.local(ValType.v128));
  const b: Local[] = [];
  for (let v = 0; v < vecs; v++) b.push(f.local(ValType.v128));
  const a = f.local(ValType.v128);

  const addTo = (x: Local, y: Local, target: Local): void => { // target += x·y
    if (fused) f.get(x).get(y).get(target).simd(SimdOp.f32x4_relaxed_madd).set(target);
    else f.get(target).get(x).get(y).simd(SimdOp.f32x4_mul).simd(SimdOp.f32x4_add).set(target);
  };
  const increment = (l: Local, by: number): void => { f.get(l).i32(by).op(Op.i32_add).set(l); };

  // for (jcol = 0, bPanel = bPtr; jcol < nc; jcol += NR, bPanel += kc·NR·4)
  f.i32(0).set(jcol).get(bPtr).set(bPanel);
  f.block(() => f.loop(() => {
    f.get(jcol).get(nc).op(Op.i32_ge_u).brIf(1);
    // for (irow = 0, aPanel = aPtr; irow < mc; irow += MR, aPanel += kc·MR·4)
    f.i32(0).set(irow).get(aPtr).set(aPanel);
    f.block(() => f.loop(() => {
      f.get(irow).get(mc).op(Op.i32_ge_u).brIf(1);
      for (const c of acc) f.v128Zero().set(c);
      f.get(aPanel).set(ap).get(bPanel).set(bp).get(kc).set(p);
      // The k loop (kc >= 1): one row of B's panel, one column of A's, MR·NR/4 multiply-adds.
      f.loop(() => {
        for (let v = 0; v < vecs; v++) f.get(bp).simdMemory(SimdOp.v128_load, 4, 16 * v).set(b[v]!);
        for (let i = 0; i < mr; i++) {
          f.get(ap).simdMemory(SimdOp.v128_load32_splat, 2, 4 * i).set(a);
          for (let v = 0; v < vecs; v++) addTo(a, b[v]!, acc[i * vecs + v]!);
        }
        increment(ap, 4 * mr);
        increment(bp, 4 * nr);
        f.get(p).i32(1).op(Op.i32_sub).tee(p).brIf(0);
      });
      // Store the tile: row = cPtr + irow·ldc + jcol·4, then one row of C per ldc bytes.
      f.get(cPtr).get(irow).get(ldc).op(Op.i32_mul).op(Op.i32_add).get(jcol).i32(2).op(Op.i32_shl).op(Op.i32_add).set(row);
      for (let i = 0; i < mr; i++) {
        for (let v = 0; v < vecs; v++) f.get(row).get(acc[i * vecs + v]!).simdMemory(SimdOp.v128_store, 4, 16 * v);
        if (i + 1 < mr) f.get(row).get(ldc).op(Op.i32_add).set(row);
      }
      f.get(ap).set(aPanel); // the k loop left ap at the next panel of A
      increment(irow, mr);
      f.br(0);
    }));
    f.get(bp).set(bPanel); // and bp at the next panel of B
    increment(jcol, nr);
    f.br(0);
  }));
  return m.encode();
}

type Macro = (kc: number, mc: number, nc: number, aPtr: number, bPtr: number, cPtr: number, ldcBytes: number) => void;

/** A compiled kernel with its memory and the float32 view the packers write through. */
interface Kernel {
  readonly tile: TileShape;
  readonly mc: number;
  readonly macro: Macro;
  readonly f32: Float32Array;
  /** Float offsets of the packed A block, packed B block and C block in `f32`. */
  readonly aAt: number;
  readonly bAt: number;
  readonly cAt: number;
}

const kernels = new Map<string, Kernel>();
let fusedChoice: boolean | undefined;

/** Compile (once per thread and tile shape) and return the kernel. */
function kernelFor(tile: TileShape): Kernel {
  // Relaxed SIMD's madd may or may not round once depending on the hardware, so the same seed
  // could give different bits on different machines: opt in with SILENTGRAD_WASM_RELAXED=1.
  fusedChoice ??= typeof process !== 'undefined' && process.env.SILENTGRAD_WASM_RELAXED === '1' && relaxedSimdSupported();
  const key = `${tile.mr}x${tile.nr}`;
  const cached = kernels.get(key);
  if (cached) return cached;
  const mc = tile.mr * Math.max(1, Math.floor(MC_TARGET / tile.mr));
  const aAt = 0, bAt = aAt + mc * KC, cAt = bAt + KC * NC, floats = cAt + mc * NC;
  const pages = Math.ceil((floats * 4) / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const module = new WebAssembly.Module(emitGemmModule(tile, pages, fusedChoice));
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const macro = instance.exports.macro as Macro;
  const kernel: Kernel = { tile, mc, macro, f32: new Float32Array(memory.buffer), aAt, bAt, cAt };
  kernels.set(key, kernel);
  return kernel;
}

let available: boolean | undefined;

/** Whether this engine runs the generated module (WebAssembly with SIMD); false falls back to JS. */
export function wasmGemmAvailable(): boolean {
  if (available === undefined) {
    try {
      available = typeof WebAssembly === 'object' && WebAssembly.validate(emitGemmModule(DEFAULT_TILE, 1, false));
    } catch {
      available = false;
    }
  }
  return available;
}

/**
 * gemm.ts's `gemmStrided` for float32 arrays (same arguments and layout; M, N, K ≥ 1). Callers
 * handle the empty and tiny cases.
 */
export function gemmStridedF32Wasm(
  M: number, N: number, K: number,
  A: Float32Array, aOffset: number, lda: number, transA: boolean,
  B: Float32Array, bOffset: number, ldb: number, transB: boolean,
  C: Float32Array, cOffset: number, ldc: number, accumulate: boolean,
  tile: TileShape = DEFAULT_TILE,
): void {
  const k = kernelFor(tile);
  const { mr, nr } = tile;
  const mem = k.f32;
  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    const ncPadded = Math.ceil(nc / nr) * nr;
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc);
      const add = accumulate || pc > 0;
      if (transB) packStrided(mem, B, bOffset + jc * ldb + pc, ldb, nc, kc, nr, k.bAt);
      else packContiguous(mem, B, bOffset + pc * ldb + jc, ldb, nc, kc, nr, k.bAt);
      for (let ic = 0; ic < M; ic += k.mc) {
        const mc = Math.min(k.mc, M - ic);
        if (transA) packContiguous(mem, A, aOffset + pc * lda + ic, lda, mc, kc, mr, k.aAt);
        else packStrided(mem, A, aOffset + ic * lda + pc, lda, mc, kc, mr, k.aAt);
        k.macro(kc, mc, nc, k.aAt * 4, k.bAt * 4, k.cAt * 4, ncPadded * 4);
        for (let i = 0; i < mc; i++) {
          const dst = cOffset + (ic + i) * ldc + jc;
          const src = k.cAt + i * ncPadded;
          if (add) for (let j = 0; j < nc; j++) C[dst + j] += mem[src + j]!;
          else C.set(mem.subarray(src, src + nc), dst);
        }
      }
    }
  }
}
