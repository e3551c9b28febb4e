// The elementwise work on the k x d weights around the silent ELBO's GEMMs (silent-elbo.ts):
// the powers u^p a^q that the GEMMs read, and the chain rule from dL/d(u^p a^q) back to dL/du
// and dL/da. Each is one loop over the weights that keeps every power of the element in
// registers, where building each power in an array of its own and chaining term by term
// walked the k x d weights once per power and twice per chain-rule term. Every power is one
// multiply from the lower power powersNeeded lists before it, so float64 gets the bits the
// arrays gave. The loops are described once (weightLoops) and built from that description as
// generated JavaScript (the reference) and as WebAssembly (wasm/silent-elbo-weights.ts, the same
// bits, rows dealt over the pool), which runs where every operand is in the heap.
import type { SilentElboTerm } from '../../engine/backend.js';
import type { FloatArray } from '../../engine/dtype.js';
import { silentElboTermIndex, silentElboTerms } from '../../engine/ops/silent-elbo.js';
import { getCpuKernels } from './gemm.js';
import { generatedFunction } from './generated.js';
import { heap, heapElementAddress } from './heap.js';
import { defineKernel, parallelFor } from './parallel.js';
import { f64LanesAvailable } from './wasm/f64-lanes.js';
import { weightsModule, type ChainPart, type Powers, type WeightLoops } from './wasm/silent-elbo-weights.js';

/**
 * Every power the terms use and the lower ones the chain rule needs (d/du u^p a^q =
 * p u^(p-1) a^q), each listed after the power it is built from.
 */
function powersNeeded(terms: readonly SilentElboTerm[]): Powers[] {
  const wanted = new Map<string, Powers>();
  const want = (p: number, q: number): void => {
    if (p + q === 0 || wanted.has(`${p},${q}`)) return;
    if (q > 0) want(p, q - 1); else want(p - 1, q);
    wanted.set(`${p},${q}`, [p, q]);
  };
  for (const { powers: [p, q] } of terms) { want(p, q); if (p > 0) want(p - 1, q); if (q > 0) want(p, q - 1); }
  return [...wanted.values()];
}

/** The weights and the terms a call works on (silent-elbo.ts's Context). */
export interface Weights {
  u: FloatArray; uOff: number; a: FloatArray | null; aOff: number; k: number; d: number;
  terms: readonly SilentElboTerm[]; summed: SilentElboTerm | null;
}

/**
 * What the loops compute for these terms: the powers, and per target the chain rule's parts,
 * p u^(p-1) a^q h and q u^p a^(q-1) h summed in term order with the summed term last.
 */
function weightLoops(terms: readonly SilentElboTerm[], summed: SilentElboTerm | null, mu: boolean, a: boolean): WeightLoops {
  const all = summed ? [...terms, summed] : terms;
  const parts = (lower: (p: number, q: number) => Powers | null, factor: (p: number, q: number) => number): ChainPart[] =>
    all.flatMap((t, term) => {
      const [p, q] = t.powers, f = factor(p, q);
      return f === 0 ? [] : [{ factor: f, lower: lower(p, q), term }];
    });
  return {
    powers: powersNeeded(all), termPowers: terms.map((t) => t.powers), summed: summed?.powers ?? null,
    chainMu: mu ? parts((p, q) => (p - 1 + q > 0 ? [p - 1, q] : null), (p) => p) : null,
    chainA: a ? parts((p, q) => (p + q - 1 > 0 ? [p, q - 1] : null), (_p, q) => q) : null,
  };
}

/** The local holding u^p a^q in the generated loops. */
const local = ([p, q]: Powers): string => `w${p}_${q}`;

/** The generated loop over the elements idx = j·d + i of the k x d weights, every power as a local. */
function loop(loops: WeightLoops, body: readonly string[]): string {
  return [
    'const size = k * d;',
    'for (let j = 0, idx = 0; j < k; j++) for (let i = 0; i < d; i++, idx++) {',
    '  const u0 = u[uOff + idx];',
    loops.powers.some(([, q]) => q > 0) ? '  const a0 = a[aOff + idx];' : '',
    ...loops.powers.map(([p, q]) => {
      const w = q > 0 ? 'a0' : 'u0', lower: Powers = q > 0 ? [p, q - 1] : [p - 1, q];
      return `  const ${local([p, q])} = ${lower[0] + lower[1] === 0 ? w : `${local(lower)} * ${w}`};`;
    }),
    ...body.map((line) => `  ${line}`),
    '}',
  ].join('\n');
}

type PowersLoop = (u: FloatArray, uOff: number, a: FloatArray | null, aOff: number, out: FloatArray, colsum: Float64Array, k: number, d: number) => void;
type ChainLoop = (u: FloatArray, uOff: number, a: FloatArray | null, aOff: number, h: FloatArray, hs: Float64Array,
  gwMu: FloatArray | null, gwA: FloatArray | null, k: number, d: number) => void;

const powersLoop = (loops: WeightLoops): PowersLoop => {
  const body = loops.termPowers.map((powers, n) => `out[${n} * size + idx] = ${local(powers)};`);
  if (loops.summed) body.push(`colsum[i] += ${local(loops.summed)};`);
  return generatedFunction<PowersLoop>('weight_powers', ['u', 'uOff', 'a', 'aOff', 'out', 'colsum', 'k', 'd'], loop(loops, body));
};

const chainLoop = (loops: WeightLoops): ChainLoop => {
  const read = (n: number): string => (n < loops.termPowers.length ? `h[${n} * size + idx]` : 'hs[i]');
  const sum = (target: string, parts: readonly ChainPart[]): string =>
    `{ let g = 0; ${parts.map(({ factor, lower, term }) => `g += ${factor} * ${lower ? `${local(lower)} * ` : ''}${read(term)};`).join(' ')} ${target}[idx] = g; }`;
  const body = [...(loops.chainMu ? [sum('gwMu', loops.chainMu)] : []), ...(loops.chainA ? [sum('gwA', loops.chainA)] : [])];
  return generatedFunction<ChainLoop>('weight_chain_rule', ['u', 'uOff', 'a', 'aOff', 'h', 'hs', 'gwMu', 'gwA', 'k', 'd'], loop(loops, body));
};

/** The loops of a set of terms and targets, described and compiled once each. */
interface Built { id: string; loops: WeightLoops; powers?: PowersLoop; chain?: ChainLoop }
const built = new Map<string, Built>();

function describe(termIndices: readonly number[], summedIndex: number, mu: boolean, a: boolean): Built {
  const id = `${termIndices.join(',')}|${summedIndex}|${mu ? 'mu' : ''}|${a ? 'a' : ''}`;
  let found = built.get(id);
  if (!found) {
    const terms = termIndices.map((n) => silentElboTerms[n]!), summed = summedIndex < 0 ? null : silentElboTerms[summedIndex]!;
    found = { id, loops: weightLoops(terms, summed, mu, a) };
    built.set(id, found);
  }
  return found;
}

const indexOf = (t: SilentElboTerm): number => silentElboTermIndex(t.name);

/**
 * Rows [start, end) of the weights in WebAssembly, on any thread. Args: powers (0) or chain
 * (1), float64?, the summed term's index (-1: none), targets (1 mu, 2 a), the term count and
 * indices, then d, k·d and the heap byte addresses: u, a, then out (powers) or h, hs, gwMu, gwA.
 */
const weightsKernel = defineKernel('silentgrad.silentElboWeights', import.meta.url, (_arrays, args, start, end) => {
  const a = Array.from(args);
  const count = a[4]!, terms = a.slice(5, 5 + count), rest = a.slice(5 + count);
  const b = describe(terms, a[2]!, (a[3]! & 1) !== 0, (a[3]! & 2) !== 0);
  const module = weightsModule(heap()!, b.id, b.loops, a[1] === 1 ? 'float64' : 'float32');
  (a[0] === 0 ? module.powers : module.chain)(start, end, ...rest);
});

/** Multiply-adds per weight, about (for the pool's threshold). */
const WEIGHT_WORK = 16;

/** Heap byte addresses of the arrays (null ones 0) at their offsets, or null if one is not in the heap. */
function addresses(arrays: readonly [FloatArray | null, number][]): number[] | null {
  const out: number[] = [];
  for (const [a, offset] of arrays) {
    const at = a === null ? 0 : heapElementAddress(a, offset);
    if (at === null) return null;
    out.push(at);
  }
  return out;
}

/** Whether the Wasm loops take these arrays: Wasm kernels on, a heap, one element type. */
function wasmApplies(w: Weights, arrays: readonly (FloatArray | null)[]): boolean {
  if (getCpuKernels() !== 'wasm' || heap() === null || !f64LanesAvailable()) return false;
  const size = w.u.BYTES_PER_ELEMENT;
  return [w.a, ...arrays].every((x) => x === null || x.BYTES_PER_ELEMENT === size);
}

/**
 * Term n's power into slot n of `out` (k x d each); the summed term's column sums into colsum
 * (d; see constantCoefficient in silent-elbo-epilogue.ts).
 */
export function weightPowers(w: Weights, out: FloatArray, colsum: Float64Array): void {
  colsum.fill(0);
  const b = describe(w.terms.map(indexOf), w.summed ? indexOf(w.summed) : -1, false, false);
  const at = wasmApplies(w, [out]) ? addresses([[w.u, w.uOff], [w.a, w.aOff], [out, 0], [colsum, 0]]) : null;
  if (!at) {
    b.powers ??= powersLoop(b.loops);
    b.powers(w.u, w.uOff, w.a, w.aOff, out, colsum, w.k, w.d);
    return;
  }
  const [u, a, outAt, colsumAt] = at as [number, number, number, number];
  const float64 = w.u instanceof Float64Array;
  parallelFor(weightsKernel, [], [0, float64 ? 1 : 0, w.summed ? indexOf(w.summed) : -1, 0, w.terms.length, ...w.terms.map(indexOf), w.d, w.k * w.d, u, a, outAt],
    w.k, 1, w.k * w.d * WEIGHT_WORK);
  if (w.summed) weightsModule(heap()!, b.id, b.loops, float64 ? 'float64' : 'float32').colsum(w.k, w.d, u, a, colsumAt);
}

/**
 * dL/du and dL/da (either target may be null) from h (slot n: dL/d(power of term n), k x d) and
 * hs (the summed term's, the same for every row j): the sum over terms of p u^(p-1) a^q h and
 * q u^p a^(q-1) h, in term order, the summed term last, each as (factor · lower) · h, from 0.
 */
export function chainRule(w: Weights, h: FloatArray, hs: Float64Array, gwMu: FloatArray | null, gwA: FloatArray | null): void {
  // One loop per set of targets: a test of each target per element cost time.
  const b = describe(w.terms.map(indexOf), w.summed ? indexOf(w.summed) : -1, gwMu !== null, gwA !== null);
  const at = wasmApplies(w, [h, gwMu, gwA]) ? addresses([[w.u, w.uOff], [w.a, w.aOff], [h, 0], [hs, 0], [gwMu, 0], [gwA, 0]]) : null;
  if (!at) {
    b.chain ??= chainLoop(b.loops);
    b.chain(w.u, w.uOff, w.a, w.aOff, h, hs, gwMu, gwA, w.k, w.d);
    return;
  }
  const targets = (gwMu ? 1 : 0) | (gwA ? 2 : 0);
  parallelFor(weightsKernel, [], [1, w.u instanceof Float32Array ? 0 : 1, w.summed ? indexOf(w.summed) : -1, targets, w.terms.length,
    ...w.terms.map(indexOf), w.d, w.k * w.d, ...at], w.k, 1, w.k * w.d * WEIGHT_WORK);
}
