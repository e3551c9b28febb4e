// The fused silent ELBO's loops over the k x d weights (../silent-elbo-powers.ts) in WebAssembly:
// the powers u^p a^q the GEMMs read, the summed term's column sums, and the chain rule back to
// dL/du and dL/da, two weights at a time in f64x2 (f64-lanes.ts). Each power is built from the
// same lower power with the same multiply as in the generated JavaScript, and the chain rule's
// parts are added in the same order from 0, so the bits are that loop's (test/cpu-wasm.test.ts).
// Operands are in the CPU backend's heap (../heap.ts), addressed in bytes.
import type { DType } from '../../../engine/dtype.js';
import { HEAP_MAX_PAGES } from '../heap.js';
import { forEachPairInRows, type Lanes } from './f64-lanes.js';
import { ModuleBuilder, type FunctionBuilder, type Local } from './module.js';
import { Op, ValType } from './opcodes.js';

/** A power u^p a^q as [p, q]. */
export type Powers = readonly [p: number, q: number];

/** One part of a chain-rule sum: factor · (lower power, or 1 if null) · dL/d(term's power). */
export interface ChainPart { factor: number; lower: Powers | null; term: number }

/** What a module computes; `term` in a ChainPart indexes `termPowers`, or is its length for the summed term. */
export interface WeightLoops {
  /** Every power the loops use, each after the one it is built from (powersNeeded). */
  powers: readonly Powers[];
  /** The GEMM terms' powers, in plane order. */
  termPowers: readonly Powers[];
  summed: Powers | null;
  /** The chain rule's parts for dL/du and dL/da, null for a target not computed. */
  chainMu: readonly ChainPart[] | null;
  chainA: readonly ChainPart[] | null;
}

/**
 * Exports `powers(rowStart, rowEnd, d, plane, u, a, out)` (rows of the weights; slot n of out at
 * n·plane elements, plane = k·d), `colsum(k, d, u, a, colsum)` (float64 sums over all rows, where
 * there is a summed term) and `chain(rowStart, rowEnd, d, plane, u, a, h, hs, gwMu, gwA)`.
 */
export function emitWeightsModule(loops: WeightLoops, dtype: DType): Uint8Array<ArrayBuffer> {
  const size = dtype === 'float32' ? 4 : 8;
  const m = new ModuleBuilder().importMemory('env', 'memory', 1, HEAP_MAX_PAGES, true);
  const i32 = ValType.i32;
  const needsA = loops.powers.some(([, q]) => q > 0);

  /** Defines a local per power of the weights at byte offset `element` from u and a. */
  const powerLocals = (f: FunctionBuilder, lane: Lanes, u: Local, a: Local, element: Local): (power: Powers) => Local => {
    const at = new Map<string, Local>();
    const load = (base: Local): Local => {
      const l = f.local(lane.type);
      f.get(base).get(element).op(Op.i32_add);
      lane.load(f);
      f.set(l);
      return l;
    };
    const u0 = load(u), a0 = needsA ? load(a) : null;
    const local = ([p, q]: Powers): Local => at.get(`${p},${q}`)!;
    for (const [p, q] of loops.powers) {
      const w = q > 0 ? a0! : u0, lower: Powers = q > 0 ? [p, q - 1] : [p - 1, q];
      const l = f.local(lane.type);
      f.get(lower[0] + lower[1] === 0 ? w : local(lower));
      if (lower[0] + lower[1] > 0) { f.get(w); lane.ops['*'](f); }
      f.set(l);
      at.set(`${p},${q}`, l);
    }
    return local;
  };

  // Slot n of out: term n's power.
  {
    const f = m.addFunction('powers', [i32, i32, i32, i32, i32, i32, i32], []);
    const [rowStart, rowEnd, d, plane, u, a, out] = f.paramTuple(7);
    const slotBytes = f.local(i32);
    f.get(plane).i32(size).op(Op.i32_mul).set(slotBytes);
    forEachPairInRows(f, rowStart, rowEnd, d, size, (lane, { element }) => {
      const power = powerLocals(f, lane, u, a, element);
      loops.termPowers.forEach((powers, n) => {
        f.get(out).get(element).op(Op.i32_add).get(slotBytes).i32(n).op(Op.i32_mul).op(Op.i32_add).get(power(powers));
        lane.store(f);
      });
    }, dtype);
  }

  // colsum[i] += the summed term's power, row after row, in float64.
  {
    const f = m.addFunction('colsum', [i32, i32, i32, i32, i32], []);
    const [k, d, u, a, colsum] = f.paramTuple(5);
    const zero = f.local(i32);
    f.i32(0).set(zero);
    if (loops.summed) {
      const summed = loops.summed;
      forEachPairInRows(f, zero, k, d, size, (lane, { element, column }) => {
        const power = powerLocals(f, lane, u, a, element);
        const at = f.local(i32);
        f.get(colsum).get(column).i32(8).op(Op.i32_mul).op(Op.i32_add).tee(at).get(at);
        lane.loadF64(f);
        f.get(power(summed));
        lane.ops['+'](f);
        lane.storeF64(f);
      }, dtype);
    }
  }

  // gw[idx] = 0 + the parts in order, each (factor · lower) · h, for each target.
  {
    const f = m.addFunction('chain', [i32, i32, i32, i32, i32, i32, i32, i32, i32, i32], []);
    const [rowStart, rowEnd, d, plane, u, a, h, hs, gwMu, gwA] = f.paramTuple(10);
    const slotBytes = f.local(i32);
    f.get(plane).i32(size).op(Op.i32_mul).set(slotBytes);
    forEachPairInRows(f, rowStart, rowEnd, d, size, (lane, { element, column }) => {
      const power = powerLocals(f, lane, u, a, element);
      const sum = (target: Local, parts: readonly ChainPart[]): void => {
        f.get(target).get(element).op(Op.i32_add);
        lane.constant(f, 0);
        for (const { factor, lower, term } of parts) {
          lane.constant(f, factor);
          if (lower) { f.get(power(lower)); lane.ops['*'](f); }
          if (term < loops.termPowers.length) {
            f.get(h).get(element).op(Op.i32_add).get(slotBytes).i32(term).op(Op.i32_mul).op(Op.i32_add);
            lane.load(f);
          } else {
            f.get(hs).get(column).i32(8).op(Op.i32_mul).op(Op.i32_add);
            lane.loadF64(f);
          }
          lane.ops['*'](f);
          lane.ops['+'](f);
        }
        lane.store(f);
      };
      if (loops.chainMu) sum(gwMu, loops.chainMu);
      if (loops.chainA) sum(gwA, loops.chainA);
    }, dtype);
  }
  return m.encode();
}

type Rows = (...args: number[]) => void;
export interface WeightsModule { powers: Rows; colsum: Rows; chain: Rows }

const instances = new Map<string, WeightsModule>();

/** This thread's module for `loops` (by `id`, which must name them), built on first use. */
export function weightsModule(memory: WebAssembly.Memory, id: string, loops: WeightLoops, dtype: DType): WeightsModule {
  const key = `${id}|${dtype}`;
  let found = instances.get(key);
  if (!found) {
    const e = new WebAssembly.Instance(new WebAssembly.Module(emitWeightsModule(loops, dtype)), { env: { memory } }).exports;
    found = { powers: e.powers as Rows, colsum: e.colsum as Rows, chain: e.chain as Rows };
    instances.set(key, found);
  }
  return found;
}
