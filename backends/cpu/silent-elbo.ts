// The fused silent-ELBO kernels on the CPU. Every contraction sum_i u^p a^q moment_i is one
// GEMM of the moment matrix (B x d) with an elementwise power of the weights (k x d), except
// the one term whose coefficient is the same for every pixel (compile, below), so the
// blocked, two-core GEMM does the heavy lifting; the per-pixel epilogue (the closed forms of
// docs/silent-elbo.md, generated from engine/ops/silent-elbo-pixel.ts) runs in one loop that
// also writes the partial derivatives the backward needs. Nothing of size B x d x k is ever formed.
import type { SilentElboGradients, SilentElboOperands, SilentElboTerm, Storage, View } from '../../engine/backend.js';
import type { FloatArray } from '../../engine/dtype.js';
import { silentElboTerms } from '../../engine/ops/silent-elbo.js';
import { pixelExpression, pixelForms, type PixelForm } from '../../engine/ops/silent-elbo-pixel.js';
import { allocShared } from './parallel.js';

export type Gemm = (M: number, N: number, K: number, A: FloatArray, aOffset: number, transA: boolean,
  B: FloatArray, bOffset: number, transB: boolean, C: FloatArray, cOffset: number, accumulate: boolean) => void;

type DataOf = (s: Storage) => FloatArray;

/** The elementwise powers u^p a^q of the k x d weights, by `${p},${q}`. */
type Powers = ReadonlyMap<string, Float64Array>;
const key = (p: number, q: number): string => `${p},${q}`;

/**
 * Every power the terms use and the lower ones the chain rule needs (d/du u^p a^q =
 * p u^(p-1) a^q), each listed after the power it is built from.
 */
function powersNeeded(terms: readonly SilentElboTerm[]): string[] {
  const wanted = new Set<string>();
  const want = (p: number, q: number): void => {
    if (p + q === 0 || wanted.has(key(p, q))) return;
    if (q > 0) want(p, q - 1); else want(p - 1, q);
    wanted.add(key(p, q));
  };
  for (const { powers: [p, q] } of terms) { want(p, q); if (p > 0) want(p - 1, q); if (q > 0) want(p, q - 1); }
  return [...wanted];
}

/**
 * The `names` powers of the k x d weights, one multiply each from a lower one: computed once
 * per call rather than once per use (the backward uses each up to three times).
 */
function weightPowers(c: Context, names: readonly string[], into: Float64Array): Powers {
  const size = c.k * c.d, powers = new Map<string, Float64Array>();
  names.forEach((name, slot) => {
    const [p, q] = name.split(',').map(Number) as [number, number];
    const out = into.subarray(slot * size, (slot + 1) * size);
    const lower = q > 0 ? powers.get(key(p, q - 1)) : powers.get(key(p - 1, q));
    const w = q > 0 ? c.a! : c.u, off = q > 0 ? c.aOff : c.uOff;
    if (lower) for (let i = 0; i < size; i++) out[i] = lower[i]! * w[off + i]!;
    else for (let i = 0; i < size; i++) out[i] = w[off + i]!;
    powers.set(name, out);
  });
  return powers;
}

let scratch: Float64Array<ArrayBufferLike> = new Float64Array(0);
/**
 * One growing scratch region, carved into pieces per call (no allocation per step); shared
 * memory, so the GEMMs on it can use both cores.
 */
function scratchPieces(sizes: readonly number[]): Float64Array[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (scratch.length < total) scratch = allocShared('float64', total) as Float64Array;
  let offset = 0;
  return sizes.map((n) => scratch.subarray(offset, (offset += n)));
}

const SLOTS = silentElboTerms.map((t) => t.name);
const UBAR = SLOTS.indexOf('Ubar'), ABAR = SLOTS.indexOf('Abar');

/**
 * Per-pixel value and partials: reads the contractions v[slot] (biases included, silentElboTerms
 * order, absent ones 0), writes d(value)/d(contraction) into dv[slot], returns the pixel's term.
 */
type Epilogue = (x: number, v: Float64Array, dv: Float64Array, sigma2: number) => number;

/**
 * The form's closed form (engine/ops/silent-elbo-pixel.ts) as JavaScript, built once. Its
 * pixel-independent term (PixelForm.constant: Suu fixed, Kuuaa learnable) enters every pixel's
 * value as coefficient x contraction with one coefficient for all pixels, so it needs no GEMM:
 * summed over pixels it is coefficient x (m_b . colsum_j of its weight power), and its gradients
 * broadcast the same column sums. The epilogue therefore reads it as 0 and skips its partial.
 * Halves the fixed form's GEMMs, and saves 3 of the learnable form's 30.
 */
function compile(form: PixelForm): { epilogue: Epilogue; coefficient: (sigma2: number) => number } {
  const js = (expression: string): string => pixelExpression(expression, 'js');
  const body = [
    ...SLOTS.map((name, slot) => `const ${name} = ${name === form.constant ? '0' : `v[${slot}]`};`),
    ...form.lets.map(([name, expression]) => `const ${name} = ${js(expression)};`),
    ...Object.entries(form.partials).filter(([name]) => name !== form.constant)
      .map(([name, expression]) => `dv[${SLOTS.indexOf(name)}] = ${js(expression)};`),
    `return ${js(form.value)};`,
  ];
  return {
    epilogue: new Function('x', 'v', 'dv', 'sigma2', body.join('\n')) as Epilogue,
    coefficient: new Function('sigma2', `return ${js(form.partials[form.constant]!)};`) as (sigma2: number) => number,
  };
}
const compiled: Record<SilentElboOperands['form'], ReturnType<typeof compile>> = {
  fixed: compile(pixelForms.fixed), learnable: compile(pixelForms.learnable),
};

/** colsum[i] = sum_j power[j, i] over the k x d weight power. */
function columnSums(power: Float64Array, k: number, d: number, colsum: Float64Array): void {
  colsum.fill(0);
  for (let j = 0; j < k; j++) for (let i = 0; i < d; i++) colsum[i]! += power[j * d + i]!;
}

interface Context {
  B: number; d: number; k: number;
  /** The terms contracted by GEMM, per pixel; `summed` is the one (if any) that needs none. */
  terms: readonly SilentElboTerm[];
  summed: { term: SilentElboTerm; coefficient: number } | null;
  moment(t: SilentElboTerm): View;
  u: FloatArray; uOff: number; a: FloatArray | null; aOff: number;
  data: DataOf;
}

function context(o: SilentElboOperands, data: DataOf): Context {
  const [B, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const term = o.terms.find((t) => t.name === pixelForms[o.form].constant);
  return {
    B, d, k, data,
    terms: o.terms.filter((t) => t !== term),
    summed: term ? { term, coefficient: compiled[o.form].coefficient(o.sigma2) } : null,
    moment: (t) => (t.moment === 'mean' ? o.mean : o[t.moment]!),
    u: data(o.wMu.storage), uOff: o.wMu.offset,
    a: o.wA ? data(o.wA.storage) : null, aOff: o.wA?.offset ?? 0,
  };
}

/** Sums[t][b][j] = sum_i power_t(W)_ji moment_t[b, i]. */
function contract(c: Context, gemm: Gemm, sums: Float64Array, powers: Powers): void {
  c.terms.forEach((t, n) => {
    const m = c.moment(t);
    gemm(c.B, c.k, c.d, c.data(m.storage), m.offset, false, powers.get(key(...t.powers))!, 0, true, sums, n * c.B * c.k, false);
  });
}

export function silentElboForward(o: SilentElboOperands, out: Storage, partialsStorage: Storage | null, data: DataOf, gemm: Gemm): void {
  const c = context(o, data);
  const { B, d, k, terms } = c;
  const names = powersNeeded(o.terms);
  const [sums, powerScratch, colsum] = scratchPieces([terms.length * B * k, names.length * k * d, d]);
  const powers = weightPowers(c, names, powerScratch!);
  contract(c, gemm, sums!, powers);
  const slots = terms.map((t) => SLOTS.indexOf(t.name));
  const x = data(o.x.storage), xOff = o.x.offset;
  const bMu = data(o.bMu.storage), bMuOff = o.bMu.offset;
  const bA = o.bA ? data(o.bA.storage) : null, bAOff = o.bA?.offset ?? 0;
  const result = data(out);
  const partials = partialsStorage ? data(partialsStorage) : null;
  const { epilogue } = compiled[o.form];
  const v = new Float64Array(silentElboTerms.length), dv = new Float64Array(silentElboTerms.length);
  const plane = B * k;
  for (let b = 0; b < B; b++) {
    let total = 0;
    for (let j = 0; j < k; j++) {
      const at = b * k + j;
      for (let n = 0; n < slots.length; n++) v[slots[n]!] = sums![n * plane + at]!;
      v[UBAR]! += bMu[bMuOff + j]!;
      if (bA) v[ABAR]! += bA[bAOff + j]!;
      total += epilogue(x[xOff + at]!, v, dv, o.sigma2);
      if (partials) for (let n = 0; n < slots.length; n++) partials[n * plane + at] = dv[slots[n]!]!;
    }
    result[b] = total;
  }
  if (!c.summed) return;
  const { term, coefficient } = c.summed;
  columnSums(powers.get(key(...term.powers))!, k, d, colsum!);
  const m = c.moment(term), md = data(m.storage);
  for (let b = 0; b < B; b++) {
    let dot = 0;
    for (let i = 0; i < d; i++) dot += md[m.offset + b * d + i]! * colsum![i]!;
    result[b]! += coefficient * dot;
  }
}

export function silentElboBackward(o: SilentElboOperands, partialsStorage: Storage, gradOut: View, grads: SilentElboGradients, data: DataOf, gemm: Gemm): void {
  const c = context(o, data);
  const { B, d, k, terms } = c;
  const plane = B * k;
  const names = powersNeeded(o.terms);
  const [scaled, powerScratch, h, colsum] = scratchPieces([terms.length * plane, names.length * k * d, k * d, d]);
  const powers = weightPowers(c, names, powerScratch!);
  const one = (p: number, q: number): Float64Array | null => (p + q === 0 ? null : powers.get(key(p, q))!);
  const partials = data(partialsStorage);
  const g = data(gradOut.storage), gOff = gradOut.offset;
  for (let n = 0; n < terms.length; n++)
    for (let b = 0; b < B; b++) {
      const gb = g[gOff + b]!;
      for (let j = 0; j < k; j++) scaled![n * plane + b * k + j] = gb * partials[n * plane + b * k + j]!;
    }
  const outputs = [grads.mean, grads.c2, grads.c3, grads.k4, grads.wMu, grads.wA].filter((s): s is Storage => s !== null);
  for (const s of outputs) data(s).fill(0);
  // The chain rule through u^p a^q from h = dL/d(u^p a^q) into the weight gradients.
  const chain = ([p, q]: readonly [number, number]): void => {
    const into = (target: Storage | null, factor: number, lower: Float64Array | null): void => {
      if (!target || factor === 0) return;
      const gw = data(target);
      if (lower) for (let i = 0; i < gw.length; i++) gw[i]! += factor * lower[i]! * h![i]!;
      else for (let i = 0; i < gw.length; i++) gw[i]! += factor * h![i]!;
    };
    into(grads.wMu, p, p > 0 ? one(p - 1, q) : null);
    into(grads.wA, q, q > 0 ? one(p, q - 1) : null);
  };
  terms.forEach((t, n) => {
    const m = c.moment(t);
    // Moment gradient: contract the scaled partials over pixels with the weight power.
    const gMoment = grads[t.moment];
    if (gMoment) gemm(B, d, k, scaled!, n * plane, false, powers.get(key(...t.powers))!, 0, false, data(gMoment), 0, true);
    // Weight gradients: contract over the batch, then the chain rule.
    if (!grads.wMu && !grads.wA) return;
    gemm(k, d, B, scaled!, n * plane, true, data(m.storage), m.offset, false, h!, 0, false);
    chain(t.powers);
  });
  if (c.summed) {
    // value_b += coef m_b . colsum: d/dm_b = coef g_b colsum, d/dpower[j, i] = coef sum_b g_b m_bi.
    const { term, coefficient } = c.summed;
    const m = c.moment(term), md = data(m.storage);
    const gMoment = grads[term.moment];
    if (gMoment) {
      columnSums(powers.get(key(...term.powers))!, k, d, colsum!);
      const gm = data(gMoment);
      for (let b = 0; b < B; b++) {
        const gb = coefficient * g[gOff + b]!;
        for (let i = 0; i < d; i++) gm[b * d + i]! += gb * colsum![i]!;
      }
    }
    if (grads.wMu || grads.wA) {
      colsum!.fill(0);
      for (let b = 0; b < B; b++) {
        const gb = coefficient * g[gOff + b]!;
        for (let i = 0; i < d; i++) colsum![i]! += gb * md[m.offset + b * d + i]!;
      }
      for (let j = 0; j < k; j++) h!.set(colsum!, j * d);
      chain(term.powers);
    }
  }
  // Ubar = u.m + bMu and D = x - Ubar, so the bias and data gradients are sums of one plane.
  const planeOf = (name: string): number => terms.findIndex((t) => t.name === name) * plane;
  const biasGradient = (target: Storage | null, name: string): void => {
    if (!target) return;
    const out = data(target).fill(0), start = planeOf(name);
    for (let b = 0; b < B; b++) for (let j = 0; j < k; j++) out[j]! += scaled![start + b * k + j]!;
  };
  biasGradient(grads.bMu, 'Ubar');
  biasGradient(grads.bA, 'Abar');
  if (grads.x) {
    const out = data(grads.x), start = planeOf('Ubar');
    for (let i = 0; i < plane; i++) out[i] = -scaled![start + i]!;
  }
}
