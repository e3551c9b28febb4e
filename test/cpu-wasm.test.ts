// The WebAssembly emitter (backends/cpu/wasm/) and the float32 SIMD kernels generated with it:
// the GEMM against the TypeScript reference kernel of backends/cpu/gemm.ts, and the float32
// Winograd convolution against the float64 path of backends/cpu/winograd.ts, and the float32
// elementwise loops against backends/cpu/elementwise.ts's generated TypeScript loops.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { adamw } from '../backends/cpu/adamw.js';
import { heap, heapAddress, heapArray } from '../backends/cpu/heap.js';
import { direct3x3BackwardFilter, direct3x3Forward } from '../backends/cpu/direct3x3.js';
import { runBinary, runUnary, wasmLoop, type Operand } from '../backends/cpu/elementwise.js';
import type { BinaryOp, SilentElboTerm, UnaryOp } from '../engine/backend.js';
import { conv2dBackwardFilter, conv2dBackwardInput, conv2dForward } from '../backends/cpu/conv.js';
import type { FloatArray } from '../engine/dtype.js';
import { gemmStrided, getCpuKernels, setCpuKernels } from '../backends/cpu/gemm.js';
import { allocShared, threadCount, warmUp, workerPieces } from '../backends/cpu/parallel.js';
import { parallelGemm } from '../backends/cpu/parallel-gemm.js';
import {
  readSignedLeb128, readUnsignedLeb128, signedLeb128, unsignedLeb128,
} from '../backends/cpu/wasm/encoding.js';
import { DEFAULT_TILE, gemmStridedF32Wasm, wasmGemmAvailable } from '../backends/cpu/wasm/gemm-f32.js';
import { gemmStridedF64Wasm } from '../backends/cpu/wasm/gemm-f64.js';
import { emitGemmModule } from '../backends/cpu/wasm/gemm-kernel.js';
import { F32, F64 } from '../backends/cpu/wasm/macro.js';
import { binaryBodies, unaryBodies } from '../backends/cpu/wasm/elementwise-f32.js';
import { wasmWinogradAvailable } from '../backends/cpu/wasm/winograd-f32.js';
import { winogradApplies } from '../backends/cpu/winograd.js';
import { pixels } from '../backends/cpu/silent-elbo-epilogue.js';
import { chainRule, weightPowers } from '../backends/cpu/silent-elbo-powers.js';
import { f64LanesAvailable } from '../backends/cpu/wasm/f64-lanes.js';
import { silentElboTerms } from '../engine/ops/silent-elbo.js';
import { pixelForms } from '../engine/ops/silent-elbo-pixel.js';
import { ModuleBuilder } from '../backends/cpu/wasm/module.js';
import { Op, ValType } from '../backends/cpu/wasm/opcodes.js';
import { xorshift } from './host-rng.js';

const initialKernels = getCpuKernels();

const rand = xorshift(987654321);
function randomF32(n: number, shared = false): Float32Array {
  const a = shared ? allocShared('float32', n) as Float32Array : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rand();
  return a;
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
/** The TypeScript kernel's product (float64 accumulation), whatever the current setting. */
function reference(run: () => void): void {
  const before = getCpuKernels();
  setCpuKernels('js');
  try { run(); } finally { setCpuKernels(before); }
}

test('unsigned LEB128: edge cases and round trips', () => {
  assert.equal(unsignedLeb128(0), [0x00]);
  assert.equal(unsignedLeb128(127), [0x7f]);
  assert.equal(unsignedLeb128(128), [0x80, 0x01]);
  assert.equal(unsignedLeb128(0x105), [0x85, 0x02]); // f32x4.relaxed_madd's sub-opcode
  assert.equal(unsignedLeb128(16384), [0x80, 0x80, 0x01]);
  assert.equal(unsignedLeb128(0xffffffff), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  for (const v of [0, 1, 63, 64, 127, 128, 255, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]) {
    const bytes = unsignedLeb128(v);
    assert.equal(readUnsignedLeb128(bytes), { value: v, length: bytes.length }, `u32 ${v}`);
  }
  for (const bad of [-1, 2 ** 32, 1.5, NaN]) assert.throws(() => unsignedLeb128(bad), RangeError);
});

test('signed LEB128: edge cases and round trips', () => {
  assert.equal(signedLeb128(0), [0x00]);
  assert.equal(signedLeb128(63), [0x3f]);
  assert.equal(signedLeb128(64), [0xc0, 0x00]);
  assert.equal(signedLeb128(-1), [0x7f]);
  assert.equal(signedLeb128(-64), [0x40]);
  assert.equal(signedLeb128(-65), [0xbf, 0x7f]);
  assert.equal(signedLeb128(-(2 ** 31)), [0x80, 0x80, 0x80, 0x80, 0x78]);
  for (const v of [0, 1, -1, 63, 64, -64, -65, 127, 128, -128, -129, 8191, 8192, -8193, 2 ** 31 - 1, -(2 ** 31)]) {
    const bytes = signedLeb128(v);
    assert.equal(readSignedLeb128(bytes), { value: v, length: bytes.length }, `i32 ${v}`);
  }
  for (const bad of [2 ** 31, -(2 ** 31) - 1, 0.5]) assert.throws(() => signedLeb128(bad), RangeError);
});

test('the module builder makes valid modules that run', () => {
  assert.ok(WebAssembly.validate(new ModuleBuilder().encode()), 'empty module');
  const m = new ModuleBuilder();
  const f = m.addFunction('addScaled', [ValType.i32, ValType.i32], [ValType.i32]);
  const t = f.local(ValType.i32);
  // t = a·(-70) (a constant whose signed LEB128 takes two bytes); return t + b
  f.get(f.param(0)).i32(-70).op(Op.i32_mul).set(t).get(t).get(f.param(1)).op(Op.i32_add);
  const bytes = m.encode();
  assert.ok(WebAssembly.validate(bytes));
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
  const addScaled = instance.exports.addScaled as (a: number, b: number) => number;
  assert.is(addScaled(3, 5), -205);
  // A stack left unbalanced is rejected by the engine, an unclosed block by the builder.
  const bad = new ModuleBuilder();
  bad.addFunction('f', [], [ValType.i32]);
  assert.not.ok(WebAssembly.validate(bad.encode()));
  const open = new ModuleBuilder();
  const g = open.addFunction('g', [], []);
  assert.throws(() => g.block(() => { open.encode(); }));
});

test('GEMM modules validate for every tile shape, with and without an imported memory size', () => {
  assert.ok(wasmGemmAvailable(), 'this Node has WebAssembly SIMD');
  for (const mr of [1, 3, 4, 6, 8]) {
    for (const nr of [4, 8, 16]) {
      assert.ok(WebAssembly.validate(emitGemmModule({ mr, nr }, 2, F32, false, false)), `${mr}x${nr} f32`);
      assert.ok(WebAssembly.validate(emitGemmModule({ mr, nr }, 2, F64, false, true)), `${mr}x${nr} f64, shared memory`);
    }
  }
  assert.throws(() => emitGemmModule({ mr: 4, nr: 6 }, 1, F32, false, false), RangeError);
  assert.throws(() => emitGemmModule({ mr: 4, nr: 4 }, 1, F64, true, false), RangeError, 'no relaxed madd in float64');
});

// [M, N, K]: the brief's odd shapes plus ones crossing the KC, MC and NC block edges.
const shapes: [number, number, number][] = [
  [1, 1, 1], [7, 13, 5], [64, 784, 200], [65, 17, 33], [3, 1030, 7], [130, 9, 300], [5, 5, 513],
];

test('Wasm GEMM equals the TypeScript GEMM: shapes x transposes x accumulate', () => {
  for (const [M, N, K] of shapes) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        for (const acc of [false, true]) {
          for (const tile of [DEFAULT_TILE, { mr: 3, nr: 16 }]) {
            const A = randomF32(M * K), B = randomF32(K * N), C0 = randomF32(M * N);
            const want = C0.slice(), got = C0.slice();
            const lda = tA ? M : K, ldb = tB ? K : N;
            reference(() => gemmStrided(M, N, K, A, 0, lda, tA, B, 0, ldb, tB, want, 0, N, acc));
            gemmStridedF32Wasm(M, N, K, A, 0, lda, tA, B, 0, ldb, tB, got, 0, N, acc, tile);
            const d = maxAbsDiff(got, want);
            assert.ok(d <= 1e-6 * (K + 4), `${M}x${N}x${K} tA=${tA} tB=${tB} acc=${acc} ${tile.mr}x${tile.nr}: ${d}`);
          }
        }
      }
    }
  }
});

test('Wasm GEMM through gemmStrided on strided views leaves the rest of C alone', () => {
  setCpuKernels('wasm');
  const M = 37, N = 45, K = 29, pad = 3, off = 5;
  for (const tA of [false, true]) {
    for (const tB of [false, true]) {
      const lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad, ldc = N + pad;
      const A = randomF32(off + (tA ? K : M) * lda), B = randomF32(off + (tB ? N : K) * ldb);
      const C0 = randomF32(off + M * ldc);
      const want = C0.slice(), got = C0.slice();
      reference(() => gemmStrided(M, N, K, A, off, lda, tA, B, off, ldb, tB, want, off, ldc, false));
      gemmStrided(M, N, K, A, off, lda, tA, B, off, ldb, tB, got, off, ldc, false);
      for (let i = 0; i < got.length; i++) {
        const inC = i >= off && (i - off) % ldc < N && i - off < M * ldc;
        if (inC) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-4, `element ${i}`);
        else assert.is(got[i], C0[i], `element ${i} outside C changed`);
      }
    }
  }
});

test('Wasm float64 GEMM gives the TypeScript kernel\'s bits: shapes x transposes x accumulate x mixed element types', () => {
  const types: [string, string, string][] = [['f64', 'f64', 'f64'], ['f32', 'f64', 'f64'], ['f64', 'f64', 'f32'], ['f64', 'f32', 'f64']];
  const as = (t: string, a: Float32Array): FloatArray => (t === 'f64' ? Float64Array.from(a, (x) => x / 3) : a);
  for (const [M, N, K] of [...shapes, [9, 1031, 600] as [number, number, number]]) {
    for (const [ta, tb, tc] of types) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          for (const acc of [false, true]) {
            const A = as(ta, randomF32(M * K)), B = as(tb, randomF32(K * N)), C0 = as(tc, randomF32(M * N));
            const want = C0.slice(), got = C0.slice();
            const lda = tA ? M : K, ldb = tB ? K : N;
            reference(() => gemmStrided(M, N, K, A, 0, lda, tA, B, 0, ldb, tB, want, 0, N, acc));
            gemmStridedF64Wasm(M, N, K, A, 0, lda, tA, B, 0, ldb, tB, got, 0, N, acc);
            const at = got.findIndex((x, i) => !Object.is(x, want[i]));
            assert.is(at, -1, `${M}x${N}x${K} ${ta} ${tb} ${tc} tA=${tA} tB=${tB} acc=${acc}: first difference at ${at}`);
          }
        }
      }
    }
  }
});

test('empty dims, and float64 products through gemmStrided keep the TypeScript kernel\'s bits', () => {
  setCpuKernels('wasm');
  const C = new Float32Array([7, 7, 7, 7]);
  gemmStrided(0, 2, 3, new Float32Array(0), 0, 3, false, new Float32Array(6), 0, 2, false, C, 0, 2, false);
  gemmStrided(2, 0, 3, new Float32Array(6), 0, 3, false, new Float32Array(0), 0, 0, false, C, 0, 2, false);
  assert.equal([...C], [7, 7, 7, 7]);
  gemmStrided(2, 2, 0, new Float32Array(0), 0, 0, false, new Float32Array(0), 0, 2, false, C, 0, 2, true);
  assert.equal([...C], [7, 7, 7, 7], 'K = 0 accumulating adds nothing');
  gemmStrided(2, 2, 0, new Float32Array(0), 0, 0, false, new Float32Array(0), 0, 2, false, C, 0, 2, false);
  assert.equal([...C], [0, 0, 0, 0], 'K = 0 overwriting zero-fills');

  const M = 40, N = 50, K = 60;
  const A = Float64Array.from(randomF32(M * K)), B = Float64Array.from(randomF32(K * N));
  const want = new Float64Array(M * N), got = new Float64Array(M * N);
  reference(() => gemmStrided(M, N, K, A, 0, K, false, B, 0, N, false, want, 0, N, false));
  gemmStrided(M, N, K, A, 0, K, false, B, 0, N, false, got, 0, N, false);
  assert.equal([...got], [...want], 'float64 products are bit-identical to the TypeScript kernel');
});

test('the worker threads run the Wasm kernel too (split product bit-identical to one thread)', async () => {
  if (getCpuKernels() !== 'wasm' || process.env.SILENTGRAD_CPU_KERNELS === 'js') return; // the workers follow the variable
  await warmUp();
  const M = 96, N = 200, K = 300;
  const A = randomF32(M * K, true), B = randomF32(K * N, true);
  const split: FloatArray = allocShared('float32', M * N), whole = new Float32Array(M * N);
  gemmStrided(M, N, K, A, 0, K, false, B, 0, N, false, whole, 0, N, false);
  // A worker that is busy or not yet scheduled leaves its pieces to the caller: a few tries.
  const before = workerPieces();
  for (let i = 0; i < 50 && workerPieces() === before; i++) {
    parallelGemm(M, N, K, A, 0, false, B, 0, false, split, 0, false);
    assert.equal([...split], [...whole]);
  }
  assert.ok(workerPieces() > before, 'a worker ran part of the product');
});

// ---- float32 Winograd ------------------------------------------------------------------------

/** A 3x3 stride-1 layer: batch, in channels, height, width, out channels, padding. */
type Layer = [number, number, number, number, number, number];

/**
 * The three passes of `layer` on float32 copies of x, w, dy (or float64 ones), with every array
 * placed `off` elements into a larger one, plain or shared (so split over the pool).
 */
/** Where convPasses puts its arrays: plain arrays, SharedArrayBuffers (the pool) or the heap (read in place). */
type Placement = 'plain' | 'shared' | 'heap';

function convPasses(layer: Layer, x: Float64Array, w: Float64Array, dy: Float64Array, dtype: 'float32' | 'float64',
  where: Placement, off: number): [FloatArray, FloatArray, FloatArray] {
  const [N, C, H, W, O, p] = layer;
  const place = (a: ArrayLike<number>): FloatArray => {
    const n = a.length + off;
    const out = (where === 'heap' ? heapArray(dtype, n) : null)
      ?? (where === 'plain' ? (dtype === 'float32' ? new Float32Array(n) : new Float64Array(n)) : allocShared(dtype, n));
    out.set(a, off);
    return out;
  };
  const [xs, ws, dys] = [place(x), place(w), place(dy)];
  const [y, dx, dw] = [place(dy), place(x), place(w)];
  conv2dForward(xs, [N, C, H, W], ws, [O, C, 3, 3], 1, p, y, off, off, off);
  conv2dBackwardInput(dys, [N, C, H, W], ws, [O, C, 3, 3], 1, p, dx, off, off, off);
  conv2dBackwardFilter(xs, [N, C, H, W], dys, [O, C, 3, 3], 1, p, dw, off, off, off);
  return [y.subarray(off), dx.subarray(off), dw.subarray(off)];
}

/** max |a - b| / max |b|: the error on the scale of the result. */
function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  return maxAbsDiff(a, b) / scale;
}

// Odd sizes (edge tiles), every padding Winograd serves, channel counts off the 4 and 8 of the
// kernel's lanes and tiles, several chunks of images (split over the pool: 9 images a chunk at
// 28x28, a short last chunk), and the Table-5 layer.
const layers: Layer[] = [
  [3, 8, 10, 9, 9, 1], [2, 9, 7, 13, 8, 0], [2, 8, 6, 6, 8, 2], [3, 13, 11, 5, 21, 1], [2, 10, 9, 8, 17, 2],
  [11, 16, 12, 12, 12, 1], [19, 8, 28, 28, 9, 1], [4, 32, 28, 28, 32, 1],
];

test('float32 Winograd in Wasm against the float64 path: odd shapes, paddings, offsets, the pool, the heap', async () => {
  assert.ok(wasmWinogradAvailable(), 'this Node validates the Winograd module');
  setCpuKernels('wasm');
  await warmUp();
  for (const layer of layers) {
    const [N, C, H, W, O, p] = layer;
    assert.ok(winogradApplies(C, O, 3, 3, 1, p, H + 2 * p - 2, W + 2 * p - 2), `${layer} takes Winograd`);
    const x = Float64Array.from(randomF32(N * C * H * W)), w = Float64Array.from(randomF32(O * C * 9));
    const dy = Float64Array.from(randomF32(N * O * (H + 2 * p - 2) * (W + 2 * p - 2)));
    const want = convPasses(layer, x, w, dy, 'float64', 'plain', 0);
    const alone = convPasses(layer, x, w, dy, 'float32', 'plain', 3);
    const pooled = convPasses(layer, x, w, dy, 'float32', 'shared', 5);
    const inPlace = convPasses(layer, x, w, dy, 'float32', 'heap', 7);
    // Measured (docs/performance-log.md, "CPU Winograd in WebAssembly"): up to 1e-5 of the
    // scale, 10-25x float32 im2col's; a wrong transform entry or panel offset is off by O(1).
    ['forward', 'input gradient', 'filter gradient'].forEach((pass, i) => {
      const e = scaledError(alone[i]!, want[i]!);
      assert.ok(e <= 2e-5, `${layer} ${pass}: error ${e} of the scale`);
      // Workers take SILENTGRAD_CPU_KERNELS, not setCpuKernels.
      if (process.env.SILENTGRAD_CPU_KERNELS !== 'js') {
        assert.equal([...pooled[i]!], [...alone[i]!], `${layer} ${pass}: the pool gives one thread's bits`);
        assert.equal([...inPlace[i]!], [...alone[i]!], `${layer} ${pass}: read and written in place in the heap, the same bits`);
      }
    });
  }
});

test('float64 convolutions are the same bits with the js and wasm kernels', () => {
  const layer: Layer = [3, 13, 11, 5, 21, 1];
  const [N, C, H, W, O] = layer;
  const x = Float64Array.from(randomF32(N * C * H * W)), w = Float64Array.from(randomF32(O * C * 9));
  const dy = Float64Array.from(randomF32(N * O * H * W));
  setCpuKernels('wasm');
  const wasm = convPasses(layer, x, w, dy, 'float64', 'plain', 0);
  setCpuKernels('js');
  const js = convPasses(layer, x, w, dy, 'float64', 'plain', 0);
  for (let i = 0; i < 3; i++) assert.equal([...wasm[i]!], [...js[i]!]);
});

// ---- AdamW -------------------------------------------------------------------------------------

test('float32 AdamW in Wasm against the TypeScript loop, across blocks, on one thread, the pool and in place in the heap', async () => {
  await warmUp();
  const n = 3 * 4096 + 1234; // several of the kernel's blocks and a ragged tail
  const step = { lr: 1e-3, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3 };
  const start = [randomF32(n), randomF32(n), randomF32(n).map((x) => x / 10), randomF32(n).map((x) => x * x / 100)];
  // Plain arrays and SharedArrayBuffers are staged; heap arrays are updated in place.
  const run = (kernels: 'js' | 'wasm', where: 'plain' | 'shared' | 'heap'): Float32Array[] => {
    setCpuKernels(kernels);
    const make = (): Float32Array => (where === 'heap' ? heapArray('float32', n) as Float32Array | null : null)
      ?? (where === 'plain' ? new Float32Array(n) : allocShared('float32', n) as Float32Array);
    const [p, g, m, v] = start.map((a) => { const c = make(); c.set(a); return c; }) as [Float32Array, Float32Array, Float32Array, Float32Array];
    for (let i = 0; i < 3; i++) adamw(p, g, m, v, { ...step, step: step.step + i });
    return [p, m, v];
  };
  const want = run('js', 'plain'), alone = run('wasm', 'plain'), pooled = run('wasm', 'shared'), inPlace = run('wasm', 'heap');
  // Float32 arithmetic against float64 with float32 stores: a few float32 roundings apart.
  ['parameters', 'first moments', 'second moments'].forEach((what, i) => {
    const e = scaledError(alone[i]!, want[i]!);
    assert.ok(e <= 1e-6, `${what}: error ${e} of the scale`);
    if (process.env.SILENTGRAD_CPU_KERNELS !== 'js') {
      assert.equal([...pooled[i]!], [...alone[i]!], `${what}: the pool gives one thread's bits`);
      assert.equal([...inPlace[i]!], [...alone[i]!], `${what}: in place in the heap, the staged bits`);
    }
  });
});

test.after(() => setCpuKernels(initialKernels));

/** Values with every special case the ops must keep: signed zeros, infinities, NaN, subnormals. */
function elementwiseValues(n: number, shared = false): Float32Array {
  const specials = [0, -0, Infinity, -Infinity, NaN, 1e-40, -1e-40, 1, -1, 3.4e38];
  const a = randomF32(n, shared);
  for (let i = 0; i < n; i += 7) a[i] = specials[(i / 7) % specials.length]!;
  return a;
}
const sameBits = (x: number, y: number): boolean => Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));

test('float32 elementwise ops in Wasm give the TypeScript loops\' values: every op, row layouts, blocks, offsets, the pool', async () => {
  if (!wasmGemmAvailable()) return;
  // [label, out shape, strides of out, a, b, their offsets]: rows that cross the 4096-element
  // block, a short odd row, a row broadcast from b, b and a as per-row scalars, a padded a.
  type Case = [string, number[], number[], number[], number[], number];
  const cases: Case[] = [
    ['contiguous across blocks', [3, 4100], [4100, 1], [4100, 1], [4100, 1], 0],
    ['short odd rows', [5, 37], [37, 1], [37, 1], [37, 1], 0],
    ['b broadcast down the rows', [5, 70], [70, 1], [70, 1], [0, 1], 0],
    ['b one value per row', [5, 70], [70, 1], [70, 1], [1, 0], 0],
    ['a one value per row', [5, 70], [70, 1], [1, 0], [70, 1], 0],
    ['a padded rows at an offset', [5, 70], [70, 1], [80, 1], [70, 1], 3],
  ];
  const unary = Object.keys(unaryBodies) as UnaryOp[], binary = Object.keys(binaryBodies) as BinaryOp[];
  // Arrays in the heap are computed where they lie (their rows' last n mod 4 in TypeScript);
  // others pass through the module's staging area.
  const inHeap = (a: Float32Array): Float32Array => {
    const h = heapArray('float32', a.length) as Float32Array | null;
    if (!h) return a;
    h.set(a);
    return h;
  };
  for (const [where, place] of [['plain arrays', (a: Float32Array) => a], ['the heap', inHeap]] as const) for (const [caseLabel, shape, so, sa, sb, offset] of cases) {
    const label = `${caseLabel}, ${where}`;
    const a = place(elementwiseValues(600 + 5 * 80 * 80)), b = place(elementwiseValues(600 + 5 * 80 * 80));
    const size = shape[0]! * shape[1]!;
    const out = (): Operand => ({ data: place(new Float32Array(size)), offset: 0, strides: so });
    const A: Operand = { data: a, offset, strides: sa }, B: Operand = { data: b, offset: 1, strides: sb };
    const check = (name: string, wasm: Operand, js: Operand): void => {
      for (let i = 0; i < size; i++) {
        if (!sameBits(wasm.data[i]!, js.data[i]!)) assert.unreachable(`${name}, ${label}, element ${i}: wasm ${wasm.data[i]} vs TypeScript ${js.data[i]}`);
      }
    };
    for (const op of binary) {
      assert.ok(wasmLoop(true, op, 0, shape, [out(), A, B]), `${op} takes the Wasm loop on ${label}`);
      const w = out(), j = out();
      runBinary(op, shape, w, A, B);
      reference(() => runBinary(op, shape, j, A, B));
      check(op, w, j);
    }
    if (sa[1] === 0) continue; // unary ops read a as rows
    for (const op of unary) {
      const p = op === 'scale' ? -0.375 : 2.5; // both float32 values
      assert.ok(wasmLoop(false, op, p, shape, [out(), A, A]), `${op} takes the Wasm loop on ${label}`);
      const w = out(), j = out();
      runUnary(op, shape, w, A, p);
      reference(() => runUnary(op, shape, j, A, p));
      check(op, w, j);
    }
  }
  // Where it does not apply: a strided row, a short row, float64, a p that float32 cannot hold.
  const row = (data: FloatArray, stride: number): Operand => ({ data, offset: 0, strides: [stride] });
  const f32 = new Float32Array(200), f64 = new Float64Array(200);
  assert.is(wasmLoop(true, 'add', 0, [100], [row(f32, 1), row(f32, 2), row(f32, 1)]), null);
  assert.is(wasmLoop(true, 'add', 0, [16], [row(f32, 1), row(f32, 1), row(f32, 1)]), null);
  assert.is(wasmLoop(true, 'add', 0, [100], [row(f64, 1), row(f64, 1), row(f64, 1)]), null);
  assert.is(wasmLoop(false, 'scale', 0.1, [100], [row(f32, 1), row(f32, 1), row(f32, 1)]), null);
  assert.is(wasmLoop(false, 'exp', 0, [100], [row(f32, 1), row(f32, 1), row(f32, 1)]), null);

  // Big enough for the pool: the workers run the Wasm loops too.
  warmUp();
  const n = 64 * 32 * 28 * 28, shape = [64, 32, 784];
  const x = elementwiseValues(n, true), bias = elementwiseValues(32, true);
  const operand = (data: FloatArray, strides: number[]): Operand => ({ data, offset: 0, strides });
  const dense = [32 * 784, 784, 1];
  for (const [op, bStrides, bData] of [['add', [0, 1, 0], bias], ['keepWherePositive', dense, x]] as const) {
    const w = allocShared('float32', n), j = allocShared('float32', n);
    runBinary(op, shape, operand(w, dense), operand(x, dense), operand(bData, [...bStrides]));
    reference(() => runBinary(op, shape, operand(j, dense), operand(x, dense), operand(bData, [...bStrides])));
    for (let i = 0; i < n; i++) if (!sameBits(w[i]!, j[i]!)) assert.unreachable(`${op} on the pool, element ${i}: ${w[i]} vs ${j[i]}`);
  }
});

test('the direct 3x3 filter gradient in Wasm gives the TypeScript loop\'s bits (and the forward pass is unchanged): channels, odd widths, padding, float32 and float64', () => {
  if (!wasmGemmAvailable()) return;
  // [C, H, W, O, padding]: the first layer, odd output widths, an odd O (the filter gradient
  // pairs channels, so it stays in TypeScript there), no padding.
  const shapes: [number, number, number, number, number][] = [[1, 28, 28, 32, 1], [3, 7, 9, 4, 1], [2, 6, 5, 6, 0], [4, 5, 8, 3, 1]];
  for (const [C, H, W, O, p] of shapes) for (const dtype of ['float32', 'float64'] as const) {
    const Ho = H + 2 * p - 2, Wo = W + 2 * p - 2, N = 3;
    const g = { C, H, W, O, p, Ho, Wo };
    const make = (n: number): FloatArray => {
      const a = dtype === 'float32' ? new Float32Array(n + 5) : new Float64Array(n + 5);
      for (let i = 0; i < a.length; i++) a[i] = rand();
      return a;
    };
    const x = make(N * C * H * W), w = make(O * C * 9), dy = make(N * O * Ho * Wo);
    const zeros = (n: number): FloatArray => (dtype === 'float32' ? new Float32Array(n + 5) : new Float64Array(n + 5));
    const outputs = (): [FloatArray, FloatArray] => [zeros(N * O * Ho * Wo), zeros(O * C * 9)];
    const [yWasm, dwWasm] = outputs(), [yJs, dwJs] = outputs();
    const run = (y: FloatArray, dw: FloatArray): void => {
      direct3x3Forward(x, 2, w, 1, y, 3, g, 0, N);
      direct3x3BackwardFilter(x, 2, dy, 4, dw, 1, g, 0, N);
    };
    run(yWasm, dwWasm);
    reference(() => run(yJs, dwJs));
    const label = `C=${C} ${H}x${W} O=${O} p=${p} ${dtype}`;
    yJs.forEach((v, i) => { if (!Object.is(v, yWasm[i])) assert.unreachable(`${label}: forward element ${i}: ${yWasm[i]} vs ${v}`); });
    dwJs.forEach((v, i) => { if (!Object.is(v, dwWasm[i])) assert.unreachable(`${label}: filter gradient element ${i}: ${dwWasm[i]} vs ${v}`); });
  }
});

test('GEMM operands in the heap are packed where they lie, with the bits of staged copies: shapes x transposes x float32 and float64', () => {
  if (!wasmGemmAvailable()) return;
  const onHeap = (dtype: 'float32' | 'float64', n: number): FloatArray => {
    const a = heapArray(dtype, n);
    assert.ok(a && heapAddress(a) !== null, 'the heap gives arrays where shared memories exist');
    for (let i = 0; i < n; i++) a[i] = rand();
    return a;
  };
  const copy = (a: FloatArray): FloatArray => (a instanceof Float32Array ? Float32Array.from(a) : Float64Array.from(a));
  for (const [M, N, K] of shapes) for (const tA of [false, true]) for (const tB of [false, true]) {
    for (const dtype of ['float32', 'float64'] as const) {
      const A = onHeap(dtype, M * K), B = onHeap(dtype, K * N);
      const inPlace = onHeap(dtype, M * N), staged = copy(inPlace);
      const lda = tA ? M : K, ldb = tB ? K : N;
      const run = (a: FloatArray, b: FloatArray, c: FloatArray): void => {
        if (dtype === 'float32') gemmStridedF32Wasm(M, N, K, a as Float32Array, 0, lda, tA, b as Float32Array, 0, ldb, tB, c as Float32Array, 0, N, true);
        else gemmStridedF64Wasm(M, N, K, a, 0, lda, tA, b, 0, ldb, tB, c, 0, N, true);
      };
      run(A, B, inPlace);
      run(copy(A), copy(B), staged);
      inPlace.forEach((v, i) => { if (!Object.is(v, staged[i])) assert.unreachable(`${M}x${N}x${K} tA=${tA} tB=${tB} ${dtype}: element ${i}: ${v} vs ${staged[i]}`); });
    }
  }
});

/** Element-by-element identity, NaN payloads included (Object.is). */
function assertSameBits(what: string, expected: ArrayLike<number>, actual: ArrayLike<number>): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++)
    if (!Object.is(actual[i], expected[i])) assert.unreachable(`${what}: element ${i}: ${actual[i]} vs ${expected[i]}`);
}

/** Runs `check` until a pool worker has run a piece of it (a busy or unscheduled worker leaves its share to the caller). */
function assertReachesWorkers(what: string, check: () => void): void {
  if (threadCount() < 2) return;
  const before = workerPieces();
  for (let i = 0; i < 50 && workerPieces() === before; i++) check();
  assert.ok(workerPieces() > before, `${what} ran partly on the pool's workers`);
}

/** The silent ELBO's Wasm loops apply here: Wasm kernels, a heap, and an engine that validates f64x2. */
function silentElboWasmApplies(): boolean {
  if (heap() === null) return false;
  assert.is(getCpuKernels(), 'wasm');
  assert.ok(f64LanesAvailable(), 'an engine with shared memories and SIMD validates the f64x2 helpers');
  return true;
}

const heapFilled = (dtype: 'float32' | 'float64', n: number, value: () => number): FloatArray => {
  const a = heapArray(dtype, n);
  assert.ok(a, 'the heap gives arrays where shared memories exist');
  for (let i = 0; i < n; i++) a[i] = value();
  return a;
};

test('the silent ELBO epilogue in Wasm gives the JavaScript loop\'s bits: both forms, term subsets, odd rows, float32 and float64, with and without partials, the pool', () => {
  if (!silentElboWasmApplies()) return;
  warmUp();
  const uniform = (lo: number, hi: number) => (): number => lo + (hi - lo) * (rand() + 1) / 2;
  const check = (form: 'fixed' | 'learnable', dtype: 'float32' | 'float64', terms: readonly SilentElboTerm[], B: number, k: number, writes: boolean): void => {
    const plane = B * k;
    // Variances positive and E[A^2] away from 0, as the op's inputs are; offsets into x and the biases.
    const sums = heapFilled(dtype, terms.length * plane, () => 0);
    terms.forEach((t, n) => sums.subarray(n * plane, (n + 1) * plane).forEach((_, i, a) => { a[i] = t.moment === 'mean' ? uniform(-1, 1)() : uniform(0.01, 0.2)(); }));
    const x = heapFilled(dtype, plane + 3, uniform(0, 1)), bMu = heapFilled(dtype, k + 1, uniform(-0.5, 0.5)), bA = heapFilled(dtype, k + 2, uniform(2, 3));
    const run = (wasm: boolean): { result: FloatArray; partials: FloatArray | null } => {
      const result = heapFilled(dtype, B, () => 0), partials = writes ? heapFilled(dtype, terms.length * plane, () => 0) : null;
      const go = (): void => pixels(form, terms, sums, { x, xOff: 3, bMu, bMuOff: 1, bA: form === 'fixed' ? null : bA, bAOff: 2, partials, result, B, k, sigma2: 0.37 });
      if (wasm) go(); else reference(go);
      return { result, partials };
    };
    const js = run(false), wasm = run(true);
    const what = `${form} ${dtype} ${terms.map((t) => t.name)} ${B}x${k} partials=${writes}`;
    assertSameBits(`${what}: results`, js.result, wasm.result);
    if (js.partials) assertSameBits(`${what}: partials`, js.partials, wasm.partials!);
    assert.ok(js.result.every(Number.isFinite), `${what}: finite values`);
  };
  const gemmTerms = (form: 'fixed' | 'learnable'): SilentElboTerm[] =>
    silentElboTerms.filter((t) => t.name !== pixelForms[form].constant && (form === 'learnable' || t.name === 'Ubar'));
  for (const form of ['fixed', 'learnable'] as const) for (const dtype of ['float32', 'float64'] as const) {
    const all = gemmTerms(form);
    // Every GEMM term; without third and fourth moments; without the mean's terms (the fixed
    // form's only term is the mean's, so it has the empty set too).
    const subsets = [all, all.filter((t) => t.moment === 'mean' || t.moment === 'c2'), all.filter((t) => t.moment !== 'mean')]
      .filter((subset, n, list) => list.findIndex((other) => other.length === subset.length) === n);
    for (const terms of subsets) for (const [B, k] of [[3, 7], [64, 784], [1, 1], [2, 2]] as const) for (const writes of [true, false])
      check(form, dtype, terms, B, k, writes);
  }
  assertReachesWorkers('the 64x784 epilogue', () => check('learnable', 'float32', gemmTerms('learnable'), 64, 784, true));
});

test('the silent ELBO\'s weight loops in Wasm give the JavaScript loops\' bits: powers, column sums, chain rule to either target, odd widths, both types, the pool', () => {
  if (!silentElboWasmApplies()) return;
  warmUp();
  const learnable = silentElboTerms.filter((t) => t.name !== 'Kuuaa'), kuuaa = silentElboTerms.find((t) => t.name === 'Kuuaa')!;
  const ubar = silentElboTerms.filter((t) => t.name === 'Ubar'), suu = silentElboTerms.find((t) => t.name === 'Suu')!;
  const check = (terms: readonly SilentElboTerm[], summed: SilentElboTerm | null, dtype: 'float32' | 'float64', k: number, d: number, mu: boolean, aTarget: boolean): void => {
    const usesA = [...terms, ...(summed ? [summed] : [])].some((t) => t.powers[1] > 0);
    const u = heapFilled(dtype, k * d + 2, rand), a = usesA ? heapFilled(dtype, k * d + 1, rand) : null;
    const weights = { u, uOff: 2, a, aOff: 1, k, d, terms, summed };
    const h = heapFilled(dtype, terms.length * k * d, rand), hsValues = Float64Array.from({ length: d }, rand);
    const run = (wasm: boolean): FloatArray[] => {
      const out = heapFilled(dtype, terms.length * k * d, () => 0), colsum = heapFilled('float64', d, () => 0) as Float64Array;
      const hs = heapFilled('float64', d, () => 0) as Float64Array;
      hs.set(hsValues);
      const gwMu = mu ? heapFilled(dtype, k * d, () => 0) : null, gwA = aTarget && usesA ? heapFilled(dtype, k * d, () => 0) : null;
      const go = (): void => { weightPowers(weights, out, colsum); chainRule(weights, h, hs, gwMu, gwA); };
      if (wasm) go(); else reference(go);
      return [out, colsum, ...(gwMu ? [gwMu] : []), ...(gwA ? [gwA] : [])];
    };
    const js = run(false), wasm = run(true);
    const what = `${terms.map((t) => t.name)}+${summed?.name ?? '-'} ${dtype} ${k}x${d} mu=${mu} a=${aTarget}`;
    js.forEach((expected, n) => assertSameBits(`${what}: output ${n}`, expected, wasm[n]!));
  };
  const sets = [{ terms: learnable, summed: kuuaa }, { terms: ubar, summed: suu }, { terms: learnable.filter((t) => t.moment !== 'c3'), summed: null }];
  for (const { terms, summed } of sets) for (const dtype of ['float32', 'float64'] as const) for (const [k, d] of [[784, 200], [5, 7], [3, 1]] as const)
    for (const [mu, aTarget] of [[true, true], [true, false], [false, true]] as const) check(terms, summed, dtype, k, d, mu, aTarget);
  assertReachesWorkers('the 784-row weight loops', () => check(learnable, kuuaa, 'float32', 784, 200, true, true));
});

test.run();
