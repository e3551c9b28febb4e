// What the tuned generators share beyond kernels/wgsl.ts: the work from which sizes are baked
// into a shader, and loads shared across the lanes of a subgroup (TuningProfile.sharedRows).
import { ceilDiv, range } from '../kernels/wgsl.js';

/** Multiply-adds from which a kernel's sizes are baked into its shader (bakeWords). */
export const BAKE_MIN_WORK = 1 << 20;

/** Lanes of a subgroup on lavapipe (the shared-load helpers need at least this many). */
export const LANES = 8;

/**
 * `slots` elements of `buffer` that every lane of a subgroup needs (the same for all lanes),
 * loaded once per subgroup instead of once per lane: lane l loads slots l, l + 8, ... and
 * subgroupBroadcast hands them round. On llvmpipe each lane's load costs ~10 instructions
 * (gemm.ts), a broadcast ~2. `base(q)` is slot q's element index (a WGSL u32
 * expression of q, evaluated once before the loop), `step` what the loop adds to it.
 * Needs `enable subgroups;`, a `lane` (subgroup_invocation_id) and every lane running the loop.
 */
export function laneShared(tag: string, slots: number, buffer: string, base: (q: string) => string, step: string):
  { setup: string; loads: string; value: (slot: number) => string } {
  const loaders = range(ceilDiv(slots, LANES));
  return {
    setup: loaders.map((j) => `let ${tag}At_${j} = ${base(`min(${LANES * j}u + lane, ${slots - 1}u)`)};`).join(' '),
    loads: loaders.map((j) => `let ${tag}_${j} = ${buffer}[${tag}At_${j} + ${step}];`).join(' '),
    value: (slot) => `subgroupBroadcast(${tag}_${Math.floor(slot / LANES)}, ${slot % LANES}u)`,
  };
}

/** The directives a shader using subgroup operations starts with. */
export const SUBGROUP_DIRECTIVES = 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n';
