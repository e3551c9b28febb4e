// Table 1's gradient-variance measurement (models/gradient-variance.ts): Silent Gradients gives
// exactly 0 estimator variance, reparameterization's measured variance on a tiny model matches
// the exact variance (Gauss-Hermite quadrature in float64) within sampling error, and the
// experiment (experiments/gradient-variance.js) runs end to end on a few hundred MNIST images.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import {
  BernoulliLatent, FixedVarianceLinearDecoder, GaussianLatent, Reinforce, Reparameterization, SilentGradients, type Estimator,
} from '../models/index.js';
import { estimatorGradientVariance, estimatorShare, gradientVariance, type GradientVarianceProbe } from '../models/gradient-variance.js';
import { FixedVarianceVae } from '../experiments/vae.js';

// ---- a tiny model: B = 2 examples of k = 3 values, a linear encoder to d = 2 latents -------------

const B = 2, K = 3, D = 2, SIGMA2 = 0.5;
const X = [0.3, -1.2, 0.8, 1.1, 0.4, -0.5];
const dtype = 'float64' as const;

function tinyProbe(estimator: Estimator, seed = 3): GradientVarianceProbe & { encoder: sg.nn.Linear } {
  const stream = new sg.RandomStream(seed);
  const encoder = new sg.nn.Linear(K, estimator.family.parametersPerLatent * D, { stream, dtype });
  const decoder = new FixedVarianceLinearDecoder({ latentDim: D, pixels: K, stream, dtype }, SIGMA2);
  return { estimator, decoder, encoder, encoderParameters: encoder.parameters(), encode: (x) => encoder.forward(x) };
}

const tinyBatch = (values = X): Tensor => sg.tensor(values, [B, K], { dtype });

test('estimatorShare is Table 1\'s Est %: 3.26e5 / (6.97e4 + 3.26e5) = 82.36% as printed', () => {
  assert.ok(Math.abs(estimatorShare(3.26e5, 6.97e4) - 82.36) < 0.05);
  assert.is(estimatorShare(0, 1.49e4), 0);
  assert.is(estimatorShare(0, 0), 0);
});

// ---- (a) Silent Gradients: exactly zero ----------------------------------------------------------

test('Silent Gradients has exactly 0 estimator variance (Gaussian and Bernoulli, every draw through the encoder)', async () => {
  for (const family of [new GaussianLatent(), new BernoulliLatent()]) {
    const probe = tinyProbe(new SilentGradients(family));
    for (const skipIdenticalDraws of [false, true]) {
      const { variance, meanGradient } = await estimatorGradientVariance(probe, tinyBatch(), { samples: 20, stream: new sg.RandomStream(1), skipIdenticalDraws });
      assert.is(variance, 0, `${family.name}, skip ${skipIdenticalDraws}`);
      assert.ok(meanGradient.some((g) => g !== 0), 'the gradient itself is not zero');
    }
    // Across batches the gradient does vary: batch variance > 0, share 0.
    const batches = [X, X.map((v) => -v), X.map((v) => v * 2)];
    const r = await gradientVariance(probe, 3, (m) => tinyBatch(batches[m]), { samples: 4, stream: new sg.RandomStream(2) });
    assert.is(r.estimatorVariance, 0);
    assert.ok(r.batchVariance > 0);
    assert.is(r.estimatorShare, 0);
  }
});

test('Silent Gradients is exactly 0 on the Table-5 conv encoder too (threaded CPU kernels), reparameterization is not', async () => {
  const config = { latentDim: 16, channels: 4, sigma2: 0.01, lr: 5e-4, weightDecay: 0.01, batchSize: 8, seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled' as const };
  const x = sg.uniform([8, 784], new sg.RandomStream(4));
  for (const method of ['silent-gaussian', 'reparam'] as const) {
    const vae = new FixedVarianceVae(method, config, sg.cpuBackend);
    const probe: GradientVarianceProbe = {
      estimator: vae.estimator, decoder: vae.decoder, encoderParameters: vae.encoder.parameters(),
      encode: (input) => vae.encoder.forward(sg.reshape(input, [8, 1, 28, 28])),
    };
    const { variance } = await estimatorGradientVariance(probe, x, { samples: 4, stream: new sg.RandomStream(5), skipIdenticalDraws: false });
    if (method === 'silent-gaussian') assert.is(variance, 0);
    else assert.ok(variance > 0 && Number.isFinite(variance), `reparam variance ${variance}`);
    assert.ok(vae.decoder.parameters().every((p) => p.requiresGrad && p.grad === null), 'decoder left as it was');
    assert.ok(vae.encoder.parameters().every((p) => p.grad === null), 'encoder gradients left as they were');
  }
});

test('measuring REINFORCE leaves its running baseline where training left it', async () => {
  const estimator = new Reinforce(0.9);
  const probe = tinyProbe(estimator);
  estimator.restoreBaseline(sg.tensor([-3.5], [], { dtype }));
  await estimatorGradientVariance(probe, tinyBatch(), { samples: 5, stream: new sg.RandomStream(1) });
  assert.is(estimator.baselineValue!.dataSync()[0], -3.5);
});

// ---- (b) reparameterization against the exact variance ------------------------------------------

/** Probabilists' 5-point Gauss-Hermite rule: exact for polynomials of degree <= 9 under N(0, 1). */
const GH_NODES = [0, Math.sqrt(5 - Math.sqrt(10)), -Math.sqrt(5 - Math.sqrt(10)), Math.sqrt(5 + Math.sqrt(10)), -Math.sqrt(5 + Math.sqrt(10))];
const GH_WEIGHTS = [8 / 15, (7 + 2 * Math.sqrt(10)) / 60, (7 + 2 * Math.sqrt(10)) / 60, (7 - 2 * Math.sqrt(10)) / 60, (7 - 2 * Math.sqrt(10)) / 60];

/** E[f(eps)] for eps ~ N(0, I_n) by the tensor-product rule (exact: f here is a polynomial). */
function expectation(n: number, f: (eps: number[]) => number): number {
  let total = 0;
  const index = new Array<number>(n).fill(0);
  for (let point = 0; point < 5 ** n; point++) {
    let weight = 1;
    const eps = index.map((i) => { weight *= GH_WEIGHTS[i]!; return GH_NODES[i]!; });
    total += weight * f(eps);
    for (let j = 0; j < n && ++index[j]! === 5; j++) index[j] = 0;
  }
  return total;
}

test('reparameterization: measured estimator variance matches the exact float64 variance within sampling error', async () => {
  const probe = tinyProbe(new Reparameterization(), 7);
  const [A, a] = probe.encoder.parameters().map((p) => Array.from(p.dataSync())) as [number[], number[]]; // A [2D, K], a [2D]
  const [W, c] = probe.decoder.parameters().map((p) => Array.from(p.dataSync())) as [number[], number[]]; // W [K, D], c [K]
  // The reparameterized gradient of mean_b ||x_b - W z_b - c||^2 / (2 sigma^2) w.r.t. (A, a), with
  // z = mu + exp(lv / 2) eps and [mu, lv] = A x + a: a polynomial of degree 2 in eps.
  const gradient = (eps: number[]): number[] => {
    const gA = new Array<number>(2 * D * K).fill(0), ga = new Array<number>(2 * D).fill(0);
    for (let b = 0; b < B; b++) {
      const x = X.slice(b * K, (b + 1) * K);
      const y = Array.from({ length: 2 * D }, (_, o) => a[o]! + x.reduce((s, xi, i) => s + A[o * K + i]! * xi, 0));
      const z = Array.from({ length: D }, (_, j) => y[j]! + Math.exp(y[D + j]! / 2) * eps[b * D + j]!);
      const r = Array.from({ length: K }, (_, i) => x[i]! - c[i]! - z.reduce((s, zj, j) => s + W[i * D + j]! * zj, 0));
      const dz = Array.from({ length: D }, (_, j) => -r.reduce((s, ri, i) => s + W[i * D + j]! * ri, 0) / (B * SIGMA2));
      const dy = [...dz, ...dz.map((g, j) => g * eps[b * D + j]! * Math.exp(y[D + j]! / 2) / 2)];
      dy.forEach((g, o) => {
        ga[o]! += g;
        for (let i = 0; i < K; i++) gA[o * K + i]! += g * x[i]!;
      });
    }
    return [...gA, ...ga];
  };
  const n = B * D;
  const mean = gradient(new Array<number>(n).fill(0)).map((_, p) => expectation(n, (eps) => gradient(eps)[p]!));
  const deviation = (eps: number[]): number => gradient(eps).reduce((s, g, p) => s + (g - mean[p]!) ** 2, 0);
  const exact = expectation(n, deviation); // sum over parameters of Var(g_p)
  const deviationVariance = expectation(n, (eps) => deviation(eps) ** 2) - exact ** 2;
  const samples = 4000;
  const standardError = Math.sqrt(deviationVariance / samples);
  assert.ok(standardError < 0.05 * exact, `the check is sharp: SE ${standardError} vs ${exact}`);
  const measured = await estimatorGradientVariance(probe, tinyBatch(), { samples, stream: new sg.RandomStream(11) });
  assert.ok(Math.abs(measured.variance - exact) < 4 * standardError,
    `measured ${measured.variance}, exact ${exact}, standard error ${standardError}`);
  // The draw-averaged gradient is the exact expected gradient up to its own sampling error (E = exact / S).
  const meanError = Array.from(measured.meanGradient).reduce((s, g, p) => s + (g - mean[p]!) ** 2, 0);
  assert.ok(meanError < (10 * exact) / samples, `mean gradient error ${meanError} vs ${exact / samples} expected`);
});

// ---- (c) the experiment end to end ---------------------------------------------------------------

const script = join(import.meta.dirname, '..', 'experiments', 'gradient-variance.js');
const run = (args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'silentgrad-gv-'));

test('the experiment runs on a few hundred images and writes results.json, results.md and the bar chart', () => {
  const out = join(dir, 'run');
  const r = run(['--train-size', '256', '--samples', '4', '--batches', '3', '--at-epochs', '1', '--channels', '2', '--latent-dim', '16', '--backend', 'cpu', '--out', out]);
  assert.is(r.status, 0, r.stderr);
  for (const f of ['results.json', 'results.md', 'estimator-share.png']) assert.ok(existsSync(join(out, f)), `${f} written`);
  type M = { epoch: number; batchVariance: number; estimatorVariance: number; estimatorShare: number };
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { methods: Record<string, { measurements: M[] }> };
  assert.equal(Object.keys(results.methods), ['silent-gaussian', 'reparam', 'silent-bernoulli', 'gumbel', 'reinforce']);
  for (const [name, m] of Object.entries(results.methods)) {
    assert.equal(m.measurements.map((x) => x.epoch), [1]);
    const x = m.measurements[0]!;
    for (const v of [x.batchVariance, x.estimatorVariance, x.estimatorShare]) assert.ok(Number.isFinite(v), `${name}: ${JSON.stringify(x)}`);
    assert.ok(x.batchVariance > 0);
    if (name.startsWith('silent')) assert.is(x.estimatorVariance, 0, name);
    else assert.ok(x.estimatorVariance > 0 && x.estimatorShare > 0 && x.estimatorShare < 100, `${name}: ${JSON.stringify(x)}`);
  }
  const table = readFileSync(join(out, 'results.md'), 'utf8');
  assert.match(table, /\| Continuous Silent Gradients \| [\d.e+]+ \| 0 \| 0\.00 \|/);
  assert.match(table, /\| Reparameterization \| 6\.97e\+4 \| 3\.26e\+5 \| 82\.36 \|/); // the paper's row beside ours
});

test('bad flags are one-line errors with a non-zero exit', () => {
  for (const args of [['--samples', '1'], ['--at-epochs', '0'], ['--methods', 'nope'], ['--batches', '100', '--train-size', '256'], ['--frobnicate']]) {
    const r = run(args);
    assert.is(r.status, 2, args.join(' '));
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^error: /);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
