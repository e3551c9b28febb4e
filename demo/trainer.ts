// The page's trainer, run as a Web Worker: two fixed-variance VAEs of the paper's Section 3
// (experiments/vae.ts, the class the Node study trains) on the same images and backend, one
// step each in turn, reporting every step and a test evaluation after every epoch. The steps
// follow experiments/training.ts's epoch order exactly, so a seed gives the Node study's numbers.
import * as sg from '../silentgrad.js';
import type { MnistSplit } from '../experiments/data/mnist-split.js';
import { epochOrder } from '../experiments/data/images.js';
import { FixedVarianceVae, methods, type VaeConfig } from '../experiments/vae.js';
import { workerPieces } from '../backends/cpu/parallel.js';
import { chooseBackend } from './backend.js';
import { fetchDataset } from './dataset.js';
import { pairs, type DemoConfig, type FromTrainer, type ToTrainer } from './protocol.js';

/** The test digits whose reconstructions the page shows: the first ten (fewer if the test set is smaller). */
const shownDigits = (test: MnistSplit): Uint32Array => Uint32Array.from({ length: Math.min(10, test.count) }, (_, i) => i);

interface Run {
  config: DemoConfig;
  backend: sg.Backend;
  train: MnistSplit;
  test: MnistSplit;
  models: [FixedVarianceVae, FixedVarianceVae];
  /** Steps taken by each model, and the order of the epoch in progress. */
  steps: number;
  order: Uint32Array;
}

const post = (message: FromTrainer): void => postMessage(message);

let run: Run | null = null;
/** The training loop's ticket: a loop runs while it holds the current one, so bumping it stops the loop. */
let ticket = 0;
let looping = false;
/** Settles when the last loop has finished its step and stopped. */
let loopDone: Promise<void> = Promise.resolve();
/** Messages are handled one after another, so a reset never frees models an evaluation is reading. */
let handled: Promise<void> = Promise.resolve();

onmessage = (event: MessageEvent<ToTrainer>) => {
  const message = event.data;
  handled = handled.then(() => (message.type === 'reset' ? reset(message.config) : message.type === 'start' ? start() : pause())).catch(fail);
};

function stopLoop(): Promise<void> {
  ticket++;
  return loopDone;
}

async function reset(config: DemoConfig): Promise<void> {
  await stopLoop();
  for (const model of run?.models ?? []) model.dispose();
  run = null;
  const { backend, description } = await chooseBackend(config.backend, config.threads);
  const { train, test } = await fetchDataset(self.location.href, config.trainCount, config.testCount);
  const methodPair = pairs[config.pair];
  const vaeConfig: VaeConfig = {
    latentDim: config.latentDim, channels: 8, sigma2: 0.01, lr: config.lr, weightDecay: 0.01, batchSize: 64,
    seed: config.seed, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled',
  };
  if (vaeConfig.batchSize > train.count) throw new Error(`${train.count} training images is fewer than one batch of ${vaeConfig.batchSize}`);
  const models = methodPair.map((m) => new FixedVarianceVae(m, vaeConfig, backend)) as [FixedVarianceVae, FixedVarianceVae];
  run = { config, backend, train, test, models, steps: 0, order: epochOrder(train.count, config.seed, 1) };
  const originals = Float32Array.from(test.images.subarray(0, shownDigits(test).length * 784), (v) => v / 255);
  post({ type: 'ready', backend: description, methods: methodPair, labels: [methods[methodPair[0]].label, methods[methodPair[1]].label], stepsPerEpoch: stepsPerEpoch(run), originals });
  for (let m = 0; m < 2; m++) await evaluate(run, m, 0);
  post({ type: 'state', running: false, done: false });
}

async function start(): Promise<void> {
  if (!run || looping || done(run)) return;
  const r = run, mine = ++ticket;
  looping = true;
  post({ type: 'state', running: true, done: false });
  loopDone = loop(r, mine).catch(fail).finally(() => { looping = false; });
}

async function pause(): Promise<void> {
  await stopLoop();
  post({ type: 'state', running: false, done: run ? done(run) : false });
}

const stepsPerEpoch = (r: Run): number => Math.floor(r.train.count / r.models[0].config.batchSize);
const done = (r: Run): boolean => r.steps >= r.config.epochs * stepsPerEpoch(r);

async function loop(r: Run, mine: number): Promise<void> {
  const perEpoch = stepsPerEpoch(r), batch = r.models[0].config.batchSize;
  while (mine === ticket && !done(r)) {
    const n = r.steps % perEpoch, epoch = Math.floor(r.steps / perEpoch) + 1;
    const indices = r.order.subarray(n * batch, (n + 1) * batch);
    for (let m = 0; m < 2; m++) {
      const started = performance.now();
      const loss = sg.tidy(() => r.models[m]!.trainStep(r.train, indices));
      const value = await loss.item();
      loss.dispose();
      post({ type: 'step', model: m, step: r.steps + 1, bpd: toBpd(value), ms: performance.now() - started, poolPieces: workerPieces() });
    }
    r.steps++;
    if (r.steps % perEpoch === 0) {
      for (let m = 0; m < 2; m++) await evaluate(r, m, epoch);
      r.order = epochOrder(r.train.count, r.config.seed, epoch + 1);
    }
    // Let pause and reset messages in between steps.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  if (mine === ticket && done(r)) post({ type: 'state', running: false, done: true });
}

async function evaluate(r: Run, m: number, epoch: number): Promise<void> {
  const model = r.models[m]!;
  const metrics = await model.evaluate(r.test, epoch);
  const reconstructions = await model.reconstruct(r.test, shownDigits(r.test));
  post({ type: 'evaluation', model: m, epoch, step: r.steps, bpd: metrics.bpd, kl: metrics.kl, activeLatents: metrics.activeLatents, reconstructions });
}

/** A negative ELBO in nats per image as bits per dimension (docs/silent-elbo.md, section 6). */
const toBpd = (negativeElbo: number): number => negativeElbo / 784 / Math.LN2 + 8;

function fail(error: unknown): void {
  ticket++;
  post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
}
