// The fused silent-ELBO kernels on the CPU. Every contraction sum_i u^p a^q moment_i is a GEMM
// of the moment matrix (B x d) with an elementwise power of the weights (k x d), except the one
// term whose coefficient is the same for every pixel (silent-elbo-epilogue.ts). The GEMMs of a
// pass are independent, so they run as one batch of whole products dealt over the pool
// (gemm-jobs.ts). The per-pixel epilogue (the closed forms of docs/silent-elbo.md, generated from
// engine/ops/silent-elbo-pixel.ts) runs in one loop that also writes the partial derivatives
// the backward needs; the powers and the chain rule through them are generated loops too
// (silent-elbo-powers.ts). Nothing of size B x d x k is ever formed.
import type { SilentElboGradients, SilentElboOperands, SilentElboTerm, Storage, View } from '../../engine/backend.js';
import type { DType, FloatArray } from '../../engine/dtype.js';
import { pixelForms } from '../../engine/ops/silent-elbo-pixel.js';
import type { Product, runGemmJobs } from './gemm-jobs.js';
import { heapAddress, heapArray, heapOwner, heapRelease } from './heap.js';
import { runBinary } from './elementwise.js';
import { allocShared } from './parallel.js';
import { constantCoefficient, pixels } from './silent-elbo-epilogue.js';
import { chainRule, weightPowers, type Weights } from './silent-elbo-powers.js';

/** Runs a batch of independent GEMMs: gemm-jobs.ts's runGemmJobs. */
export type GemmJobs = typeof runGemmJobs;

type DataOf = (s: Storage) => FloatArray;

/** Scratch regions: one per element type, and float64 column vectors for either. */
type Region = DType | 'columns';
const scratch: Record<Region, FloatArray> = { float32: new Float32Array(0), float64: new Float64Array(0), columns: new Float64Array(0) };
/**
 * One growing scratch region per element type, carved into pieces per call (no allocation per
 * step); in the heap (heap.ts), so the workers address it and the GEMMs pack from it in place
 * (else shared memory). The contractions' operands and results take the inputs' type: float32
 * products run the float32 Wasm GEMM, and float64 ones (the gradient-check reference) stay
 * float64 throughout. The summed term's column vectors are float64 whatever the type.
 */
function scratchPieces(region: Region, sizes: readonly number[]): FloatArray[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (scratch[region].length < total) {
    const old = scratch[region], at = heapAddress(old), dtype = region === 'columns' ? 'float64' : region;
    if (at !== null && heapOwner()) heapRelease(at, old.byteLength);
    scratch[region] = heapArray(dtype, total) ?? allocShared(dtype, total);
  }
  let offset = 0;
  return sizes.map((n) => scratch[region].subarray(offset, (offset += n)));
}

/** Two float64 vectors of d zeros: the summed term's column sums and their gradient. */
function columnVectors(d: number): [Float64Array, Float64Array] {
  const [colsum, hs] = scratchPieces('columns', [d, d]) as [Float64Array, Float64Array];
  return [colsum.fill(0), hs.fill(0)];
}

interface Context extends Weights {
  B: number;
  /**
   * The terms contracted by GEMM, per pixel, in silentElboTerms order; planes [B, k] and
   * powers [k, d] are laid out by this index. `summed` is the one (if any) that needs no GEMM.
   */
  terms: readonly SilentElboTerm[];
  summed: SilentElboTerm | null;
  coefficient: number;
  moment(t: SilentElboTerm): View;
  data: DataOf;
  /** The element type of every operand (the op checks they agree), and so of the scratch. */
  dtype: DType;
}

function context(o: SilentElboOperands, data: DataOf): Context {
  const [B, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const term = o.terms.find((t) => t.name === pixelForms[o.form].constant);
  const u = data(o.wMu.storage);
  return {
    B, d, k, data, dtype: u instanceof Float32Array ? 'float32' : 'float64',
    terms: o.terms.filter((t) => t !== term),
    summed: term ?? null, coefficient: term ? constantCoefficient(o.form, o.sigma2) : 0,
    moment: (t) => (t.moment === 'mean' ? o.mean : o[t.moment]!),
    u, uOff: o.wMu.offset,
    a: o.wA ? data(o.wA.storage) : null, aOff: o.wA?.offset ?? 0,
  };
}

/**
 * dL/d(sum) = gradOut[b] x partial, over the planes [term][b][j]: the backend's elementwise
 * multiply with gradOut broadcast along terms and pixels (Wasm SIMD and the pool where they apply).
 */
function scale(scaled: FloatArray, partials: FloatArray, g: FloatArray, gOff: number, terms: number, B: number, k: number): void {
  const shape = [terms, B, k], planes = { strides: [B * k, k, 1], offset: 0 };
  runBinary('mul', shape, { data: scaled, ...planes }, { data: partials, ...planes }, { data: g, offset: gOff, strides: [0, 1, 0] });
}

export function silentElboForward(o: SilentElboOperands, out: Storage, partialsStorage: Storage | null, data: DataOf, gemms: GemmJobs): void {
  const c = context(o, data);
  const { B, d, k, terms } = c;
  const plane = B * k;
  const result = data(out);
  const [sums, powers] = scratchPieces(c.dtype, [terms.length * plane, terms.length * k * d]);
  const [colsum] = columnVectors(d);
  weightPowers(c, powers!, colsum);
  // sums[n][b][j] = sum_i power_n[j, i] moment_n[b, i].
  gemms(terms.map((t, n) => {
    const m = c.moment(t);
    return [{ M: B, N: k, K: d, A: data(m.storage), aOffset: m.offset, transA: false, B: powers!, bOffset: n * k * d, transB: true,
      C: sums!, cOffset: n * plane, accumulate: false }];
  }));
  pixels(o.form, terms, sums!, {
    x: data(o.x.storage), xOff: o.x.offset, bMu: data(o.bMu.storage), bMuOff: o.bMu.offset,
    bA: o.bA ? data(o.bA.storage) : null, bAOff: o.bA?.offset ?? 0,
    partials: partialsStorage ? data(partialsStorage) : null, result, B, k, sigma2: o.sigma2,
  });
  if (!c.summed) return;
  const { summed: term, coefficient } = c;
  const m = c.moment(term), md = data(m.storage);
  for (let b = 0; b < B; b++) {
    let dot = 0;
    for (let i = 0; i < d; i++) dot += md[m.offset + b * d + i]! * colsum[i]!;
    result[b]! += coefficient * dot;
  }
}

export function silentElboBackward(o: SilentElboOperands, partialsStorage: Storage, gradOut: View, grads: SilentElboGradients, data: DataOf, gemms: GemmJobs): void {
  const c = context(o, data);
  const { B, d, k, terms } = c;
  const plane = B * k;
  const [scaled, powers, h] = scratchPieces(c.dtype, [terms.length * plane, terms.length * k * d, terms.length * k * d]);
  const [colsum, hs] = columnVectors(d);
  weightPowers(c, powers!, colsum);
  const partials = data(partialsStorage);
  const g = data(gradOut.storage), gOff = gradOut.offset;
  scale(scaled!, partials, g, gOff, terms.length, B, k);
  for (const s of [grads.mean, grads.c2, grads.c3, grads.k4]) if (s) data(s).fill(0);
  const jobs: Product[][] = [];
  // Moment gradients: each moment's terms contract their scaled partials over the pixels with
  // their powers, accumulating in term order on one thread.
  for (const name of ['mean', 'c2', 'c3', 'k4'] as const) {
    const gMoment = grads[name];
    if (!gMoment) continue;
    jobs.push(terms.flatMap((t, n) => t.moment !== name ? [] : [{ M: B, N: d, K: k, A: scaled!, aOffset: n * plane, transA: false,
      B: powers!, bOffset: n * k * d, transB: false, C: data(gMoment), cOffset: 0, accumulate: true }]));
  }
  jobs.sort((x, y) => y.length - x.length);
  // dL/d(power_n) (k x d, slot n of h): contract the scaled partials over the batch.
  const weights = grads.wMu !== null || grads.wA !== null;
  if (weights) terms.forEach((t, n) => {
    const m = c.moment(t);
    jobs.push([{ M: k, N: d, K: B, A: scaled!, aOffset: n * plane, transA: true, B: data(m.storage), bOffset: m.offset, transB: false,
      C: h!, cOffset: n * k * d, accumulate: false }]);
  });
  gemms(jobs);
  // The summed term: value_b += coef m_b . colsum, so d/dm_b = coef g_b colsum and
  // d/dpower[j, i] = hs[i] = coef sum_b g_b m_bi for every j.
  if (c.summed) {
    const { summed: term, coefficient } = c;
    const m = c.moment(term), md = data(m.storage);
    const gMoment = grads[term.moment];
    if (gMoment) {
      const gm = data(gMoment);
      for (let b = 0; b < B; b++) {
        const gb = coefficient * g[gOff + b]!;
        for (let i = 0; i < d; i++) gm[b * d + i]! += gb * colsum[i]!;
      }
    }
    for (let b = 0; b < B; b++) {
      const gb = coefficient * g[gOff + b]!;
      for (let i = 0; i < d; i++) hs[i]! += gb * md[m.offset + b * d + i]!;
    }
  }
  // The chain rule through u^p a^q into the weight gradients.
  chainRule(c, h!, hs, grads.wMu ? data(grads.wMu) : null, grads.wA ? data(grads.wA) : null);
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
