// The Table-2 training step (Table-5 encoder, 32 channels, linear decoder, d = 200, batch 64,
// silent ELBO loss, AdamW) in milliseconds, for Gaussian and Bernoulli latents: the figure
// compared with bench/pytorch/train_step.py measured in the same session.
//   node bench/train-step.js [--backend cpu] [--channels 32]
import Benchmark from 'benchmark';
import { parseArgs } from 'node:util';
import * as sg from '../engine/index.js';
import { backendNames, selectBackend, type BackendName } from '../backends/select.js';
import { loadMnist } from '../experiments/data/mnist.js';
import { FixedVarianceVae, type MethodName } from '../experiments/vae.js';

const { values } = parseArgs({ options: { backend: { type: 'string', default: 'cpu' }, channels: { type: 'string', default: '32' }, methods: { type: 'string', default: 'silent-gaussian,silent-bernoulli' } } });
if (!backendNames.includes(values.backend as BackendName)) throw new Error(`--backend must be one of ${backendNames.join(', ')}`);
const { backend, reason } = await selectBackend(values.backend as BackendName);
sg.setDefaultBackend(backend);
console.log(reason);

const batchSize = 64;
const train = loadMnist('train', { limit: batchSize });
const config = {
  latentDim: 200, channels: Number(values.channels), sigma2: 0.01, lr: 1e-4, weightDecay: 0.01,
  batchSize, seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99,
};

const suite = new Benchmark.Suite();
for (const method of values.methods!.split(',') as MethodName[]) {
  const vae = new FixedVarianceVae(method, config, backend);
  let epoch = 0;
  suite.add(`train step ${method} (C=${config.channels}, d=200, B=64)`, {
    defer: true,
    minSamples: 10,
    fn: (deferred: { resolve(): void }) => {
      void vae.trainEpoch(train, ++epoch, () => {}).then(() => deferred.resolve());
    },
  });
}
suite
  .on('cycle', (event: { target: Benchmark.Target }) => {
    const t = event.target;
    // The median too: on a shared machine a few slow samples move the mean (and PyTorch's
    // script reports medians).
    const sorted = [...t.stats!.sample].sort((a, b) => a - b);
    const median = sorted[sorted.length >> 1]! * 1000;
    console.log(`${t.name}: ${(t.stats!.mean * 1000).toFixed(1)} ms ± ${t.stats!.rme.toFixed(1)}%, median ${median.toFixed(1)} ms (${sorted.length} samples)`);
  })
  .run({ async: true });
