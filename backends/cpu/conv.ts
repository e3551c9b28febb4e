// NCHW 2-D convolution on raw typed arrays, lowered to gemm through im2col / col2im.
//
// For a chunk of b images the unfolded input is col[C·kh·kw, b·Ho·Wo] (row (c,ki,kj), column
// (image, oh, ow)), so
//   forward          y_chunk[O, b·P]   = W[O, CKK] · col
//   backward input   dcol[CKK, b·P]    = Wᵀ · dy_chunk,  then col2im adds dcol into dx
//   backward filter  dW[O, CKK]       += dy_chunk · colᵀ
// with P = Ho·Wo. Chunks are one image when P is large (28×28: the gemm is already 784 wide)
// and several when P is small, keeping the col scratch to at most ~4 MB; scratch buffers are
// kept per thread and reused across calls. The batch is split across the thread pool
// (parallel.ts); backward filter gives each extra thread its own partial dW, summed here.
import type { FloatArray } from '../../engine/dtype.js';
import { gemmStrided } from './gemm.js';
import { allocShared, defineKernel, parallelFor } from './parallel.js';
import { direct3x3Applies, direct3x3BackwardFilter, direct3x3Forward } from './direct3x3.js';
import { winogradApplies, winogradBackwardFilter, winogradBackwardInput, winogradForward } from './winograd.js';

export type Shape4 = readonly number[];

interface Geometry {
  N: number; C: number; H: number; W: number;
  O: number; kh: number; kw: number; s: number; p: number;
  Ho: number; Wo: number; P: number; CKK: number;
}

/** Output spatial size: floor((size + 2·padding - kernel) / stride) + 1. */
export function convOutSize(size: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - kernel) / stride) + 1;
}

function geometry(xShape: Shape4, wShape: Shape4, stride: number, padding: number): Geometry {
  const [N, C, H, W] = xShape as [number, number, number, number];
  const [O, C2, kh, kw] = wShape as [number, number, number, number];
  if (C !== C2) throw new Error(`conv2d: input has ${C} channels, weight expects ${C2}`);
  if (!(stride >= 1) || !(padding >= 0)) throw new Error(`conv2d: bad stride ${stride} / padding ${padding}`);
  const Ho = convOutSize(H, kh, stride, padding);
  const Wo = convOutSize(W, kw, stride, padding);
  if (Ho < 1 || Wo < 1) throw new Error(`conv2d: kernel ${kh}x${kw} larger than padded input ${H}x${W}`);
  return { N, C, H, W, O, kh, kw, s: stride, p: padding, Ho, Wo, P: Ho * Wo, CKK: C * kh * kw };
}

function geometryArgs(g: Geometry): number[] {
  return [g.N, g.C, g.H, g.W, g.O, g.kh, g.kw, g.s, g.p];
}

function geometryFrom(a: ArrayLike<number>): Geometry {
  const N = a[0]!, C = a[1]!, H = a[2]!, W = a[3]!, O = a[4]!, kh = a[5]!, kw = a[6]!, s = a[7]!, p = a[8]!;
  const Ho = convOutSize(H, kh, s, p), Wo = convOutSize(W, kw, s, p);
  return { N, C, H, W, O, kh, kw, s, p, Ho, Wo, P: Ho * Wo, CKK: C * kh * kw };
}

/** Images per chunk: enough columns for an efficient gemm, scratch ≤ 2^19 elements. */
function chunkImages(g: Geometry): number {
  const want = Math.ceil(512 / g.P);
  const cap = Math.floor((1 << 19) / (g.CKK * g.P));
  return Math.max(1, Math.min(g.N, want, cap));
}

// ---- per-thread scratch --------------------------------------------------------------------

const scratch32: Float32Array[] = [new Float32Array(0), new Float32Array(0)];
const scratch64: Float64Array[] = [new Float64Array(0), new Float64Array(0)];

/** Scratch slot `slot` (0: col, 1: tmp) of at least n elements, of like's element type. */
function scratch(like: FloatArray, slot: number, n: number): FloatArray {
  if (like instanceof Float32Array) {
    if (scratch32[slot]!.length < n) scratch32[slot] = new Float32Array(n);
    return scratch32[slot]!;
  }
  if (scratch64[slot]!.length < n) scratch64[slot] = new Float64Array(n);
  return scratch64[slot]!;
}

// ---- im2col / col2im -----------------------------------------------------------------------

/** First and one-past-last output column whose input column ow·s - p + kj lies in [0, W). */
function validRange(outSize: number, inSize: number, s: number, p: number, k: number): [number, number] {
  const lo = Math.max(0, Math.ceil((p - k) / s));
  const hi = Math.min(outSize, Math.floor((inSize - 1 + p - k) / s) + 1);
  return [lo, Math.max(lo, hi)];
}

function im2col(x: FloatArray, xOff: number, g: Geometry, n0: number, b: number, col: FloatArray): void {
  const { C, H, W, kh, kw, s, p, Ho, Wo, P } = g;
  const L = b * P;
  for (let c = 0; c < C; c++) {
    for (let ki = 0; ki < kh; ki++) {
      for (let kj = 0; kj < kw; kj++) {
        const rowBase = ((c * kh + ki) * kw + kj) * L;
        const [lo, hi] = validRange(Wo, W, s, p, kj);
        for (let bi = 0; bi < b; bi++) {
          const xc = xOff + ((n0 + bi) * C + c) * H * W;
          for (let oh = 0; oh < Ho; oh++) {
            const d = rowBase + bi * P + oh * Wo;
            const ih = oh * s - p + ki;
            if (ih < 0 || ih >= H) {
              col.fill(0, d, d + Wo);
              continue;
            }
            for (let ow = 0; ow < lo; ow++) col[d + ow] = 0;
            const src = xc + ih * W - p + kj;
            if (s === 1) {
              for (let ow = lo; ow < hi; ow++) col[d + ow] = x[src + ow]!;
            } else {
              for (let ow = lo; ow < hi; ow++) col[d + ow] = x[src + ow * s]!;
            }
            for (let ow = hi; ow < Wo; ow++) col[d + ow] = 0;
          }
        }
      }
    }
  }
}

/** dx[images n0..n0+b) += col2im(col); the caller zeroes dx first. */
function col2im(col: FloatArray, g: Geometry, n0: number, b: number, dx: FloatArray, dxOff: number): void {
  const { C, H, W, kh, kw, s, p, Ho, Wo, P } = g;
  const L = b * P;
  for (let c = 0; c < C; c++) {
    for (let ki = 0; ki < kh; ki++) {
      for (let kj = 0; kj < kw; kj++) {
        const rowBase = ((c * kh + ki) * kw + kj) * L;
        const [lo, hi] = validRange(Wo, W, s, p, kj);
        for (let bi = 0; bi < b; bi++) {
          const xc = dxOff + ((n0 + bi) * C + c) * H * W;
          for (let oh = 0; oh < Ho; oh++) {
            const ih = oh * s - p + ki;
            if (ih < 0 || ih >= H) continue;
            const d = rowBase + bi * P + oh * Wo;
            const dst = xc + ih * W - p + kj;
            if (s === 1) {
              for (let ow = lo; ow < hi; ow++) dx[dst + ow]! += col[d + ow]!;
            } else {
              for (let ow = lo; ow < hi; ow++) dx[dst + ow * s]! += col[d + ow]!;
            }
          }
        }
      }
    }
  }
}

/** tmp[o, bi·P + j] = src[(n0+bi)·O·P + o·P + j]: a chunk of NOPQ data as one [O, b·P] matrix. */
function gatherChunk(src: FloatArray, off: number, g: Geometry, n0: number, b: number, tmp: FloatArray): void {
  const { O, P } = g;
  const L = b * P;
  for (let bi = 0; bi < b; bi++) {
    for (let o = 0; o < O; o++) {
      const from = off + ((n0 + bi) * O + o) * P;
      tmp.set(src.subarray(from, from + P), o * L + bi * P);
    }
  }
}

function scatterChunk(tmp: FloatArray, g: Geometry, n0: number, b: number, dst: FloatArray, off: number): void {
  const { O, P } = g;
  const L = b * P;
  for (let bi = 0; bi < b; bi++) {
    for (let o = 0; o < O; o++) {
      const from = o * L + bi * P;
      dst.set(tmp.subarray(from, from + P), off + ((n0 + bi) * O + o) * P);
    }
  }
}

// ---- range kernels (images [n0, n1)) ----------------------------------------------------------

let winogradEnabled = true;

/**
 * Let layers that winograd.ts serves take it (the default), or keep every layer on im2col, as
 * bench/conv-ab.js does to compare the two. The choice is made on the calling thread.
 */
export function setWinograd(enabled: boolean): void {
  winogradEnabled = enabled;
}

/** 3x3 stride-1 layers with enough channels go to winograd.ts (4x fewer multiplies). */
const useWinograd = (g: Geometry): boolean => winogradEnabled && winogradApplies(g.C, g.O, g.kh, g.kw, g.s, g.p, g.Ho, g.Wo);
/**
 * With very few input channels, forward and filter gradient go to direct3x3.ts (the input
 * gradient of a first layer is never needed, and stays on im2col).
 */
const useDirect = (g: Geometry): boolean => direct3x3Applies(g.C, g.kh, g.kw, g.s);

function forwardRange(x: FloatArray, xOff: number, w: FloatArray, wOff: number, y: FloatArray, yOff: number,
  g: Geometry, n0: number, n1: number): void {
  if (useDirect(g)) return direct3x3Forward(x, xOff, w, wOff, y, yOff, g, n0, n1);
  const B = chunkImages(g);
  const { O, P, CKK } = g;
  for (let n = n0; n < n1; n += B) {
    const b = Math.min(B, n1 - n);
    const L = b * P;
    const col = scratch(x, 0, CKK * L);
    im2col(x, xOff, g, n, b, col);
    if (b === 1) {
      gemmStrided(O, P, CKK, w, wOff, CKK, false, col, 0, P, false, y, yOff + n * O * P, P, false);
    } else {
      const tmp = scratch(y, 1, O * L);
      gemmStrided(O, L, CKK, w, wOff, CKK, false, col, 0, L, false, tmp, 0, L, false);
      scatterChunk(tmp, g, n, b, y, yOff);
    }
  }
}

function backwardInputRange(dy: FloatArray, dyOff: number, w: FloatArray, wOff: number, dx: FloatArray, dxOff: number,
  g: Geometry, n0: number, n1: number): void {
  const B = chunkImages(g);
  const { C, H, W, O, P, CKK } = g;
  dx.fill(0, dxOff + n0 * C * H * W, dxOff + n1 * C * H * W);
  for (let n = n0; n < n1; n += B) {
    const b = Math.min(B, n1 - n);
    const L = b * P;
    const dcol = scratch(dx, 0, CKK * L);
    if (b === 1) {
      gemmStrided(CKK, P, O, w, wOff, CKK, true, dy, dyOff + n * O * P, P, false, dcol, 0, P, false);
    } else {
      const tmp = scratch(dy, 1, O * L);
      gatherChunk(dy, dyOff, g, n, b, tmp);
      gemmStrided(CKK, L, O, w, wOff, CKK, true, tmp, 0, L, false, dcol, 0, L, false);
    }
    col2im(dcol, g, n, b, dx, dxOff);
  }
}

/**
 * The filter gradient of each chunk of images in [n0, n1), written to that chunk's own slot of
 * `slots` (slot n / chunkImages at O·CKK each). Fixed slots, summed in order by the caller, make
 * the result independent of which thread ran which chunk: same inputs, same bits.
 */
function backwardFilterRange(x: FloatArray, xOff: number, dy: FloatArray, dyOff: number, slots: FloatArray,
  g: Geometry, n0: number, n1: number): void {
  const B = chunkImages(g);
  const { O, P, CKK } = g;
  for (let n = n0; n < n1; n += B) {
    const b = Math.min(B, n1 - n);
    const L = b * P;
    const slot = (n / B) * O * CKK;
    if (useDirect(g)) {
      direct3x3BackwardFilter(x, xOff, dy, dyOff, slots, slot, g, n, n + b);
      continue;
    }
    const col = scratch(x, 0, CKK * L);
    im2col(x, xOff, g, n, b, col);
    if (b === 1) {
      gemmStrided(O, CKK, P, dy, dyOff + n * O * P, P, false, col, 0, L, true, slots, slot, CKK, false);
    } else {
      const tmp = scratch(dy, 1, O * L);
      gatherChunk(dy, dyOff, g, n, b, tmp);
      gemmStrided(O, CKK, L, tmp, 0, L, false, col, 0, L, true, slots, slot, CKK, false);
    }
  }
}

// Kernel args: geometry (9 numbers), then the three element offsets.
const forwardKernel = defineKernel('silentgrad.conv2d.forward', import.meta.url, (arrays, a, n0, n1) => {
  forwardRange(arrays[0]!, a[9]!, arrays[1]!, a[10]!, arrays[2]!, a[11]!, geometryFrom(a), n0, n1);
});

const backwardInputKernel = defineKernel('silentgrad.conv2d.backwardInput', import.meta.url, (arrays, a, n0, n1) => {
  backwardInputRange(arrays[0]!, a[9]!, arrays[1]!, a[10]!, arrays[2]!, a[11]!, geometryFrom(a), n0, n1);
});

const backwardFilterKernel = defineKernel('silentgrad.conv2d.backwardFilter', import.meta.url, (arrays, a, n0, n1) => {
  backwardFilterRange(arrays[0]!, a[9]!, arrays[1]!, a[10]!, arrays[2]!, geometryFrom(a), n0, n1);
});

function work(g: Geometry): number {
  return g.N * g.O * g.CKK * g.P;
}

/** Split the batch across the pool one chunk of images at a time. */
function split(g: Geometry): [number, number, number, { chunk: number }] {
  const b = chunkImages(g);
  return [g.N, b, work(g), { chunk: b }];
}

// ---- public API ------------------------------------------------------------------------------


/**
 * y[N,O,Ho,Wo] = conv2d(x[N,C,H,W], w[O,C,kh,kw]) with one stride and one (symmetric) zero
 * padding for both spatial axes; no bias. Offsets are element offsets into the arrays.
 */
export function conv2dForward(
  x: FloatArray, xShape: Shape4, w: FloatArray, wShape: Shape4,
  stride: number, padding: number, y: FloatArray,
  xOffset = 0, wOffset = 0, yOffset = 0,
): void {
  const g = geometry(xShape, wShape, stride, padding);
  if (useWinograd(g)) return winogradForward(x, xOffset, w, wOffset, y, yOffset, g.N, g.C, g.H, g.W, g.O, g.p);
  parallelFor(forwardKernel, [x, w, y], [...geometryArgs(g), xOffset, wOffset, yOffset], ...split(g));
}

/**
 * dx[N,C,H,W] = the gradient of conv2dForward with respect to x, given dy[N,O,Ho,Wo]
 * (overwrites dx). `xShape` is the shape of x (and dx). Also ConvTranspose2d's forward.
 */
export function conv2dBackwardInput(
  dy: FloatArray, xShape: Shape4, w: FloatArray, wShape: Shape4,
  stride: number, padding: number, dx: FloatArray,
  dyOffset = 0, wOffset = 0, dxOffset = 0,
): void {
  const g = geometry(xShape, wShape, stride, padding);
  if (useWinograd(g)) return winogradBackwardInput(dy, dyOffset, w, wOffset, dx, dxOffset, g.N, g.C, g.H, g.W, g.O, g.p);
  parallelFor(backwardInputKernel, [dy, w, dx], [...geometryArgs(g), dyOffset, wOffset, dxOffset], ...split(g));
}

let filterSlots: Record<'float32' | 'float64', FloatArray | null> = { float32: null, float64: null };

/**
 * dw[O,C,kh,kw] = the gradient of conv2dForward with respect to w, given x[N,C,H,W] and
 * dy[N,O,Ho,Wo] (overwrites dw).
 */
export function conv2dBackwardFilter(
  x: FloatArray, xShape: Shape4, dy: FloatArray, wShape: Shape4,
  stride: number, padding: number, dw: FloatArray,
  xOffset = 0, dyOffset = 0, dwOffset = 0,
): void {
  const g = geometry(xShape, wShape, stride, padding);
  if (useWinograd(g)) return winogradBackwardFilter(x, xOffset, dy, dyOffset, dw, dwOffset, g.N, g.C, g.H, g.W, g.O, g.p);
  const size = g.O * g.CKK;
  const chunks = Math.ceil(g.N / chunkImages(g));
  const dtype = dw instanceof Float32Array ? 'float32' : 'float64';
  let slots = filterSlots[dtype];
  if (!slots || slots.length < chunks * size) {
    slots = allocShared(dtype, chunks * size);
    filterSlots = { ...filterSlots, [dtype]: slots };
  }
  parallelFor(backwardFilterKernel, [x, dy, slots], [...geometryArgs(g), xOffset, dyOffset], ...split(g));
  for (let i = 0; i < size; i++) {
    let sum = 0;
    for (let c = 0; c < chunks; c++) sum += slots[c * size + i]!;
    dw[dwOffset + i] = sum;
  }
}
