// out[M,N] = a[M,K] b[K,N] from the GEMM template. Transposes are read in place (a flag per
// operand), except in the thin, long products with a transposed B (transposedProduct). B and C
// are read/written as vec4 when N % 4 == 0 and b's offset is a multiple of 4 (the fast path
// measured on lavapipe); a transposed B as vec4 along k when K % 4 == 0; otherwise B is
// gathered per scalar. batchedMatmul runs many products of the same sizes in one dispatch (the
// GEMM template's batch index), operand i at a per-batch stride.
import type { Dispatch } from '../queue.js';
import type { TuningProfile } from '../tuning.js';
import { elementwise, type GpuView } from '../kernels/elementwise.js';
import { reduce } from '../kernels/reduce.js';
import { gemmDispatch, splitCount, type GemmSpec } from './gemm.js';

/**
 * The name tells every variant apart: gemmDispatch caches generated sources by it (a B read
 * along k used to share its name between vec4 and scalar stores, so whichever came first served
 * both). Batched (P[6], P[7], P[8]: the strides from one product's A, B, O to the next, B's and O's
 * in their element type) or a single product.
 */
function matmulSpec(transA: boolean, transB: boolean, vectorB: boolean, bAlongK: boolean, vectorOut: boolean, batched = false): GemmSpec {
  const [a, b, o] = batched ? ['P[4] + batch * P[6]', 'P[5] + batch * P[7]', 'batch * P[8] + '] : ['P[4]', 'P[5]', ''];
  return {
    name: `matmul${transA ? ' tA' : ''}${transB ? ' tB' : ''}${vectorB ? ' vecB' : ''}${bAlongK ? ' B4k' : ''}${vectorOut ? ' vecO' : ''}${batched ? ' batched' : ''}`,
    batched,
    inputs: [{ name: 'A', access: 'read' }, { name: 'B', access: 'read', type: vectorB || bAlongK ? 'vec4<f32>' : 'f32' }],
    aAt: (row) => (transA ? `A[${a} + k * M + ${row}]` : `A[${a} + ${row} * K + k]`),
    ...(vectorB
      ? { bVec: (c: number) => `B[${b} + k * (N / 4u) + cg_${c}]` }
      : bAlongK
        ? { bAlongK: (t: number) => `B[${b} + col_${t} * (K / 4u) + k / 4u]` }
        : { bAt: (t: number) => (transB ? `B[${b} + col_${t} * K + k]` : `B[${b} + k * N + col_${t}]`) }),
    store: (row, col, v) => `O[${o}${row} * N + ${col}] = ${v};`,
    ...(vectorOut ? { store4: (row: string, group: string, v: string) => `O[${o}${row} * (N / 4u) + ${group}] = ${v};` } : {}),
  };
}

/**
 * The dispatches of one matmul into `out` (row-major M x N). `scratch` is called for the
 * split-K partial sums when the product is thin; it returns a buffer of at least that many floats.
 */
export function matmul(tuning: TuningProfile, a: GpuView, transA: boolean, b: GpuView, transB: boolean, out: GPUBuffer,
  scratch: (floats: number) => GPUBuffer): Dispatch[] {
  const [M, K, N] = [a.shape[0]!, a.shape[1]!, b.shape[1]!];
  if (transB && splitCount(tuning, M, N, K) > 1 && (transA || M <= N)) return transposedProduct(tuning, a, transA, b, out, scratch);
  const vectorB = !transB && N % 4 === 0 && b.offset % 4 === 0;
  // A transposed B (a linear layer's x W^T) read as vec4 along k, 4 steps a load: the
  // encoder's M=64 N=200 K=25088 product went from 14 to 18.8 GFLOP/s on lavapipe (a vec4
  // load shares the per-lane overhead of its 4 elements).
  const bAlongK = transB && K % 4 === 0 && b.offset % 4 === 0;
  const splits = splitCount(tuning, M, N, K);
  const spec = matmulSpec(transA, transB, vectorB, bAlongK, N % 4 === 0);
  const extra = [a.offset, vectorB || bAlongK ? b.offset / 4 : b.offset];
  if (splits === 1) return [gemmDispatch(tuning, spec, [a.buffer, b.buffer, out], M, N, K, extra, 1)];
  const partial = scratch(splits * M * N);
  const sum = reduce('sum', { buffer: partial, shape: [splits, M * N], strides: [M * N, 1], offset: 0 }, [0], out);
  return [gemmDispatch(tuning, spec, [a.buffer, b.buffer, partial], M, N, K, extra, splits), ...(sum ? [sum] : [])];
}

/** Per-batch element strides from one product's operand to the next. */
export interface BatchStrides { count: number; a: number; b: number; out: number }

/**
 * `batch.count` products out_i[M,N] = a_i[M,K] b_i[K,N] in one dispatch (never split over K),
 * a_i at a.offset + i·batch.a and so on; `a` and `b` describe product 0 as matmul's do.
 */
export function batchedMatmul(tuning: TuningProfile, a: GpuView, transA: boolean, b: GpuView, transB: boolean, out: GPUBuffer, batch: BatchStrides): Dispatch {
  const [M, K, N] = [a.shape[0]!, a.shape[1]!, b.shape[1]!];
  const vectorB = !transB && N % 4 === 0 && b.offset % 4 === 0 && batch.b % 4 === 0;
  const bAlongK = transB && K % 4 === 0 && b.offset % 4 === 0 && batch.b % 4 === 0;
  const vectorOut = N % 4 === 0 && batch.out % 4 === 0;
  const spec = matmulSpec(transA, transB, vectorB, bAlongK, vectorOut, true);
  const vec = vectorB || bAlongK;
  const extra = [a.offset, vec ? b.offset / 4 : b.offset, batch.a, vec ? batch.b / 4 : batch.b, vectorOut ? batch.out / 4 : batch.out];
  return gemmDispatch(tuning, spec, [a.buffer, b.buffer, out], M, N, K, extra, 1, batch.count);
}

/**
 * out = a bᵀ computed as its transpose, outᵀ[N,M] = b aᵀ, for the thin, long products that split
 * over K with a transposed B: a linear layer's x Wᵀ, 64 x 25088 x 400 in the Table-5 encoder.
 * Read in place, bᵀ walks K along each of its columns, one memory stream per column (64 a
 * workgroup); as the A operand of the transposed product its rows stream 8 at a time through the
 * shared-row loaders, and aᵀ, copied k-major unless a is already stored so, is read one
 * contiguous row per k. The split-K partials are summed into out read transposed. On lavapipe
 * that product and the training step both got faster (docs/performance-log.md, "A linear
 * layer's x Wᵀ computed as its transpose"). (`M <= N` for a copied a: the copy costs M x K
 * floats against N x K read.)
 */
function transposedProduct(tuning: TuningProfile, a: GpuView, transA: boolean, b: GpuView, out: GPUBuffer, scratch: (floats: number) => GPUBuffer): Dispatch[] {
  const [M, K, N] = [a.shape[0]!, a.shape[1]!, b.shape[1]!];
  const kMajor: GpuView = transA ? { buffer: a.buffer, shape: [K, M], strides: [M, 1], offset: a.offset } : { buffer: scratch(K * M), shape: [K, M], strides: [M, 1], offset: 0 };
  const copy = transA ? null : elementwise('a', kMajor, [{ buffer: a.buffer, shape: [K, M], strides: [1, K], offset: a.offset }], 0);
  const splits = splitCount(tuning, N, M, K);
  const vectorB = M % 4 === 0 && kMajor.offset % 4 === 0;
  const partial = scratch(splits * N * M);
  const product = gemmDispatch(tuning, matmulSpec(false, false, vectorB, false, M % 4 === 0), [b.buffer, kMajor.buffer, partial], N, M, K,
    [b.offset, vectorB ? kMajor.offset / 4 : kMajor.offset], splits);
  const sum = reduce('sum', { buffer: partial, shape: [splits, M, N], strides: [N * M, 1, M], offset: 0 }, [0], out);
  return [...(copy ? [copy] : []), product, ...(sum ? [sum] : [])];
}
