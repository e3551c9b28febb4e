// Pieces every silent-ELBO kernel shares (silent-elbo.ts here, ../tuned/silent-elbo-*.ts): which
// operands a set of terms reads, where they sit in the parameter block, WGSL for the weight
// powers u^p a^q (docs/silent-elbo.md, section 4: every contraction is sum_i u_ji^p a_ji^q
// moment_bi), and the per-pixel closed form generated from engine/ops/silent-elbo-pixel.ts.
// The tuned kernels' tiling lives in ../tuned/silent-elbo-tiles.ts.
import type { SilentElboOperands, SilentElboTerm } from '../../../engine/backend.js';
import { silentElboTerms } from '../../../engine/ops/silent-elbo.js';
import { pixelExpression, pixelForms } from '../../../engine/ops/silent-elbo-pixel.js';

export type Moment = SilentElboTerm['moment'];
export const momentNames: readonly Moment[] = ['mean', 'c2', 'c3', 'k4'];

/** The moments the terms read, in momentNames order. */
export function momentsUsed(terms: readonly SilentElboTerm[]): Moment[] {
  return momentNames.filter((m) => terms.some((t) => t.moment === m));
}

/** Whether any term reads the precision decoder's weights. */
export const usesA = (terms: readonly SilentElboTerm[]): boolean => terms.some((t) => t.powers[1] > 0);

/** WGSL for u^p a^q given the names of u and a (vec4 or f32); '1.0' when both powers are 0. */
export function power(p: number, q: number, u: string, a: string): string {
  const factors = [...Array<string>(p).fill(u), ...Array<string>(q).fill(a)];
  return factors.length ? factors.join(' * ') : '1.0';
}

/** Offsets (in floats) of the operands, in the order the parameter blocks list them. */
export function operandOffsets(o: SilentElboOperands): number[] {
  return [o.mean.offset, o.c2.offset, o.c3?.offset ?? 0, o.k4?.offset ?? 0, o.wMu.offset, o.wA?.offset ?? 0, o.bMu.offset, o.bA?.offset ?? 0, o.x.offset];
}

/** WGSL accessors for those offsets (P[4 + n]); the parameter block is u32 B, d, k, one more word, these, then sigma2. */
export const offsetOf: Record<'mean' | 'c2' | 'c3' | 'k4' | 'wMu' | 'wA' | 'bMu' | 'bA' | 'x', string> = {
  mean: 'P[4]', c2: 'P[5]', c3: 'P[6]', k4: 'P[7]', wMu: 'P[8]', wA: 'P[9]', bMu: 'P[10]', bA: 'P[11]', x: 'P[12]',
};
/** WGSL for sigma2 (the fixed form's output variance), the word after the offsets. */
export const SIGMA2 = 'pf(13u)';

export const bufferName: Record<Moment, string> = { mean: 'Mean', c2: 'C2', c3: 'C3', k4: 'K4' };

const SLOTS = silentElboTerms.map((t) => t.name);
/** Slot of a term in pixel()'s arrays (silentElboTerms order). */
export const slotOf = (t: SilentElboTerm): number => SLOTS.indexOf(t.name);

const wgsl = (expression: string): string => pixelExpression(expression, 'wgsl');
/**
 * The per-pixel closed forms of docs/silent-elbo.md (sections 2 and 3), generated from
 * engine/ops/silent-elbo-pixel.ts: `d[slot]` = d(value)/d(contraction), slots in
 * silentElboTerms order.
 */
export function pixelFunction(form: 'fixed' | 'learnable'): string {
  const f = pixelForms[form];
  return `
struct Pixel { value: f32, d: array<f32, ${SLOTS.length}> }
fn pixel(x: f32, v: array<f32, ${SLOTS.length}>, sigma2: f32) -> Pixel {
  var out: Pixel;
  ${SLOTS.map((name, slot) => `let ${name} = v[${slot}];`).join(' ')}
  ${f.lets.map(([name, expression]) => `let ${name} = ${wgsl(expression)};`).join('\n  ')}
  ${Object.entries(f.partials).map(([name, expression]) => `out.d[${SLOTS.indexOf(name)}] = ${wgsl(expression)};`).join('\n  ')}
  out.value = ${wgsl(f.value)};
  return out;
}`;
}
