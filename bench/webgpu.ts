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
// After the rows comes the machine's yardstick: the register-blocked kernel first timed on the
// software drivers where issue 5's matmul bars were set (yardstickSource; docs/performance-log.md,
// "Software drivers: register blocking against workgroup-memory tiles"), run on the same adapter
// in samples alternating with our matmul's, beside that first figure, so a bar missed here can
// be told apart from a slower machine.
// The training step: node bench/train-step.js --backend webgpu.
import Benchmark from 'benchmark';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import { scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';
import { createWebGpuBackend, webGpuUnavailableReason, type WebGpuBackend } from '../backends/webgpu/index.js';
import type { DawnBackend } from '../backends/webgpu/device.js';

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
const MATMUL_SHAPES = [[64, 784, 200], [64, 200, 784], [512, 512, 512]] as const;
for (const [M, K, N] of MATMUL_SHAPES)
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

/** A sample of a row: `reps(n)` calls, then a one-element read on a GPU; its wall time in ms. */
type Sample = (reps: number) => Promise<number>;

function rowSample(row: Row, backend: sg.Backend): Sample {
  const fn = row.make(backend);
  return async (reps) => {
    const start = performance.now();
    let last: Tensor | null = null;
    for (let i = 0; i < reps; i++) { last?.dispose(); last = sg.tidy(() => fn()); }
    await sg.reshape(last!, [-1]).view([1], [1], 0).data();
    last!.dispose();
    return performance.now() - start;
  };
}

/**
 * Calls per sample so that one lasts about SAMPLE_MS: one untimed call first (pipelines compile
 * on first use, seconds each on a cold LLVM cache), then one of 5 calls to size the samples.
 */
async function calibrate(sample: Sample): Promise<number> {
  await sample(1);
  return Math.max(1, Math.min(MAX_REPS, Math.round((5 * SAMPLE_MS) / (await sample(5)))));
}

/** ms per call of a row on a backend. */
async function timeRow(row: Row, backend: sg.Backend): Promise<number> {
  const sample = rowSample(row, backend), reps = await calibrate(sample);
  return new Promise((resolve) => {
    new Benchmark(row.name, {
      defer: true, minSamples: quick ? 2 : 5, maxTime: quick ? 0.5 : 2,
      fn: (deferred: { resolve(): void }) => void sample(reps).then(() => deferred.resolve()),
      onComplete: (event: Benchmark.Event) => resolve((event.target.stats!.mean * 1000) / reps),
    }).run({ async: true });
  });
}

/**
 * The machine's yardstick for the matmul bars: the kernel timed on the software drivers where
 * issue 5's bars were set (each invocation 8 rows x 16 columns in registers, 4 x 4 workgroups,
 * no workgroup memory, no subgroups). That probe's code was never committed; this is the kernel
 * as it was described, sizes as constants. What it measured, per adapter, at
 * 64x784x200 / 64x200x784 / 512³ (docs/performance-log.md, "Software drivers: register
 * blocking against workgroup-memory tiles"):
 */
const NOTE_GFLOPS: Record<DawnBackend, readonly number[]> = { vulkan: [18, 20, 22], opengl: [18, 21, 46] };

function yardstickSource(K: number, N: number): string {
  const rows = [0, 1, 2, 3, 4, 5, 6, 7], groups = [0, 1, 2, 3];
  const acc = (r: number, c: number): string => `acc_${r}_${c}`;
  return `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
const K = ${K}u; const N4 = ${N / 4}u;
@compute @workgroup_size(4, 4)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let row0 = id.y * 8u; let cg0 = id.x * 4u;
  ${groups.map((c) => `let g_${c} = min(cg0 + ${c}u, N4 - 1u);`).join(' ')}
  ${rows.flatMap((r) => groups.map((c) => `var ${acc(r, c)} = vec4<f32>(0.0);`)).join(' ')}
  for (var k = 0u; k < K; k++) {
    ${groups.map((c) => `let b_${c} = B[k * N4 + g_${c}];`).join(' ')}
    ${rows.map((r) => `let a_${r} = A[(row0 + ${r}u) * K + k];`).join(' ')}
    ${rows.flatMap((r) => groups.map((c) => `${acc(r, c)} += a_${r} * b_${c};`)).join(' ')}
  }
  ${rows.flatMap((r) => groups.map((c) => `if (cg0 + ${c}u < N4) { C[(row0 + ${r}u) * N4 + cg0 + ${c}u] = ${acc(r, c)}; }`)).join('\n  ')}
}`;
}

/**
 * A sample of the yardstick at M x K x N (M a multiple of 32, N of 4) on the backend's device,
 * checked on one element first, and how to free its buffers. A sample ends when the queue is
 * done, with no read (the yardstick hands nothing to the host), which if anything flatters it.
 */
async function yardstick(M: number, K: number, N: number): Promise<{ sample: Sample; dispose: () => void }> {
  const { device } = (gpu as WebGpuBackend).context;
  const a = Float32Array.from({ length: M * K }, (_, i) => ((i * 7) % 13) - 6), b = Float32Array.from({ length: K * N }, (_, i) => ((i * 5) % 11) - 5);
  const buffer = (data: Float32Array<ArrayBuffer>): GPUBuffer => {
    const made = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    device.queue.writeBuffer(made, 0, data);
    return made;
  };
  const buffers = [buffer(a), buffer(b), buffer(new Float32Array(M * N))];
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: yardstickSource(K, N) }), entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const sample: Sample = async (reps) => {
    const start = performance.now(), encoder = device.createCommandEncoder(), pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(Math.ceil(N / 64), M / 32);
    pass.end();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - start;
  };
  // A yardstick that computed something else would say nothing: check the last element
  // (small integers, so exact in float32).
  await sample(1);
  const read = device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffers[2]!, (M * N - 1) * 4, read, 0, 4);
  device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const got = new Float32Array(read.getMappedRange())[0]!;
  read.destroy();
  let want = 0;
  for (let k = 0; k < K; k++) want += a[(M - 1) * K + k]! * b[k * N + N - 1]!;
  if (got !== want) throw new Error(`bench/webgpu: the yardstick kernel computed ${got} where ${want} was due`);
  return { sample, dispose: () => { for (const made of buffers) made.destroy(); } };
}

/**
 * ms per call of two samples taken in turn, and the median over rounds of each round's ratio
 * (second / first): on a machine whose speed drifts within minutes, only pairs compare.
 */
async function alternate(first: Sample, second: Sample, rounds: number): Promise<{ firstMs: number; secondMs: number; ratio: number }> {
  const [r1, r2] = [await calibrate(first), await calibrate(second)];
  const ms1: number[] = [], ms2: number[] = [];
  for (let i = 0; i < rounds; i++) {
    ms1.push((await first(r1)) / r1);
    ms2.push((await second(r2)) / r2);
  }
  return { firstMs: median(ms1), secondMs: median(ms2), ratio: median(ms2.map((ms, i) => ms / ms1[i]!)) };
}

const rate = (flops: number, ms: number): string => (flops ? `${(flops / ms / 1e6).toFixed(1)} GFLOP/s` : '').padStart(14);
for (const row of rows) {
  if (only && !row.name.includes(only)) continue;
  const [cpuMs, gpuMs] = [await timeRow(row, sg.cpuBackend), await timeRow(row, gpu)];
  console.log(`${row.name.padEnd(44)} cpu ${cpuMs.toFixed(2).padStart(8)} ms ${rate(row.flops, cpuMs)}   webgpu ${gpuMs.toFixed(2).padStart(8)} ms ${rate(row.flops, gpuMs)}`);
}
// A yardstick row runs where its own name or its matmul row's name holds --only.
const sticks = MATMUL_SHAPES.map((shape, i) => ({ shape, i, name: `yardstick ${shape.join('x')}` }))
  .filter(({ shape, name }) => !only || name.includes(only) || `matmul ${shape.join('x')}`.includes(only));
if (sticks.length) {
  const { kind } = (gpu as WebGpuBackend).context;
  if (kind === 'browser') throw new Error('bench/webgpu.js measures Dawn in Node');
  console.log(`yardstick: the design note's kernel (yardstickSource) and our matmul in alternating samples; the note's figure is from its machine (${kind})`);
  const rounds = quick ? 3 : 7;
  for (const { shape: [M, K, N], i, name } of sticks) {
    const stick = await yardstick(M, K, N), flops = 2 * M * K * N;
    const { firstMs, secondMs, ratio } = await alternate(stick.sample, rowSample(rows.find((row) => row.name === `matmul ${M}x${K}x${N}`)!, gpu), rounds);
    stick.dispose();
    console.log(`${name.padEnd(44)} note ${NOTE_GFLOPS[kind][i]!.toFixed(1).padStart(5)} GFLOP/s   here ${rate(flops, firstMs)}   our matmul ${rate(flops, secondMs)}: ${(1 / ratio).toFixed(2)}x its speed (median of ${rounds} paired rounds)`);
  }
}
const s = (gpu as WebGpuBackend).stats();
console.log(`webgpu: ${s.dispatches} dispatches in ${s.submits} submits, ${s.pipelines} pipelines, ${s.liveBuffers} live buffers (${(s.liveBytes / 2 ** 20).toFixed(1)} MiB)`);
