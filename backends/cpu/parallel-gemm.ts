// GEMM over all cores: the blocked single-thread kernel of gemm.ts, split over the pool by
// rows or columns of C (each element is computed by one thread in one order, so the result does
// not depend on the split).
import { gemmRange } from './gemm.js';
import type { FloatArray } from '../../engine/dtype.js';
import { defineKernel, parallelFor, threadCount } from './parallel.js';

const gemmKernel = defineKernel('silentgrad.gemm', import.meta.url, (arrays, a, start, end) => {
  const M = a[0]!, N = a[1]!, K = a[2]!;
  const splitCols = a[9] === 1;
  gemmRange(M, N, K, arrays[0]!, a[3]!, a[4] === 1, arrays[1]!, a[5]!, a[6] === 1,
    arrays[2]!, a[7]!, a[8] === 1,
    splitCols ? 0 : start, splitCols ? M : end, splitCols ? start : 0, splitCols ? end : N);
});

/**
 * `gemm` (same arguments) split over the pool: by rows of C when M >= N, else by columns, so
 * the operand each thread packs in full is the smaller one. Runs on the calling thread alone
 * when the arrays are not on SharedArrayBuffers or the product is small.
 */
export function parallelGemm(
  M: number, N: number, K: number,
  A: FloatArray, aOffset: number, transA: boolean,
  B: FloatArray, bOffset: number, transB: boolean,
  C: FloatArray, cOffset: number, accumulate: boolean,
): void {
  const splitCols = N > M;
  const total = splitCols ? N : M;
  parallelFor(gemmKernel, [A, B, C],
    [M, N, K, aOffset, transA ? 1 : 0, bOffset, transB ? 1 : 0, cOffset, accumulate ? 1 : 0, splitCols ? 1 : 0],
    total, GEMM_GRAIN, M * N * K, { chunk: Math.ceil(total / (CHUNKS_PER_THREAD * threadCount())) });
}

/** Rows/columns per share boundary: a multiple of the micro-kernel tile (3 x 4). */
const GEMM_GRAIN = 12;
/**
 * Each piece packs the whole of the other operand again, so pieces should be few; two per
 * thread still lets a thread that the OS scheduled late take less of the work.
 */
const CHUNKS_PER_THREAD = 2;
