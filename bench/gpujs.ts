// gpu.js against the CPU backend (and WebGPU where backends/select.ts offers it) in one run:
// the fixed-variance training step at batch 64 and the fused silent-ELBO op forward+backward
// (learnable variance, Bernoulli moments, B = 64, d = 200, k = 784). The first call of each
// case compiles its kernels and is excluded (a warm-up run before timing).
//   node bench/gpujs.js [--channels 32] [--quick]
import Benchmark from 'benchmark';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import { selectBackend } from '../backends/select.js';
import { createGpuJsBackend } from '../backends/gpujs/index.js';
import { loadMnist } from '../experiments/data/mnist.js';
import { FixedVarianceVae } from '../experiments/vae.js';
import { positiveInteger, scriptFlags } from '../experiments/cli.js';

const values = scriptFlags('bench/gpujs.js', 'gpu.js against the CPU backend (and WebGPU where available): the training step and the fused silent-ELBO op.', {
  channels: { type: 'string', help: 'encoder channels', default: '32' },
  quick: { type: 'boolean', help: 'fewer samples per case' },
}, (v) => ({ channels: positiveInteger('channels', v.channels as string), quick: v.quick === true }));
const gpujs = createGpuJsBackend();
const backends: sg.Backend[] = [sg.cpuBackend, gpujs];
try {
  backends.push((await selectBackend('webgpu')).backend);
} catch (e) {
  console.log(`webgpu not compared: ${(e as Error).message}`);
}
for (const b of backends) console.log(b.describe());

function time(name: string, fn: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    new Benchmark(name, { defer: true, minSamples: values.quick ? 2 : 5, maxTime: values.quick ? 1 : 5, fn: (d: { resolve(): void }) => void fn().then(() => d.resolve()) })
      .on('complete', (e: { target: Benchmark.Target }) => {
        console.log(`${name.padEnd(52)} ${(e.target.stats!.mean * 1000).toFixed(1).padStart(9)} ms ± ${e.target.stats!.rme.toFixed(1)}% (${e.target.stats!.sample.length} samples)`);
        resolve();
      })
      .run({ async: true });
  });
}

const batchSize = 64;
const train = loadMnist('train', { limit: batchSize });
const config = { latentDim: 200, channels: values.channels, sigma2: 0.01, lr: 1e-4, weightDecay: 0.01, batchSize, seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled' as const };

/** One fused silent-ELBO forward+backward on `backend`. */
function fusedElbo(backend: sg.Backend): () => Promise<void> {
  const stream = new sg.RandomStream(1);
  const on = { backend };
  const leaf = (t: Tensor): Tensor => { t.requiresGrad = true; return t.keep(); };
  const logits = leaf(sg.normal([batchSize, 200], stream, on));
  const w = {
    wMu: leaf(sg.scale(sg.normal([784, 200], stream, on), 0.05)), bMu: leaf(sg.uniform([784], stream, on)),
    wA: leaf(sg.scale(sg.normal([784, 200], stream, on), 0.01)), bA: leaf(sg.shift(sg.uniform([784], stream, on), 3)),
  };
  const x = sg.uniform([batchSize, 784], stream, on).keep();
  return async () => {
    const loss = sg.tidy(() => {
      const p = sg.sigmoid(logits), c2 = sg.mul(p, sg.sigmoid(sg.neg(logits)));
      const moments = { mean: p, c2, c3: sg.mul(c2, sg.shift(sg.scale(p, -2), 1)), k4: sg.mul(c2, sg.shift(sg.scale(c2, -6), 1)) };
      const value = sg.neg(sg.sum(sg.expectedLogLikelihoodLearnable(moments, w, x)));
      sg.backward(value);
      return sg.detach(value);
    });
    await loss.data();
    loss.dispose();
    for (const t of [logits, ...Object.values(w)]) { t.grad?.dispose(); t.grad = null; }
  };
}

for (const backend of backends) {
  const vae = new FixedVarianceVae('silent-gaussian', config, backend);
  let epoch = 0;
  const step = async (): Promise<void> => { await vae.trainEpoch(train, ++epoch, () => {}); };
  await step(); // compiles every kernel of the step
  await time(`${backend.name}: train step silent-gaussian C=${config.channels} B=64`, step);
  const elbo = fusedElbo(backend);
  await elbo();
  await time(`${backend.name}: fused silent ELBO fwd+bwd B=64 d=200 k=784`, elbo);
}
console.log(`gpu.js ran in '${gpujs.mode}' mode; kernels compiled: ${gpujs.runtime.compiled}`);
