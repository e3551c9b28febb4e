// The Table-2 training step (Table-5 encoder, 32 channels, linear decoder, d = 200, batch 64,
// silent ELBO loss, AdamW) in milliseconds, for Gaussian and Bernoulli latents: the figure
// compared with bench/pytorch/train_step.py measured in the same session.
//   node bench/train-step.js [--backend cpu] [--channels 32]
import Benchmark from 'benchmark';
import * as sg from '../engine/index.js';
import { backendNames, selectBackend } from '../backends/select.js';
import { loadMnist } from '../experiments/data/mnist.js';
import { FixedVarianceVae, methodNames } from '../experiments/vae.js';
import { listOf, oneOf, positiveInteger, scriptFlags } from '../experiments/cli.js';

const flags = scriptFlags('bench/train-step.js', 'Milliseconds per training step of the Table-2 model (batch 64, d = 200), per method.', {
  backend: { type: 'string', help: `one of ${backendNames.join(', ')}`, default: 'cpu' },
  channels: { type: 'string', help: 'encoder channels', default: '32' },
  methods: { type: 'string', help: `comma list of ${methodNames.join(', ')}`, default: 'silent-gaussian,silent-bernoulli' },
}, (v) => ({
  backend: oneOf('backend', v.backend as string, backendNames),
  channels: positiveInteger('channels', v.channels as string),
  methods: listOf('methods', v.methods as string, methodNames),
}));
const { backend, reason } = await selectBackend(flags.backend);
sg.setDefaultBackend(backend);
console.log(reason);

const batchSize = 64;
const train = loadMnist('train', { limit: batchSize });
const config = {
  latentDim: 200, channels: flags.channels, sigma2: 0.01, lr: 1e-4, weightDecay: 0.01,
  batchSize, seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99,
};

const suite = new Benchmark.Suite();
for (const method of flags.methods) {
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
