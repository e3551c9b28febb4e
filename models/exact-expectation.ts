// The exact expected reconstruction log-likelihood of Bernoulli latents, by enumeration: with d
// binary latents there are 2^d states z, so
//
//   E_q[log p(x|z)] = sum over states z of q(z|x) log p(x|z),   q(z|x) = exp(q.logProb(z))
//
// is a finite sum. Written with engine ops, autograd differentiates it exactly: w.r.t. the logits
// (through q(z|x)) and so the encoder's parameters, and w.r.t. the decoder (through log p(x|z)).
// The oracle that the Taylor-bias study (experiments/taylor-bias.ts) and its tests measure every
// estimator against. It costs 2^d decoder evaluations per example, so d is capped.
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import type { ReconstructionModel } from './decoders/linear-gaussian.js';
import { BernoulliDistribution } from './latents/bernoulli.js';

/** 2^16 = 65,536 states per example; beyond that enumeration stops being a tool. */
export const MAX_ENUMERATED_LATENTS = 16;

/** Elements of one [rows, pixels] intermediate per chunk (2^21 float64 = 16 MiB). */
const CHUNK_ELEMENTS = 2 ** 21;

export interface EnumerationOptions {
  /** States evaluated together; default: as many as keep a [states x batch, pixels] tensor at 2^21 elements. */
  statesPerChunk?: number;
  /** Called after each chunk with the states done and the total (2^d). */
  onChunk?: (done: number, total: number) => void;
}

function checkLatentCount(d: number): void {
  if (!Number.isInteger(d) || d < 1 || d > MAX_ENUMERATED_LATENTS)
    throw new Error(`exact expectation: d = ${d} latents would need 2^${d} states per example; enumeration allows 1 to ${MAX_ENUMERATED_LATENTS} ` +
      `(2^${MAX_ENUMERATED_LATENTS} = ${2 ** MAX_ENUMERATED_LATENTS} states). Use a smaller latent dimension, or estimate the expectation by sampling instead.`);
}

/** States start .. start + count - 1 as rows of 0/1, [count, d]: bit i of the state's index is z_i. */
export function latentStates(d: number, start: number, count: number, like: Tensor): Tensor {
  checkLatentCount(d);
  const values = new Float64Array(count * d);
  for (let s = 0; s < count; s++) for (let i = 0; i < d; i++) values[s * d + i] = ((start + s) >>> i) & 1;
  return sg.tensor(values, [count, d], { dtype: like.dtype, backend: like.backend });
}

/** Index of a 0/1 state row (the inverse of latentStates): sum_i z_i 2^i. */
export function stateIndex(z: ArrayLike<number>, offset: number, d: number): number {
  let index = 0;
  for (let i = 0; i < d; i++) if (z[offset + i]! > 0.5) index |= 1 << i;
  return index;
}

/** Row (s, b) of the result is row b of t, for s = 0 .. repeats - 1: [repeats x B, ...]. */
export function tileRows(t: Tensor, repeats: number): Tensor {
  const [batch, ...rest] = t.shape as [number, ...number[]];
  return sg.reshape(sg.expand(sg.reshape(t, [1, batch, ...rest]), [repeats, batch, ...rest]), [repeats * batch, ...rest]);
}

/** Row (s, b) of the result is row s of t, for b = 0 .. repeats - 1: [count x repeats, ...]. */
function repeatRows(t: Tensor, repeats: number): Tensor {
  const [count, ...rest] = t.shape as [number, ...number[]];
  return sg.reshape(sg.expand(sg.reshape(t, [count, 1, ...rest]), [count, repeats, ...rest]), [count * repeats, ...rest]);
}

/**
 * Every state's log p(x|z) and log q(z|x), each [B, 2^d] (column s is state s of latentStates),
 * differentiable in the decoder and in q's logits respectively.
 */
export function enumerateStates(q: BernoulliDistribution, decoder: ReconstructionModel, x: Tensor, options: EnumerationOptions = {}): { logLikelihood: Tensor; logProb: Tensor } {
  if (q.logits.rank !== 2 || x.rank !== 2 || x.shape[0] !== q.logits.shape[0])
    throw new Error(`exact expectation: logits [${q.logits.shape}] and x [${x.shape}] must be [B, d] and [B, pixels] for the same B`);
  const [batch, d] = q.logits.shape as [number, number];
  checkLatentCount(d);
  const states = 2 ** d;
  const perChunk = Math.max(1, Math.min(states, options.statesPerChunk ?? Math.floor(CHUNK_ELEMENTS / (batch * x.shape[1]!))));
  const logLikelihood: Tensor[] = [], logProb: Tensor[] = [];
  for (let start = 0; start < states; start += perChunk) {
    const count = Math.min(perChunk, states - start);
    // Every (state, example) pair as one row: row s * B + b holds state start + s and example b.
    const z = repeatRows(latentStates(d, start, count, x), batch);
    const rowsAsStates = (t: Tensor): Tensor => sg.transpose(sg.reshape(t, [count, batch])); // [B, count]
    logLikelihood.push(rowsAsStates(decoder.logLikelihood(z, tileRows(x, count))));
    logProb.push(rowsAsStates(new BernoulliDistribution(tileRows(q.logits, count)).logProb(z)));
    options.onChunk?.(start + count, states);
  }
  return { logLikelihood: sg.concat(logLikelihood, 1), logProb: sg.concat(logProb, 1) };
}

/** E_q[log p(x|z)] per example, [B], exactly: sum over the 2^d states of q(z|x) log p(x|z). */
export function exactExpectedLogLikelihood(q: BernoulliDistribution, decoder: ReconstructionModel, x: Tensor, options: EnumerationOptions = {}): Tensor {
  return expectationOverStates(enumerateStates(q, decoder, x, options));
}

/** sum over states of exp(log q(z|x)) log p(x|z), [B], from enumerateStates' two tables. */
export function expectationOverStates(states: { logLikelihood: Tensor; logProb: Tensor }): Tensor {
  return sg.sum(sg.mul(sg.exp(states.logProb), states.logLikelihood), [1]);
}
