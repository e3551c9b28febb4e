// The gradient estimators on a tiny model (d = 3 latents, k = 4 pixels, B = 2 examples, the
// encoder output a leaf tensor): the unbiased ones average to the exact gradient, the silent
// one has exactly zero variance, Gumbel-Softmax approaches the exact expectation as its
// temperature falls, and the KL terms match closed forms, enumeration and Monte Carlo.
//
// Many draws are taken at once by tiling: a leaf of R x B rows, every row a copy of one
// example's encoder output, gets R independent draws per example in one call; row (r, b) of the
// leaf's gradient times R is draw r of the batch-B gradient of example b.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import {
  BernoulliLatent, FixedVarianceLinearDecoder, GaussianLatent, GumbelSoftmax, LaplaceLatent, LearnableVarianceLinearDecoder,
  Reinforce, Reparameterization, SilentGradients,
} from '../models/index.js';
import type { Estimator, LatentFamily, ReconstructionModel } from '../models/index.js';
import { HostRng } from './host-rng.js';

// ---- helpers ------------------------------------------------------------------------------------


const B = 2, d = 3, k = 4;
const T = (values: ArrayLike<number>, shape: number[], requiresGrad = false): Tensor => sg.tensor(values, shape, { dtype: 'float64', requiresGrad });
const host = (t: Tensor): Float64Array => Float64Array.from(t.dataSync());
/** `repeats` stacked copies of a row-major block of rows. */
const tile = (values: Float64Array, repeats: number): Float64Array => {
  const out = new Float64Array(values.length * repeats);
  for (let r = 0; r < repeats; r++) out.set(values, r * values.length);
  return out;
};

function fixedDecoder(seed: number, sigma2 = 0.5): FixedVarianceLinearDecoder {
  const decoder = new FixedVarianceLinearDecoder({ latentDim: d, pixels: k, stream: new sg.RandomStream(seed), dtype: 'float64' }, sigma2);
  // Larger weights than the default init, so the latents matter to the likelihood.
  decoder.linear.weight.assign(sg.scale(sg.normal([k, d], new sg.RandomStream(seed + 1), { dtype: 'float64' }), 1.2));
  return decoder;
}

function learnableDecoder(seed: number): LearnableVarianceLinearDecoder {
  const decoder = new LearnableVarianceLinearDecoder({ latentDim: d, pixels: k, stream: new sg.RandomStream(seed), dtype: 'float64' }, 2);
  decoder.mean.weight.assign(sg.scale(sg.normal([k, d], new sg.RandomStream(seed + 1), { dtype: 'float64' }), 1.2));
  decoder.precision.weight.assign(sg.scale(sg.normal([k, d], new sg.RandomStream(seed + 2), { dtype: 'float64' }), 0.3));
  return decoder;
}

const clearGrads = (decoder: ReconstructionModel): void => { for (const p of decoder.parameters()) p.grad = null; };

/** The leaf's gradient after backward of the estimator's loss on a leaf with these values. */
function encoderGradient(estimator: Estimator, family: LatentFamily, values: Float64Array, rows: number, x: Float64Array, decoder: ReconstructionModel, stream: sg.RandomStream): Float64Array {
  const leaf = T(values, [rows, values.length / rows], true);
  const out = estimator.loss(family.distribution(leaf), T(x, [rows, k]), decoder, stream);
  sg.backward(out.loss);
  clearGrads(decoder);
  return host(leaf.grad!);
}

/**
 * Per-draw gradients g[r][b][c] (R draws, rows of R x B) against `exact` [B, width]: every
 * component's mean within 4 standard errors. Returns the largest |mean - exact| / se.
 */
function assertUnbiased(draws: Float64Array[], exact: Float64Array, what: string): number {
  const n = draws.length, sums = new Float64Array(exact.length), squares = new Float64Array(exact.length);
  for (const g of draws)
    for (let c = 0; c < exact.length; c++) { const y = g[c]! - exact[c]!; sums[c]! += y; squares[c]! += y * y; }
  let worst = 0;
  for (let c = 0; c < exact.length; c++) {
    const m = sums[c]! / n, se = Math.sqrt(Math.max(squares[c]! / n - m * m, 0) / n);
    const z = Math.abs(m) / (se + 1e-300);
    if (!(Math.abs(m) <= 4 * se + 1e-12 * Math.abs(exact[c]!)))
      assert.unreachable(`${what}: component ${c} mean ${exact[c]! + m} vs exact ${exact[c]} (${z.toFixed(2)} standard errors, se ${se.toExponential(2)})`);
    worst = Math.max(worst, z);
  }
  return worst;
}

/** Split a [R*B, width] tiled gradient into R per-draw [B, width] gradients, times R. */
function perDraw(grad: Float64Array, repeats: number): Float64Array[] {
  const size = grad.length / repeats;
  return Array.from({ length: repeats }, (_, r) => grad.subarray(r * size, (r + 1) * size).map((v) => v * repeats));
}

const states = (dim: number): number[][] => Array.from({ length: 1 << dim }, (_, s) => Array.from({ length: dim }, (_, i) => (s >> i) & 1));
const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** log p(x | z) of the fixed-variance decoder on the host, from its read-back weights. */
function hostLogLikelihood(decoder: FixedVarianceLinearDecoder): (z: number[], x: Float64Array, b: number) => number {
  const W = host(decoder.linear.weight), bias = host(decoder.linear.bias!), s2 = decoder.sigma2;
  return (z, x, b) => {
    let total = -0.5 * k * Math.log(2 * Math.PI * s2);
    for (let j = 0; j < k; j++) {
      let U = bias[j]!;
      for (let i = 0; i < d; i++) U += W[j * d + i]! * z[i]!;
      total -= (x[b * k + j]! - U) ** 2 / (2 * s2);
    }
    return total;
  };
}

/**
 * Exact gradient of mean_b(KL_b - E_q[log p(x_b|z)]) in the logits, by enumeration:
 * d E[f] / d l_i = sum_z q(z) f(z) (z_i - p_i), d KL / d l_i = l_i p_i (1 - p_i).
 */
function exactBernoulliGradient(logits: Float64Array, x: Float64Array, logp: (z: number[], x: Float64Array, b: number) => number): { grad: Float64Array; expectation: number[] } {
  const grad = new Float64Array(B * d), expectation: number[] = [];
  for (let b = 0; b < B; b++) {
    const p = Array.from({ length: d }, (_, i) => sigmoid(logits[b * d + i]!));
    let e = 0;
    for (const z of states(d)) {
      const q = z.reduce((acc, zi, i) => acc * (zi ? p[i]! : 1 - p[i]!), 1), f = logp(z, x, b);
      e += q * f;
      for (let i = 0; i < d; i++) grad[b * d + i]! -= (q * f * (z[i]! - p[i]!)) / B;
    }
    for (let i = 0; i < d; i++) grad[b * d + i]! += (logits[b * d + i]! * p[i]! * (1 - p[i]!)) / B;
    expectation.push(e);
  }
  return { grad, expectation };
}

const rng = new HostRng(2024);
const logits = rng.array(B * d, -1.5, 1.5);
const gaussianEncoder = rng.array(B * d, -1, 1); // means
const gaussianLogVar = rng.array(B * d, Math.log(0.2), Math.log(0.8));
/** [B, 2d]: each row is the means then the log-variances. */
const gaussianOutput = Float64Array.from({ length: B * 2 * d }, (_, n) => {
  const b = Math.floor(n / (2 * d)), c = n % (2 * d);
  return c < d ? gaussianEncoder[b * d + c]! : gaussianLogVar[b * d + c - d]!;
});
const x = rng.array(B * k, -0.5, 1.5);

// ---- 5. estimators ------------------------------------------------------------------------------

test('Reparameterization: the mean encoder gradient over 30k draws matches the silent (closed-form) gradient', () => {
  const family = new GaussianLatent(), decoder = fixedDecoder(3);
  const exact = encoderGradient(new SilentGradients(family), family, gaussianOutput, B, x, decoder, new sg.RandomStream(0));
  const R = 30_000;
  const grad = encoderGradient(new Reparameterization(), family, tile(gaussianOutput, R), R * B, tile(x, R), decoder, new sg.RandomStream(5));
  const draws = perDraw(grad, R);
  assertUnbiased(draws, exact, 'reparameterization vs silent');
  // And it does have estimator variance (unlike the silent gradient).
  assert.ok(draws.some((g) => g[0] !== draws[0]![0]));
});

test('Silent gradients: exact for Bernoulli latents (enumeration) and exactly zero variance across RandomStreams', () => {
  const decoder = fixedDecoder(7);
  const { grad } = exactBernoulliGradient(logits, x, hostLogLikelihood(decoder));
  const bernoulli = new BernoulliLatent();
  const silent = encoderGradient(new SilentGradients(bernoulli), bernoulli, logits, B, x, decoder, new sg.RandomStream(1));
  silent.forEach((g, i) => assert.ok(Math.abs(g - grad[i]!) <= 1e-10 * Math.max(...grad.map(Math.abs)), `silent vs enumeration at ${i}: ${g} vs ${grad[i]}`));

  const laplaceOutput = gaussianOutput.map((v, n) => (n % (2 * d) < d ? v : 0.5 * v)); // location, log-scale
  for (const [family, values] of [[new GaussianLatent(), gaussianOutput], [bernoulli, logits], [new LaplaceLatent(), laplaceOutput]] as const)
    for (const make of [() => fixedDecoder(9), () => learnableDecoder(9)]) {
      const decoderGrads: Float64Array[][] = [], encoderGrads: Float64Array[] = [];
      for (const seed of [1, 2, 99]) {
        const dec = make(); // same weights every time (same seeds)
        const leaf = T(values, [B, values.length / B], true);
        const out = new SilentGradients(family).loss(family.distribution(leaf), T(x, [B, k]), dec, new sg.RandomStream(seed));
        sg.backward(out.loss);
        encoderGrads.push(host(leaf.grad!));
        decoderGrads.push(dec.parameters().map((p) => host(p.grad!)));
      }
      for (let s = 1; s < 3; s++) {
        assert.equal([...encoderGrads[s]!], [...encoderGrads[0]!], `${family.name}: encoder gradients differ between streams`);
        decoderGrads[s]!.forEach((g, i) => assert.equal([...g], [...decoderGrads[0]![i]!], `${family.name}: decoder gradient ${i} differs`));
      }
    }
});

test('REINFORCE (running baseline): the mean encoder gradient over 24k draws matches the exact enumerated gradient', () => {
  const decoder = fixedDecoder(11);
  const { grad: exact } = exactBernoulliGradient(logits, x, hostLogLikelihood(decoder));
  const estimator = new Reinforce(0.9), family = new BernoulliLatent();
  const R = 1200, calls = 20;
  const draws: Float64Array[] = [];
  const stream = new sg.RandomStream(13);
  for (let c = 0; c < calls; c++) // the first call has no running baseline yet; later ones do
    draws.push(...perDraw(encoderGradient(estimator, family, tile(logits, R), R * B, tile(x, R), decoder, stream), R));
  assert.ok(estimator.baselineValue !== null);
  assertUnbiased(draws, exact, 'REINFORCE vs enumeration');
});

test('REINFORCE: the first step (no running baseline yet) is unbiased too, even at B = 1', () => {
  // Before a running average exists, a baseline taken from the current batch's own rewards
  // would cancel the score term: at B = 1 the encoder would get the KL gradient only.
  const decoder = fixedDecoder(15), family = new BernoulliLatent();
  const one = logits.subarray(0, d), xOne = x.subarray(0, k);
  const logp = hostLogLikelihood(decoder);
  const { grad } = exactBernoulliGradient(tile(one, B), tile(xOne, B), logp); // both rows example 0
  const exact = grad.subarray(0, d).map((v) => v * B); // the B = 1 loss is not divided by 2
  const draws: Float64Array[] = [];
  const stream = new sg.RandomStream(17);
  for (let n = 0; n < 3000; n++) draws.push(encoderGradient(new Reinforce(), family, one, 1, xOne, decoder, stream));
  assertUnbiased(draws, exact, 'fresh REINFORCE, B = 1');
});

test('REINFORCE: at B = 2 the first step is unbiased (the batch-mean baseline would halve the score term)', () => {
  const decoder = fixedDecoder(15), family = new BernoulliLatent();
  const logp = hostLogLikelihood(decoder);
  const stream = new sg.RandomStream(18);
  const pair: Float64Array[] = [];
  for (let n = 0; n < 1500; n++) pair.push(encoderGradient(new Reinforce(), family, logits, B, x, decoder, stream));
  assertUnbiased(pair, exactBernoulliGradient(logits, x, logp).grad, 'fresh REINFORCE, B = 2');
});

test('REINFORCE: the decoder gets the ordinary gradient of mean(-log p(x|z)) for the drawn z', () => {
  for (const [decoder, other] of [[fixedDecoder(19), fixedDecoder(19)], [learnableDecoder(19), learnableDecoder(19)]] as const) {
    const estimator = new Reinforce(), family = new BernoulliLatent();
    for (const seed of [21, 22]) { // the second call runs with a running baseline
      const leaf = T(logits, [B, d], true);
      const q = family.distribution(leaf);
      const out = estimator.loss(q, T(x, [B, k]), decoder, new sg.RandomStream(seed));
      sg.backward(out.loss);
      const z = q.sample(new sg.RandomStream(seed)); // the same draw
      const direct = sg.mean(sg.neg(other.logLikelihood(z, T(x, [B, k]))));
      sg.backward(direct);
      assert.equal([...host(out.reconstruction)], [...host(other.logLikelihood(z, T(x, [B, k])))]);
      decoder.parameters().forEach((p, i) => {
        const expected = host(other.parameters()[i]!.grad!), actual = host(p.grad!);
        actual.forEach((v, n) => assert.ok(Math.abs(v - expected[n]!) <= 1e-12 * (1 + Math.abs(expected[n]!)), `decoder parameter ${i}[${n}]: ${v} vs ${expected[n]}`));
      });
      clearGrads(decoder); clearGrads(other);
    }
  }
});

test('Gumbel-Softmax: relaxed samples lie in (0, 1) with P(z > 1/2) = p; as the temperature falls the reconstruction mean approaches the exact expectation', () => {
  const family = new BernoulliLatent(), R = 20_000;
  const tiled = T(tile(logits, R), [R * B, d]);
  const q = family.distribution(tiled);
  for (const temperature of [2, 1, 0.5]) {
    const z = host(q.relaxed(new sg.RandomStream(31), temperature));
    assert.ok(z.every((v) => v > 0 && v < 1), `temperature ${temperature}: a relaxed sample left (0, 1)`);
    for (let c = 0; c < B * d; c++) {
      let above = 0;
      for (let r = 0; r < R; r++) above += z[r * B * d + c]! > 0.5 ? 1 : 0;
      const p = sigmoid(logits[c]!), se = Math.sqrt((p * (1 - p)) / R);
      assert.ok(Math.abs(above / R - p) <= 4 * se, `temperature ${temperature}, component ${c}: P(z > 1/2) = ${above / R} vs p = ${p}`);
    }
  }

  const decoder = fixedDecoder(33);
  const { expectation } = exactBernoulliGradient(logits, x, hostLogLikelihood(decoder));
  const xTiled = T(tile(x, R), [R * B, k]);
  const meanPerExample = (values: Float64Array): { mean: number[]; se: number[] } => {
    const mean: number[] = [], se: number[] = [];
    for (let b = 0; b < B; b++) {
      let s = 0, s2 = 0;
      for (let r = 0; r < R; r++) { const v = values[r * B + b]!; s += v; s2 += v * v; }
      mean.push(s / R); se.push(Math.sqrt((s2 / R - (s / R) ** 2) / R));
    }
    return { mean, se };
  };
  // Common random numbers: every temperature uses the same logistic noise, whose hard threshold
  // is an exact Bernoulli draw (sigmoid(y / tau) > 1/2 iff y > 0).
  const hardZ = sg.greater(q.relaxed(new sg.RandomStream(35), 1), sg.fullLike(tiled, 0.5));
  const hard = meanPerExample(host(decoder.logLikelihood(hardZ, xTiled)));
  hard.mean.forEach((m, b) => assert.ok(Math.abs(m - expectation[b]!) <= 4 * hard.se[b]!, `hard draws ${m} vs exact ${expectation[b]}`));
  let previous = Infinity;
  const gaps: number[] = [];
  for (const temperature of [1, 0.3, 0.1, 0.03, 0.01]) {
    const out = new GumbelSoftmax(temperature).loss(q, xTiled, decoder, new sg.RandomStream(35));
    const { mean, se } = meanPerExample(host(out.reconstruction));
    const gap = Math.max(...mean.map((m, b) => Math.abs(m - hard.mean[b]!)));
    gaps.push(gap);
    assert.ok(gap < previous, `temperature ${temperature}: the gap to the exact-draw mean did not shrink (${gaps})`);
    previous = gap;
    if (temperature === 1) assert.ok(mean.some((m, b) => Math.abs(m - expectation[b]!) > 10 * se[b]!), 'at temperature 1 the relaxation should be visibly biased');
    if (temperature <= 0.03) mean.forEach((m, b) => assert.ok(Math.abs(m - expectation[b]!) <= 4 * se[b]! + gap, `temperature ${temperature}: ${m} vs exact ${expectation[b]}`));
  }
  assert.ok(gaps[gaps.length - 1]! < 0.02 * gaps[0]!, `gaps ${gaps}`);
});

// ---- 7. KL terms --------------------------------------------------------------------------------

test('KL: Gaussian and Bernoulli match their closed forms, Bernoulli also exact enumeration', () => {
  const gaussian = new GaussianLatent().distribution(T(gaussianOutput, [B, 2 * d]));
  const expectedGaussian = Array.from({ length: B }, (_, b) => {
    let s = 0;
    for (let i = 0; i < d; i++) { const mu = gaussianEncoder[b * d + i]!, lv = gaussianLogVar[b * d + i]!; s += 0.5 * (mu * mu + Math.exp(lv) - 1 - lv); }
    return s;
  });
  host(gaussian.kl()).forEach((v, b) => assert.ok(Math.abs(v - expectedGaussian[b]!) <= 1e-13, `Gaussian KL ${v} vs ${expectedGaussian[b]}`));

  const dim = 8, rows = 3;
  const l = new HostRng(41).array(rows * dim, -3, 3);
  l[0] = 30; l[1] = -30; // saturated logits stay finite and exact
  const bernoulli = host(new BernoulliLatent().distribution(T(l, [rows, dim])).kl());
  for (let b = 0; b < rows; b++) {
    const p = Array.from({ length: dim }, (_, i) => sigmoid(l[b * dim + i]!));
    // log p and log(1 - p) from the logit directly, so saturated components are exact
    const logP = (i: number): number => -Math.log1p(Math.exp(-l[b * dim + i]!));
    const logQ = (i: number): number => -Math.log1p(Math.exp(l[b * dim + i]!));
    const closed = p.reduce((s, pi, i) => s + pi * (Math.LN2 + logP(i)) + (1 - pi) * (Math.LN2 + logQ(i)), 0);
    assert.ok(Math.abs(bernoulli[b]! - closed) <= 1e-12 * (1 + closed), `Bernoulli KL ${bernoulli[b]} vs closed form ${closed}`);
    let enumerated = 0;
    for (const z of states(dim)) {
      const logq = z.reduce((s, zi, i) => s + (zi ? logP(i) : logQ(i)), 0);
      enumerated += Math.exp(logq) * (logq + dim * Math.LN2);
    }
    assert.ok(Math.abs(bernoulli[b]! - enumerated) <= 1e-12 * (1 + enumerated), `Bernoulli KL ${bernoulli[b]} vs enumeration ${enumerated}`);
  }
  // Gradients of both KLs in the encoder output by finite differences.
  for (const [family, values] of [[new GaussianLatent(), gaussianOutput], [new BernoulliLatent(), logits]] as const) {
    const check = sg.gradcheck((e) => family.distribution(e!).kl(), [T(values, [B, values.length / B])]);
    assert.ok(check.ok, `${family.name} KL gradient: ${JSON.stringify(check.worst)}`);
  }
});

test('KL: Laplace matches Monte Carlo of log q(z) - log p(z) (1e6 draws); its sampler and logProb agree with the density', () => {
  const location = Float64Array.of(0.3, -1.2, 0, 2, -0.1, 0.7), logScale = Float64Array.of(-0.5, 0.2, -1, 0.4, 0, -0.3);
  const output = Float64Array.from({ length: B * 2 * d }, (_, n) => {
    const b = Math.floor(n / (2 * d)), c = n % (2 * d);
    return c < d ? location[b * d + c]! : logScale[b * d + c - d]!;
  });
  const q = new LaplaceLatent().distribution(T(output, [B, 2 * d]));
  const kl = host(q.kl());
  const hrng = new HostRng(43), n = 1_000_000;
  for (let b = 0; b < B; b++) {
    let s = 0, s2 = 0;
    for (let r = 0; r < n; r++) {
      let y = 0;
      for (let i = 0; i < d; i++) {
        const mu = location[b * d + i]!, scale = Math.exp(logScale[b * d + i]!), v = hrng.uniform() - 0.5;
        const z = mu - scale * Math.sign(v) * Math.log(1 - 2 * Math.abs(v));
        y += -Math.log(2 * scale) - Math.abs(z - mu) / scale + Math.LN2 + Math.abs(z); // log q - log Lap(0, 1)
      }
      y -= kl[b]!;
      s += y; s2 += y * y;
    }
    const m = s / n, se = Math.sqrt((s2 / n - m * m) / n);
    assert.ok(Math.abs(m) <= 4 * se, `Laplace KL example ${b}: ${kl[b]} vs Monte Carlo ${kl[b]! + m} (${(m / se).toFixed(2)} se)`);
  }
  const check = sg.gradcheck((e) => new LaplaceLatent().distribution(e!).kl(), [T(output.map((v, i) => (i % (2 * d) < d && Math.abs(v) < 0.05 ? v + 0.2 : v)), [B, 2 * d])]);
  assert.ok(check.ok, `Laplace KL gradient: ${JSON.stringify(check.worst)}`);

  // The engine sampler: mean and variance 2 b^2 per component over 2e5 draws (tiled rows).
  const R = 100_000;
  const tiled = new LaplaceLatent().distribution(T(tile(output, R), [R * B, 2 * d]));
  const z = host(tiled.sample(new sg.RandomStream(45)));
  for (let c = 0; c < B * d; c++) {
    let s = 0, s2 = 0;
    for (let r = 0; r < R; r++) { const v = z[r * B * d + c]! - location[c]!; s += v; s2 += v * v; }
    const variance = 2 * Math.exp(2 * logScale[c]!);
    assert.ok(Math.abs(s / R) <= 4 * Math.sqrt(variance / R), `Laplace sample mean, component ${c}`);
    // Var of (z - mu)^2 for Laplace: c4 - c2^2 = 24 b^4 - 4 b^4 = 5 c2^2.
    assert.ok(Math.abs(s2 / R - variance) <= 4 * Math.sqrt((5 * variance * variance) / R), `Laplace sample variance, component ${c}: ${s2 / R} vs ${variance}`);
  }
  // logProb against the density written out.
  const zs = Float64Array.of(0.1, -2, 0.5, 1.5, 0, 3);
  const lp = host(q.logProb(T(zs, [B, d])));
  for (let b = 0; b < B; b++) {
    let expected = 0;
    for (let i = 0; i < d; i++) { const scale = Math.exp(logScale[b * d + i]!); expected += -Math.log(2 * scale) - Math.abs(zs[b * d + i]! - location[b * d + i]!) / scale; }
    assert.ok(Math.abs(lp[b]! - expected) <= 1e-12 * (1 + Math.abs(expected)), `Laplace logProb ${lp[b]} vs ${expected}`);
  }
});

test.run();
