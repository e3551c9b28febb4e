// The Taylor-bias study (experiments/taylor-bias.ts), its measurement (models/gradient-deviation.ts)
// and its oracle (models/exact-expectation.ts): the enumeration agrees with a plain-JS sum over
// states and with finite differences; Silent Gradients match it to rounding exactly when the log
// term's argument does not depend on z (and not otherwise); REINFORCE's error falls like
// 1/sqrt(draws); and the experiment runs end to end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import { BernoulliDistribution, FixedVarianceLinearDecoder, LearnableVarianceLinearDecoder, type ReconstructionModel } from '../models/index.js';
import { MAX_ENUMERATED_LATENTS, exactExpectedLogLikelihood } from '../models/exact-expectation.js';
import { l2, measureGradients, type GradientProbe, type MeasureOptions } from '../models/gradient-deviation.js';

const dtype = 'float64' as const;
const B = 2, D = 3, K = 4;

/** A tiny learnable-variance decoder with b_a large enough that A stays positive at every state. */
function tinyDecoder(seed: number, precision = 3): LearnableVarianceLinearDecoder {
  return new LearnableVarianceLinearDecoder({ latentDim: D, pixels: K, stream: new sg.RandomStream(seed), dtype }, precision);
}

const tinyX = (seed = 7): Tensor => sg.uniform([B, K], new sg.RandomStream(seed), { dtype });
const tinyLogits = (seed = 8): Tensor => sg.scale(sg.normal([B, D], new sg.RandomStream(seed), { dtype }), 1.5);
const values = (t: Tensor): number[] => [...t.dataSync()];

/** E_q[log p(x|z)] per example by a plain loop over the 2^d states, in JS doubles. */
function plainExpectation(logits: number[], x: number[], logLikelihood: (z: number[], x: number[]) => number): number[] {
  const d = logits.length / B, k = x.length / B;
  return Array.from({ length: B }, (_, b) => {
    let total = 0;
    for (let s = 0; s < 2 ** d; s++) {
      const z = Array.from({ length: d }, (_, i) => (s >> i) & 1);
      let q = 1;
      for (let i = 0; i < d; i++) {
        const p = 1 / (1 + Math.exp(-logits[b * d + i]!));
        q *= z[i] ? p : 1 - p;
      }
      total += q * logLikelihood(z, x.slice(b * k, (b + 1) * k));
    }
    return total;
  });
}

/** log N(x; W_mu z + b_mu, 1/A^2) with A = W_a z + b_a, summed over pixels (paper Sec. 4.1). */
function plainLearnable(decoder: LearnableVarianceLinearDecoder): (z: number[], x: number[]) => number {
  const [wMu, bMu, wA, bA] = [decoder.mean.weight, decoder.mean.bias!, decoder.precision.weight, decoder.precision.bias!].map(values) as [number[], number[], number[], number[]];
  return (z, x) => x.reduce((sum, xj, j) => {
    let u = bMu[j]!, a = bA[j]!;
    for (let i = 0; i < z.length; i++) { u += wMu[j * z.length + i]! * z[i]!; a += wA[j * z.length + i]! * z[i]!; }
    return sum - 0.5 * (xj - u) ** 2 * a * a + 0.5 * Math.log(a * a) - 0.5 * Math.log(2 * Math.PI);
  }, 0);
}

const close = (a: number, b: number, relative: number): boolean => Math.abs(a - b) <= relative * Math.max(1, Math.abs(b));

// ---- The oracle --------------------------------------------------------------------------------

test('the enumeration equals a plain-JS sum over all 2^d states, learnable and fixed variance, in any chunking', () => {
  const x = tinyX(), logits = tinyLogits();
  const learnable = tinyDecoder(1);
  const fixed = new FixedVarianceLinearDecoder({ latentDim: D, pixels: K, stream: new sg.RandomStream(2), dtype }, 0.3);
  const [w, bias] = [fixed.linear.weight, fixed.linear.bias!].map(values) as [number[], number[]];
  const plainFixed = (z: number[], xs: number[]): number => xs.reduce((sum, xj, j) => {
    let u = bias[j]!;
    for (let i = 0; i < D; i++) u += w[j * D + i]! * z[i]!;
    return sum - (xj - u) ** 2 / (2 * 0.3) - 0.5 * Math.log(2 * Math.PI * 0.3);
  }, 0);
  for (const [decoder, plain] of [[learnable, plainLearnable(learnable)], [fixed, plainFixed]] as [ReconstructionModel, (z: number[], x: number[]) => number][]) {
    const expected = plainExpectation(values(logits), values(x), plain);
    for (const statesPerChunk of [undefined, 1, 3, 8]) {
      const got = values(exactExpectedLogLikelihood(new BernoulliDistribution(logits), decoder, x, { statesPerChunk }));
      got.forEach((v, b) => assert.ok(close(v, expected[b]!, 1e-12), `chunk ${statesPerChunk}, example ${b}: ${v} vs plain ${expected[b]}`));
    }
  }
  // Sanity of the reference itself: for a log-likelihood that is 1 everywhere the sum is 1.
  assert.ok(plainExpectation(values(logits), values(x), () => 1).every((v) => close(v, 1, 1e-14)));
});

test('the enumeration\'s gradient matches float64 finite differences, w.r.t. the logits and every decoder parameter', () => {
  const x = tinyX(3), decoder = tinyDecoder(4);
  const byLogits = sg.gradcheck((logits) => exactExpectedLogLikelihood(new BernoulliDistribution(logits), decoder, x), [tinyLogits(5)], { atol: 1e-7, rtol: 1e-6 });
  assert.ok(byLogits.ok, `logits: ${JSON.stringify(byLogits.worst)}`);

  // The decoder's parameters by hand: objective sum_b w_b E_b, central differences per entry.
  const logits = tinyLogits(6), weights = sg.tensor([0.7, 1.3], [B], { dtype });
  const objective = (): Tensor => sg.sum(sg.mul(exactExpectedLogLikelihood(new BernoulliDistribution(logits), decoder, x), weights));
  for (const p of decoder.parameters()) { p.grad?.dispose(); p.grad = null; }
  sg.backward(objective());
  const eps = 1e-6;
  for (const [name, p] of decoder.namedParameters()) {
    const analytic = values(p.grad!), base = Float64Array.from(p.dataSync());
    for (let k = 0; k < base.length; k++) {
      const at = (delta: number): number => {
        const shifted = Float64Array.from(base);
        shifted[k]! += delta;
        p.assign(sg.tensor(shifted, p.shape, { dtype }));
        return sg.noGrad(() => objective().dataSync()[0]!);
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      p.assign(sg.tensor(base, p.shape, { dtype }));
      assert.ok(Math.abs(analytic[k]! - numeric) <= 1e-7 + 1e-6 * Math.abs(numeric), `${name}[${k}]: autograd ${analytic[k]} vs finite difference ${numeric}`);
    }
  }
});

test('the enumeration refuses more than 16 latents with a message that says what to do', () => {
  assert.is(MAX_ENUMERATED_LATENTS, 16);
  const d = MAX_ENUMERATED_LATENTS + 1;
  const decoder = new LearnableVarianceLinearDecoder({ latentDim: d, pixels: 2, stream: new sg.RandomStream(1), dtype });
  assert.throws(
    () => exactExpectedLogLikelihood(new BernoulliDistribution(sg.zeros([1, d], { dtype })), decoder, sg.zeros([1, 2], { dtype })),
    (e: Error) => /2\^17 states/.test(e.message) && /at most|1 to 16/.test(e.message) && /smaller latent dimension/.test(e.message),
  );
});

// ---- Silent Gradients against the oracle ---------------------------------------------------------

/** A tiny probe: a linear encoder from the pixels to d logits, the given decoder. */
function tinyProbe(decoder: ReconstructionModel, seed = 11): GradientProbe {
  const encoder = new sg.nn.Linear(K, D, { stream: new sg.RandomStream(seed), dtype });
  return { encoder, decoder, x: tinyX(seed + 1) };
}

const options = (samples: number, seed: number, methods: MeasureOptions['methods'] = []): MeasureOptions =>
  ({ samples, gumbelSamples: 10, temperature: 1, stream: new sg.RandomStream(seed), methods });

test('Silent Gradients equal the exact gradient to rounding when A does not depend on z (W_a = 0), and not otherwise', () => {
  const relative = (decoder: ReconstructionModel): { encoder: number; logits: number } => {
    const m = measureGradients(tinyProbe(decoder), options(20, 1));
    return { encoder: l2(m.methods.silent!.encoder, m.exact.encoder) / l2(m.exact.encoder), logits: l2(m.methods.silent!.logits, m.exact.logits) / l2(m.exact.logits) };
  };
  // W_a = 0: A = b_a at every state, E[log A^2] = log b_a^2 and the Taylor term is exact.
  const constantA = tinyDecoder(21);
  constantA.precision.weight.assign(sg.zeros(constantA.precision.weight.shape, { dtype }));
  const exactCase = relative(constantA);
  assert.ok(exactCase.encoder < 1e-12 && exactCase.logits < 1e-12, `W_a = 0: relative deviation ${JSON.stringify(exactCase)}`);
  // A generic W_a: the Taylor term's error shows, far above rounding (so the check above can fail).
  const generic = relative(tinyDecoder(21, 1.5));
  assert.ok(generic.encoder > 1e-6 && generic.logits > 1e-6, `generic W_a: relative deviation ${JSON.stringify(generic)}`);
  assert.ok(generic.encoder < 0.5, `...but Silent Gradients stay close: ${JSON.stringify(generic)}`);
});

// ---- The sampling estimators ---------------------------------------------------------------------

test('REINFORCE\'s deviation falls like 1/sqrt(draws): 16x the draws, 4x smaller (RMS over 150 seeds); its noise estimate matches', () => {
  const probe = tinyProbe(tinyDecoder(31, 2));
  // E||g - g_exact||^2 = trace Cov(one draw) / S for an unbiased estimator at every S, so the
  // root-mean-square deviation over seeds falls exactly as 1/sqrt(S); over 150 seeds it scatters
  // by about 5% (measured: ratios 3.8 to 4.3 over five seed sets of 100).
  const rmsOver = (samples: number): { deviation: number; noise: number } => {
    let deviation = 0, noise = 0;
    const seeds = 150;
    for (let seed = 0; seed < seeds; seed++) {
      const m = measureGradients(probe, options(samples, 1000 + seed, ['reinforce']));
      deviation += l2(m.methods.reinforce!.encoder, m.exact.encoder) ** 2 / seeds;
      noise += m.methods.reinforce!.noise!.encoder ** 2 / seeds;
    }
    return { deviation: Math.sqrt(deviation), noise: Math.sqrt(noise) };
  };
  const few = rmsOver(400), many = rmsOver(6400);
  const ratio = few.deviation / many.deviation;
  assert.ok(ratio > 3.4 && ratio < 4.7, `RMS deviation ${few.deviation} at 400 draws, ${many.deviation} at 6400: ratio ${ratio}, expected ~4`);
  // Unbiased: its whole deviation is noise, and the grouped estimate of that noise agrees.
  for (const r of [few, many]) assert.ok(r.noise / r.deviation > 0.8 && r.noise / r.deviation < 1.25, `noise estimate ${r.noise} vs deviation ${r.deviation}`);
});

test('Gumbel-Softmax is biased: with 16x the draws its deviation barely moves and stays far above its noise', () => {
  const probe = tinyProbe(tinyDecoder(41, 2));
  const at = (gumbelSamples: number) => {
    const m = measureGradients(probe, { ...options(20, 5, ['gumbel']), gumbelSamples });
    return { deviation: l2(m.methods.gumbel!.encoder, m.exact.encoder), noise: m.methods.gumbel!.noise!.encoder };
  };
  const few = at(200), many = at(3200);
  assert.ok(many.deviation > 0.7 * few.deviation, `deviation ${few.deviation} at 200 draws, ${many.deviation} at 3200`);
  assert.ok(many.deviation > 5 * many.noise, `at 3200 draws: deviation ${many.deviation}, noise ${many.noise}`);
});

// ---- The experiment, end to end ------------------------------------------------------------------

const script = join(import.meta.dirname, '..', 'experiments', 'taylor-bias.js');
const run = (args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'silentgrad-taylor-'));
const tiny = ['--latent-dim', '4', '--samples', '200', '--gumbel-samples', '10', '--batch-size', '4', '--train-steps', '3', '--channels', '2'];

test('a tiny run writes results.json, results.md, the chart and the trained model', () => {
  const out = join(dir, 'run');
  const r = run([...tiny, '--out', out]);
  assert.is(r.status, 0, r.stderr);
  for (const f of ['results.json', 'results.md', 'deviation.png', join('checkpoints', 'trained.safetensors')]) assert.ok(existsSync(join(out, f)), `${f} written`);
  interface Point { point: string; exactNorm: { encoder: number; logits: number }; deviation: Record<string, { encoder: number; logits: number }> }
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { config: { latentDim: number }; dtype: string; commit: string; points: Point[]; paper: Record<string, number> };
  assert.is(results.dtype, 'float64');
  assert.is(results.config.latentDim, 4);
  assert.equal(results.points.map((p) => p.point), ['untrained', 'trained']);
  assert.equal(results.paper, { silent: 212.9, gumbel: 6100, reinforce: 593.1 });
  for (const p of results.points) {
    assert.ok(p.exactNorm.encoder > 0);
    assert.equal(Object.keys(p.deviation), ['silent', 'gumbel', 'reinforce', 'reinforce-loo']);
    for (const [name, d] of Object.entries(p.deviation)) assert.ok(Number.isFinite(d.encoder) && d.encoder > 0 && Number.isFinite(d.logits), `${p.point} ${name}: ${JSON.stringify(d)}`);
  }
  const table = readFileSync(join(out, 'results.md'), 'utf8');
  assert.match(table, /\| Method \| untrained \| trained \(3 steps\) \| paper \|/);
  assert.match(table, /\| Silent Gradients \(Taylor log term\) \| [-\d.e]+ \| [-\d.e]+ \| 212\.9 \|/);
  assert.match(table, /REINFORCE \(200 draws, no baseline\)/);
  // The same folder again is refused rather than overwritten.
  const again = run([...tiny, '--out', out]);
  assert.is(again.status, 2);
  assert.match(again.stderr, /already holds a run/);
});

test('--help lists the flags; bad flags give one-line errors', () => {
  const help = run(['--help']);
  assert.is(help.status, 0);
  for (const flag of ['--latent-dim', '--samples', '--batch-size', '--train-steps', '--seed', '--out', '--data-dir']) assert.ok(help.stdout.includes(flag), flag);
  assert.match(help.stdout, /float64/);
  const cases: [string[], RegExp][] = [
    [['--latent-dim', '17'], /--latent-dim 17 .*at most 16/],
    [['--latent-dim', '0'], /--latent-dim must be a positive integer/],
    [['--samples', '5'], /--samples must be at least 20/],
    [['--gumbel-samples', 'many'], /--gumbel-samples must be a positive integer/],
    [['--batch-size', '-3'], /--batch-size/],
    [['--decoder-init', 'zeros'], /--decoder-init must be one of fitted, pytorch/],
    [['--temperature', '0'], /--temperature must be a positive number/],
    [['--bogus'], /bogus/],
    [['--data-dir', join(dir, 'nowhere'), '--out', join(dir, 'nodata')], /MNIST file .*file not found/],
  ];
  for (const [args, message] of cases) {
    const r = run(args);
    assert.is(r.status === 0, false, `${args.join(' ')} should fail`);
    assert.match(r.stderr, message, `${args.join(' ')}: ${r.stderr}`);
    assert.is(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
  }
});

test.run();
