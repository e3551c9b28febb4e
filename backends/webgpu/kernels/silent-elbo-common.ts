// Pieces both silent-ELBO kernels share: which operands a set of terms reads, and WGSL for
// the weight powers u^p a^q (math note, "Learnable variance": every contraction is
// sum_i u_ji^p a_ji^q moment_bi).
import type { SilentElboOperands, SilentElboTerm } from '../../../engine/backend.js';

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

/** WGSL accessors for those offsets (P[4 + n]). */
export const offsetOf: Record<'mean' | 'c2' | 'c3' | 'k4' | 'wMu' | 'wA' | 'bMu' | 'bA' | 'x', string> = {
  mean: 'P[4]', c2: 'P[5]', c3: 'P[6]', k4: 'P[7]', wMu: 'P[8]', wA: 'P[9]', bMu: 'P[10]', bA: 'P[11]', x: 'P[12]',
};

export const bufferName: Record<Moment, string> = { mean: 'Mean', c2: 'C2', c3: 'C3', k4: 'K4' };
