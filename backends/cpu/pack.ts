// Packing a GEMM operand into the float64 panels gemm.ts's micro-kernel reads. The WebAssembly
// kernels pack the same layout inside their memory (wasm/packing.ts).
import type { FloatArray } from '../../engine/dtype.js';

/**
 * Pack `count` lanes × kc of a matrix whose lanes are strided rows (lane l, step p at
 * src[off + l*ld + p]) into `dst` from `at`, in panels of w lanes, k-major:
 * dst[at + panel*kc*w + p*w + l]. Used for A (not transposed) and B (transposed).
 * One lane at a time, so the inner loop reads one row straight through instead of walking the
 * w lanes (3 or 4 trips) at every step (docs/performance-log.md, "CPU GEMM: packing strided
 * lanes one at a time"). Missing lanes of the last panel are zero.
 */
export function packStrided(dst: FloatArray, src: FloatArray, off: number, ld: number, count: number, kc: number, w: number, at: number): void {
  for (let l0 = 0; l0 < count; l0 += w) {
    const lanes = Math.min(w, count - l0);
    const panel = at + l0 * kc;
    for (let l = 0; l < w; l++) {
      let d = panel + l;
      if (l >= lanes) {
        for (let p = 0; p < kc; p++, d += w) dst[d] = 0;
        continue;
      }
      for (let s = off + (l0 + l) * ld, end = s + kc; s < end; s++, d += w) dst[d] = src[s]!;
    }
  }
}

/**
 * Pack `count` lanes × kc where lanes are contiguous within a row and k steps by `ld`
 * (lane l, step p at src[off + p*ld + l]). Used for A (transposed) and B (not transposed).
 */
export function packContiguous(dst: FloatArray, src: FloatArray, off: number, ld: number, count: number, kc: number, w: number, at: number): void {
  let d = at;
  for (let l0 = 0; l0 < count; l0 += w) {
    const lanes = Math.min(w, count - l0);
    let s = off + l0;
    for (let p = 0; p < kc; p++) {
      for (let l = 0; l < lanes; l++) dst[d + l] = src[s + l]!;
      for (let l = lanes; l < w; l++) dst[d + l] = 0;
      d += w;
      s += ld;
    }
  }
}
