// Where a WebGPU training step's time goes, kernel by kernel: one step of the Table-2 model
// (bench/train-step.js's) recorded as usual, then each of its dispatches replayed alone and
// timed (WebGpuBackend.profile), summed by kernel. The replays do not overlap as the step's
// dispatches may, so the total is close to the step's time, not equal to it.
//   node bench/webgpu-profile.js [--method silent-gaussian] [--channels 32] [--reps 4]
import * as sg from '../silentgrad.js';
import { createWebGpuBackend, webGpuUnavailableReason } from '../backends/webgpu/index.js';
import { loadMnist } from '../experiments/data/mnist.js';
import { FixedVarianceVae, methodNames } from '../experiments/vae.js';
import { oneOf, positiveInteger, scriptFlags } from '../experiments/cli.js';

const flags = scriptFlags('bench/webgpu-profile.js', 'Per-kernel times of one WebGPU training step of the Table-2 model (batch 64, d = 200).', {
  method: { type: 'string', help: `one of ${methodNames.join(', ')}`, default: 'silent-gaussian' },
  channels: { type: 'string', help: 'encoder channels', default: '32' },
  reps: { type: 'string', help: 'replays per dispatch', default: '4' },
  steps: { type: 'string', help: 'warm-up steps before the profiled one (the first compiles the shaders)', default: '3' },
}, (v) => ({
  method: oneOf('method', v.method as string, methodNames),
  channels: positiveInteger('channels', v.channels as string),
  reps: positiveInteger('reps', v.reps as string),
  steps: positiveInteger('steps', v.steps as string),
}));
const gpu = await createWebGpuBackend();
if (!gpu) throw new Error(`bench/webgpu-profile: ${webGpuUnavailableReason()}`);
sg.setDefaultBackend(gpu);
console.log(`adapter: ${gpu.describe()}`);

const batchSize = 64;
const train = loadMnist('train', { limit: batchSize });
const vae = new FixedVarianceVae(flags.method, {
  latentDim: 200, channels: flags.channels, sigma2: 0.01, lr: 1e-4, weightDecay: 0.01,
  batchSize, seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled' as const,
}, gpu);
let epoch = 0;
const step = async (): Promise<void> => { await vae.trainEpoch(train, ++epoch, () => {}); };
for (let i = 0; i < flags.steps; i++) await step();
const start = performance.now();
await step();
const stepMs = performance.now() - start;

const times = await gpu.profile(step, flags.reps);
const byKernel = new Map<string, { ms: number; calls: number }>();
for (const t of times) {
  const entry = byKernel.get(t.kernel) ?? { ms: 0, calls: 0 };
  entry.ms += t.ms;
  entry.calls++;
  byKernel.set(t.kernel, entry);
}
const total = times.reduce((sum, t) => sum + t.ms, 0);
console.log(`${flags.method}, ${flags.channels} channels: one step ${stepMs.toFixed(1)} ms as recorded; ${times.length} dispatches, replayed one by one ${total.toFixed(1)} ms`);
console.log(`${'ms'.padStart(8)} ${'share'.padStart(6)} ${'calls'.padStart(5)}  kernel`);
for (const [kernel, { ms, calls }] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms))
  console.log(`${ms.toFixed(1).padStart(8)} ${`${((100 * ms) / total).toFixed(1)}%`.padStart(6)} ${String(calls).padStart(5)}  ${kernel}`);
