// The fused silent-ELBO op: the expected reconstruction log-likelihood of a linear decoder,
// in closed form from the latent moments (paper Eq. 4 for fixed variance, Eq. 7 with the
// second-order Taylor log term for learnable variance; the per-pixel forms implemented are
// derived in docs/silent-elbo.md and written once, for every backend, in silent-elbo-pixel.ts).
// Because no latent is sampled, the encoder's gradient through it has zero estimator variance.
//
// Forward and backward are backend kernels (one primitive each, not a chain of ops); the
// backward below is registered with record() exactly like every other op's.
import { isGradEnabled, record } from '../graph.js';
import type { SilentElboGradients, SilentElboOperands, SilentElboTerm, View } from '../backend.js';
import type { FloatArray } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { checkCompatible, defineOp, empty, shapeString } from './core.js';
import { contiguous } from './shape.js';

/** Every contraction the learnable form can need; the fixed form uses Ubar and Suu. */
export const silentElboTerms: readonly SilentElboTerm[] = [
  { name: 'Ubar', moment: 'mean', powers: [1, 0] },
  { name: 'Abar', moment: 'mean', powers: [0, 1] },
  { name: 'Suu', moment: 'c2', powers: [2, 0] },
  { name: 'Saa', moment: 'c2', powers: [0, 2] },
  { name: 'Sua', moment: 'c2', powers: [1, 1] },
  { name: 'Tuaa', moment: 'c3', powers: [1, 2] },
  { name: 'Tuua', moment: 'c3', powers: [2, 1] },
  { name: 'Taaa', moment: 'c3', powers: [0, 3] },
  { name: 'Kuuaa', moment: 'k4', powers: [2, 2] },
  { name: 'Kaaaa', moment: 'k4', powers: [0, 4] },
];

/** A term's position in silentElboTerms (-1 for a name that is none of them). */
export const silentElboTermIndex = (name: string): number => silentElboTerms.findIndex((t) => t.name === name);

/**
 * Per latent component (B x d each): the mean and the central moments c2, c3 and the fourth
 * cumulant k4 = c4 - 3 c2^2. c3/k4 omitted means zero (Gaussian), which skips their terms.
 */
export interface LatentMoments {
  readonly mean: Tensor;
  readonly c2: Tensor;
  readonly c3?: Tensor | undefined;
  readonly k4?: Tensor | undefined;
}

/** The linear decoder of the learnable-variance model: U = W_mu z + b_mu, A = W_a z + b_a. */
export interface LearnableDecoderWeights {
  readonly wMu: Tensor; readonly bMu: Tensor; readonly wA: Tensor; readonly bA: Tensor;
}

type Named = [string, Tensor | undefined];

function validate(op: string, moments: LatentMoments, weights: Named[], x: Tensor): void {
  const { mean, c2, c3, k4 } = moments;
  const all: Named[] = [['mean', mean], ['c2', c2], ['c3', c3], ['k4', k4], ...weights, ['x', x]];
  checkCompatible(op, Object.fromEntries(all.filter((e): e is [string, Tensor] => e[1] !== undefined)));
  if (mean.rank !== 2) throw new Error(`${op}: mean must be [batch, latent], got ${shapeString(mean)}`);
  const [batch, latent] = mean.shape as [number, number];
  for (const [name, t] of [['c2', c2], ['c3', c3], ['k4', k4]] as Named[])
    if (t && (t.rank !== 2 || t.shape[0] !== batch || t.shape[1] !== latent))
      throw new Error(`${op}: ${name} has shape ${shapeString(t)} but mean is ${shapeString(mean)}`);
  if (x.rank !== 2 || x.shape[0] !== batch) throw new Error(`${op}: x must be [${batch}, pixels], got ${shapeString(x)}`);
  const pixels = x.shape[1]!;
  for (const [name, t] of weights) {
    const expected = name.startsWith('w') ? [pixels, latent] : [pixels];
    if (!t || t.rank !== expected.length || t.shape.some((d, i) => d !== expected[i]))
      throw new Error(`${op}: ${name} must be [${expected}] for ${latent} latents and ${pixels} pixels, got ${t ? shapeString(t) : 'nothing'}`);
  }
  // Finiteness is checked where it is cheap to look (a synchronous backend); a GPU run relies
  // on anomaly mode instead of stalling the queue on every call.
  if (!mean.backend.readSync) return;
  for (const [name, t] of all) {
    if (!t) continue;
    const values = t.dataSync();
    const bad = firstNonFinite(values);
    if (bad >= 0) throw new Error(`${op}: ${name} ${shapeString(t)} holds ${values[bad]} at flat index ${bad}`);
    if (name === 'c2') {
      const negative = firstNegative(values);
      if (negative >= 0) throw new Error(`${op}: c2 (the variance) ${shapeString(t)} is negative (${values[negative]}) at flat index ${negative}`);
    }
  }
}

// Plain loops rather than findIndex with a callback, which took about 5 ms per call over the
// benchmark's operands (B = 64, d = 200, k = 784): a tenth of the fused op on one thread.
function firstNonFinite(values: FloatArray): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}
function firstNegative(values: FloatArray): number {
  for (let i = 0; i < values.length; i++) if (values[i]! < 0) return i;
  return -1;
}

function runFused(op: string, operands: Omit<SilentElboOperands, 'terms'>, inputs: Named[]): Tensor {
  const present = new Set(inputs.filter(([, t]) => t).map(([n]) => n));
  const names = operands.form === 'fixed' ? ['Ubar', 'Suu'] : silentElboTerms.filter((t) => present.has(t.moment)).map((t) => t.name);
  const full: SilentElboOperands = { ...operands, terms: silentElboTerms.filter((t) => names.includes(t.name)) };
  const x = inputs.find(([name]) => name === 'x')![1]!;
  const [batch, pixels] = x.shape as [number, number];
  const backend = x.backend;
  const out = empty([batch], x.dtype, backend);
  // What the forward saves exists only for the backward: nothing under noGrad (evaluation),
  // and the backend says what (by default the partials [terms, B, k]; WebGPU recomputes them).
  const differentiable = isGradEnabled() && inputs.some(([, t]) => t?.requiresGrad);
  const savedShape = !differentiable ? null
    : backend.silentElboSavedShape ? backend.silentElboSavedShape(full) : [full.terms.length, batch, pixels];
  const saved = savedShape ? empty(savedShape, x.dtype, backend) : null;
  backend.silentElbo(full, out.storage, saved?.storage ?? null);
  if (!differentiable) return out;
  const live = inputs.filter((e): e is [string, Tensor] => e[1] !== undefined);
  return record(out, op, live.map(([, t]) => t), (gradOut) => {
    const grads = Object.fromEntries(live.map(([name, t]) => [name, t.requiresGrad ? empty(t.shape, t.dtype, backend) : null])) as Record<string, Tensor | null>;
    const storages = {} as SilentElboGradients;
    for (const key of ['mean', 'c2', 'c3', 'k4', 'wMu', 'bMu', 'wA', 'bA', 'x'] as const) storages[key] = grads[key]?.storage ?? null;
    backend.silentElboBackward(full, saved?.storage ?? null, contiguous(gradOut), storages);
    return live.map(([name]) => grads[name] ?? null);
  });
}

const asContiguous = (t: Tensor | undefined): Tensor | undefined => (t ? contiguous(t) : undefined);

/**
 * Fixed variance (paper Sec. 3, Eq. 4): per example
 *   sum_j -( (x_j - Ubar_j)^2 + sum_i w_ji^2 c2_i ) / (2 sigma2) - (k/2) log(2 pi sigma2).
 * mean, c2: [B, d]; weight: [k, d]; bias: [k]; x: [B, k]. Returns [B].
 */
export const expectedLogLikelihoodFixed = defineOp('expectedLogLikelihoodFixed', true,
  (moments: LatentMoments, weight: Tensor, bias: Tensor, x: Tensor, sigma2: number): Tensor => {
    const op = 'expectedLogLikelihoodFixed';
    if (!(sigma2 > 0) || !Number.isFinite(sigma2)) throw new Error(`${op}: sigma2 must be a positive number, got ${sigma2}`);
    // Named as the caller passed them (validate's shape rule keys on the leading 'w').
    validate(op, { mean: moments.mean, c2: moments.c2 }, [['weight', weight], ['bias', bias]], x);
    const [mean, c2, wMu, bMu, xc] = [moments.mean, moments.c2, weight, bias, x].map((t) => contiguous(t)) as Tensor[];
    return runFused(op, { form: 'fixed', mean: mean!, c2: c2!, c3: null, k4: null, wMu: wMu!, bMu: bMu!, wA: null, bA: null, x: xc!, sigma2 },
      [['mean', mean], ['c2', c2], ['wMu', wMu], ['bMu', bMu], ['x', xc]]);
  });

/**
 * Learnable variance (paper Sec. 4.1, Eq. 7): per example
 *   sum_j -1/2 E[D_j^2 A_j^2] + 1/2 E[log A_j^2] - 1/2 log(2 pi),
 * with E[log A^2] by the second-order Taylor expansion around E[A^2] (the only approximation).
 */
export const expectedLogLikelihoodLearnable = defineOp('expectedLogLikelihoodLearnable', true,
  (moments: LatentMoments, decoder: LearnableDecoderWeights, x: Tensor): Tensor => {
    const op = 'expectedLogLikelihoodLearnable';
    const weights: Named[] = [['wMu', decoder.wMu], ['bMu', decoder.bMu], ['wA', decoder.wA], ['bA', decoder.bA]];
    validate(op, moments, weights, x);
    const m = { mean: contiguous(moments.mean), c2: contiguous(moments.c2), c3: asContiguous(moments.c3), k4: asContiguous(moments.k4) };
    const [wMu, bMu, wA, bA, xc] = [decoder.wMu, decoder.bMu, decoder.wA, decoder.bA, x].map((t) => contiguous(t)) as Tensor[];
    const views: Omit<SilentElboOperands, 'terms'> = {
      form: 'learnable', mean: m.mean, c2: m.c2, c3: (m.c3 ?? null) as View | null, k4: (m.k4 ?? null) as View | null,
      wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA!, x: xc!, sigma2: 1,
    };
    return runFused(op, views, [['mean', m.mean], ['c2', m.c2], ['c3', m.c3], ['k4', m.k4], ['wMu', wMu], ['bMu', bMu], ['wA', wA], ['bA', bA], ['x', xc]]);
  });
