// Algorithm 1 where it can fail: with w_lin = 1 the encoder's gradient is the silent gradient
// alone, with w_lin = 0 the estimator's alone, each decoder gets only its own loss's gradient,
// and after the cut-off the encoder and the linear decoder neither change nor advance their
// optimiser state. Then the study end to end on a few hundred real MNIST images, resumed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sg from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { loadMnist } from '../experiments/data/mnist.js';
import { pixelStatistics } from '../experiments/data/images.js';
import { LearnableVae, type LearnableVaeConfig, type MethodName } from '../experiments/learnable-vae.js';

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
  const child = spawn(process.execPath, [script, ...tiny, ...methods, '--out', out], { stdio: 'ignore' });
  const checkpoint = join(out, 'checkpoints', 'gumbel-sg_seed0.safetensors');
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(checkpoint)) { clearInterval(poll); child.kill('SIGKILL'); resolve(); }
    }, 5);
    child.on('exit', () => { clearInterval(poll); reject(new Error('the run finished before it could be killed')); });
  });
  await new Promise((resolve) => child.on('exit', resolve));
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
