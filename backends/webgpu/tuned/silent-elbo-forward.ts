// The fused silent-ELBO forward (docs/silent-elbo.md, section 4, on "fused"): each invocation owns
// 4 examples x 4 pixels and makes ONE pass over the latent dimension with every contraction's
// accumulator live in registers (up to 10 terms x 4 vec4: tileContraction), then runs the
// per-pixel epilogue (epilogueFunction) and writes the example's partial sum over its 4 pixels.
// Those row partials ([B, k/4]) are summed by the reduce kernel. This is the forward that
// saves nothing (evaluation, or without TuningProfile.silentElbo.momentsInForward); when the op will be
// differentiated the backend runs silentElboForwardSaving (silent-elbo-backward.ts) instead,
// the moment pass on the same tile and epilogue.
import type { SilentElboOperands, View } from '../../../engine/backend.js';
import type { Dispatch } from '../queue.js';
import type { TuningProfile } from '../tuning.js';
import { reduce } from '../kernels/reduce.js';
import { bufferName, momentsUsed, operandOffsets, pixelFunction, usesA } from '../kernels/silent-elbo-common.js';
import { epilogueFunction, rowAccumulators, tileContraction } from './silent-elbo-tiles.js';
import { cachedSource, ceilDiv, entry, header, Params, range, type BufferDecl } from '../kernels/wgsl.js';
import { LANES, SUBGROUP_DIRECTIVES } from './wgsl.js';

const WG = 8;

/**
 * Examples per invocation: with shared rows (lavapipe's 8-lane subgroups, gemm.ts) a workgroup
 * is one row of LANES lanes along the pixels, all owning the same LANES examples, so each
 * moment's values per step are loaded once per subgroup (laneShared), one load per lane
 * (the backward's moment pass measured 8 rows against 4 in silent-elbo-backward.ts).
 */
const rowsPer = (share: boolean): number => (share ? LANES : 4);

function source(o: SilentElboOperands, share: boolean): string {
  const terms = o.terms, moments = momentsUsed(terms), needA = usesA(terms);
  const buffers: BufferDecl[] = [
    ...moments.map((m) => ({ name: bufferName[m], access: 'read' as const })),
    { name: 'WMu', access: 'read' }, ...(needA ? [{ name: 'WA', access: 'read' as const }] : []),
    { name: 'BMu', access: 'read' }, ...(o.bA ? [{ name: 'BA', access: 'read' as const }] : []),
    { name: 'X', access: 'read' },
    { name: 'RowPart', access: 'read_write' },
  ];
  const R = rowsPer(share);
  const tile = tileContraction({ terms, shared: share ? 'rows' : null, vec: false, rows: R });
  const rows = range(R), lanes = [0, 1, 2, 3];
  const epilogue = rows.map((r) => `if (b0 + ${r}u < B${share ? ' && jg < P[3]' : ''}) {
    RowPart[(b0 + ${r}u) * P[3] + jg] = epilogueRow(b0 + ${r}u, j0, B, k, ${rowAccumulators(terms, r)});
  }`);
  return `${share ? SUBGROUP_DIRECTIVES : ''}// silent ELBO forward (${o.form}: ${terms.map((t) => t.name).join(', ')})${share ? ' (shared rows)' : ''}
${header(buffers)}
${pixelFunction(o.form)}
${epilogueFunction(o, 'epilogueRow', terms, [], '', '')}
${entry([WG, share ? 1 : WG], share ? '@builtin(subgroup_invocation_id) lane: u32' : '')} {
  let B = P[0]; let d = P[1]; let k = P[2];
  let jg = wid.x * ${WG}u + lid3.x;
  let j0 = jg * 4u;
  let b0 = (wid.y * ${share ? 1 : WG}u + lid3.y) * ${R}u;
  ${share
    // No early return: a broadcast reads the loading lanes. Pixels past k are clamped here and
    // skipped by the epilogue; the grid starts no example block past B.
    ? tile.setup
    : 'if (b0 >= B || j0 >= k) { return; }'}
  ${lanes.map((e) => `let j_${e} = min(j0 + ${e}u, k - 1u);`).join(' ')}
  ${rows.map((r) => `let b_${r} = min(b0 + ${r}u, B - 1u);`).join(' ')}
  ${tile.init}
  ${tile.loop}
  ${epilogue.join('\n  ')}
}`;
}

/** Buffers of the operands in the order the silent-ELBO kernels declare them (moments used, W_mu, W_a if used, b_mu, b_a, x). */
export function operandBuffers(o: SilentElboOperands, buffer: (v: View) => GPUBuffer): GPUBuffer[] {
  const moments = momentsUsed(o.terms);
  const list = [...moments.map((m) => (m === 'mean' ? o.mean : o[m])), o.wMu, usesA(o.terms) ? o.wA : null, o.bMu, o.bA, o.x];
  return list.filter((v): v is View => v !== null).map(buffer);
}

export function silentElboForward(tuning: TuningProfile, o: SilentElboOperands, inputs: readonly GPUBuffer[], out: GPUBuffer,
  scratch: (floats: number) => GPUBuffer): Dispatch[] {
  const [B, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const groups = ceilDiv(k, 4);
  if (B === 0) return [];
  const rowPart = scratch(B * groups);
  const params = new Params().u32(B, d, k, groups, ...operandOffsets(o)).f32(o.sigma2).build();
  const share = tuning.sharedRows;
  const fused: Dispatch = {
    source: cachedSource(JSON.stringify(['silent ELBO forward', o.form, o.terms.map((t) => t.name), !!o.bA, share]), () => source(o, share)),
    buffers: [...inputs, rowPart],
    params,
    groups: k === 0 ? 0 : [ceilDiv(groups, WG), ceilDiv(B, rowsPer(share) * (share ? 1 : WG)), 1],
  };
  const sum = reduce('sum', { buffer: rowPart, shape: [B, groups], strides: [groups, 1], offset: 0 }, [1], out);
  return [fused, ...(sum ? [sum] : [])];
}
