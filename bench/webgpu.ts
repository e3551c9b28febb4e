// The WebGPU backend against the CPU backend in the same run, float32:
//   node scripts/build.mjs && node bench/webgpu.js [--quick]
// matmul GFLOP/s at the MLP shapes and 512³, conv2d forward + both backward kernels at the
// Table-5 encoder shapes (batch 64, 28x28, 3x3, pad 1, 1->32 and 32->32), and the fused silent
// ELBO forward + backward (B=64, d=200, k=784, learnable variance, Bernoulli moments).
// The 32->32 convolutions run Winograd F(4x4, 3x3) on both backends (conv rates count
// direct-convolution flops); bench/winograd.js times WebGPU's Winograd against its implicit
// GEMMs in one process.
// A sample records `reps` calls and then reads one element back, so it times completed work.
// `reps` is calibrated per row and backend so a sample lasts about SAMPLE_MS: the read at its
// end drains the GPU's queue (a submit boundary, the threads idle while the host records the
// next sample), which a training step pays once per ~90 dispatches. With 5 calls a sample
// (this file's old rule) the 64x784x200 matmul on lavapipe measured 11.0-12.5 GFLOP/s, with 20
// 16.4-17.0, in alternating runs; the per-call time levels off from about 20 calls.
// On lavapipe these are CPU-rasteriser numbers, not GPU numbers (the adapter line says which).
// The training step: node bench/train-step.js --backend webgpu.
import Benchmark from 'benchmark';
import * as sg from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { scriptFlags } from '../experiments/cli.js';
import { createWebGpuBackend, webGpuUnavailableReason, type WebGpuBackend } from '../backends/webgpu/index.js';

/** Wall time a sample aims at; see the header. */
const SAMPLE_MS = 100;
const MAX_REPS = 100;
const { quick, only } = scriptFlags('bench/webgpu.js', 'The WebGPU backend against the CPU backend: matmul, conv2d and the fused silent ELBO.', {
  quick: { type: 'boolean', help: 'fewer samples per row' },
  only: { type: 'string', help: 'keep the rows whose name contains this word (e.g. --only=matmul)' },
}, (v) => ({ quick: v.quick === true, only: v.only as string | undefined }));
const gpu = await createWebGpuBackend();
if (!gpu) throw new Error(`bench/webgpu: ${webGpuUnavailableReason()}`);
console.log(`adapter: ${gpu.describe()}`);
console.log(`cpu:     ${sg.cpuBackend.describe()}`);

interface Row { name: string; flops: number; make: (backend: sg.Backend) => () => Tensor }
const stream = new sg.RandomStream(1);
const randn = (backend: sg.Backend, ...shape: number[]): Tensor => sg.normal(shape, stream, { backend }).keep();

const rows: Row[] = [];
for (const [M, K, N] of [[64, 784, 200], [64, 200, 784], [512, 512, 512]] as const)
  rows.push({ name: `matmul ${M}x${K}x${N}`, flops: 2 * M * K * N, make: (b) => { const x = randn(b, M, K), y = randn(b, K, N); return () => sg.matmul(x, y); } });
for (const [C, O] of [[1, 32], [32, 32]] as const) {
  const flops = 2 * 64 * O * C * 9 * 784;
  rows.push({ name: `conv ${C}->${O} fwd`, flops, make: (b) => { const x = randn(b, 64, C, 28, 28), w = randn(b, O, C, 3, 3); return () => sg.conv2d(x, w, 1, 1); } });
  rows.push({
    name: `conv ${C}->${O} fwd+bwd`, flops: 3 * flops, make: (b) => {
      const x = randn(b, 64, C, 28, 28), w = randn(b, O, C, 3, 3);
      x.requiresGrad = C > 1; // the first layer's image needs no gradient
      w.requiresGrad = true;
      return () => { const y = sg.conv2d(x, w, 1, 1); sg.backward(sg.sum(y)); const g = w.grad!; w.grad = null; x.grad = null; return g; };
    },
  });
}
rows.push({
  name: 'silent ELBO fwd+bwd (Bernoulli, learnable)', flops: 0, make: (b) => {
    const p = sg.uniform([64, 200], stream, { backend: b }).keep();
    const [wMu, wA] = [sg.scale(randn(b, 784, 200), 0.05).keep(), sg.scale(randn(b, 784, 200), 0.01).keep()];
    const [bMu, bA, x] = [randn(b, 784), sg.shift(sg.zeros([784], { backend: b }), 3).keep(), sg.uniform([64, 784], stream, { backend: b }).keep()];
    for (const t of [p, wMu, wA, bMu, bA]) t.requiresGrad = true;
    return () => {
      const q = sg.shift(sg.neg(p), 1), pq = sg.mul(p, q);
      const moments = { mean: p, c2: pq, c3: sg.mul(pq, sg.sub(q, p)), k4: sg.mul(pq, sg.shift(sg.scale(pq, -6), 1)) };
      sg.backward(sg.sum(sg.expectedLogLikelihoodLearnable(moments, { wMu, bMu, wA, bA }, x)));
      const g = wMu.grad!;
      for (const t of [p, wMu, wA, bMu, bA]) t.grad = null;
      return g;
    };
  },
});

/** ms per call of `fn` on a backend; GPU samples end with a one-element read. */
async function timeRow(row: Row, backend: sg.Backend): Promise<number> {
  const fn = row.make(backend);
  const sample = async (reps: number): Promise<number> => {
    const start = performance.now();
    let last: Tensor | null = null;
    for (let i = 0; i < reps; i++) { last?.dispose(); last = sg.tidy(() => fn()); }
    await sg.reshape(last!, [-1]).view([1], [1], 0).data();
    last!.dispose();
    return performance.now() - start;
  };
  // One untimed call first: pipelines compile on first use (seconds each on a cold LLVM cache).
  // Then one of 5 calls to size the samples.
  await sample(1);
  const reps = Math.max(1, Math.min(MAX_REPS, Math.round((5 * SAMPLE_MS) / (await sample(5)))));
  return new Promise((resolve) => {
    new Benchmark(row.name, {
      defer: true, minSamples: quick ? 2 : 5, maxTime: quick ? 0.5 : 2,
      fn: (deferred: { resolve(): void }) => void sample(reps).then(() => deferred.resolve()),
      onComplete: (event: Benchmark.Event) => resolve((event.target.stats!.mean * 1000) / reps),
    }).run({ async: true });
  });
}

const table: string[] = [];
for (const row of rows) {
  if (only && !row.name.includes(only)) continue;
  const [cpuMs, gpuMs] = [await timeRow(row, sg.cpuBackend), await timeRow(row, gpu)];
  const rate = (ms: number): string => (row.flops ? `${(row.flops / ms / 1e6).toFixed(1)} GFLOP/s` : '').padStart(14);
  table.push(`${row.name.padEnd(44)} cpu ${cpuMs.toFixed(2).padStart(8)} ms ${rate(cpuMs)}   webgpu ${gpuMs.toFixed(2).padStart(8)} ms ${rate(gpuMs)}`);
  console.log(table[table.length - 1]);
}
const s = (gpu as WebGpuBackend).stats();
console.log(`webgpu: ${s.dispatches} dispatches in ${s.submits} submits, ${s.pipelines} pipelines, ${s.liveBuffers} live buffers (${(s.liveBytes / 2 ** 20).toFixed(1)} MiB)`);
