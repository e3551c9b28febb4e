// The fused silent-ELBO op against independent references: exact enumeration of Bernoulli
// latents (host loops, no engine), Monte Carlo for Gaussian and Laplace latents, finite
// differences, an enumerated engine graph for the logits gradient, and the composite oracle.
// Everything is float64 unless a test says otherwise.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../silentgrad.js';
import type { DType, LatentMoments, Tensor } from '../silentgrad.js';
import { BernoulliLatent, GaussianLatent, LaplaceLatent } from '../models/index.js';
import { HostRng } from './host-rng.js';
import { compositeExpectedLogLikelihoodFixed, compositeExpectedLogLikelihoodLearnable } from '../models/composite-elbo.js';
import { parsePixelExpression, pixelExpression, pixelForms, type PixelForm, type PixelNode } from '../engine/ops/silent-elbo-pixel.js';

const LOG_2PI = Math.log(2 * Math.PI);

// ---- host helpers (plain numbers, independent of the engine) ----------------------------------


/** A silent-ELBO problem on the host: moments [B,d], weights [k,d], biases [k], data [B,k]. */
interface Problem {
  B: number; d: number; k: number;
  mean: Float64Array; c2: Float64Array; c3?: Float64Array | undefined; k4?: Float64Array | undefined;
  wMu: Float64Array; bMu: Float64Array; wA: Float64Array; bA: Float64Array; x: Float64Array;
  sigma2: number;
}

function bernoulliMoments(p: Float64Array): { mean: Float64Array; c2: Float64Array; c3: Float64Array; k4: Float64Array } {
  const c2 = p.map((v) => v * (1 - v));
  return { mean: Float64Array.from(p), c2, c3: c2.map((v, i) => v * (1 - 2 * p[i]!)), k4: c2.map((v) => v * (1 - 6 * v)) };
}

function randomDecoder(rng: HostRng, B: number, d: number, k: number): Omit<Problem, 'mean' | 'c2' | 'c3' | 'k4'> {
  return {
    B, d, k, sigma2: 0.3 + rng.uniform(),
    wMu: rng.normals(k * d, 0.7), bMu: rng.normals(k, 0.5), wA: rng.normals(k * d, 0.3), bA: rng.array(k, 1.5, 2.5),
    x: rng.array(B * k, -0.5, 1.5),
  };
}

function bernoulliProblem(rng: HostRng, B: number, d: number, k: number): { P: Problem; p: Float64Array } {
  const p = rng.array(B * d, 0.05, 0.95);
  return { P: { ...randomDecoder(rng, B, d, k), ...bernoulliMoments(p) }, p };
}

function gaussianProblem(rng: HostRng, B: number, d: number, k: number): Problem {
  return { ...randomDecoder(rng, B, d, k), mean: rng.normals(B * d, 0.8), c2: rng.array(B * d, 0.05, 0.6) };
}

/** Laplace(mu, b): c2 = 2 b^2, c3 = 0, k4 = 12 b^4. */
function laplaceProblem(rng: HostRng, B: number, d: number, k: number): Problem {
  const b = rng.array(B * d, 0.15, 0.5);
  return { ...randomDecoder(rng, B, d, k), mean: rng.normals(B * d, 0.8), c2: b.map((v) => 2 * v * v), k4: b.map((v) => 12 * v ** 4) };
}

/** U_j and A_j for one z (length d). */
function decode(P: Problem, z: ArrayLike<number>, j: number): [number, number] {
  let U = P.bMu[j]!, A = P.bA[j]!;
  for (let i = 0; i < P.d; i++) { U += P.wMu[j * P.d + i]! * z[i]!; A += P.wA[j * P.d + i]! * z[i]!; }
  return [U, A];
}

/**
 * Exact expectations over all 2^d states of independent Bernoulli(p) latents, per example:
 * the fixed form, and the learnable form with E[D^2 A^2], E[A^2], Var[A^2] enumerated and
 * then the same Taylor log as the op; also the exact E[log A^2] summed over pixels.
 */
function enumerate(P: Problem, p: Float64Array): { fixed: number[]; learnable: number[]; exactLog: number[]; taylorLog: number[] } {
  const { B, d, k } = P;
  const states = 1 << d;
  const fixed: number[] = [], learnable: number[] = [], exactLog: number[] = [], taylorLog: number[] = [];
  const z = new Float64Array(d);
  for (let b = 0; b < B; b++) {
    const prob = new Float64Array(states);
    for (let s = 0; s < states; s++) {
      let q = 1;
      for (let i = 0; i < d; i++) q *= (s >> i) & 1 ? p[b * d + i]! : 1 - p[b * d + i]!;
      prob[s] = q;
    }
    let eFixed = 0;
    const eDA = new Float64Array(k), eA2 = new Float64Array(k), eLog = new Float64Array(k), varA2 = new Float64Array(k);
    for (let pass = 0; pass < 2; pass++)
      for (let s = 0; s < states; s++) {
        for (let i = 0; i < d; i++) z[i] = (s >> i) & 1;
        const q = prob[s]!;
        for (let j = 0; j < k; j++) {
          const [U, A] = decode(P, z, j);
          const D = P.x[b * k + j]! - U;
          if (pass === 0) {
            eFixed += q * (-(D * D) / (2 * P.sigma2) - 0.5 * Math.log(2 * Math.PI * P.sigma2));
            eDA[j]! += q * D * D * A * A;
            eA2[j]! += q * A * A;
            eLog[j]! += q * Math.log(A * A);
          } else {
            varA2[j]! += q * (A * A - eA2[j]!) ** 2; // two passes: no E[A^4] - E[A^2]^2 cancellation
          }
        }
      }
    let value = 0, logSum = 0, taylorSum = 0;
    for (let j = 0; j < k; j++) {
      const taylor = Math.log(eA2[j]!) - varA2[j]! / (2 * eA2[j]! ** 2);
      value += -0.5 * eDA[j]! + 0.5 * taylor - 0.5 * LOG_2PI;
      logSum += eLog[j]!;
      taylorSum += taylor;
    }
    fixed.push(eFixed); learnable.push(value); exactLog.push(logSum); taylorLog.push(taylorSum);
  }
  return { fixed, learnable, exactLog, taylorLog };
}

// ---- engine plumbing ------------------------------------------------------------------------------

const T = (values: ArrayLike<number>, shape: number[], dtype: DType = 'float64', requiresGrad = false): Tensor =>
  sg.tensor(values, shape, { dtype, requiresGrad });
const host = (t: Tensor): number[] => Array.from(t.dataSync());

interface Operands { mean: Tensor; c2: Tensor; c3?: Tensor | undefined; k4?: Tensor | undefined; wMu: Tensor; bMu: Tensor; wA: Tensor; bA: Tensor; x: Tensor }

function operands(P: Problem, dtype: DType = 'float64', requiresGrad = false): Operands {
  const { B, d, k } = P;
  const t = (v: Float64Array | undefined, shape: number[]): Tensor | undefined => (v ? T(v, shape, dtype, requiresGrad) : undefined);
  return {
    mean: t(P.mean, [B, d])!, c2: t(P.c2, [B, d])!, c3: t(P.c3, [B, d]), k4: t(P.k4, [B, d]),
    wMu: t(P.wMu, [k, d])!, bMu: t(P.bMu, [k])!, wA: t(P.wA, [k, d])!, bA: t(P.bA, [k])!, x: t(P.x, [B, k])!,
  };
}

const momentsOf = (o: Operands): LatentMoments => ({ mean: o.mean, c2: o.c2, c3: o.c3, k4: o.k4 });
const fixedOp = (o: Operands, sigma2: number): Tensor => sg.expectedLogLikelihoodFixed({ mean: o.mean, c2: o.c2 }, o.wMu, o.bMu, o.x, sigma2);
const learnableOp = (o: Operands): Tensor => sg.expectedLogLikelihoodLearnable(momentsOf(o), o, o.x);

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string, atol = 0): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e)))
      assert.unreachable(`${what}[${i}]: ${a} vs ${e} (|diff| ${Math.abs(a - e).toExponential(2)}, allowed ${(atol + rtol * Math.abs(e)).toExponential(2)})`);
  }
}

/** Relative to the largest magnitude of the expected vector (for gradients with tiny entries). */
function assertCloseScaled(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string): void {
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  assertClose(actual, expected, 0, what, rtol * Math.max(scale, 1e-300));
}

// ---- 1. forward vs exact enumeration ------------------------------------------------------------

test('forward: fixed and learnable forms equal exact enumeration over all 2^d Bernoulli states', () => {
  const rng = new HostRng(11);
  for (const [B, d, k] of [[2, 10, 3], [3, 1, 2], [1, 4, 1], [2, 7, 5]] as const) {
    const { P, p } = bernoulliProblem(rng, B, d, k);
    const exact = enumerate(P, p);
    const o = operands(P);
    assertClose(host(fixedOp(o, P.sigma2)), exact.fixed, 1e-10, `fixed B=${B} d=${d} k=${k}`);
    assertClose(host(learnableOp(o)), exact.learnable, 1e-10, `learnable B=${B} d=${d} k=${k}`);
  }
});

test('forward: the Bernoulli family supplies the moments of the table (p, p(1-p), p(1-p)(1-2p), c4 - 3 c2^2)', () => {
  const rng = new HostRng(12);
  const p = rng.array(24, 0.01, 0.99);
  const logits = p.map((v) => Math.log(v / (1 - v)));
  const m = new BernoulliLatent().distribution(T(logits, [4, 6])).moments();
  const expected = bernoulliMoments(p);
  // c4 of Bernoulli(p) straight from its definition, E[(z - p)^4]
  const c4 = p.map((v) => v * (1 - v) ** 4 + (1 - v) * v ** 4);
  assertClose(host(m.mean), expected.mean, 1e-13, 'mean');
  assertClose(host(m.c2), expected.c2, 1e-13, 'c2');
  assertClose(host(m.c3!), p.map((v) => v * (1 - v) ** 3 - (1 - v) * v ** 3), 1e-12, 'c3', 1e-15);
  assertClose(host(m.k4!), c4.map((v, i) => v - 3 * expected.c2[i]! ** 2), 1e-12, 'k4', 1e-15);
});

// ---- 2. Monte Carlo for continuous latents ---------------------------------------------------

/**
 * The op's per-pixel pieces for the learnable form, read back through the op itself with
 * one-pixel problems: op = -E[D^2A^2]/2 + T/2 - log(2pi)/2 with T the Taylor log term; with
 * W_mu = b_mu = x = 0 the first term vanishes (giving T), with x = 1 it is -E[A^2]/2.
 */
function learnablePieces(P: Problem): { eDA: Float64Array; eA2: Float64Array; varA2: Float64Array; taylor: Float64Array } {
  const { B, d, k } = P;
  const eDA = new Float64Array(B * k), eA2 = new Float64Array(B * k), varA2 = new Float64Array(B * k), taylor = new Float64Array(B * k);
  for (let j = 0; j < k; j++) {
    const pixel = (wMu: Float64Array, bMu: number, x: (b: number) => number): number[] => {
      const one: Problem = { ...P, k: 1, wMu, bMu: Float64Array.of(bMu), wA: P.wA.slice(j * d, (j + 1) * d), bA: Float64Array.of(P.bA[j]!), x: Float64Array.from({ length: B }, (_, b) => x(b)) };
      return host(learnableOp(operands(one)));
    };
    const zero = new Float64Array(d);
    const base = pixel(zero, 0, () => 0), unit = pixel(zero, 0, () => 1);
    const full = pixel(P.wMu.slice(j * d, (j + 1) * d), P.bMu[j]!, (b) => P.x[b * k + j]!);
    for (let b = 0; b < B; b++) {
      const at = b * k + j;
      taylor[at] = 2 * base[b]! + LOG_2PI;
      eA2[at] = -2 * (unit[b]! - base[b]!);
      eDA[at] = -2 * (full[b]! - base[b]!);
      varA2[at] = 2 * eA2[at]! ** 2 * (Math.log(eA2[at]!) - taylor[at]!);
    }
  }
  return { eDA, eA2, varA2, taylor };
}

type Sampler = (mean: number, c2: number, rng: HostRng) => number;
const gaussianSampler: Sampler = (m, c2, rng) => m + Math.sqrt(c2) * rng.normal();
const laplaceSampler: Sampler = (m, c2, rng) => {
  const v = rng.uniform() - 0.5;
  return m - Math.sqrt(c2 / 2) * Math.sign(v) * Math.log(1 - 2 * Math.abs(v));
};

/** |mean of (samples - shift)| within `z` standard errors, from power sums s1 = sum(y - shift), s2 = sum((y - shift)^2). */
function assertWithinSE(s1: number, s2: number, n: number, what: string, z = 4): void {
  const m = s1 / n, se = Math.sqrt(Math.max(s2 / n - m * m, 0) / n);
  if (!(Math.abs(m) <= z * se)) assert.unreachable(`${what}: closed form off the Monte Carlo mean by ${m.toExponential(3)} = ${(m / se).toFixed(2)} standard errors (se ${se.toExponential(2)})`);
}

function monteCarloCheck(P: Problem, sampler: Sampler, family: string, n: number, seed: number): void {
  const { B, d, k } = P;
  const fixed = host(fixedOp(operands(P), P.sigma2));
  const pieces = learnablePieces(P);
  // Power sums around the closed-form values (so every check is a mean of y - closed form).
  const fx = new Float64Array(2 * B), da = new Float64Array(2 * B * k), a2 = new Float64Array(4 * B * k);
  const z = new Float64Array(d);
  const constant = -0.5 * k * Math.log(2 * Math.PI * P.sigma2);
  const rng = new HostRng(seed);
  for (let s = 0; s < n; s++)
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < d; i++) z[i] = sampler(P.mean[b * d + i]!, P.c2[b * d + i]!, rng);
      let logp = constant;
      for (let j = 0; j < k; j++) {
        const [U, A] = decode(P, z, j);
        const D = P.x[b * k + j]! - U, at = b * k + j;
        logp -= (D * D) / (2 * P.sigma2);
        const y = D * D * A * A - pieces.eDA[at]!;
        da[2 * at]! += y; da[2 * at + 1]! += y * y;
        const w = A * A - pieces.eA2[at]!, w2 = w * w;
        a2[4 * at]! += w; a2[4 * at + 1]! += w2; a2[4 * at + 2]! += w2 * w; a2[4 * at + 3]! += w2 * w2;
      }
      const y = logp - fixed[b]!;
      fx[2 * b]! += y; fx[2 * b + 1]! += y * y;
    }
  for (let b = 0; b < B; b++) {
    assertWithinSE(fx[2 * b]!, fx[2 * b + 1]!, n, `${family} fixed form, example ${b}`);
    for (let j = 0; j < k; j++) {
      const at = b * k + j;
      assertWithinSE(da[2 * at]!, da[2 * at + 1]!, n, `${family} E[D^2 A^2] [${b},${j}]`);
      assertWithinSE(a2[4 * at]!, a2[4 * at + 1]!, n, `${family} E[A^2] [${b},${j}]`);
      // Var[A^2]: the sample central second moment vs the op's, with the SE of a variance.
      const [m1, m2, m3, m4] = [0, 1, 2, 3].map((r) => a2[4 * at + r]! / n) as [number, number, number, number];
      const variance = m2 - m1 * m1;
      const central4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1 ** 4;
      const se = Math.sqrt((central4 - variance * variance) / n);
      const off = variance - pieces.varA2[at]!;
      if (!(Math.abs(off) <= 4 * se)) assert.unreachable(`${family} Var[A^2] [${b},${j}]: ${pieces.varA2[at]} vs MC ${variance} (${(off / se).toFixed(2)} se)`);
    }
  }
}

test('Gaussian latents: fixed form, E[D^2 A^2], E[A^2] and Var[A^2] agree with Monte Carlo (1e6 draws)', () => {
  monteCarloCheck(gaussianProblem(new HostRng(21), 2, 3, 3), gaussianSampler, 'Gaussian', 1_000_000, 22);
});

test('Laplace latents (k4 = 12 b^4): fixed form, E[D^2 A^2], E[A^2] and Var[A^2] agree with Monte Carlo (1e6 draws)', () => {
  const P = laplaceProblem(new HostRng(23), 2, 3, 3);
  monteCarloCheck(P, laplaceSampler, 'Laplace', 1_000_000, 24);
  // The Laplace family's own moments are the ones used above.
  const loc = T(P.mean, [2, 3]), logScale = T(P.c2.map((v) => 0.5 * Math.log(v / 2)), [2, 3]);
  const m = new LaplaceLatent().distribution(sg.concat([loc, logScale], 1)).moments();
  assertClose(host(m.c2), P.c2, 1e-13, 'Laplace c2');
  assertClose(host(m.k4!), P.k4!, 1e-12, 'Laplace k4');
  assert.is((m as LatentMoments).c3, undefined);
});

test('Monte Carlo check has power: a wrong k4 (Gaussian moments for Laplace draws) is caught', () => {
  const P = laplaceProblem(new HostRng(25), 1, 2, 1);
  // Large c2 so the k4 terms dominate the spread.
  P.c2 = P.c2.map((v) => v * 4); P.k4 = undefined;
  let caught = '';
  try { monteCarloCheck(P, laplaceSampler, 'Laplace without k4', 1_000_000, 26); } catch (e) { caught = (e as Error).message; }
  assert.match(caught, /Laplace without k4 (E\[D\^2 A\^2\]|Var\[A\^2\])/);
});

/** E[log A^2] for A ~ N(a, s^2) by composite Simpson over a +- 7.5 s (needs |a| / s >= 8). */
function gaussianExpectedLogSquare(a: number, s: number): number {
  const n = 30000, lo = -7.5, h = 15 / n;
  let total = 0;
  for (let i = 0; i <= n; i++) {
    const e = lo + i * h, w = i === 0 || i === n ? 1 : i % 2 ? 4 : 2;
    total += w * Math.log((a + s * e) ** 2) * Math.exp(-0.5 * e * e);
  }
  return (total * h) / 3 / Math.sqrt(2 * Math.PI);
}

test('Taylor log term: the only approximation, its error shrinks like Var[A^2]^2 / E[A^2]^4 (Gaussian, exact quadrature)', () => {
  const errors: number[] = [];
  for (const t of [1, 0.5, 0.25, 0.125]) {
    const P: Problem = {
      B: 1, d: 2, k: 1, sigma2: 1, mean: Float64Array.of(0.3, -0.2), c2: Float64Array.of(0.1 * t * t, 0.15 * t * t),
      wMu: new Float64Array(2), bMu: new Float64Array(1), wA: Float64Array.of(0.5, -0.4), bA: Float64Array.of(2), x: new Float64Array(1),
    };
    const { eA2, varA2, taylor } = learnablePieces(P);
    const a = 0.5 * 0.3 + 0.4 * 0.2 + 2, s2 = 0.25 * 0.1 * t * t + 0.16 * 0.15 * t * t;
    assert.ok(a / Math.sqrt(s2) >= 8);
    assertClose([eA2[0]!, varA2[0]!], [a * a + s2, 4 * a * a * s2 + 2 * s2 * s2], 1e-9, 'E[A^2], Var[A^2] of a Gaussian A');
    const exact = gaussianExpectedLogSquare(a, Math.sqrt(s2));
    const error = Math.abs(taylor[0]! - exact);
    const r = varA2[0]! / eA2[0]! ** 2;
    // Leading term of the remainder for Gaussian A: about r^2 / 4.
    assert.ok(error / (r * r) > 0.1 && error / (r * r) < 0.5, `t=${t}: error ${error} vs (Var/E^2)^2 = ${r * r}`);
    assert.ok(error < 0.02 * r, `t=${t}: error ${error} is not small next to the second-order correction ${r / 2}`);
    errors.push(error);
  }
  for (let i = 1; i < errors.length; i++) {
    const ratio = errors[i]! / errors[i - 1]!;
    assert.ok(ratio > 1 / 24 && ratio < 1 / 10, `halving the latent sd should divide the error by about 16, got 1/${(1 / ratio).toFixed(1)}`);
  }
});

test('Taylor log term: for Bernoulli latents (exact enumeration, d = 10) the error is small and shrinks with the variance', () => {
  const rng = new HostRng(31);
  const { P, p } = bernoulliProblem(rng, 2, 10, 2);
  const errors: number[] = [];
  for (const t of [1, 0.5, 0.25, 0.125]) {
    const scaled: Problem = { ...P, wA: P.wA.map((v) => v * t) };
    const { exactLog, taylorLog } = enumerate(scaled, p);
    const { eA2, varA2, taylor } = learnablePieces(scaled);
    assertClose([taylor[0]! + taylor[1]!, taylor[2]! + taylor[3]!], taylorLog, 1e-9, 'op Taylor term vs enumerated Taylor term');
    const r = Math.max(...varA2.map((v, i) => v / eA2[i]! ** 2));
    const error = Math.max(...exactLog.map((v, b) => Math.abs(v - taylorLog[b]!)));
    // A skewed latent's remainder starts at the third cumulant of A^2: order (Var/E^2)^{3/2}.
    assert.ok(error < r ** 1.5, `t=${t}: error ${error} vs (Var/E^2)^1.5 = ${r ** 1.5}`);
    errors.push(error);
  }
  for (let i = 1; i < errors.length; i++)
    assert.ok(errors[i]! < errors[i - 1]! / 4, `errors should fall by 8 to 16 per halving: ${errors.map((e) => e.toExponential(2))}`);
});

// ---- 3. backward vs finite differences ----------------------------------------------------------

type Family = 'gaussian' | 'bernoulli' | 'laplace';
const shapes = [[1, 1, 1], [1, 3, 2], [3, 1, 4], [2, 4, 1], [3, 2, 3]] as const;

function problemFor(family: Family, rng: HostRng, B: number, d: number, k: number): Problem {
  if (family === 'gaussian') return gaussianProblem(rng, B, d, k);
  if (family === 'laplace') return laplaceProblem(rng, B, d, k);
  return bernoulliProblem(rng, B, d, k).P;
}

/** Inputs list (every operand present) and a rebuild from that list. */
function asInputs(o: Operands): { inputs: Tensor[]; names: string[]; rebuild: (ts: Tensor[]) => Operands } {
  const names = (['mean', 'c2', 'c3', 'k4', 'wMu', 'bMu', 'wA', 'bA', 'x'] as const).filter((n) => o[n] !== undefined);
  return {
    inputs: names.map((n) => o[n]!), names,
    rebuild: (ts) => Object.fromEntries(names.map((n, i) => [n, ts[i]])) as unknown as Operands,
  };
}

for (const family of ['gaussian', 'bernoulli', 'laplace'] as const)
  test(`backward: every input's gradient matches central finite differences (${family} moments, both forms)`, () => {
    const rng = new HostRng(41 + family.length);
    for (const [B, d, k] of shapes) {
      const P = problemFor(family, rng, B, d, k);
      const { inputs, names, rebuild } = asInputs(operands(P));
      const fixedInputs = ['mean', 'c2', 'wMu', 'bMu', 'x'].map((n) => inputs[names.indexOf(n)]!);
      const fixed = sg.gradcheck((mean, c2, w, bias, x) => sg.expectedLogLikelihoodFixed({ mean: mean!, c2: c2! }, w!, bias!, x!, P.sigma2), fixedInputs);
      assert.ok(fixed.ok, `fixed ${family} [${B},${d},${k}]: ${JSON.stringify(fixed.worst)}`);
      const learnable = sg.gradcheck((...ts) => learnableOp(rebuild(ts)), inputs);
      assert.ok(learnable.ok, `learnable ${family} [${B},${d},${k}] (${names}): ${JSON.stringify(learnable.worst)} (input ${learnable.worst ? names[learnable.worst.input] : ''})`);
    }
  });

test('backward: through each family\'s parameterisation (logits; mean and log-variance; location and log-scale)', () => {
  const rng = new HostRng(47);
  for (const [family, latent] of [['bernoulli', new BernoulliLatent()], ['gaussian', new GaussianLatent()], ['laplace', new LaplaceLatent()]] as const) {
    for (const [B, d, k] of [[1, 1, 1], [2, 3, 2]] as const) {
      const P = gaussianProblem(rng, B, d, k);
      const width = latent.parametersPerLatent * d;
      const enc = T(Float64Array.from({ length: B * width }, (_, i) => (i % width < d ? 1 : 0.4) * rng.normal()), [B, width]);
      const o = operands(P);
      const fixed = sg.gradcheck((e, w, bias) => sg.expectedLogLikelihoodFixed(latent.distribution(e!).moments(), w!, bias!, o.x, P.sigma2), [enc, o.wMu, o.bMu]);
      assert.ok(fixed.ok, `fixed ${family}: ${JSON.stringify(fixed.worst)}`);
      const learnable = sg.gradcheck((e, wMu, wA, bA) => sg.expectedLogLikelihoodLearnable(latent.distribution(e!).moments(), { wMu: wMu!, bMu: o.bMu, wA: wA!, bA: bA! }, o.x), [enc, o.wMu, o.wA, o.bA]);
      assert.ok(learnable.ok, `learnable ${family}: ${JSON.stringify(learnable.worst)}`);
    }
  }
});

/**
 * The enumerated expectation as an engine graph in the logits: q(s) = exp(sum_i z_i logsig(l_i)
 * + (1 - z_i) logsig(-l_i)) for every state s, times per-state constants; the learnable form
 * takes E[D^2 A^2], E[A^2], Var[A^2] as q-weighted sums and applies the same Taylor log.
 */
function enumeratedGraph(P: Problem, logits: Tensor, form: 'fixed' | 'learnable'): Tensor {
  const { B, d, k } = P;
  const S = 1 << d;
  const states = Float64Array.from({ length: S * d }, (_, n) => (Math.floor(n / d) >> n % d) & 1);
  const Z = T(states, [S, d]), notZ = T(states.map((v) => 1 - v), [S, d]);
  const logQ = sg.add(sg.matmul(sg.logSigmoid(logits), sg.transpose(Z)), sg.matmul(sg.logSigmoid(sg.neg(logits)), sg.transpose(notZ)));
  const q = sg.exp(logQ); // [B, S]
  const rows: Tensor[] = [];
  for (let b = 0; b < B; b++) {
    const qb = sg.slice(q, 0, b, b + 1); // [1, S]
    const perState = (f: (U: number, A: number, D: number) => number): Tensor => {
      const v = new Float64Array(S * k);
      for (let s = 0; s < S; s++)
        for (let j = 0; j < k; j++) {
          const [U, A] = decode(P, states.subarray(s * d, (s + 1) * d), j);
          v[s * k + j] = f(U, A, P.x[b * k + j]! - U);
        }
      return T(v, [S, k]);
    };
    if (form === 'fixed') {
      rows.push(sg.sum(sg.matmul(qb, perState((_, __, D) => -(D * D) / (2 * P.sigma2) - 0.5 * Math.log(2 * Math.PI * P.sigma2)))));
      continue;
    }
    const eDA = sg.matmul(qb, perState((_, A, D) => D * D * A * A));
    const eA2 = sg.matmul(qb, perState((_, A) => A * A));
    // Var[A^2] = E[(A^2 - c)^2] - (E[A^2] - c)^2 with c = A(at z = p)^2, a constant near E[A^2].
    const shiftC = Float64Array.from({ length: k }, (_, j) => decode(P, P.mean.subarray(b * d, (b + 1) * d), j)[1] ** 2);
    const c = T(shiftC, [1, k]);
    const centred = (() => {
      const v = new Float64Array(S * k);
      for (let s = 0; s < S; s++)
        for (let j = 0; j < k; j++) v[s * k + j] = (decode(P, states.subarray(s * d, (s + 1) * d), j)[1] ** 2 - shiftC[j]!) ** 2;
      return T(v, [S, k]);
    })();
    const varA2 = sg.sub(sg.matmul(qb, centred), sg.square(sg.sub(eA2, c)));
    const taylor = sg.sub(sg.log(eA2), sg.div(varA2, sg.scale(sg.square(eA2), 2)));
    rows.push(sg.shift(sg.sum(sg.sub(sg.scale(taylor, 0.5), sg.scale(eDA, 0.5))), -0.5 * k * LOG_2PI));
  }
  return sg.concat(rows.map((r) => sg.reshape(r, [1])), 0);
}

test('backward: the Bernoulli logits gradient equals that of the exactly enumerated expectation (1e-9)', () => {
  const rng = new HostRng(51);
  for (const [B, d, k] of [[2, 6, 3], [1, 1, 2], [3, 4, 1]] as const) {
    const { P, p } = bernoulliProblem(rng, B, d, k);
    const logitValues = p.map((v) => Math.log(v / (1 - v)));
    const weights = T(rng.array(B, 0.5, 1.5), [B]);
    for (const form of ['fixed', 'learnable'] as const) {
      const viaOp = T(logitValues, [B, d], 'float64', true);
      const o = operands(P);
      const moments = new BernoulliLatent().distribution(viaOp).moments();
      const value = form === 'fixed' ? sg.expectedLogLikelihoodFixed(moments, o.wMu, o.bMu, o.x, P.sigma2) : sg.expectedLogLikelihoodLearnable(moments, o, o.x);
      sg.backward(sg.sum(sg.mul(value, weights)));
      const viaEnumeration = T(logitValues, [B, d], 'float64', true);
      const enumerated = enumeratedGraph(P, viaEnumeration, form);
      assertClose(host(value), host(enumerated), 1e-10, `${form} value [${B},${d},${k}]`);
      sg.backward(sg.sum(sg.mul(enumerated, weights)));
      assertCloseScaled(host(viaOp.grad!), host(viaEnumeration.grad!), 1e-9, `${form} logits gradient [${B},${d},${k}]`);
    }
  }
});

/** An expression of the per-pixel table, in JavaScript, at the inputs `at`. */
function evaluatePixel(form: PixelForm, expression: string, at: Record<string, number>): number {
  const names = Object.keys(at);
  const body = [...form.lets.map(([name, e]) => `const ${name} = ${pixelExpression(e, 'js')};`), `return ${pixelExpression(expression, 'js')};`];
  return (new Function(...names, body.join('\n')) as (...values: number[]) => number)(...names.map((n) => at[n]!));
}

test('per-pixel table: each partial is the derivative of the value, and the constant term enters linearly', () => {
  const rng = new HostRng(57);
  for (const [name, form] of Object.entries(pixelForms))
    for (let trial = 0; trial < 4; trial++) {
      // Positive contractions keep E[A^2] = Abar^2 + Saa away from 0.
      const at: Record<string, number> = { x: rng.uniform(), sigma2: 0.2 + rng.uniform() };
      for (const t of sg.silentElboTerms) at[t.name] = 0.1 + rng.uniform();
      const value = (shift: string, h: number): number => evaluatePixel(form, form.value, { ...at, [shift]: at[shift]! + h });
      for (const t of sg.silentElboTerms) {
        const h = 1e-5, numeric = (value(t.name, h) - value(t.name, -h)) / (2 * h);
        const partial = form.partials[t.name];
        const analytic = partial ? evaluatePixel(form, partial, at) : 0;
        assert.ok(Math.abs(numeric - analytic) <= 1e-7 * (1 + Math.abs(analytic)), `${name} d/d${t.name}: ${analytic} vs finite difference ${numeric}`);
      }
      // The constant term's partial reads sigma2 alone (a Function of nothing else would throw).
      const c = form.constant;
      const coefficient = (new Function('sigma2', `return ${pixelExpression(form.partials[c]!, 'js')};`) as (s: number) => number)(at.sigma2!);
      assertClose([value(c, 0)], [value(c, -at[c]!) + coefficient * at[c]!], 1e-12, `${name}: ${c} enters as ${coefficient} x ${c}`);
    }
});

function evaluateTree(node: PixelNode, at: Record<string, number>): number {
  switch (node.kind) {
    case 'number': return node.value;
    case 'name': return at[node.name]!;
    case 'negate': return -evaluateTree(node.operand, at);
    case 'log': return Math.log(evaluateTree(node.operand, at));
    case 'binary': {
      const a = evaluateTree(node.left, at), b = evaluateTree(node.right, at);
      return node.op === '+' ? a + b : node.op === '-' ? a - b : node.op === '*' ? a * b : a / b;
    }
  }
}

test('per-pixel table: the parsed trees (for backends that emit instructions) give the JavaScript expressions\' bits', () => {
  const rng = new HostRng(58);
  for (const [name, form] of Object.entries(pixelForms))
    for (let trial = 0; trial < 50; trial++) {
      const at: Record<string, number> = { x: rng.uniform(), sigma2: 0.2 + rng.uniform() };
      for (const t of sg.silentElboTerms) at[t.name] = 0.1 + rng.uniform();
      const withLets = { ...at };
      for (const [letName, e] of form.lets) withLets[letName] = evaluateTree(parsePixelExpression(e), withLets);
      for (const e of [form.value, ...Object.values(form.partials)]) {
        const tree = evaluateTree(parsePixelExpression(e), withLets), js = evaluatePixel(form, e, at);
        assert.ok(Object.is(tree, js), `${name}: ${e}: ${tree} vs ${js}`);
      }
    }
  // Precedence as in JavaScript: unary minus binds tighter than * (negation commutes with * and
  // /, so only the tree shows it), * and / tighter than + and -, and - is left-associative.
  const name = (n: string): PixelNode => ({ kind: 'name', name: n });
  assert.equal(parsePixelExpression('-x * y'), { kind: 'binary', op: '*', left: { kind: 'negate', operand: name('x') }, right: name('y') });
  assert.is(evaluateTree(parsePixelExpression('x - 1.0 - 2.0 * x + 3.0 / x'), { x: 0.5 }), 0.5 - 1 - 2 * 0.5 + 3 / 0.5);
  assert.throws(() => parsePixelExpression('x % 2.0'), /unexpected characters/);
  assert.throws(() => parsePixelExpression('(x + 1.0'), /expected \)/);
});

// ---- 4. fused vs composite ----------------------------------------------------------------------

function compareWithComposite(P: Problem, dtype: DType, valueTol: number, gradTol: number, label: string): void {
  const weights = rngWeights(P.B);
  for (const form of ['fixed', 'learnable'] as const) {
    const results = (['fused', 'composite'] as const).map((impl) => {
      const o = operands(P, dtype, true);
      const m = form === 'fixed' ? { mean: o.mean, c2: o.c2 } : momentsOf(o);
      const value = form === 'fixed'
        ? (impl === 'fused' ? sg.expectedLogLikelihoodFixed : compositeExpectedLogLikelihoodFixed)(m, o.wMu, o.bMu, o.x, P.sigma2)
        : (impl === 'fused' ? sg.expectedLogLikelihoodLearnable : compositeExpectedLogLikelihoodLearnable)(m, o, o.x);
      sg.backward(sg.sum(sg.mul(value, T(weights, [P.B], dtype))));
      const { names } = asInputs(o);
      const used = names.filter((n) => form === 'learnable' || ['mean', 'c2', 'wMu', 'bMu', 'x'].includes(n));
      return { value: host(value), grads: used.map((n) => [n, host(o[n as keyof Operands]!.grad!)] as const) };
    });
    const [fused, composite] = results as [typeof results[0], typeof results[0]];
    assertClose(fused.value, composite.value, valueTol, `${label} ${form} value`);
    fused.grads.forEach(([name, g], i) => assertCloseScaled(g, composite.grads[i]![1], gradTol, `${label} ${form} d/d${name}`));
  }
}

let weightSeed = 61;
const rngWeights = (n: number): Float64Array => new HostRng(weightSeed++).array(n, 0.5, 1.5);

test('fused op and composite oracle agree in value and every gradient (float64)', () => {
  const rng = new HostRng(62);
  for (const family of ['gaussian', 'bernoulli', 'laplace'] as const)
    for (const [B, d, k] of [...shapes, [5, 7, 6]] as const)
      compareWithComposite(problemFor(family, rng, B, d, k), 'float64', 1e-12, 1e-10, `${family} [${B},${d},${k}]`);
});

test('fused op and composite oracle agree in value and every gradient (float32, looser)', () => {
  const rng = new HostRng(63);
  for (const family of ['gaussian', 'bernoulli', 'laplace'] as const)
    // The last shape's contractions are large enough for the float32 Wasm GEMM (gemm.ts's SMALL).
    for (const [B, d, k] of [[2, 3, 4], [4, 8, 10], [12, 16, 30]] as const)
      compareWithComposite(problemFor(family, rng, B, d, k), 'float32', 2e-5, 2e-4, `float32 ${family} [${B},${d},${k}]`);
});

// ---- 6. bad input -------------------------------------------------------------------------------

test('bad input: shapes, non-finite values and negative variance are named with their shapes', () => {
  const P = gaussianProblem(new HostRng(71), 2, 3, 4);
  const o = operands(P);
  const learn = (patch: Partial<Operands>): Tensor => learnableOp({ ...o, ...patch });
  const fixed = (patch: Partial<Operands>, sigma2 = 0.5): Tensor => fixedOp({ ...o, ...patch }, sigma2);
  const bad = (values: number[], at: number, v: number): Float64Array => { const a = Float64Array.from(values); a[at] = v; return a; };

  assert.throws(() => learn({ c2: T(P.c2.slice(0, 4), [2, 2]) }), /expectedLogLikelihoodLearnable: c2 has shape \[2, 2\] but mean is \[2, 3\]/);
  assert.throws(() => learn({ k4: T(new Float64Array(9), [3, 3]) }), /k4 has shape \[3, 3\] but mean is \[2, 3\]/);
  assert.throws(() => learn({ mean: T(P.mean, [6]) }), /mean must be \[batch, latent\], got \[6\]/);
  assert.throws(() => learn({ x: T(new Float64Array(12), [3, 4]) }), /x must be \[2, pixels\], got \[3, 4\]/);
  assert.throws(() => learn({ wA: T(new Float64Array(8), [4, 2]) }), /wA must be \[4,3\] for 3 latents and 4 pixels, got \[4, 2\]/);
  assert.throws(() => learn({ bMu: T(new Float64Array(3), [3]) }), /bMu must be \[4\] for 3 latents and 4 pixels, got \[3\]/);
  assert.throws(() => fixed({ wMu: T(new Float64Array(12), [3, 4]) }), /expectedLogLikelihoodFixed: weight must be \[4,3\] .* got \[3, 4\]/);
  assert.throws(() => fixed({ bMu: T(new Float64Array(5), [5]) }), /expectedLogLikelihoodFixed: bias must be \[4\] .* got \[5\]/);
  assert.throws(() => learn({ x: T(P.x, [2, 4], 'float32') }), /mixed dtypes: mean is float64 \[2, 3\] but x is float32 \[2, 4\]/);

  assert.throws(() => learn({ mean: T(bad([...P.mean], 4, NaN), [2, 3]) }), /mean \[2, 3\] holds NaN at flat index 4/);
  assert.throws(() => fixed({ c2: T(bad([...P.c2], 0, Infinity), [2, 3]) }), /c2 \[2, 3\] holds Infinity at flat index 0/);
  assert.throws(() => learn({ x: T(bad([...P.x], 7, -Infinity), [2, 4]) }), /x \[2, 4\] holds -Infinity at flat index 7/);
  assert.throws(() => fixed({ x: T(bad([...P.x], 1, NaN), [2, 4]) }), /x \[2, 4\] holds NaN at flat index 1/);
  assert.throws(() => learn({ wA: T(bad([...P.wA], 2, NaN), [4, 3]) }), /wA \[4, 3\] holds NaN at flat index 2/);
  assert.throws(() => learn({ c3: T(bad(new Array(6).fill(0), 5, NaN), [2, 3]) }), /c3 \[2, 3\] holds NaN at flat index 5/);
  assert.throws(() => learn({ c2: T(bad([...P.c2], 1, -0.25), [2, 3]) }), /c2 \(the variance\) \[2, 3\] is negative \(-0\.25\) at flat index 1/);
  assert.throws(() => fixed({ c2: T(bad([...P.c2], 5, -1e-3), [2, 3]) }), /expectedLogLikelihoodFixed: c2 \(the variance\) \[2, 3\] is negative/);
  assert.throws(() => fixed({}, 0), /sigma2 must be a positive number, got 0/);
  assert.throws(() => fixed({}, NaN), /sigma2 must be a positive number, got NaN/);

  // Negative c3 and k4 are legitimate (Bernoulli p > 1/2, platykurtic latents) and accepted.
  const ok = learn({ c3: T(new Float64Array(6).fill(-0.01), [2, 3]), k4: T(new Float64Array(6).fill(-0.02), [2, 3]) });
  assert.ok(host(ok).every(Number.isFinite));
});

test.run();
