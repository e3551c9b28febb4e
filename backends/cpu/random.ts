// The CPU backend's random draws: engine/random.ts's referenceDraw, dealt over the thread pool
// by blocks of counters. Each element depends only on its own counter, so any split gives the
// same bits as one thread.
import type { RandomKind } from '../../engine/backend.js';
import type { FloatArray } from '../../engine/dtype.js';
import { referenceDraw } from '../../engine/random.js';
import { defineKernel, parallelFor } from './parallel.js';

/** Counters [start, end) of a draw: elements 4·start up to 4·end. Args: normal?, seed, offset. */
const randomKernel = defineKernel('silentgrad.random', import.meta.url, ([out], a, start, end) => {
  referenceDraw(a[0] === 1 ? 'normal' : 'uniform', a[1]!, a[2]! + start, out!.subarray(4 * start, Math.min(out!.length, 4 * end)));
});

/** Roughly what one element costs, in the pool's multiply-add units (a Philox round per word). */
const ELEMENT_WORK = 16;
/** Counters per piece, at least. */
const GRAIN = 64;

export function randomDraw(kind: RandomKind, seed: number, offset: number, out: FloatArray): void {
  const counters = Math.ceil(out.length / 4);
  parallelFor(randomKernel, [out], [kind === 'normal' ? 1 : 0, seed, offset], counters, GRAIN, out.length * ELEMENT_WORK);
}
