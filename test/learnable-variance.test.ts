// Algorithm 1 where it can fail: with w_lin = 1 the encoder's gradient is the silent gradient
// alone, with w_lin = 0 the estimator's alone, each decoder gets only its own loss's gradient,
// and after the cut-off the encoder and the linear decoder neither change nor advance their
// optimiser state. Then the study end to end on a few hundred real MNIST images, resumed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAfterCheckpoint } from './kill-run.js';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import { loadMnist } from '../experiments/data/mnist.js';
import { pixelStatistics } from '../experiments/data/images.js';
import { LearnableVae, type LearnableVaeConfig, type MethodName } from '../experiments/learnable-vae.js';
import { GaussianLatent, LearnableVarianceLinearDecoder, tileRows } from '../models/index.js';
import { fitLearnableDecoder } from '../models/decoders/fitted-init.js';

const train = loadMnist('train', { limit: 64 });
const pixels = pixelStatistics(train);
const shape = { channels: 1, height: 28, width: 28 };
const config: LearnableVaeConfig = {
  latentDim: 6, channels: 2, lr: 1e-3, weightDecay: 0.01, batchSize: 8, seed: 3, annealRate: 0.25, cutoffEpoch: 6,
  gumbelTemperature: 1, reinforceDecay: 0.99, sigmaFloor: 0.05,
};
const backend = sg.cpuBackend;
const batch = (vae: LearnableVae): Tensor => vae.dequantized(train, Uint32Array.from({ length: 8 }, (_, i) => i), new sg.RandomStream(9));

/** Every parameter's gradient of `loss` over `params`, flattened, then cleared. */
function gradients(loss: Tensor, params: Tensor[]): Float64Array[] {
  sg.backward(loss);
  const grads = params.map((p) => Float64Array.from(p.grad?.dataSync() ?? new Float32Array(p.size)));
  for (const p of params) p.grad = null;
  return grads;
}

function assertClose(actual: Float64Array[], expected: Float64Array[], what: string): void {
  let worst = 0, scale = 0;
  actual.forEach((a, i) => a.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - expected[i]![j]!)); scale = Math.max(scale, Math.abs(expected[i]![j]!)); }));
  assert.ok(scale > 0, `${what}: the reference gradient is not all zero`);
  assert.ok(worst <= 1e-5 * scale, `${what}: max difference ${worst} against max |gradient| ${scale}`);
}

const models = (method: MethodName, overrides: Partial<LearnableVaeConfig> = {}) => new LearnableVae(method, { ...config, ...overrides }, shape, pixels, backend);

/** The two losses of Algorithm 1 built alone, from the same batch and the same draws. */
function separateLosses(vae: LearnableVae, x: Tensor, offset: number) {
  vae.trainingStream.offset = offset;
  const h = vae.encoder.forward(sg.reshape(x, [x.shape[0]!, 1, 28, 28]));
  const sampled = vae.estimator.loss(vae.family.distribution(h), x, vae.decoder, vae.trainingStream).loss;
  const q = vae.family.distribution(vae.encoder.forward(sg.reshape(x, [x.shape[0]!, 1, 28, 28])));
  const silent = sg.mean(sg.sub(q.kl(), vae.linear!.expectedLogLikelihood(q.moments(), x)));
  return { sampled, silent };
}

test('w_lin = 1: the encoder gets the silent gradient alone; w_lin = 0: the estimator\'s alone', () => {
  for (const [method, epoch, expected] of [['none-sg-gaussian', 1, 'silent'], ['reparam-sg', 4, 'sampled'], ['gumbel-sg', 4, 'sampled'], ['none-sg-bernoulli', 2, 'silent']] as const) {
    const vae = models(method);
    assert.is(vae.silentWeight(epoch), expected === 'silent' ? 1 : 0);
    const x = batch(vae);
    const offset = vae.trainingStream.offset;
    const encoderParams = vae.encoder.parameters();
    const viaAlgorithm = gradients(vae.loss(x, epoch).total, encoderParams);
    const alone = separateLosses(vae, x, offset);
    assertClose(viaAlgorithm, gradients(alone[expected], encoderParams), `${method} epoch ${epoch}`);
  }
});

test('w_lin = 1/2: each decoder gets only its own loss\'s gradient, the encoder half of each', () => {
  const vae = models('reparam-sg', { annealRate: 0.5 });
  assert.is(vae.silentWeight(1), 0.5);
  const x = batch(vae);
  const offset = vae.trainingStream.offset;
  const nonlinear = vae.decoder.parameters(), linear = vae.linear!.parameters(), encoder = vae.encoder.parameters();
  const all = gradients(vae.loss(x, 1).total, [...nonlinear, ...linear, ...encoder]);
  const alone = separateLosses(vae, x, offset);
  const sampled = gradients(alone.sampled, [...nonlinear, ...linear, ...encoder]);
  const silent = gradients(alone.silent, [...nonlinear, ...linear, ...encoder]);
  const n = nonlinear.length, l = linear.length;
  assertClose(all.slice(0, n), sampled.slice(0, n), 'nonlinear decoder');
  assert.ok(silent.slice(0, n).every((g) => g.every((v) => v === 0)), 'the silent loss does not reach the nonlinear decoder');
  assertClose(all.slice(n, n + l), silent.slice(n, n + l), 'linear decoder');
  const half = sampled.slice(n + l).map((g, i) => g.map((v, j) => 0.5 * v + 0.5 * silent[n + l + i]![j]!));
  assertClose(all.slice(n + l), half, 'encoder: the Eq. 8 blend');
});

test('after the cut-off the encoder and linear decoder stay put, optimiser state included; the nonlinear decoder trains', () => {
  const vae = models('reinforce-sg', { cutoffEpoch: 2 });
  const snapshot = (params: Tensor[]) => params.map((p) => Float64Array.from(p.dataSync()));
  vae.step(batch(vae), 1); // before the cut-off everything moves, so optimiser state exists
  const frozen = [...vae.encoder.parameters(), ...vae.linear!.parameters()];
  const before = snapshot(frozen), nonlinearBefore = snapshot(vae.decoder.parameters());
  const stepsBefore = frozen.map((p) => vae.optimizers.map((o) => o.stateOf(p)?.step).find((s) => s !== undefined));
  assert.ok(stepsBefore.every((s) => s === 1));
  vae.step(batch(vae), 2);
  vae.step(batch(vae), 3);
  assert.equal(snapshot(frozen), before, 'frozen parameters unchanged');
  assert.equal(frozen.map((p) => vae.optimizers.map((o) => o.stateOf(p)?.step).find((s) => s !== undefined)), stepsBefore, 'optimiser steps unchanged');
  assert.not.equal(snapshot(vae.decoder.parameters()), nonlinearBefore, 'the nonlinear decoder still trains');
});

test('the linear decoder\'s closed form (Eq. 7) matches Monte Carlo of the exact likelihood at a trained-like point', () => {
  // Fitted to MNIST's pixel statistics, posteriors with standard deviations 0.1-0.35 around
  // N(0, 1) means: where a trained model sits. Only the Taylor log term is approximate; here it
  // is well inside the Monte Carlo error of 16,000 draws.
  const f64 = { dtype: 'float64' as const };
  const d = 16, B = 4, draws = 16000, chunk = 2000;
  const decoder = new LearnableVarianceLinearDecoder({ latentDim: d, pixels: 784, stream: new sg.RandomStream(1), dtype: 'float64' });
  fitLearnableDecoder(decoder, pixels, 0.05);
  const x = sg.tensor(Float64Array.from(train.images.subarray(0, B * 784), (v) => (v + 0.5) / 256), [B, 784], f64);
  const stream = new sg.RandomStream(5);
  const logVariance = sg.shift(sg.scale(sg.uniform([B, d], stream, f64), 2.5), -4.5);
  const encoded = sg.concat([sg.normal([B, d], stream, f64), logVariance], 1);
  const closed = decoder.expectedLogLikelihood(new GaussianLatent().distribution(encoded).moments(), x).dataSync();
  const sum = new Float64Array(B), squares = new Float64Array(B);
  for (let done = 0; done < draws; done += chunk) {
    const values = sg.tidy(() => {
      const q = new GaussianLatent().distribution(tileRows(encoded, chunk));
      return decoder.logLikelihood(q.sample(stream), tileRows(x, chunk));
    }).dataSync();
    values.forEach((v, i) => { sum[i % B]! += v; squares[i % B]! += v * v; });
  }
  for (let b = 0; b < B; b++) {
    const mean = sum[b]! / draws, standardError = Math.sqrt((squares[b]! / draws - mean * mean) / draws);
    assert.ok(Math.abs(closed[b]! - mean) < 4 * standardError, `example ${b}: closed form ${closed[b]} vs Monte Carlo ${mean} +- ${standardError}`);
  }
});

test('32x32 colour images: the Table-7 encoder and Table-8 decoder train, evaluate and name their state as PyTorch does', async () => {
  const images = new Uint8Array(16 * 3072);
  const rng = new sg.RandomStream(4).fork(1);
  images.set(Uint8Array.from(sg.uniform([images.length], rng).dataSync(), (u) => Math.floor(u * 256)));
  const colour = { images, labels: new Uint8Array(16), count: 16, channels: 3, height: 32, width: 32 };
  const vae = new LearnableVae('gumbel-sg', { ...config, channels: 2 }, { channels: 3, height: 32, width: 32 }, pixelStatistics(colour), backend);
  const names = [...vae.namedState().keys()];
  for (const name of ['encoder.0.weight', 'encoder.2.running_mean', 'encoder.2.num_batches_tracked', 'decoder.net.0.weight', 'linear_decoder.mean.weight', 'linear_decoder.precision.bias'])
    assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
  const before = await vae.evaluate(colour, 0, 2);
  for (let epoch = 1; epoch <= 3; epoch++) await vae.trainEpoch(colour, epoch, () => {});
  const after = await vae.evaluate(colour, 3, 2);
  for (const v of [after.bpd, after.kl, after.mse, after.bpdStandardError]) assert.ok(Number.isFinite(v), JSON.stringify(after));
  assert.ok(after.bpd < before.bpd, `BPD ${after.bpd} after 6 steps vs ${before.bpd}`);
});

// ---- End to end ----------------------------------------------------------------------------------

const script = join(import.meta.dirname, '..', 'experiments', 'learnable-variance.js');
const dir = mkdtempSync(join(tmpdir(), 'silentgrad-lv-'));
const tiny = ['--epochs', '3', '--train-size', '256', '--test-size', '64', '--channels', '2', '--latent-dim', '8', '--eval-samples', '2',
  '--anneal-rate', '0.5', '--cutoff-epoch', '3', '--backend', 'cpu'];
interface Epoch { epoch: number; bpd: number; bpdStandardError: number; mse: number; kl: number; silentWeight: number; encoderFrozen: boolean; seconds: number }
type Results = { methods: Record<string, { runs: { seed: number; epochs: Epoch[] }[] }> };
const read = (out: string): Results => JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
const run = (args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });

test('a short run of every method writes its files, with finite metrics that improve on the untrained model', () => {
  const out = join(dir, 'all');
  const r = run([...tiny, '--out', out]);
  assert.is(r.status, 0, r.stderr);
  for (const f of ['results.json', 'results.md', 'convergence.png', 'reconstructions.png']) assert.ok(existsSync(join(out, f)), f);
  const results = read(out);
  assert.is(Object.keys(results.methods).length, 8);
  for (const [name, m] of Object.entries(results.methods)) {
    const epochs = m.runs[0]!.epochs;
    assert.equal(epochs.map((e) => e.epoch), [0, 1, 2, 3]);
    for (const e of epochs) for (const v of [e.bpd, e.bpdStandardError, e.mse, e.kl]) assert.ok(Number.isFinite(v), `${name}: ${JSON.stringify(e)}`);
    assert.ok(epochs[3]!.bpd < epochs[0]!.bpd, `${name}: ${epochs[3]!.bpd} after training vs ${epochs[0]!.bpd} untrained`);
    const sg = name.endsWith('-sg') || name.startsWith('none-sg');
    assert.equal(epochs.slice(1).map((e) => e.encoderFrozen), sg ? [false, false, true] : [false, false, false], name);
    assert.equal(epochs.slice(1).map((e) => e.silentWeight), !sg ? [0, 0, 0] : name.startsWith('none') ? [1, 1, 1] : [0.5, 0, 0], name);
  }
  const table = readFileSync(join(out, 'results.md'), 'utf8');
  assert.match(table, /\| Reparameterization \| \d+\.\d{3} \| \d+\.\d{3} \| 1\.95 \| 1\.83 \|/);
  assert.match(table, /Table 4: KL/);
  assert.match(table, /Table 9: MSE/);
});

const metrics = (r: Results) => Object.fromEntries(Object.entries(r.methods).map(([n, m]) => [n, m.runs.map((run) => run.epochs.map(({ seconds: _s, ...rest }) => rest))]));

test('a run killed after its first checkpoint resumes to the same numbers', async () => {
  const methods = ['--methods', 'gumbel-sg,reinforce'];
  const reference = join(dir, 'reference');
  assert.is(run([...tiny, ...methods, '--out', reference]).status, 0);
  const out = join(dir, 'killed');
  await killAfterCheckpoint(script, [...tiny, ...methods, '--out', out], join(out, 'checkpoints', 'gumbel-sg_seed0.safetensors'));
  const resumed = run([...tiny, ...methods, '--out', out, '--resume']);
  assert.is(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /gumbel-sg_seed0: resumed after epoch 1/);
  assert.equal(metrics(read(out)), metrics(read(reference)));
});

test('bad flags and missing data give one-line errors', () => {
  const cases: [string[], RegExp][] = [
    [['--dataset', 'svhn'], /--dataset must be one of mnist, fashion-mnist, cifar10, imagenet32; got 'svhn'/],
    [['--methods', 'reparam,vq'], /--methods: 'vq' is not one of none-sg-gaussian, reparam/],
    [['--eval-samples', '1'], /--eval-samples must be at least 2/],
    [['--dataset', 'cifar10', '--out', join(dir, 'nocifar')], /CIFAR-10/],
    [['--dataset', 'cifar10', '--data-dir', join(dir, 'nowhere'), '--out', join(dir, 'nocifar2')], /nowhere/],
    [['--anneal-rate', '0'], /--anneal-rate must be a positive number, got '0'/],
  ];
  for (const [args, message] of cases) {
    const r = run(args);
    assert.ok(r.status !== 0, `${args.join(' ')} should fail`);
    assert.match(r.stderr, message);
    assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  const help = run(['--help']);
  assert.is(help.status, 0);
  for (const flag of ['--epochs', '--train-size', '--test-size', '--latent-dim', '--batch-size', '--lr', '--anneal-rate', '--cutoff-epoch',
    '--seeds', '--eval-samples', '--dataset', '--data-dir', '--backend', '--out', '--resume', '--paper']) assert.ok(help.stdout.includes(flag), flag);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
