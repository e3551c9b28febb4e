// GFLOP/s of the CPU backend's hot kernels (backends/cpu), float32:
//   node scripts/build.mjs && node bench/kernels.js [--quick]
// matmul at the MLP shapes and 512³, single-thread (plain arrays: the pool never splits them)
// and parallel (SharedArrayBuffer arrays: split over the pool); conv2d forward, backward input
// and backward filter at the Table-5 encoder shapes (batch 64, 28×28, 3×3, stride 1, pad 1).
// The 32->32 layers take the Winograd path (backends/cpu/winograd.ts), 1->32 the direct loops
// of backends/cpu/direct3x3.ts (its input gradient im2col); conv GFLOP/s always count the
// direct convolution's flops, so the paths compare as speed.
// A naive triple loop at 512³ is the yardstick for the machine (see matmulRows).
// Also the per-call cost of the pool's Atomics hand-off against a postMessage round trip.
import Benchmark from 'benchmark';
import { Worker, isMainThread } from 'node:worker_threads';
import type { FloatArray } from '../engine/dtype.js';
import { gemm } from '../backends/cpu/gemm.js';
import { allocShared, defineKernel, parallelFor, threadCount, warmUp } from '../backends/cpu/parallel.js';
import { parallelGemm } from '../backends/cpu/parallel-gemm.js';
import { conv2dBackwardFilter, conv2dBackwardInput, conv2dForward } from '../backends/cpu/conv.js';
import { scriptFlags } from '../experiments/cli.js';

// A do-nothing kernel, to time the hand-off itself. Workers import this module to find it, so
// everything else below runs on the main thread only.
const noop = defineKernel('bench.noop', import.meta.url, (arrays, _args, start) => {
  arrays[0]![start] = start;
});

interface Row { name: string; flops: number; fn: () => void }

function fill(a: FloatArray): FloatArray {
  for (let i = 0; i < a.length; i++) a[i] = Math.random() - 0.5;
  return a;
}

function array(shared: boolean, n: number): FloatArray {
  return fill(shared ? allocShared('float32', n) : new Float32Array(n));
}

function matmulRows(): Row[] {
  const rows: Row[] = [];
  // [label, M, K, N, transA]
  const shapes: [string, number, number, number, boolean][] = [
    ['matmul 64x784x200', 64, 784, 200, false],
    ['matmul 64x200x784', 64, 200, 784, false],
    ['matmul dW 784x64x200 (Aᵀ)', 784, 64, 200, true],
    ['matmul 512x512x512', 512, 512, 512, false],
  ];
  for (const [label, M, K, N, tA] of shapes) {
    for (const parallel of [false, true]) {
      const A = array(parallel, M * K), B = array(parallel, K * N), C = array(parallel, M * N);
      const f = parallel ? parallelGemm : gemm;
      rows.push({
        name: `${label} ${parallel ? 'parallel' : 'single'}`,
        flops: 2 * M * N * K,
        fn: () => f(M, N, K, A, 0, tA, B, 0, false, C, 0, false),
      });
    }
  }
  // The machine's yardstick: the textbook triple loop (B read down its columns), which issue 2
  // puts at about 1.8 GFLOP/s on the reference machine (its blocked kernel: about 7 on one
  // thread, 13 on two), so a run on a busier or slower day can be read as a ratio.
  const n = 512, A = array(false, n * n), B = array(false, n * n), C = array(false, n * n);
  rows.push({ name: `naive loop ${n}x${n}x${n} single`, flops: 2 * n * n * n, fn: () => naiveMatmul(n, A, B, C) });
  return rows;
}

function naiveMatmul(n: number, A: FloatArray, B: FloatArray, C: FloatArray): void {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += A[i * n + k]! * B[k * n + j]!;
      C[i * n + j] = s;
    }
  }
}

function convRows(): Row[] {
  const rows: Row[] = [];
  const N = 64, H = 28, W = 28, k = 3;
  for (const [C, O] of [[1, 32], [32, 32]] as const) {
    for (const parallel of [false, true]) {
      const xShape = [N, C, H, W], wShape = [O, C, k, k];
      const x = array(parallel, N * C * H * W), w = array(parallel, O * C * k * k);
      const y = array(parallel, N * O * H * W), dy = array(parallel, N * O * H * W);
      const dx = array(parallel, N * C * H * W), dw = array(parallel, O * C * k * k);
      const flops = 2 * N * O * C * k * k * H * W;
      const tag = `conv ${C}->${O} ${parallel ? 'parallel' : 'single'}`;
      rows.push({ name: `${tag} fwd`, flops, fn: () => conv2dForward(x, xShape, w, wShape, 1, 1, y) });
      rows.push({ name: `${tag} bwd input`, flops, fn: () => conv2dBackwardInput(dy, xShape, w, wShape, 1, 1, dx) });
      rows.push({ name: `${tag} bwd filter`, flops, fn: () => conv2dBackwardFilter(x, xShape, dy, wShape, 1, 1, dw) });
    }
  }
  return rows;
}

function handOffMicros(): { atomics: number; postMessage: number } {
  const X = allocShared('float64', 4);
  const time = (f: () => void): number => {
    for (let i = 0; i < 1000; i++) f();
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 300) {
      for (let i = 0; i < 100; i++) f();
      n += 100;
    }
    return (1000 * (performance.now() - t0)) / n;
  };
  const atomics = time(() => { parallelFor(noop, [X], [], 2, 1, Infinity); });
  // The alternative: postMessage the job, the worker answers through Atomics.
  const ctrl = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    "require('node:worker_threads').parentPort.on('message', (c) => { Atomics.store(c, 0, 1); Atomics.notify(c, 0); });",
    { eval: true },
  );
  worker.unref();
  const postMessage = time(() => {
    Atomics.store(ctrl, 0, 0);
    worker.postMessage(ctrl);
    Atomics.wait(ctrl, 0, 0, 1000);
  });
  void worker.terminate();
  return { atomics, postMessage };
}

function main(): void {
  const { quick } = scriptFlags('bench/kernels.js', 'GFLOP/s of the CPU backend\'s matmul and conv2d kernels, single-thread and over the pool.',
    { quick: { type: 'boolean', help: 'shorter timing per row' } }, (v) => ({ quick: v.quick === true }));
  const threads = warmUp();
  const rows = [...matmulRows(), ...convRows()];
  const results = new Map<string, number>();
  const suite = new Benchmark.Suite('silentgrad cpu kernels');
  for (const row of rows) {
    suite.add(row.name, row.fn, { maxTime: quick ? 0.3 : 1.5, minSamples: 5 });
  }
  suite.on('cycle', (event: Benchmark.Event) => {
    const b = event.target;
    const row = rows.find((r) => r.name === b.name);
    if (row) results.set(row.name, (row.flops * (b.hz ?? 0)) / 1e9);
  });
  suite.run({ async: false });

  const handOff = handOffMicros();
  console.log(`silentgrad CPU kernels, float32, ${threads} thread(s) (${threadCount()} configured), Node ${process.version}`);
  console.log('GFLOP/s              single  parallel');
  const pad = (s: string, n: number): string => s.padEnd(n);
  const num = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(2)).padStart(7);
  const labels = [...new Set(rows.map((r) => r.name.replace(/ (single|parallel)( |$)/, '$2')))];
  for (const label of labels) {
    const parts = label.match(/^(conv \S+)( .*)$/);
    const single = parts ? `${parts[1]} single${parts[2]}` : `${label} single`;
    const parallel = parts ? `${parts[1]} parallel${parts[2]}` : `${label} parallel`;
    console.log(`${pad(label, 28)} ${num(results.get(single))}  ${num(results.get(parallel))}`);
  }
  console.log('(conv rates count direct-convolution flops; 32->32 runs Winograd F(4x4,3x3), 1->32 direct 3x3 loops, its bwd input im2col)');
  console.log('(the naive loop is the yardstick: about 1.8 GFLOP/s on the reference machine of issue 2, where a blocked kernel did about 7 single, 13 parallel)');
  console.log(`hand-off per call: Atomics ${handOff.atomics.toFixed(1)} µs, postMessage ${handOff.postMessage.toFixed(1)} µs`);
}

if (isMainThread) main();
