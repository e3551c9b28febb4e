// The analysis of docs/discrete-collapse.md, checked with the engine: the curvature in one
// Bernoulli logit of (the silent ELBO's variance term + the KL) at p = 1/2 is
// 1/4 - ||W_i||^2 / (16 sigma^2), negative past ||W_i||^2 = 4 sigma^2; the mean term gives
// back exactly what the variance term takes; the 'scaled' decoder init lands below the
// threshold and 'pytorch' far above it; and end to end, the discrete silent posteriors collapse
// with 'pytorch' and not with the default.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import { BernoulliLatent, FixedVarianceLinearDecoder } from '../models/index.js';

const sigma2 = 0.01, d = 3, k = 6, latent = 1;
const T = (values: ArrayLike<number>, shape: number[], requiresGrad = false): Tensor => sg.tensor(values, shape, { dtype: 'float64', requiresGrad });

/** A [k, d] weight whose column `latent` has squared norm `columnNorm`; the others are fixed. */
function weight(columnNorm: number): Float64Array {
  const w = Float64Array.from({ length: k * d }, (_, i) => 0.05 * Math.sin(3 * i + 1));
  const direction = Array.from({ length: k }, (_, j) => 1 + 0.3 * j);
  const norm = Math.hypot(...direction);
  for (let j = 0; j < k; j++) w[j * d + latent] = (direction[j]! / norm) * Math.sqrt(columnNorm);
  return w;
}

const x = Float64Array.from({ length: k }, (_, j) => 0.2 + 0.1 * j);
const bias = new Float64Array(k).fill(0.1);

/**
 * d/dl of the negative-ELBO part chosen, at the logits (0.7, l, -0.4), by backward. With
 * `meanTerm` false, the latent mean is held fixed, which leaves the variance term and the KL.
 */
function logitGradient(l: number, columnNorm: number, meanTerm: boolean): number {
  const logits = T([0.7, l, -0.4], [1, d], true);
  const q = new BernoulliLatent().distribution(logits);
  const moments = q.moments();
  const decoderMoments = meanTerm ? moments : { ...moments, mean: sg.detach(moments.mean) };
  const logLikelihood = sg.expectedLogLikelihoodFixed(decoderMoments, T(weight(columnNorm), [k, d]), T(bias, [k]), T(x, [1, k]), sigma2);
  sg.backward(sg.sum(sg.sub(q.kl(), logLikelihood)));
  return logits.grad!.dataSync()[latent]!;
}

/** Central difference of the engine's gradient: the second derivative at p = 1/2. */
const curvature = (columnNorm: number, meanTerm: boolean, h = 1e-4): number =>
  (logitGradient(h, columnNorm, meanTerm) - logitGradient(-h, columnNorm, meanTerm)) / (2 * h);

test('variance term + KL: curvature 1/4 - ||W_i||^2/(16 sigma^2) at p = 1/2, on both sides of the threshold', () => {
  const threshold = 4 * sigma2;
  for (const columnNorm of [0, 0.25 * threshold, 0.9 * threshold, 1.1 * threshold, 4 * threshold, 1.31]) {
    const expected = 0.25 - columnNorm / (16 * sigma2);
    const measured = curvature(columnNorm, false);
    assert.ok(Math.abs(measured - expected) < 1e-6 * Math.max(1, Math.abs(expected)), `||W_i||^2 = ${columnNorm}: ${measured} vs ${expected}`);
    assert.is(measured > 0, columnNorm < threshold, `stable exactly below the threshold (||W_i||^2 = ${columnNorm})`);
  }
});

test('with the mean term the whole negative ELBO has the KL\'s curvature 1/4 at p = 1/2 (E||x - Wz||^2 is linear in p)', () => {
  for (const columnNorm of [0.01, 0.04, 1.31]) {
    const measured = curvature(columnNorm, true);
    assert.ok(Math.abs(measured - 0.25) < 1e-6, `||W_i||^2 = ${columnNorm}: ${measured}`);
  }
});

/** The mean over latents of ||W_i||^2 for a 784 x 200 decoder with the given init. */
function meanColumnNorm(init: 'scaled' | 'pytorch'): number {
  const decoder = new FixedVarianceLinearDecoder({ latentDim: 200, pixels: 784, stream: new sg.RandomStream(3), dtype: 'float64' }, sigma2, init);
  const w = decoder.linear.weight.dataSync();
  let sum = 0;
  for (const v of w) sum += v * v;
  return sum / 200;
}

test('the scaled init puts E||W_i||^2 at sigma^2, below 4 sigma^2; PyTorch\'s is k/(3d), 33 times over', () => {
  const scaled = meanColumnNorm('scaled'), pytorch = meanColumnNorm('pytorch');
  assert.ok(Math.abs(scaled / sigma2 - 1) < 0.02, `scaled: ${scaled}`);
  assert.ok(Math.abs(pytorch / (784 / 600) - 1) < 0.02, `pytorch: ${pytorch}`);
  assert.ok(pytorch > 30 * 4 * sigma2);
});

// ---- End to end: the study on a few hundred real MNIST images ----------------------------------

const script = join(import.meta.dirname, '..', 'experiments', 'fixed-variance.js');
const dir = mkdtempSync(join(tmpdir(), 'silentgrad-collapse-'));
const tiny = ['--methods', 'silent-bernoulli', '--epochs', '4', '--lr', '1e-3', '--train-size', '512', '--test-size', '200', '--channels', '4', '--backend', 'cpu'];

interface Final { activeLatents: number; deterministicShare: number; kl: number }
function finalMetrics(init: string): { final: Final; stderr: string } {
  const out = join(dir, init);
  const r = spawnSync(process.execPath, [script, ...tiny, '--decoder-init', init, '--out', out], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { methods: Record<string, { runs: { epochs: Final[] }[] }> };
  const epochs = results.methods['silent-bernoulli']!.runs[0]!.epochs;
  return { final: epochs[epochs.length - 1]!, stderr: r.stderr };
}

test('discrete silent gradients: the default init keeps the posteriors varied; --decoder-init pytorch saturates them, with a warning', () => {
  // 32 steps: long enough for PyTorch's init to saturate every bit, too short for codes to form
  // (on 640 images they did after about 50 steps; docs/discrete-collapse.md).
  const saturatedKl = 200 * Math.LN2; // every saturated bit costs ln 2 against Bern(1/2)
  const scaled = finalMetrics('scaled');
  assert.ok(scaled.final.deterministicShare < 0.9, `scaled: ${JSON.stringify(scaled.final)}`);
  assert.ok(scaled.final.kl < 0.5 * saturatedKl, `scaled: ${JSON.stringify(scaled.final)}`);
  assert.not.match(scaled.stderr, /saturated/);
  const pytorch = finalMetrics('pytorch');
  assert.ok(pytorch.final.deterministicShare > 0.9, `pytorch: ${JSON.stringify(pytorch.final)}`);
  assert.ok(pytorch.final.activeLatents <= 10, `pytorch: ${JSON.stringify(pytorch.final)}`);
  assert.ok(Math.abs(pytorch.final.kl - saturatedKl) < 1, `pytorch KL ${pytorch.final.kl}`);
  assert.match(pytorch.stderr, /warning: silent-bernoulli_lr0\.001_seed0: the posteriors have saturated into one code: \d+% are deterministic and \d+ of 200 latents vary/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
