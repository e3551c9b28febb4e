// Stability of the WebGPU backend over a long run in one process: 1,000 training steps of a
// reduced fixed-variance VAE (experiments/vae.ts: Table-5 encoder with 4 channels, 16 Bernoulli
// latents, silent ELBO, AdamW) must not crash, must keep a finite loss, and must leave the
// pool's count and bytes of live GPU buffers flat after warm-up (freed buffers are reused, never
// leaked or re-created).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadMnist } from '../experiments/data/mnist.js';
import { FixedVarianceVae } from '../experiments/vae.js';
import { webGpuOrSkip } from './webgpu-setup.js';

const gpu = await webGpuOrSkip('webgpu stability');

const EPOCHS = 10, BATCH = 16, STEPS_PER_EPOCH = 100, WARM_UP_EPOCHS = 2;

test(`${EPOCHS * STEPS_PER_EPOCH} training steps: no crash, finite loss, flat GPU memory`, async () => {
  const train = loadMnist('train', { limit: BATCH * STEPS_PER_EPOCH });
  const config = {
    latentDim: 16, channels: 4, sigma2: 0.01, lr: 1e-3, weightDecay: 0.01, batchSize: BATCH,
    seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled' as const,
  };
  const vae = new FixedVarianceVae('silent-bernoulli', config, gpu!);
  const live: string[] = [];
  const losses: number[] = [];
  const started = performance.now();
  for (let epoch = 1; epoch <= EPOCHS; epoch++) {
    losses.push(await vae.trainEpoch(train, epoch, () => {}));
    const s = gpu!.stats();
    live.push(`${s.liveBuffers} buffers / ${s.liveBytes} bytes`);
  }
  const seconds = (performance.now() - started) / 1000;
  const s = gpu!.stats();
  console.log(`webgpu stability: ${EPOCHS * STEPS_PER_EPOCH} steps in ${seconds.toFixed(1)} s; live GPU memory per epoch: ${live.join(', ')}; ` +
    `${s.created} buffers ever created, ${s.dispatches} dispatches in ${s.submits} submits, ${s.pipelines} pipelines; loss ${losses[0]!.toFixed(1)} -> ${losses[EPOCHS - 1]!.toFixed(1)}`);
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  assert.ok(losses[EPOCHS - 1]! < losses[0]!, `training should lower the loss: ${losses}`);
  const afterWarmUp = live.slice(WARM_UP_EPOCHS - 1);
  assert.ok(afterWarmUp.every((l) => l === afterWarmUp[0]), `live GPU memory grew after warm-up: ${live.join(', ')}`);
});

if (gpu) test.run();
