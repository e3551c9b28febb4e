// Products with a float64 operand (the silent ELBO's contractions against float64 weight powers,
// every float64 product) in WebAssembly SIMD, two f64 lanes a vector, giving the same bits as
// gemm.ts's TypeScript kernel: both sum each element over k in order, one K block of KC at a
// time, with a multiply then an add in float64, and store each block's sums into C as gemm.ts's
// micro-kernel does (assigned for the first block, added after), so C's element type rounds
// them at the same points. Operands are widened to float64 as they are staged (packing.ts).
// test/cpu-wasm.test.ts checks the bits.
import type { FloatArray } from '../../../engine/dtype.js';
import { gemmKernel, KC, NC } from './gemm-kernel.js';
import { F64, type TileShape } from './macro.js';
import { pack } from './packing.js';

/** 4×4: 8 accumulators of two lanes, 2 vectors of B and one of A, as the float32 tile's 4x8. */
export const F64_TILE: TileShape = { mr: 4, nr: 4 };

/** gemm.ts's `gemmStrided` with float64 arithmetic (same arguments and layout; M, N, K ≥ 1). */
export function gemmStridedF64Wasm(
  M: number, N: number, K: number,
  A: FloatArray, aOffset: number, lda: number, transA: boolean,
  B: FloatArray, bOffset: number, ldb: number, transB: boolean,
  C: FloatArray, cOffset: number, ldc: number, accumulate: boolean,
  tile: TileShape = F64_TILE,
): void {
  const { mr, nr } = tile;
  const k = gemmKernel(tile, F64, mr * Math.max(1, Math.floor(128 / mr)));
  const mem = k.mem;
  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    const ncPadded = Math.ceil(nc / nr) * nr;
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc);
      const add = accumulate || pc > 0;
      if (transB) pack(k.packers, mem, B, bOffset + jc * ldb + pc, ldb, nc, kc, nr, true, k.bRaw, k.bAt);
      else pack(k.packers, mem, B, bOffset + pc * ldb + jc, ldb, nc, kc, nr, false, k.bRaw, k.bAt);
      for (let ic = 0; ic < M; ic += k.mc) {
        const mc = Math.min(k.mc, M - ic);
        if (transA) pack(k.packers, mem, A, aOffset + pc * lda + ic, lda, mc, kc, mr, false, k.aRaw, k.aAt);
        else pack(k.packers, mem, A, aOffset + ic * lda + pc, lda, mc, kc, mr, true, k.aRaw, k.aAt);
        k.macro(kc, mc, nc, k.aAt * 8, k.bAt * 8, k.cAt * 8, ncPadded * 8, 0);
        for (let i = 0; i < mc; i++) {
          const dst = cOffset + (ic + i) * ldc + jc;
          const src = k.cAt + i * ncPadded;
          if (add) for (let j = 0; j < nc; j++) C[dst + j]! += mem[src + j]!;
          else C.set(mem.subarray(src, src + nc), dst);
        }
      }
    }
  }
}
