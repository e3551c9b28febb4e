// A batch of independent GEMMs dealt whole over the pool, one job at a time from the pool's
// shared counter, each run by one thread on gemm.ts's single-thread kernel. For products as
// small as the silent ELBO's (64 x 784 x 200), splitting each one between threads
// (parallel-gemm.ts) gained next to nothing, since every piece packs the whole of the other
// operand again; whole products on different threads share nothing. A job is a list of products
// run in order on one thread, so products that accumulate into one C give the sums that
// calling gemm() for them one after another gives, whichever thread runs them.
import type { FloatArray } from '../../engine/dtype.js';
import { gemm } from './gemm.js';
import { defineKernel, parallelFor } from './parallel.js';

/** gemm()'s arguments: C[M,N] (+)= op(A)·op(B). */
export interface Product {
  M: number; N: number; K: number;
  A: FloatArray; aOffset: number; transA: boolean;
  B: FloatArray; bOffset: number; transB: boolean;
  C: FloatArray; cOffset: number; accumulate: boolean;
}

/** Numbers per product in the job's arguments. */
const FIELDS = 12;

// Arguments: [jobs, start of each job's products (jobs + 1 entries), products (FIELDS each)].
const jobsKernel = defineKernel('silentgrad.gemmJobs', import.meta.url, (arrays, a, start, end) => {
  const jobs = a[0]!, base = jobs + 2;
  for (let job = start; job < end; job++)
    for (let p = a[1 + job]!; p < a[2 + job]!; p++) {
      const f = base + p * FIELDS;
      gemm(a[f]!, a[f + 1]!, a[f + 2]!, arrays[a[f + 3]!]!, a[f + 4]!, a[f + 5] === 1,
        arrays[a[f + 6]!]!, a[f + 7]!, a[f + 8] === 1, arrays[a[f + 9]!]!, a[f + 10]!, a[f + 11] === 1);
    }
});

/**
 * Run every job (its products in order) on the calling thread and the idle workers. List the
 * biggest jobs first: they are dealt in order, so the small ones fill in at the end.
 */
export function runGemmJobs(jobs: readonly (readonly Product[])[]): void {
  const arrays: FloatArray[] = [];
  const index = (x: FloatArray): number => {
    const at = arrays.indexOf(x);
    return at >= 0 ? at : arrays.push(x) - 1;
  };
  const starts = [0], fields: number[] = [];
  let work = 0;
  for (const job of jobs) {
    for (const p of job) {
      fields.push(p.M, p.N, p.K, index(p.A), p.aOffset, p.transA ? 1 : 0, index(p.B), p.bOffset, p.transB ? 1 : 0,
        index(p.C), p.cOffset, p.accumulate ? 1 : 0);
      work += p.M * p.N * p.K;
    }
    starts.push(fields.length / FIELDS);
  }
  parallelFor(jobsKernel, arrays, [jobs.length, ...starts, ...fields], jobs.length, 1, work, { chunk: 1 });
}
