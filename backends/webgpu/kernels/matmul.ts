// The plain matmul, out[M,N] = a[M,K] b[K,N]: one invocation per output element walks k. A
// transposed operand (Backend.matmul's flag: stored as the row-major transpose) is read in place
// by swapping its strides. tuned/matmul.ts holds the register-blocked variants.
import { linearGroup, type Dispatch } from '../queue.js';
import type { GpuView } from './elementwise.js';
import { ceilDiv, entry, header, Params } from './wgsl.js';

const WORKGROUP = 64;

const source = `// plain matmul
${header([{ name: 'A', access: 'read' }, { name: 'B', access: 'read' }, { name: 'O', access: 'read_write' }])}
${entry([WORKGROUP])} {
  let M = P[0]; let N = P[1]; let K = P[2];
  let at = (${linearGroup}) * ${WORKGROUP}u + lid;
  if (at >= M * N) { return; }
  let m = at / N; let n = at % N;
  var sum = 0.0;
  for (var k = 0u; k < K; k++) {
    sum += A[P[3] + m * P[5] + k * P[6]] * B[P[4] + k * P[7] + n * P[8]];
  }
  O[at] = sum;
}`;

export function matmul(a: GpuView, transA: boolean, b: GpuView, transB: boolean, out: GPUBuffer): Dispatch | null {
  const [M, K, N] = [a.shape[0]!, a.shape[1]!, b.shape[1]!];
  if (M * N === 0) return null;
  // Element strides of a along m and k, then of b along k and n.
  const params = new Params().u32(M, N, K, a.offset, b.offset, ...(transA ? [1, M] : [K, 1]), ...(transB ? [1, K] : [N, 1])).build();
  return { source, buffers: [a.buffer, b.buffer, out], params, groups: ceilDiv(M * N, WORKGROUP) };
}
