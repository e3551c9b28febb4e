// TEMPORARY naive kernels until gemm.ts/conv.ts land.
import type { Conv2dGeometry } from '../../engine/backend.js';
import type { FloatArray } from '../../engine/dtype.js';
export function gemm(M: number, N: number, K: number, A: FloatArray, ao: number, tA: boolean, B: FloatArray, bo: number, tB: boolean, C: FloatArray, co: number, acc: boolean): void {
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = acc ? C[co + i * N + j]! : 0;
    for (let k = 0; k < K; k++) s += A[ao + (tA ? k * M + i : i * K + k)]! * B[bo + (tB ? j * K + k : k * N + j)]!;
    C[co + i * N + j] = s;
  }
}
function each(g: Conv2dGeometry, f: (xi: number, wi: number, yi: number) => void): void {
  const { batch, inChannels: C, height: H, width: W, outChannels: O, kernelH: kh, kernelW: kw, stride: s, padding: p, outHeight: Ho, outWidth: Wo } = g;
  for (let n = 0; n < batch; n++) for (let o = 0; o < O; o++) for (let y = 0; y < Ho; y++) for (let x = 0; x < Wo; x++)
    for (let c = 0; c < C; c++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const hy = y * s - p + i, wx = x * s - p + j;
      if (hy < 0 || hy >= H || wx < 0 || wx >= W) continue;
      f(((n * C + c) * H + hy) * W + wx, ((o * C + c) * kh + i) * kw + j, ((n * O + o) * Ho + y) * Wo + x);
    }
}
export function conv2dForward(x: FloatArray, xo: number, w: FloatArray, wo: number, g: Conv2dGeometry, y: FloatArray): void {
  y.fill(0); each(g, (xi, wi, yi) => { y[yi] += x[xo + xi]! * w[wo + wi]!; });
}
export function conv2dBackwardInput(dy: FloatArray, dyo: number, w: FloatArray, wo: number, g: Conv2dGeometry, dx: FloatArray): void {
  dx.fill(0); each(g, (xi, wi, yi) => { dx[xi] += dy[dyo + yi]! * w[wo + wi]!; });
}
export function conv2dBackwardFilter(x: FloatArray, xo: number, dy: FloatArray, dyo: number, g: Conv2dGeometry, dw: FloatArray): void {
  dw.fill(0); each(g, (xi, wi, yi) => { dw[wi] += dy[dyo + yi]! * x[xo + xi]!; });
}
