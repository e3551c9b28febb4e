// The CPU backend's raw kernels (backends/cpu/gemm.ts, parallel.ts, conv.ts) against naive
// loops, in float64 so the comparisons are tight, plus a float32 smoke test of each.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { FloatArray } from '../engine/dtype.js';
import { gemm, gemmRange, gemmStrided, getCpuKernels, setCpuKernels } from '../backends/cpu/gemm.js';
import { allocShared, isShared, parallelFor, threadCount, warmUp, workerPieces } from '../backends/cpu/parallel.js';
import { parallelGemm } from '../backends/cpu/parallel-gemm.js';
import {
  conv2dBackwardFilter, conv2dBackwardInput, conv2dForward, convOutSize,
} from '../backends/cpu/conv.js';
import { direct3x3Applies } from '../backends/cpu/direct3x3.js';
import { winogradApplies } from '../backends/cpu/winograd.js';
import * as sg from '../silentgrad.js';
import { referenceDraw } from '../engine/random.js';
import { failOnWorker } from './fixtures/pool-kernels.js';
import { xorshift } from './host-rng.js';

// Deterministic pseudo-random fill, values in [-1, 1).
const rand = xorshift(12345);
function randomArray(n: number, shared = false, dtype: 'float32' | 'float64' = 'float64'): FloatArray {
  const a = shared ? allocShared(dtype, n) : dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rand();
  return a;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, n = a.length, aOff = 0, bOff = 0): number {
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[aOff + i]! - b[bOff + i]!));
  return m;
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  const d = maxAbsDiff(actual, expected);
  assert.ok(d <= tol, `${what}: max |diff| ${d} > ${tol}`);
}

function naiveGemm(M: number, N: number, K: number, A: ArrayLike<number>, aOff: number, tA: boolean,
  B: ArrayLike<number>, bOff: number, tB: boolean, C: FloatArray, cOff: number, acc: boolean): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        s += A[aOff + (tA ? k * M + i : i * K + k)]! * B[bOff + (tB ? j * K + k : k * N + j)]!;
      }
      C[cOff + i * N + j] = (acc ? C[cOff + i * N + j]! : 0) + s;
    }
  }
}

const sizes = [1, 3, 17, 65];

test('gemm matches a naive triple loop: all transposes, odd sizes, offsets, accumulate', () => {
  for (const M of sizes) for (const N of [1, 4, 17, 65]) for (const K of [1, 3, 65]) {
    for (const tA of [false, true]) for (const tB of [false, true]) for (const acc of [false, true]) {
      const aOff = 3, bOff = 5, cOff = 7;
      const A = randomArray(aOff + M * K + 2);
      const B = randomArray(bOff + K * N + 2);
      const C0 = randomArray(cOff + M * N + 2);
      const C = C0.slice();
      const R = C0.slice();
      gemm(M, N, K, A, aOff, tA, B, bOff, tB, C, cOff, acc);
      naiveGemm(M, N, K, A, aOff, tA, B, bOff, tB, R, cOff, acc);
      close(C, R, 1e-12 * K, `gemm M=${M} N=${N} K=${K} tA=${tA} tB=${tB} acc=${acc}`);
    }
  }
});

test('gemm: blocking boundaries (K > 256, N > 1024, M > 128) and K = 0', () => {
  for (const [M, N, K] of [[130, 1030, 7], [9, 13, 600], [131, 70, 300]] as const) {
    for (const tA of [false, true]) for (const tB of [false, true]) {
      const A = randomArray(M * K), B = randomArray(K * N);
      const C = randomArray(M * N), R = C.slice();
      gemm(M, N, K, A, 0, tA, B, 0, tB, C, 0, true);
      naiveGemm(M, N, K, A, 0, tA, B, 0, tB, R, 0, true);
      close(C, R, 1e-11, `gemm ${M}x${K}x${N} tA=${tA} tB=${tB}`);
    }
  }
  const C = randomArray(12);
  gemm(3, 4, 0, new Float64Array(0), 0, false, new Float64Array(0), 0, false, C, 0, false);
  close(C, new Float64Array(12), 0, 'K = 0 zero-fills');
});

test('gemmRange computes exactly its block; gemmStrided addresses sub-matrices', () => {
  const M = 37, N = 29, K = 41;
  for (const tA of [false, true]) for (const tB of [false, true]) {
    const A = randomArray(M * K), B = randomArray(K * N);
    const full = new Float64Array(M * N);
    gemm(M, N, K, A, 0, tA, B, 0, tB, full, 0, false);
    const C = new Float64Array(M * N).fill(NaN);
    gemmRange(M, N, K, A, 0, tA, B, 0, tB, C, 0, false, 0, 13, 0, N);
    gemmRange(M, N, K, A, 0, tA, B, 0, tB, C, 0, false, 13, M, 0, 10);
    gemmRange(M, N, K, A, 0, tA, B, 0, tB, C, 0, false, 13, M, 10, N);
    close(C, full, 1e-12, `gemmRange tA=${tA} tB=${tB}`);
  }
  // A 5x6 block of a 9x11 matrix times a 6x4 block of an 8x10 matrix into a 12x7 matrix.
  const A = randomArray(9 * 11), B = randomArray(8 * 10), C = new Float64Array(12 * 7);
  gemmStrided(5, 4, 6, A, 2 * 11 + 3, 11, false, B, 1 * 10 + 2, 10, false, C, 3 * 7 + 1, 7, false);
  for (let i = 0; i < 5; i++) for (let j = 0; j < 4; j++) {
    let s = 0;
    for (let k = 0; k < 6; k++) s += A[(2 + i) * 11 + 3 + k]! * B[(1 + k) * 10 + 2 + j]!;
    assert.ok(Math.abs(C[(3 + i) * 7 + 1 + j]! - s) < 1e-12, 'gemmStrided element');
  }
});

test('gemm float32 stays close to the float64 result', () => {
  const M = 33, N = 70, K = 300;
  const A64 = randomArray(M * K), B64 = randomArray(K * N);
  const C64 = new Float64Array(M * N), C32 = new Float32Array(M * N);
  gemm(M, N, K, A64, 0, false, B64, 0, true, C64, 0, false);
  gemm(M, N, K, Float32Array.from(A64), 0, false, Float32Array.from(B64), 0, true, C32, 0, false);
  close(C32, C64, 1e-4, 'float32 gemm');
});

test('parallel gemm equals single-threaded gemm', () => {
  const threads = warmUp();
  assert.ok(threads >= 1);
  assert.ok(isShared(allocShared('float32', 4)));
  for (const [M, N, K] of [[512, 64, 64], [64, 784, 200], [784, 200, 64], [3, 2000, 100], [101, 103, 107]] as const) {
    for (const tA of [false, true]) for (const tB of [false, true]) for (const dtype of ['float64', 'float32'] as const) {
      const A = randomArray(M * K + 1, true, dtype), B = randomArray(K * N + 2, true, dtype);
      const C0 = randomArray(M * N + 3, true, dtype);
      const C = allocShared(dtype, C0.length);
      C.set(C0);
      const R = C0.slice();
      parallelGemm(M, N, K, A, 1, tA, B, 2, tB, C, 3, true);
      gemm(M, N, K, A, 1, tA, B, 2, tB, R, 3, true);
      close(C, R, 0, `parallel gemm ${M}x${K}x${N} tA=${tA} tB=${tB} ${dtype} (${threads} threads)`);
    }
  }
  // Non-shared arrays fall back to one thread and still compute the product.
  const A = randomArray(64 * 64), B = randomArray(64 * 64), C = new Float64Array(64 * 64), R = new Float64Array(64 * 64);
  parallelGemm(64, 64, 64, A, 0, false, B, 0, false, C, 0, false);
  gemm(64, 64, 64, A, 0, false, B, 0, false, R, 0, false);
  close(C, R, 0, 'unshared fallback');
  assert.ok(threadCount() >= 1);
  if (threads > 1) {
    // The workers really take part (given a few tries on a machine that may be busy).
    const before = workerPieces();
    const n = 256;
    const X = randomArray(n * n, true), Y = randomArray(n * n, true), Z = allocShared('float64', n * n);
    for (let i = 0; i < 50 && workerPieces() === before; i++) parallelGemm(n, n, n, X, 0, false, Y, 0, false, Z, 0, false);
    assert.ok(workerPieces() > before, 'a worker ran part of a parallel gemm');
  }
});

// ---- convolution ----------------------------------------------------------------------------

interface Case { N: number; C: number; H: number; W: number; O: number; kh: number; kw: number; s: number; p: number }

function naiveConv(x: ArrayLike<number>, w: ArrayLike<number>, c: Case): Float64Array {
  const Ho = convOutSize(c.H, c.kh, c.s, c.p), Wo = convOutSize(c.W, c.kw, c.s, c.p);
  const y = new Float64Array(c.N * c.O * Ho * Wo);
  for (let n = 0; n < c.N; n++) for (let o = 0; o < c.O; o++) for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
    let s = 0;
    for (let ci = 0; ci < c.C; ci++) for (let ki = 0; ki < c.kh; ki++) for (let kj = 0; kj < c.kw; kj++) {
      const ih = oh * c.s - c.p + ki, iw = ow * c.s - c.p + kj;
      if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
      s += x[((n * c.C + ci) * c.H + ih) * c.W + iw]! * w[((o * c.C + ci) * c.kh + ki) * c.kw + kj]!;
    }
    y[((n * c.O + o) * Ho + oh) * Wo + ow] = s;
  }
  return y;
}

function naiveBackwardInput(dy: ArrayLike<number>, w: ArrayLike<number>, c: Case): Float64Array {
  const Ho = convOutSize(c.H, c.kh, c.s, c.p), Wo = convOutSize(c.W, c.kw, c.s, c.p);
  const dx = new Float64Array(c.N * c.C * c.H * c.W);
  for (let n = 0; n < c.N; n++) for (let o = 0; o < c.O; o++) for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
    const g = dy[((n * c.O + o) * Ho + oh) * Wo + ow]!;
    for (let ci = 0; ci < c.C; ci++) for (let ki = 0; ki < c.kh; ki++) for (let kj = 0; kj < c.kw; kj++) {
      const ih = oh * c.s - c.p + ki, iw = ow * c.s - c.p + kj;
      if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
      dx[((n * c.C + ci) * c.H + ih) * c.W + iw]! += g * w[((o * c.C + ci) * c.kh + ki) * c.kw + kj]!;
    }
  }
  return dx;
}

function naiveBackwardFilter(x: ArrayLike<number>, dy: ArrayLike<number>, c: Case): Float64Array {
  const Ho = convOutSize(c.H, c.kh, c.s, c.p), Wo = convOutSize(c.W, c.kw, c.s, c.p);
  const dw = new Float64Array(c.O * c.C * c.kh * c.kw);
  for (let n = 0; n < c.N; n++) for (let o = 0; o < c.O; o++) for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
    const g = dy[((n * c.O + o) * Ho + oh) * Wo + ow]!;
    for (let ci = 0; ci < c.C; ci++) for (let ki = 0; ki < c.kh; ki++) for (let kj = 0; kj < c.kw; kj++) {
      const ih = oh * c.s - c.p + ki, iw = ow * c.s - c.p + kj;
      if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
      dw[((o * c.C + ci) * c.kh + ki) * c.kw + kj]! += g * x[((n * c.C + ci) * c.H + ih) * c.W + iw]!;
    }
  }
  return dw;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

const cases: Case[] = [
  { N: 2, C: 3, H: 7, W: 7, O: 4, kh: 3, kw: 3, s: 1, p: 1 },
  { N: 1, C: 1, H: 9, W: 11, O: 5, kh: 3, kw: 3, s: 2, p: 0 },
  { N: 3, C: 2, H: 8, W: 8, O: 3, kh: 4, kw: 4, s: 2, p: 1 },
  { N: 2, C: 1, H: 5, W: 6, O: 2, kh: 3, kw: 3, s: 1, p: 2 },
  { N: 1, C: 4, H: 13, W: 9, O: 6, kh: 4, kw: 4, s: 2, p: 2 },
  { N: 2, C: 3, H: 6, W: 7, O: 2, kh: 2, kw: 3, s: 1, p: 0 },
  { N: 5, C: 2, H: 3, W: 3, O: 3, kh: 3, kw: 3, s: 3, p: 1 },
  { N: 1, C: 2, H: 4, W: 4, O: 1, kh: 1, kw: 1, s: 1, p: 0 },
  { N: 4, C: 8, H: 15, W: 15, O: 16, kh: 3, kw: 3, s: 2, p: 1 },
  { N: 7, C: 3, H: 28, W: 28, O: 8, kh: 4, kw: 4, s: 2, p: 1 },
];

function describe(c: Case): string {
  return `N${c.N} C${c.C} ${c.H}x${c.W} O${c.O} k${c.kh}x${c.kw} s${c.s} p${c.p}`;
}

function runCase(c: Case, shared: boolean): void {
  const Ho = convOutSize(c.H, c.kh, c.s, c.p), Wo = convOutSize(c.W, c.kw, c.s, c.p);
  const xShape = [c.N, c.C, c.H, c.W], wShape = [c.O, c.C, c.kh, c.kw];
  const alloc = (n: number): FloatArray => (shared ? allocShared('float64', n) : new Float64Array(n));
  const x = randomArray(c.N * c.C * c.H * c.W, shared), w = randomArray(c.O * c.C * c.kh * c.kw, shared);
  const dy = randomArray(c.N * c.O * Ho * Wo, shared);
  const y = alloc(dy.length).fill(NaN), dx = alloc(x.length).fill(NaN), dw = alloc(w.length).fill(NaN);
  conv2dForward(x, xShape, w, wShape, c.s, c.p, y);
  conv2dBackwardInput(dy, xShape, w, wShape, c.s, c.p, dx);
  conv2dBackwardFilter(x, xShape, dy, wShape, c.s, c.p, dw);
  const tag = `${describe(c)}${shared ? ' (shared)' : ''}`;
  close(y, naiveConv(x, w, c), 1e-12, `forward ${tag}`);
  close(dx, naiveBackwardInput(dy, w, c), 1e-12, `backward input ${tag}`);
  close(dw, naiveBackwardFilter(x, dy, c), 1e-11, `backward filter ${tag}`);
  // Adjoint identities: <conv(x, w), dy> = <x, dconv/dx(dy)> = <w, dconv/dw(x, dy)>.
  const lhs = dot(y, dy);
  assert.ok(Math.abs(lhs - dot(x, dx)) <= 1e-10 * (1 + Math.abs(lhs)), `adjoint input ${tag}`);
  assert.ok(Math.abs(lhs - dot(w, dw)) <= 1e-10 * (1 + Math.abs(lhs)), `adjoint filter ${tag}`);
}

test('conv2d forward / backward input / backward filter match naive loops and are adjoint', () => {
  for (const c of cases) runCase(c, false);
});

test('conv2d on shared arrays (split across threads) gives the same results', () => {
  warmUp();
  for (const c of cases) runCase(c, true);
  // Large enough to cross the parallel threshold for sure.
  runCase({ N: 6, C: 8, H: 14, W: 14, O: 16, kh: 3, kw: 3, s: 1, p: 1 }, true);
});

// 3x3 stride-1 layers with 8+ channels take the Winograd F(4x4, 3x3) path: odd sizes (partial
// edge tiles), all three paddings it serves, more and fewer output than input channels.
const winogradCases: Case[] = [
  { N: 3, C: 8, H: 10, W: 9, O: 9, kh: 3, kw: 3, s: 1, p: 1 },
  { N: 2, C: 9, H: 7, W: 13, O: 8, kh: 3, kw: 3, s: 1, p: 0 },
  { N: 2, C: 8, H: 6, W: 6, O: 8, kh: 3, kw: 3, s: 1, p: 2 },
  { N: 9, C: 16, H: 28, W: 28, O: 12, kh: 3, kw: 3, s: 1, p: 1 },
];

/** Each case takes the path `applies` names, and matches naive loops on one thread and on the pool. */
function runPath(cases: Case[], path: string, applies: (c: Case) => boolean): void {
  for (const c of cases) {
    assert.ok(applies(c), `${describe(c)} takes the ${path} path`);
    runCase(c, false);
    runCase(c, true);
  }
}

test('conv2d by Winograd F(4x4, 3x3) matches naive loops and is adjoint, on one thread and on the pool', () => {
  runPath(winogradCases, 'Winograd', (c) => winogradApplies(c.C, c.O, 3, 3, 1, c.p, convOutSize(c.H, 3, 1, c.p), convOutSize(c.W, 3, 1, c.p)));
  assert.not.ok(winogradApplies(4, 16, 3, 3, 1, 1, 28, 28), 'few input channels stay on im2col');
  assert.not.ok(winogradApplies(16, 16, 3, 3, 2, 1, 14, 14), 'stride 2 stays on im2col');
});

// 3x3 stride-1 layers with at most 4 input channels (the encoder's first layer) take the direct
// path of direct3x3.ts for the forward and the filter gradient: each padding, odd sizes, and the
// first layer's shape on the pool.
const directCases: Case[] = [
  { N: 2, C: 1, H: 7, W: 9, O: 5, kh: 3, kw: 3, s: 1, p: 0 },
  { N: 3, C: 4, H: 5, W: 4, O: 3, kh: 3, kw: 3, s: 1, p: 1 },
  { N: 1, C: 2, H: 3, W: 3, O: 2, kh: 3, kw: 3, s: 1, p: 2 },
  { N: 9, C: 1, H: 28, W: 28, O: 32, kh: 3, kw: 3, s: 1, p: 1 },
];

test('conv2d by the direct 3x3 loops matches naive loops and is adjoint, on one thread and on the pool', () => {
  runPath(directCases, 'direct', (c) => direct3x3Applies(c.C, c.kh, c.kw, c.s));
  assert.not.ok(direct3x3Applies(5, 3, 3, 1), 'five input channels go to im2col');
  assert.not.ok(direct3x3Applies(1, 3, 3, 2), 'stride 2 goes to im2col');
  // float32 in and out, float64 inside: as close to float64 as a single rounding.
  const c = directCases[3]!;
  const xShape = [c.N, c.C, c.H, c.W], wShape = [c.O, c.C, 3, 3];
  const x = randomArray(c.N * c.H * c.W), w = randomArray(c.O * 9), dy = randomArray(c.N * c.O * c.H * c.W);
  const y32 = allocShared('float32', dy.length), dw32 = allocShared('float32', w.length);
  conv2dForward(Float32Array.from(x), xShape, Float32Array.from(w), wShape, 1, 1, y32);
  conv2dBackwardFilter(Float32Array.from(x), xShape, Float32Array.from(dy), wShape, 1, 1, dw32);
  close(y32, naiveConv(x, w, c), 1e-6, 'float32 forward');
  close(dw32, naiveBackwardFilter(x, dy, c), 1e-5, 'float32 backward filter');
});

test('Winograd conv2d in float32 with the TypeScript kernels stays as close to float64 as im2col does', () => {
  // Float64 inside: the transforms and GEMMs of winograd.ts. The WebAssembly path computes in
  // float32 and is checked against this one in test/cpu-wasm.test.ts.
  const kernels = getCpuKernels();
  setCpuKernels('js');
  try {
    const c: Case = { N: 4, C: 32, H: 28, W: 28, O: 32, kh: 3, kw: 3, s: 1, p: 1 };
    const xShape = [c.N, c.C, c.H, c.W], wShape = [c.O, c.C, 3, 3];
    const x = randomArray(c.N * c.C * c.H * c.W), w = randomArray(c.O * c.C * 9), dy = randomArray(c.N * c.O * c.H * c.W);
    const y32 = allocShared('float32', dy.length), dx32 = allocShared('float32', x.length), dw32 = allocShared('float32', w.length);
    conv2dForward(Float32Array.from(x), xShape, Float32Array.from(w), wShape, 1, 1, y32);
    conv2dBackwardInput(Float32Array.from(dy), xShape, Float32Array.from(w), wShape, 1, 1, dx32);
    conv2dBackwardFilter(Float32Array.from(x), xShape, Float32Array.from(dy), wShape, 1, 1, dw32);
    // Outputs reach ~25 (filter gradient ~70); float32 rounding of inputs and outputs alone
    // gives ~1.5e-6 (4e-6), measured; a wrong transform entry would be off by O(1).
    close(y32, naiveConv(x, w, c), 1e-5, 'float32 forward');
    close(dx32, naiveBackwardInput(dy, w, c), 1e-5, 'float32 backward input');
    close(dw32, naiveBackwardFilter(x, dy, c), 4e-5, 'float32 backward filter');
  } finally {
    setCpuKernels(kernels);
  }
});

test('conv2d honours element offsets', () => {
  const c: Case = { N: 2, C: 2, H: 6, W: 5, O: 3, kh: 3, kw: 3, s: 1, p: 1 };
  const Ho = convOutSize(c.H, c.kh, c.s, c.p), Wo = convOutSize(c.W, c.kw, c.s, c.p);
  const xShape = [c.N, c.C, c.H, c.W], wShape = [c.O, c.C, c.kh, c.kw];
  const nx = c.N * c.C * c.H * c.W, nw = c.O * c.C * c.kh * c.kw, ny = c.N * c.O * Ho * Wo;
  const x = randomArray(nx + 5), w = randomArray(nw + 6), dy = randomArray(ny + 7);
  const y = new Float64Array(ny + 8).fill(7), dx = new Float64Array(nx + 9).fill(7), dw = new Float64Array(nw + 10).fill(7);
  conv2dForward(x, xShape, w, wShape, c.s, c.p, y, 5, 6, 8);
  conv2dBackwardInput(dy, xShape, w, wShape, c.s, c.p, dx, 7, 6, 9);
  conv2dBackwardFilter(x, xShape, dy, wShape, c.s, c.p, dw, 5, 7, 10);
  const xs = x.subarray(5), ws = w.subarray(6), dys = dy.subarray(7);
  assert.ok(maxAbsDiff(y, naiveConv(xs, ws, c), ny, 8, 0) < 1e-12, 'forward with offsets');
  assert.ok(maxAbsDiff(dx, naiveBackwardInput(dys, ws, c), nx, 9, 0) < 1e-12, 'backward input with offsets');
  assert.ok(maxAbsDiff(dw, naiveBackwardFilter(xs, dys, c), nw, 10, 0) < 1e-11, 'backward filter with offsets');
  assert.is(y[0], 7, 'forward leaves memory before the offset alone');
  assert.is(dx[0], 7, 'backward input leaves memory before the offset alone');
  assert.is(dw[0], 7, 'backward filter leaves memory before the offset alone');
});

test('conv2d float32 stays close to float64', () => {
  const c: Case = { N: 3, C: 4, H: 10, W: 10, O: 5, kh: 3, kw: 3, s: 1, p: 1 };
  const xShape = [c.N, c.C, c.H, c.W], wShape = [c.O, c.C, c.kh, c.kw];
  const x = randomArray(c.N * c.C * c.H * c.W), w = randomArray(c.O * c.C * 9);
  const y32 = allocShared('float32', c.N * c.O * 100), dx32 = allocShared('float32', x.length), dw32 = allocShared('float32', w.length);
  conv2dForward(Float32Array.from(x), xShape, Float32Array.from(w), wShape, 1, 1, y32);
  close(y32, naiveConv(x, w, c), 1e-5, 'float32 forward');
  const dy = randomArray(y32.length);
  conv2dBackwardInput(Float32Array.from(dy), xShape, Float32Array.from(w), wShape, 1, 1, dx32);
  close(dx32, naiveBackwardInput(dy, w, c), 1e-5, 'float32 backward input');
  conv2dBackwardFilter(Float32Array.from(x), xShape, Float32Array.from(dy), wShape, 1, 1, dw32);
  close(dw32, naiveBackwardFilter(x, dy, c), 1e-4, 'float32 backward filter');
});

// ---- elementwise over the pool -------------------------------------------------------------

test('big elementwise ops split over the thread pool give exactly the one-thread results', () => {
  warmUp();
  // 400 x 500 = 200k elements (over the pool's threshold); a transposed operand and a
  // broadcast one, so the split walks strided and stride-0 axes too.
  const stream = new sg.RandomStream(3);
  const t = sg.normal([500, 400], stream, { dtype: 'float64' }), row = sg.normal([500], stream, { dtype: 'float64' });
  const tv = t.dataSync(), rv = row.dataSync();
  const before = workerPieces();
  let ran = false;
  for (let attempt = 0; attempt < 50 && !ran; attempt++) {
    const sum = sg.add(sg.transpose(t), row).dataSync(); // [400, 500]: t[j, i] + row[j]
    const relu = sg.relu(sg.transpose(t)).dataSync();
    for (let i = 0; i < 400; i++) for (let j = 0; j < 500; j++) {
      const v = tv[j * 400 + i]!;
      if (sum[i * 500 + j] !== v + rv[j]! || relu[i * 500 + j] !== (v > 0 ? v : 0)) assert.unreachable(`element (${i}, ${j}) differs`);
    }
    ran = workerPieces() > before;
  }
  if (threadCount() > 1) assert.ok(ran, 'a worker ran part of an elementwise op');
});

test('copies by rows (native set) and by the loop put every element where it belongs: slices, strided destinations, short rows, float32 <-> float64', () => {
  const rand = xorshift(4242);
  for (const [rows, cols, width] of [[3, 40, 100], [5, 16, 16], [7, 15, 31], [2, 1, 3], [0, 20, 20], [64, 200, 400]] as const)
    for (const [from, to] of [['float32', 'float32'], ['float64', 'float32'], ['float32', 'float64']] as const) {
      // Columns [2, 2 + cols) of a [rows, width] matrix (a slice, rows contiguous), copied into
      // the same columns of another (a strided destination); the rest of it must stay as it was.
      const source = Array.from({ length: rows * width }, () => rand());
      const offset = Math.min(2, width - cols);
      const src = sg.tensor(source, [rows, width], { dtype: from });
      const dst = sg.full([rows, width], 7, { dtype: to });
      const slice = (t: sg.Tensor): sg.Tensor => t.view([rows, cols], [width, 1], t.offset + offset);
      sg.cpuBackend.unary('copy', slice(src), slice(dst), 0);
      const got = dst.dataSync(), rounded = sg.tensor(source, [rows, width], { dtype: to === 'float32' || from === 'float32' ? 'float32' : 'float64' }).dataSync();
      for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) {
        const inside = c >= offset && c < offset + cols, at = r * width + c;
        const expected = inside ? rounded[at]! : 7;
        if (!Object.is(got[at], expected)) assert.unreachable(`${rows}x${cols} of ${width} ${from}->${to}: (${r}, ${c}) is ${got[at]}, expected ${expected}`);
      }
    }
});

test('random draws dealt over the pool give referenceDraw\'s stream element for element, lengths not a multiple of 4 included', () => {
  warmUp();
  const before = workerPieces();
  for (const kind of ['uniform', 'normal'] as const) for (const length of [100_003, 5, 0]) for (const dtype of ['float32', 'float64'] as const) {
    const storage = sg.cpuBackend.alloc(dtype, length);
    const seed = 2 ** 40 + 17, offset = 123_456_789;
    sg.cpuBackend.random(kind, seed, offset, storage);
    const got = sg.cpuBackend.readSync({ storage, shape: [length], strides: [1], offset: 0 });
    const expected = dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
    referenceDraw(kind, seed, offset, expected);
    got.forEach((v, i) => { if (!Object.is(v, expected[i])) assert.unreachable(`${kind} ${dtype} length ${length}: element ${i}: ${v} vs ${expected[i]}`); });
  }
  if (threadCount() > 1) assert.ok(workerPieces() > before, 'a worker drew part of the big draws');
});

test('an error in a worker comes back to the caller with its message', () => {
  if (threadCount() < 2) return;
  warmUp();
  const flag = allocShared('float64', 1);
  let error: unknown = null;
  // The worker loads this kernel's module when it is first defined, so early jobs may run
  // wholly on the calling thread.
  for (let attempt = 0; attempt < 50 && error === null; attempt++) {
    flag[0] = 0;
    try {
      parallelFor(failOnWorker, [flag], [], 64, 1, Infinity);
    } catch (e) {
      error = e;
    }
  }
  assert.instance(error, Error);
  assert.match((error as Error).message, /^silentgrad worker failed in kernel test\.failOnWorker: Error: refused on a worker/);
  // The pool goes on working after a failure.
  const n = 300, X = allocShared('float32', n * n), Y = allocShared('float32', n * n), Z = allocShared('float32', n * n);
  X.fill(1); Y.fill(2);
  parallelGemm(n, n, n, X, 0, false, Y, 0, false, Z, 0, false);
  assert.ok(Z.every((z) => z === 2 * n));
});

test.run();
