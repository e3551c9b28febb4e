// Float32 GEMM with its inner loops in WebAssembly SIMD, generated at run time by the emitter in
// module.ts: gemm.ts's blocking (GotoBLAS: B in KC×NC blocks as column panels of NR, A in MC×KC
// blocks as row panels of MR, both k-major), each block staged into the Wasm memory and packed
// there (packing.ts), macro.ts's kernel on the packed blocks. Tiles are written to (or, after the
// first K block, added to) a C block in the same memory, and TypeScript adds (or copies) the
// valid part into C once all of K is done.
//
// Unlike gemm.ts's kernel, which accumulates in float64, this one accumulates in float32, as
// BLAS sgemm does; results differ from the reference kernel by float32 rounding. Float64 and
// mixed products take gemm-f64.ts.
import { emitGemmModule, gemmKernel, KC, NC } from './gemm-kernel.js';
import { F32, type TileShape } from './macro.js';
import { pack } from './packing.js';

/**
 * The default tile: 4×8, 8 accumulators plus 2 vectors of B and one of A. It measured fastest of
 * 4x8, 6x8, 8x8, 4x16 and 3x16 (docs/performance-log.md, "CPU GEMM: float32 micro-kernel in
 * WebAssembly SIMD").
 */
export const DEFAULT_TILE: TileShape = { mr: 4, nr: 8 };

/** Rows of C kept in the kernel's memory across K blocks (2 MiB of it at NC columns). */
const C_ROWS = 512;

let available: boolean | undefined;

/** Whether this engine runs the generated modules (WebAssembly with SIMD); false falls back to JS. */
export function wasmGemmAvailable(): boolean {
  if (available === undefined) {
    try {
      available = typeof WebAssembly === 'object' && WebAssembly.validate(emitGemmModule(DEFAULT_TILE, 1, F32, false, false));
    } catch {
      available = false;
    }
  }
  return available;
}

/**
 * gemm.ts's `gemmStrided` for float32 arrays (same arguments and layout; M, N, K ≥ 1). Callers
 * handle the empty and tiny cases. Up to C_ROWS rows of C at a time stay in the kernel's memory
 * across the K blocks, so each element of C is copied out once.
 */
export function gemmStridedF32Wasm(
  M: number, N: number, K: number,
  A: Float32Array, aOffset: number, lda: number, transA: boolean,
  B: Float32Array, bOffset: number, ldb: number, transB: boolean,
  C: Float32Array, cOffset: number, ldc: number, accumulate: boolean,
  tile: TileShape = DEFAULT_TILE,
): void {
  const k = gemmKernel(tile, F32, C_ROWS);
  const { mr, nr } = tile;
  const mem = k.mem;
  for (let i0 = 0; i0 < M; i0 += C_ROWS) {
    const rows = Math.min(C_ROWS, M - i0);
    for (let jc = 0; jc < N; jc += NC) {
      const nc = Math.min(NC, N - jc);
      const ncPadded = Math.ceil(nc / nr) * nr;
      for (let pc = 0; pc < K; pc += KC) {
        const kc = Math.min(KC, K - pc);
        if (transB) pack(k.packers, mem, B, bOffset + jc * ldb + pc, ldb, nc, kc, nr, true, k.bRaw, k.bAt);
        else pack(k.packers, mem, B, bOffset + pc * ldb + jc, ldb, nc, kc, nr, false, k.bRaw, k.bAt);
        for (let ic = 0; ic < rows; ic += k.mc) {
          const mc = Math.min(k.mc, rows - ic);
          if (transA) pack(k.packers, mem, A, aOffset + pc * lda + i0 + ic, lda, mc, kc, mr, false, k.aRaw, k.aAt);
          else pack(k.packers, mem, A, aOffset + (i0 + ic) * lda + pc, lda, mc, kc, mr, true, k.aRaw, k.aAt);
          k.macro(kc, mc, nc, k.aAt * 4, k.bAt * 4, (k.cAt + ic * ncPadded) * 4, ncPadded * 4, pc > 0 ? 1 : 0);
        }
      }
      for (let i = 0; i < rows; i++) {
        const dst = cOffset + (i0 + i) * ldc + jc;
        const src = k.cAt + i * ncPadded;
        if (accumulate) for (let j = 0; j < nc; j++) C[dst + j]! += mem[src + j]!;
        else C.set(mem.subarray(src, src + nc), dst);
      }
    }
  }
}
