// Direct 3x3, stride-1 convolution for layers with few input channels: the encoder's first layer
// (1 -> 32 on the MNIST image). There im2col's GEMM has K = 9·C, too short for packing and the
// 3x4 tile's stores to pay off (bench/kernels.js: 2.4 GFLOP/s forward, 1.8 filter gradient on
// two threads). Here each input plane is copied once into a zero-padded float64 scratch, so
// the inner loops need no border tests, and a 3x3 window slides along each row keeping the 9
// taps and the window in locals: 3 new loads per output instead of 9 (or im2col's 9 stores).
// Both functions handle images [n0, n1) so conv.ts splits them over the pool like its others.
// Where the CPU kernels are Wasm (gemm.ts's switch) the filter gradient runs
// wasm/direct3x3-f64.ts's SIMD loop, which gives this loop's bits; this stays the reference.
// The forward pass has no such variant: one measured no faster (docs/performance-log.md).
import type { FloatArray } from '../../engine/dtype.js';
import { getCpuKernels } from './gemm.js';
import { DIRECT_MAX_BYTES, direct3x3Wasm, direct3x3WasmAvailable } from './wasm/direct3x3-f64.js';

/** Few enough input channels that the direct loops beat im2col (and 3x3, stride 1). */
export function direct3x3Applies(C: number, kh: number, kw: number, stride: number): boolean {
  return kh === 3 && kw === 3 && stride === 1 && C <= 4;
}

interface Plane { C: number; H: number; W: number; O: number; p: number; Ho: number; Wo: number }

// Per-thread float64 scratch: the padded image, and the sums rounded once into the output.
let padded = new Float64Array(0);
let sums = new Float64Array(0);

/** Channels of image n, each zero-padded by p into a (H+2p) x (W+2p) plane of `target` from `at`. */
function padImage(x: FloatArray, xOff: number, g: Plane, n: number, target: Float64Array, at: number): void {
  const { C, H, W, p } = g;
  const Hp = H + 2 * p, Wp = W + 2 * p;
  target.fill(0, at, at + C * Hp * Wp);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++) {
      const from = xOff + ((n * C + c) * H + y) * W, to = at + (c * Hp + y + p) * Wp + p;
      for (let i = 0; i < W; i++) target[to + i] = x[from + i]!;
    }
}

/** The padded planes of image n in this thread's scratch. */
function paddedImage(x: FloatArray, xOff: number, g: Plane, n: number): Float64Array {
  const size = g.C * (g.H + 2 * g.p) * (g.W + 2 * g.p);
  if (padded.length < size) padded = new Float64Array(size);
  padImage(x, xOff, g, n, padded, 0);
  return padded;
}

/** The Wasm loop's memory layout in float64 elements: the padded planes, then `after`'s regions in order. */
function wasmLayout(g: Plane, ...after: number[]): { at: number[]; bytes: number } {
  const at = [0];
  let end = g.C * (g.H + 2 * g.p) * (g.W + 2 * g.p);
  for (const size of after) {
    at.push(end);
    end += size;
  }
  return { at, bytes: end * 8 };
}

/** y[n, o] = sum_c w[o, c] ⋆ x[n, c] for the images n in [n0, n1). */
export function direct3x3Forward(x: FloatArray, xOff: number, w: FloatArray, wOff: number, y: FloatArray, yOff: number,
  g: Plane, n0: number, n1: number): void {
  const { C, O, p, Ho, Wo } = g;
  const Wp = g.W + 2 * p, Hp = g.H + 2 * p;
  if (sums.length < Wo) sums = new Float64Array(Wo);
  const acc = sums;
  for (let n = n0; n < n1; n++) {
    const xp = paddedImage(x, xOff, g, n);
    for (let o = 0; o < O; o++)
      for (let oh = 0; oh < Ho; oh++) {
        acc.fill(0, 0, Wo);
        for (let c = 0; c < C; c++) {
          const k = wOff + (o * C + c) * 9;
          const w00 = w[k]!, w01 = w[k + 1]!, w02 = w[k + 2]!, w10 = w[k + 3]!, w11 = w[k + 4]!;
          const w12 = w[k + 5]!, w20 = w[k + 6]!, w21 = w[k + 7]!, w22 = w[k + 8]!;
          const r0 = (c * Hp + oh) * Wp, r1 = r0 + Wp, r2 = r1 + Wp;
          let x00 = xp[r0]!, x01 = xp[r0 + 1]!, x10 = xp[r1]!, x11 = xp[r1 + 1]!, x20 = xp[r2]!, x21 = xp[r2 + 1]!;
          for (let ow = 0; ow < Wo; ow++) {
            const x02 = xp[r0 + ow + 2]!, x12 = xp[r1 + ow + 2]!, x22 = xp[r2 + ow + 2]!;
            acc[ow]! += w00 * x00 + w01 * x01 + w02 * x02 + w10 * x10 + w11 * x11 + w12 * x12
              + w20 * x20 + w21 * x21 + w22 * x22;
            x00 = x01; x01 = x02; x10 = x11; x11 = x12; x20 = x21; x21 = x22;
          }
        }
        const out = yOff + ((n * O + o) * Ho + oh) * Wo;
        for (let ow = 0; ow < Wo; ow++) y[out + ow] = acc[ow]!;
      }
  }
}

/** dw[o, c] = sum over images n in [n0, n1) of dy[n, o] ⋆ x[n, c] (overwrites dw). */
export function direct3x3BackwardFilter(x: FloatArray, xOff: number, dy: FloatArray, dyOff: number, dw: FloatArray, dwOff: number,
  g: Plane, n0: number, n1: number): void {
  const { C, O, p, Ho, Wo } = g;
  const Wp = g.W + 2 * p, Hp = g.H + 2 * p;
  const size = O * C * 9;
  const wasm = wasmLayout(g, O * Ho * Wo, size);
  if (getCpuKernels() === 'wasm' && O % 2 === 0 && wasm.bytes <= DIRECT_MAX_BYTES && direct3x3WasmAvailable()) {
    // The same sums for two output channels at a time (wasm/direct3x3-f64.ts), kept as
    // [O/2][C][9][2] and unpicked at the end.
    const k = direct3x3Wasm(), mem = k.view(wasm.bytes);
    const [xAt, dyAt, accAt] = wasm.at as [number, number, number];
    mem.fill(0, accAt, accAt + size);
    for (let n = n0; n < n1; n++) {
      padImage(x, xOff, g, n, mem, xAt);
      mem.set(dy.subarray(dyOff + n * O * Ho * Wo, dyOff + (n + 1) * O * Ho * Wo), dyAt);
      k.filter(C, O / 2, Hp, Wp, Ho, Wo, xAt * 8, dyAt * 8, accAt * 8);
    }
    for (let o = 0; o < O; o++)
      for (let i = 0; i < C * 9; i++) dw[dwOff + o * C * 9 + i] = mem[accAt + ((o >> 1) * C * 9 + i) * 2 + (o & 1)]!;
    return;
  }
  if (sums.length < size) sums = new Float64Array(size);
  const acc = sums.fill(0, 0, size);
  for (let n = n0; n < n1; n++) {
    const xp = paddedImage(x, xOff, g, n);
    for (let o = 0; o < O; o++)
      for (let c = 0; c < C; c++) {
        let a00 = 0, a01 = 0, a02 = 0, a10 = 0, a11 = 0, a12 = 0, a20 = 0, a21 = 0, a22 = 0;
        for (let oh = 0; oh < Ho; oh++) {
          const r0 = (c * Hp + oh) * Wp, r1 = r0 + Wp, r2 = r1 + Wp;
          const d = dyOff + ((n * O + o) * Ho + oh) * Wo;
          let x00 = xp[r0]!, x01 = xp[r0 + 1]!, x10 = xp[r1]!, x11 = xp[r1 + 1]!, x20 = xp[r2]!, x21 = xp[r2 + 1]!;
          for (let ow = 0; ow < Wo; ow++) {
            const x02 = xp[r0 + ow + 2]!, x12 = xp[r1 + ow + 2]!, x22 = xp[r2 + ow + 2]!;
            const gy = dy[d + ow]!;
            a00 += gy * x00; a01 += gy * x01; a02 += gy * x02;
            a10 += gy * x10; a11 += gy * x11; a12 += gy * x12;
            a20 += gy * x20; a21 += gy * x21; a22 += gy * x22;
            x00 = x01; x01 = x02; x10 = x11; x11 = x12; x20 = x21; x21 = x22;
          }
        }
        const k = (o * C + c) * 9;
        acc[k]! += a00; acc[k + 1]! += a01; acc[k + 2]! += a02; acc[k + 3]! += a10; acc[k + 4]! += a11;
        acc[k + 5]! += a12; acc[k + 6]! += a20; acc[k + 7]! += a21; acc[k + 8]! += a22;
      }
  }
  for (let i = 0; i < size; i++) dw[dwOff + i] = acc[i]!;
}
