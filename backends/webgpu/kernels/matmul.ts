// out[M,N] = a[M,K] b[K,N] from the GEMM template. Transposes are read in place (a flag per
// operand, never a copy). B and C are read/written as vec4 when N % 4 == 0 and b's offset is
// a multiple of 4 (the fast path measured on lavapipe); a transposed B as vec4 along k when
// K % 4 == 0; otherwise B is gathered per scalar.
import type { Dispatch } from '../queue.js';
import type { GpuView } from './elementwise.js';
import { reduce } from './reduce.js';
import { gemmDispatch, splitCount, type GemmSpec } from './gemm.js';

function matmulSpec(transA: boolean, transB: boolean, vectorB: boolean, bAlongK: boolean, vectorOut: boolean): GemmSpec {
  return {
    name: `matmul${transA ? ' tA' : ''}${transB ? ' tB' : ''}${vectorB ? ' vecB' : ''}${bAlongK ? ' B4k' : ''}`,
    inputs: [{ name: 'A', access: 'read' }, { name: 'B', access: 'read', type: vectorB || bAlongK ? 'vec4<f32>' : 'f32' }],
    aAt: (row) => (transA ? `A[P[4] + k * M + ${row}]` : `A[P[4] + ${row} * K + k]`),
    ...(vectorB
      ? { bVec: (c: number) => `B[P[5] + k * (N / 4u) + cg_${c}]` }
      : bAlongK
        ? { bAlongK: (t: number) => `B[P[5] + col_${t} * (K / 4u) + k / 4u]` }
        : { bAt: (t: number) => (transB ? `B[P[5] + col_${t} * K + k]` : `B[P[5] + k * N + col_${t}]`) }),
    store: (row, col, v) => `O[${row} * N + ${col}] = ${v};`,
    ...(vectorOut ? { store4: (row: string, group: string, v: string) => `O[${row} * (N / 4u) + ${group}] = ${v};` } : {}),
  };
}

/**
 * The dispatches of one matmul into `out` (row-major M x N). `scratch` is called for the
 * split-K partial sums when the product is thin; it returns a buffer of at least that many floats.
 */
export function matmul(a: GpuView, transA: boolean, b: GpuView, transB: boolean, out: GPUBuffer,
  scratch: (floats: number) => GPUBuffer): Dispatch[] {
  const [M, K, N] = [a.shape[0]!, a.shape[1]!, b.shape[1]!];
  const vectorB = !transB && N % 4 === 0 && b.offset % 4 === 0;
  // A transposed B (a linear layer's x W^T) read as vec4 along k, 4 steps a load: the
  // encoder's M=64 N=200 K=25088 product went from 14 to 18.8 GFLOP/s on lavapipe (a vec4
  // load shares the per-lane overhead of its 4 elements).
  const bAlongK = transB && K % 4 === 0 && b.offset % 4 === 0;
  const splits = splitCount(M, N, K);
  const spec = matmulSpec(transA, transB, vectorB, bAlongK, N % 4 === 0);
  const extra = [a.offset, vectorB || bAlongK ? b.offset / 4 : b.offset];
  if (splits === 1) return [gemmDispatch(spec, [a.buffer, b.buffer, out], M, N, K, extra, 1)];
  const partial = scratch(splits * M * N);
  const sum = reduce('sum', { buffer: partial, shape: [splits, M * N], strides: [M * N, 1], offset: 0 }, [0], out);
  return [gemmDispatch(spec, [a.buffer, b.buffer, partial], M, N, K, extra, splits), ...(sum ? [sum] : [])];
}
