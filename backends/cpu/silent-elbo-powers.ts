// The elementwise work on the k x d weights around the silent ELBO's GEMMs (silent-elbo.ts):
// the powers u^p a^q that the GEMMs read, and the chain rule from dL/d(u^p a^q) back to dL/du
// and dL/da. Each is one generated loop over the weights that keeps every power of the element
// in registers, where building each power in an array of its own and chaining term by term
// walked the k x d weights once per power and twice per chain-rule term. Every power is one
// multiply from the lower power powersNeeded lists before it, so float64 gets the bits the
// arrays gave.
import type { SilentElboTerm } from '../../engine/backend.js';
import type { FloatArray } from '../../engine/dtype.js';
import { generatedFunction } from './generated.js';

type Powers = SilentElboTerm['powers'];

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

/** The local holding u^p a^q in the generated loops. */
const local = (p: number, q: number): string => `w${p}_${q}`;

/** The generated loop over the elements idx = j·d + i of the k x d weights, every power as a local. */
function loop(terms: readonly SilentElboTerm[], body: readonly string[]): string {
  const powers = powersNeeded(terms);
  return [
    'const size = k * d;',
    'for (let j = 0, idx = 0; j < k; j++) for (let i = 0; i < d; i++, idx++) {',
    '  const u0 = u[uOff + idx];',
    powers.some(([, q]) => q > 0) ? '  const a0 = a[aOff + idx];' : '',
    ...powers.map(([p, q]) => {
      const w = q > 0 ? 'a0' : 'u0', [lp, lq] = q > 0 ? [p, q - 1] : [p - 1, q];
      return `  const ${local(p, q)} = ${lp + lq === 0 ? w : `${local(lp, lq)} * ${w}`};`;
    }),
    ...body.map((line) => `  ${line}`),
    '}',
  ].join('\n');
}

/** The weights and the terms a call works on (silent-elbo.ts's Context). */
export interface Weights {
  u: FloatArray; uOff: number; a: FloatArray | null; aOff: number; k: number; d: number;
  terms: readonly SilentElboTerm[]; summed: SilentElboTerm | null;
}

type PowersLoop = (u: FloatArray, uOff: number, a: FloatArray | null, aOff: number, out: FloatArray, colsum: Float64Array, k: number, d: number) => void;
type ChainLoop = (u: FloatArray, uOff: number, a: FloatArray | null, aOff: number, h: FloatArray, hs: Float64Array,
  gwMu: FloatArray | null, gwA: FloatArray | null, k: number, d: number) => void;

/** Generated loops by kind and terms, built once each. */
const loops = new Map<string, PowersLoop | ChainLoop>();
function cached<L extends PowersLoop | ChainLoop>(kind: string, w: Weights, build: (all: readonly SilentElboTerm[]) => L): L {
  const id = `${kind} ${w.terms.map((t) => t.name).join(',')} ${w.summed?.name ?? ''}`;
  let found = loops.get(id) as L | undefined;
  if (!found) {
    found = build(w.summed ? [...w.terms, w.summed] : w.terms);
    loops.set(id, found);
  }
  return found;
}

/**
 * Term n's power into slot n of `out` (k x d each); the summed term's column sums into colsum
 * (d; see constantCoefficient in silent-elbo-epilogue.ts).
 */
export function weightPowers(w: Weights, out: FloatArray, colsum: Float64Array): void {
  colsum.fill(0);
  cached('powers', w, (all) => {
    const body = w.terms.map((t, n) => `out[${n} * size + idx] = ${local(...t.powers)};`);
    if (w.summed) body.push(`colsum[i] += ${local(...w.summed.powers)};`);
    return generatedFunction<PowersLoop>('weight_powers', ['u', 'uOff', 'a', 'aOff', 'out', 'colsum', 'k', 'd'], loop(all, body));
  })(w.u, w.uOff, w.a, w.aOff, out, colsum, w.k, w.d);
}

/**
 * dL/du and dL/da (either target may be null) from h (slot n: dL/d(power of term n), k x d) and
 * hs (the summed term's, the same for every row j): the sum over terms of p u^(p-1) a^q h and
 * q u^p a^(q-1) h, in term order, the summed term last, each as (factor · lower) · h, from 0.
 */
export function chainRule(w: Weights, h: FloatArray, hs: Float64Array, gwMu: FloatArray | null, gwA: FloatArray | null): void {
  // One loop per set of targets: a test of each target per element cost time.
  cached(`chain ${gwMu ? 'mu' : ''} ${gwA ? 'a' : ''}`, w, (all) => {
    const read = (n: number): string => (n < w.terms.length ? `h[${n} * size + idx]` : 'hs[i]');
    const sum = (target: string, lower: (p: number, q: number) => Powers | null, factor: (p: number, q: number) => number): string => {
      const parts = all.flatMap((t, n) => {
        const [p, q] = t.powers, f = factor(p, q), l = lower(p, q);
        if (f === 0) return [];
        return [l ? `${f} * ${local(...l)} * ${read(n)}` : `${f} * ${read(n)}`];
      });
      return `{ let g = 0; ${parts.map((part) => `g += ${part};`).join(' ')} ${target}[idx] = g; }`;
    };
    const body = [
      ...(gwMu ? [sum('gwMu', (p, q) => (p - 1 + q > 0 ? [p - 1, q] : null), (p) => p)] : []),
      ...(gwA ? [sum('gwA', (p, q) => (p + q - 1 > 0 ? [p, q - 1] : null), (_p, q) => q)] : []),
    ];
    return generatedFunction<ChainLoop>('weight_chain_rule', ['u', 'uOff', 'a', 'aOff', 'h', 'hs', 'gwMu', 'gwA', 'k', 'd'], loop(all, body));
  })(w.u, w.uOff, w.a, w.aOff, h, hs, gwMu, gwA, w.k, w.d);
}
