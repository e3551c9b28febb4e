// WebGPU's Winograd F(4x4, 3x3) convolutions against its implicit GEMMs, in one process, rounds
// interleaved (on a shared machine, separate runs of bench/webgpu.js differ by more than the
// effect): each conv2d pass of a layer, then the training step of bench/train-step.js.
//   node scripts/build.mjs && node bench/winograd.js [--rounds 15] [--layer N,C,H,W,O,pad] [--no-step]
// Prints the median and minimum ms per variant. The default layer is the Table-5 encoder's
// 32 -> 32 convolution at batch 64; --layer takes any the shared rule admits (8+ channels each
// side), also below the backend's default bar of 24 (kernels/winograd.ts, which cites runs).
import * as sg from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { Conv2dGeometry } from '../engine/backend.js';
import { createWebGpuBackend, webGpuUnavailableReason } from '../backends/webgpu/index.js';
import { winogradDevice, type WinogradPass } from '../backends/webgpu/kernels/winograd.js';
import { loadMnist } from '../experiments/data/mnist.js';
import { FixedVarianceVae, type MethodName } from '../experiments/vae.js';
import { UsageError, positiveInteger, scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';

const values = scriptFlags('bench/winograd.js', 'WebGPU Winograd convolutions against the implicit GEMMs, rounds interleaved in one process.', {
  rounds: { type: 'string', help: 'interleaved rounds per variant', default: '15' },
  layer: { type: 'string', help: 'N,C,H,W,O,pad of the 3x3 stride-1 layer', default: '64,32,28,28,32,1' },
  'no-step': { type: 'boolean', help: 'skip the training-step comparison' },
}, (v) => {
  const layer = String(v.layer).split(',').map(Number);
  if (layer.length !== 6 || !layer.every((n) => Number.isInteger(n) && n >= 0)) throw new UsageError(`--layer wants six non-negative integers N,C,H,W,O,pad; got '${v.layer}'`);
  return { rounds: positiveInteger('rounds', v.rounds as string), layer, 'no-step': v['no-step'] === true };
});
const rounds = values.rounds;
const gpu = await createWebGpuBackend();
if (!gpu) throw new Error(`bench/winograd: ${webGpuUnavailableReason()}`);
sg.setDefaultBackend(gpu);
console.log(`adapter: ${gpu.describe()}`);

const allPasses: WinogradPass[] = ['forward', 'input', 'filter'];
// Any layer the shared rule admits (8+ channels), below the backend's default bar of 24 too.
const minChannels = winogradDevice.minChannels;
winogradDevice.minChannels = 8;
const use = (passes: readonly WinogradPass[]): void => { winogradDevice.passes = new Set(passes); };
const summary = (name: string, ms: number[]): string =>
  `${name.padEnd(34)} median ${median(ms).toFixed(1).padStart(7)} ms   min ${Math.min(...ms).toFixed(1).padStart(7)} ms`;

// ---- one layer, pass by pass ---------------------------------------------------------------
const [N, C, H, W, O, p] = values.layer as [number, number, number, number, number, number];
const geometry: Conv2dGeometry = {
  batch: N, inChannels: C, height: H, width: W, outChannels: O, kernelH: 3, kernelW: 3, stride: 1, padding: p,
  outHeight: H + 2 * p - 2, outWidth: W + 2 * p - 2,
};
const stream = new sg.RandomStream(1);
const randn = (...shape: number[]): Tensor => sg.normal(shape, stream).keep();
const x = randn(N, C, H, W), w = randn(O, C, 3, 3), dy = randn(N, O, geometry.outHeight, geometry.outWidth);
const y = sg.zeros(dy.shape).keep(), dx = sg.zeros(x.shape).keep(), dw = sg.zeros(w.shape).keep();
const passes: Record<WinogradPass, () => void> = {
  forward: () => gpu.conv2d(x, w, geometry, y.storage),
  input: () => gpu.conv2dBackwardInput(dy, w, geometry, dx.storage),
  filter: () => gpu.conv2dBackwardFilter(x, dy, geometry, dw.storage),
};
const REPS = 5;
const settle = async (): Promise<void> => { for (const t of [y, dx, dw]) await sg.reshape(t, [-1]).view([1], [1], 0).data(); };
/** ms per call of `run`, REPS calls then a read (the first, untimed call compiles). */
async function time(run: () => void): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < REPS; i++) run();
  await settle();
  return (performance.now() - t0) / REPS;
}
console.log(`layer N=${N} C=${C} ${H}x${W} O=${O} pad ${p}: ${rounds} rounds of ${REPS} calls`);
const times: Record<string, number[]> = {};
for (const [pass, run] of Object.entries(passes) as [WinogradPass, () => void][])
  for (const wino of [false, true]) { use(wino ? [pass] : []); run(); await settle(); }
for (let r = 0; r < rounds; r++) {
  for (const [pass, run] of Object.entries(passes) as [WinogradPass, () => void][]) {
    for (const wino of [false, true]) {
      use(wino ? [pass] : []);
      (times[`${pass} ${wino ? 'winograd' : 'implicit GEMM'}`] ??= []).push(await time(run));
    }
  }
}
for (const [name, ms] of Object.entries(times)) console.log(summary(name, ms));

// ---- the training step ---------------------------------------------------------------------
if (!values['no-step']) {
  const batchSize = 64;
  const train = loadMnist('train', { limit: batchSize });
  const config = { latentDim: 200, channels: 32, sigma2: 0.01, lr: 1e-4, weightDecay: 0.01, batchSize, seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled' as const };
  console.log(`training step (bench/train-step.js's), ${rounds} rounds`);
  for (const method of ['silent-gaussian', 'silent-bernoulli'] as MethodName[]) {
    const vae = new FixedVarianceVae(method, config, gpu);
    let epoch = 0;
    const variants: [string, WinogradPass[]][] = [['implicit GEMM', []], ['winograd', allPasses]];
    for (const [, v] of variants) { use(v); await vae.trainEpoch(train, ++epoch, () => {}); await vae.trainEpoch(train, ++epoch, () => {}); }
    const steps: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const [name, v] of variants) {
        use(v);
        const t0 = performance.now();
        await vae.trainEpoch(train, ++epoch, () => {});
        (steps[name] ??= []).push(performance.now() - t0);
      }
    }
    for (const [name, ms] of Object.entries(steps)) console.log(summary(`${method} ${name}`, ms));
  }
}
use(allPasses);
winogradDevice.minChannels = minChannels;
