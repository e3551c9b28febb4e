// Dense matrix multiply on raw typed arrays: C[M,N] (+)= op(A)[M,K] · op(B)[K,N], row-major.
//
// The structure is the GotoBLAS one, in plain TypeScript. Blocks of B (KC×NC) and A (MC×KC) are
// packed into Float64 scratch panels laid out exactly as the micro-kernel reads them (B as
// column panels of NR, A as row panels of MR, both k-major), so every transpose case runs the
// same unit-stride inner loop, float32 inputs are widened once instead of on every multiply,
// and the panels stay hot in L1/L2. The micro-kernel keeps a 3×4 tile of C in local variables.
// V8 allocates 15 XMM registers, so its 12 accumulators, 4 values of B and one of A do not all
// fit and about 8 accumulators live on the stack (read from TurboFan's disassembly,
// --print-opt-code); it still measured faster than every other tile tried, including the
// smaller ones that fit (docs/performance-log.md, "CPU GEMM: the 3x4 micro-kernel and
// module-level panels"). Accumulation is in float64 for both dtypes; results are rounded once
// when stored.
//
// Both panels live in one fixed-size module-level array that the micro-kernel reads directly,
// not through arguments: TurboFan then knows the array and its length as constants, so each load
// is one compare and one move instead of re-checking the array's map and reloading its base and
// length every iteration (no register is left to keep them in). Indices are truncated with
// `| 0` so their additions carry no overflow check. Together they made every measured shape
// faster (docs/performance-log.md, "CPU GEMM: the 3x4 micro-kernel and module-level panels").
// Each thread (worker_threads) has its own module instance, so its own panels.
//
// Products can instead run WebAssembly SIMD kernels, chosen by SILENTGRAD_CPU_KERNELS=js|wasm;
// the default is wasm where the engine validates it, since it measured several times faster
// (docs/performance-log.md, "CPU GEMM: float32 micro-kernel in WebAssembly SIMD"). Float32
// products take wasm/gemm-f32.ts (same blocking, float32 accumulation); products with a float64
// operand take wasm/gemm-f64.ts, which gives this file's bits. This file stays the readable
// reference and runs every product below SMALL. Workers import this module too, so they read
// the same variable and compile their own kernels.
//
// `gemmStrided` exposes the leading dimensions so callers (conv, the parallel splitter) can
// address sub-blocks of larger matrices without copying.

import type { FloatArray } from '../../engine/dtype.js';
import { packContiguous, packStrided } from './pack.js';
import { gemmStridedF32Wasm, wasmGemmAvailable } from './wasm/gemm-f32.js';
import { gemmStridedF64Wasm } from './wasm/gemm-f64.js';

/** Which kernels float32 products use: the TypeScript one here, or the generated WebAssembly. */
export type CpuKernels = 'js' | 'wasm';

function kernelsFromEnvironment(): CpuKernels {
  const v = typeof process === 'undefined' ? undefined : process.env.SILENTGRAD_CPU_KERNELS; // a page has no process
  if (v === 'js') return 'js';
  if (v === 'wasm') {
    if (!wasmGemmAvailable()) throw new Error('SILENTGRAD_CPU_KERNELS=wasm: this engine does not validate WebAssembly SIMD');
    return 'wasm';
  }
  if (v !== undefined && v !== '') throw new Error(`SILENTGRAD_CPU_KERNELS must be js or wasm, got ${JSON.stringify(v)}`);
  return wasmGemmAvailable() ? 'wasm' : 'js';
}

// Read on first use, not at load, so a bad value is reported where the caller can print one line.
let cpuKernels: CpuKernels | null = null;

/** The kernels float32 products use on this thread. */
export function getCpuKernels(): CpuKernels {
  return (cpuKernels ??= kernelsFromEnvironment());
}

/**
 * Switch this thread's float32 kernels (tests and benchmarks). Worker threads keep what
 * SILENTGRAD_CPU_KERNELS chose; set the variable before the pool starts to change theirs.
 */
export function setCpuKernels(kernels: CpuKernels): void {
  if (kernels === 'wasm' && !wasmGemmAvailable()) throw new Error('setCpuKernels: WebAssembly SIMD is not available');
  cpuKernels = kernels;
}

const MR = 3;
const NR = 4;
const KC = 256;
const MC = 129; // a multiple of MR
const NC = 1024;
/** Below this many multiply-adds, packing costs more than it saves. */
const SMALL = 4096;

/** A's panel at [0, KC·MC), B's at [B_PANEL, B_PANEL + KC·NC). */
const B_PANEL = KC * MC;
const panels = new Float64Array(KC * (MC + NC));
const edge = new Float64Array(MR * NR);

/**
 * C[M,N] (+)= op(A)·op(B). A is stored M×K (K×M when transA), B is K×N (N×K when transB),
 * C is M×N; all row-major and contiguous, starting at the given element offsets. With
 * `accumulate` false C is overwritten (and zero-filled when K = 0).
 */
export function gemm(
  M: number, N: number, K: number,
  A: FloatArray, aOffset: number, transA: boolean,
  B: FloatArray, bOffset: number, transB: boolean,
  C: FloatArray, cOffset: number, accumulate: boolean,
): void {
  gemmStrided(M, N, K, A, aOffset, transA ? M : K, transA, B, bOffset, transB ? K : N, transB,
    C, cOffset, N, accumulate);
}

/**
 * The rows [rowStart, rowEnd) and columns [colStart, colEnd) of the product `gemm` computes
 * (same arguments, same full-matrix M, N, K); used to split one product between threads.
 * Column bounds default to the whole row.
 */
export function gemmRange(
  M: number, N: number, K: number,
  A: FloatArray, aOffset: number, transA: boolean,
  B: FloatArray, bOffset: number, transB: boolean,
  C: FloatArray, cOffset: number, accumulate: boolean,
  rowStart: number, rowEnd: number, colStart = 0, colEnd = N,
): void {
  const lda = transA ? M : K;
  const ldb = transB ? K : N;
  const m = rowEnd - rowStart;
  const n = colEnd - colStart;
  if (m <= 0 || n <= 0) return;
  gemmStrided(m, n, K,
    A, aOffset + (transA ? rowStart : rowStart * lda), lda, transA,
    B, bOffset + (transB ? colStart * ldb : colStart), ldb, transB,
    C, cOffset + rowStart * N + colStart, N, accumulate);
}

/**
 * General form with explicit leading dimensions (row strides, in elements): element (i,k)
 * of op(A) is A[aOffset + i*lda + k] (A[aOffset + k*lda + i] when transA), (k,j) of op(B)
 * is B[bOffset + k*ldb + j] (B[bOffset + j*ldb + k] when transB), C[i,j] is
 * C[cOffset + i*ldc + j].
 */
export function gemmStrided(
  M: number, N: number, K: number,
  A: FloatArray, aOffset: number, lda: number, transA: boolean,
  B: FloatArray, bOffset: number, ldb: number, transB: boolean,
  C: FloatArray, cOffset: number, ldc: number, accumulate: boolean,
): void {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) for (let i = 0; i < M; i++) C.fill(0, cOffset + i * ldc, cOffset + i * ldc + N);
    return;
  }
  if (M * N * K <= SMALL) {
    gemmSmall(M, N, K, A, aOffset, lda, transA, B, bOffset, ldb, transB, C, cOffset, ldc, accumulate);
    return;
  }
  if (getCpuKernels() === 'wasm') {
    if (A instanceof Float32Array && B instanceof Float32Array && C instanceof Float32Array)
      gemmStridedF32Wasm(M, N, K, A, aOffset, lda, transA, B, bOffset, ldb, transB, C, cOffset, ldc, accumulate);
    else gemmStridedF64Wasm(M, N, K, A, aOffset, lda, transA, B, bOffset, ldb, transB, C, cOffset, ldc, accumulate);
    return;
  }
  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc);
      const add = accumulate || pc > 0;
      if (transB) packStrided(panels, B, bOffset + jc * ldb + pc, ldb, nc, kc, NR, B_PANEL);
      else packContiguous(panels, B, bOffset + pc * ldb + jc, ldb, nc, kc, NR, B_PANEL);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = Math.min(MC, M - ic);
        if (transA) packContiguous(panels, A, aOffset + pc * lda + ic, lda, mc, kc, MR, 0);
        else packStrided(panels, A, aOffset + ic * lda + pc, lda, mc, kc, MR, 0);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = Math.min(NR, nc - jr);
          const ib = B_PANEL + jr * kc;
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = Math.min(MR, mc - ir);
            micro3x4(kc, ir * kc, ib, C, cOffset + (ic + ir) * ldc + jc + jr, ldc, mr, nr, add);
          }
        }
      }
    }
  }
}


/** One MR×NR tile: C[ci..] (+)= Apanel · Bpanel over kc steps; only mr×nr of it is stored. */
function micro3x4(
  kc: number, ia: number, ib: number,
  C: FloatArray, ci: number, ldc: number, mr: number, nr: number, add: boolean,
): void {
  const pk = panels;
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  for (let p = 0; p < kc; p++) {
    const b0 = pk[ib]!, b1 = pk[(ib + 1) | 0]!, b2 = pk[(ib + 2) | 0]!, b3 = pk[(ib + 3) | 0]!;
    let a = pk[ia]!; c00 += a * b0; c01 += a * b1; c02 += a * b2; c03 += a * b3;
    a = pk[(ia + 1) | 0]!; c10 += a * b0; c11 += a * b1; c12 += a * b2; c13 += a * b3;
    a = pk[(ia + 2) | 0]!; c20 += a * b0; c21 += a * b1; c22 += a * b2; c23 += a * b3;
    ia = (ia + 3) | 0;
    ib = (ib + 4) | 0;
  }
  if (mr === 3 && nr === 4) {
    const r1 = ci + ldc, r2 = r1 + ldc;
    if (add) {
      C[ci]! += c00; C[ci + 1]! += c01; C[ci + 2]! += c02; C[ci + 3]! += c03;
      C[r1]! += c10; C[r1 + 1]! += c11; C[r1 + 2]! += c12; C[r1 + 3]! += c13;
      C[r2]! += c20; C[r2 + 1]! += c21; C[r2 + 2]! += c22; C[r2 + 3]! += c23;
    } else {
      C[ci] = c00; C[ci + 1] = c01; C[ci + 2] = c02; C[ci + 3] = c03;
      C[r1] = c10; C[r1 + 1] = c11; C[r1 + 2] = c12; C[r1 + 3] = c13;
      C[r2] = c20; C[r2 + 1] = c21; C[r2 + 2] = c22; C[r2 + 3] = c23;
    }
    return;
  }
  const t = edge;
  t[0] = c00; t[1] = c01; t[2] = c02; t[3] = c03;
  t[4] = c10; t[5] = c11; t[6] = c12; t[7] = c13;
  t[8] = c20; t[9] = c21; t[10] = c22; t[11] = c23;
  for (let i = 0; i < mr; i++) {
    const row = ci + i * ldc;
    for (let j = 0; j < nr; j++) {
      if (add) C[row + j]! += t[i * 4 + j]!;
      else C[row + j] = t[i * 4 + j]!;
    }
  }
}

/** Direct dot-product loops for tiny products, where packing would dominate. */
function gemmSmall(
  M: number, N: number, K: number,
  A: FloatArray, aOffset: number, lda: number, transA: boolean,
  B: FloatArray, bOffset: number, ldb: number, transB: boolean,
  C: FloatArray, cOffset: number, ldc: number, accumulate: boolean,
): void {
  const aRow = transA ? 1 : lda, aK = transA ? lda : 1;
  const bCol = transB ? ldb : 1, bK = transB ? 1 : ldb;
  for (let i = 0; i < M; i++) {
    const ai = aOffset + i * aRow;
    const ci = cOffset + i * ldc;
    for (let j = 0; j < N; j++) {
      let s = 0;
      let a = ai;
      let b = bOffset + j * bCol;
      for (let p = 0; p < K; p++) {
        s += A[a]! * B[b]!;
        a += aK;
        b += bK;
      }
      if (accumulate) C[ci + j]! += s;
      else C[ci + j] = s;
    }
  }
}

