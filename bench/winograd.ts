// WebGPU's Winograd F(4x4, 3x3) convolutions against its implicit GEMMs, in one process, rounds
// interleaved (on a shared machine, separate runs of bench/webgpu.js differ by more than the
// effect): each conv2d pass of a layer, then the training step of bench/train-step.js.
//   node scripts/build.mjs && node bench/winograd.js [--rounds 15] [--layer N,C,H,W,O,pad] [--no-step]
// Prints the median and minimum ms per variant. The default layer is the Table-5 encoder's
// 32 -> 32 convolution at batch 64; --layer takes any the shared rule admits (8+ channels each
// side), also below the backend's default bar of 24 (tuned/winograd.ts, which cites runs).
// Each variant is a backend of its own on the one device, its tuning profile naming the passes.
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import type { Conv2dGeometry } from '../engine/backend.js';
import { createWebGpuBackend, webGpuUnavailableReason, type WebGpuBackend } from '../backends/webgpu/index.js';
import type { WinogradPass } from '../backends/webgpu/tuning.js';
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
/** The tuned kernels with Winograd for `passes` only, on any layer the shared rule admits (8+ channels). */
const withPasses = async (passes: readonly WinogradPass[]): Promise<WebGpuBackend> =>
  (await createWebGpuBackend({ tuning: { ...gpu.tuning, kernels: 'tuned', winograd: { ...gpu.tuning.winograd, passes, minChannels: 8 } } }))!;
const summary = (name: string, ms: number[]): string =>
  `${name.padEnd(34)} median ${median(ms).toFixed(1).padStart(7)} ms   min ${Math.min(...ms).toFixed(1).padStart(7)} ms`;

// ---- one layer, pass by pass ---------------------------------------------------------------
const [N, C, H, W, O, p] = values.layer as [number, number, number, number, number, number];
const geometry: Conv2dGeometry = {
  batch: N, inChannels: C, height: H, width: W, outChannels: O, kernelH: 3, kernelW: 3, stride: 1, padding: p,
  outHeight: H + 2 * p - 2, outWidth: W + 2 * p - 2,
};
const stream = new sg.RandomStream(1);
const randn = (...shape: number[]): Tensor => sg.normal(shape, stream, { backend: sg.cpuBackend });
const host = { x: randn(N, C, H, W), w: randn(O, C, 3, 3), dy: randn(N, O, geometry.outHeight, geometry.outWidth) };
/** The layer's three passes on `backend`, on tensors of its own; `settle` waits for their outputs. */
function layerOn(backend: WebGpuBackend): { passes: Record<WinogradPass, () => void>; settle: () => Promise<void> } {
  const on = (t: Tensor): Tensor => sg.tensor(t.dataSync(), t.shape, { backend }).keep();
  const [x, w, dy] = [on(host.x), on(host.w), on(host.dy)];
  const [y, dx, dw] = [dy, x, w].map((t) => sg.zeros(t.shape, { backend }).keep()) as [Tensor, Tensor, Tensor];
  return {
    passes: {
      forward: () => backend.conv2d(x, w, geometry, y.storage),
      input: () => backend.conv2dBackwardInput(dy, w, geometry, dx.storage),
      filter: () => backend.conv2dBackwardFilter(x, dy, geometry, dw.storage),
    },
    settle: async () => { for (const t of [y, dx, dw]) await sg.reshape(t, [-1]).view([1], [1], 0).data(); },
  };
}
const REPS = 5;
/** ms per call of `pass`, REPS calls then a read (the first, untimed call compiles). */
async function time(layer: ReturnType<typeof layerOn>, pass: WinogradPass): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < REPS; i++) layer.passes[pass]();
  await layer.settle();
  return (performance.now() - t0) / REPS;
}
console.log(`layer N=${N} C=${C} ${H}x${W} O=${O} pad ${p}: ${rounds} rounds of ${REPS} calls`);
const implicit = layerOn(await withPasses([]));
const layers = new Map<WinogradPass, [string, ReturnType<typeof layerOn>][]>();
for (const pass of allPasses) layers.set(pass, [['implicit GEMM', implicit], ['winograd', layerOn(await withPasses([pass]))]]);
for (const [pass, variants] of layers) for (const [, layer] of variants) { layer.passes[pass](); await layer.settle(); }
const times: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++)
  for (const [pass, variants] of layers)
    for (const [name, layer] of variants) (times[`${pass} ${name}`] ??= []).push(await time(layer, pass));
for (const [name, ms] of Object.entries(times)) console.log(summary(name, ms));

// ---- the training step ---------------------------------------------------------------------
if (!values['no-step']) {
  const batchSize = 64;
  const train = loadMnist('train', { limit: batchSize });
  const config = { latentDim: 200, channels: 32, sigma2: 0.01, lr: 1e-4, weightDecay: 0.01, batchSize, seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled' as const };
  console.log(`training step (bench/train-step.js's), ${rounds} rounds`);
  const variants: [string, WebGpuBackend][] = [['implicit GEMM', await withPasses([])], ['winograd', await withPasses(allPasses)]];
  for (const method of ['silent-gaussian', 'silent-bernoulli'] as MethodName[]) {
    // One model per variant, the same seed: the same parameters on each backend.
    const models = variants.map(([name, backend]) => ({ name, vae: new FixedVarianceVae(method, config, backend), epoch: 0 }));
    const step = async (m: (typeof models)[number]): Promise<void> => { await m.vae.trainEpoch(train, ++m.epoch, () => {}); };
    for (const m of models) { await step(m); await step(m); }
    const steps: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const m of models) {
        const t0 = performance.now();
        await step(m);
        (steps[m.name] ??= []).push(performance.now() - t0);
      }
    }
    for (const [name, ms] of Object.entries(steps)) console.log(summary(`${method} ${name}`, ms));
  }
}
