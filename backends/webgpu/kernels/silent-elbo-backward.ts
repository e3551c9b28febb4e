// The fused silent-ELBO backward: the gradients of sum_b g[b] out[b]. With
// P_t[b][j] = d(pixel term)/d(contraction t) and s_t[b][j] = g[b] P_t[b][j]:
//  - over pixels j:  dL/dmoment[b,i] = sum_t sum_j s_t[b][j] u_ji^p a_ji^q   (and dL/dx = -s_Ubar)
//  - over batch b:   h_t[j,i] = sum_b s_t[b][j] moment_t[b,i], then the chain rule through
//                    u^p a^q gives dL/dW_mu and dL/dW_a; dL/db_mu, dL/db_a = sum_b s_Ubar, s_Abar.
// Nothing of size B x d x k, and no B x k x accumulators, in global memory (issue 5): the
// passes recompute the partials a block at a time and keep them on chip.
//  - Moment pass: a workgroup owns 4 examples and every latent, and walks the pixels in chunks.
//    Phase A runs the forward's tile (tileContraction, epilogueFunction: 4 rows shared by the
//    lanes, 4 pixels per lane) over the chunk and keeps its partials; phase B has each lane
//    contract its latents' moment gradients over the chunk's pixels.
//  - Weight pass: the same with the roles swapped: a workgroup owns 4 pixels and every latent
//    and walks the batch in chunks; phase A's tile has the 4 pixels shared and 4 examples per
//    lane; phase B accumulates h_t per lane, and the chain rule runs once per chunk into the
//    weight gradients; the bias gradients are sums of phase A's s.
// In phase B a lane owns 4 latents at a time and walks its groups of 4 (every latent is
// covered whatever d is), adding each group's sums into its outputs once per chunk. The term
// whose partial is a constant (constantPartial) is not recomputed per pixel: phase B folds it in
// as a column sum (of its weight power over the chunk's pixels, or of g x its moment over the
// chunk's examples).
//
// The moment pass runs in the forward (fuseMoments, the default): g[b] only scales row b, so
// the forward, when the op will be differentiated, computes the values and the contraction
// with g = 1 and saves it, [moments, B, d], as big as the moment gradients; the backward
// multiplies by g[b] and runs the weight pass, which also writes dL/dx. That is one recompute
// instead of two. bench/silent-elbo.js's op alone (B = 64, d = 200, k = 784, Bernoulli,
// learnable, fwd + bwd), medians of 20 alternating in one process on lavapipe: 42.0 ms saving
// the partials [terms, B, k] (which issue 5 rules out), 66.1 with both passes in the backward,
// 59.3 fused (fixed variance: 15.9, 20.4, 19.1). SILENTGRAD_SILENT_ELBO_FUSE=0 puts the moment
// pass back in the backward (it then writes dL/dx) and saves nothing.
//
// Where a chunk's partials live between the phases:
//  - With subgroups (lavapipe, gemmDevice.shareRows): a workgroup is one subgroup of 8 lanes and
//    a chunk is one block of 32 pixels or examples; each lane keeps the partials it computed in
//    registers and phase B fetches them with subgroupShuffle (an AVX2 permute per value on
//    llvmpipe). No workgroup memory and no barrier: llvmpipe runs a shader with barriers as a
//    coroutine, and a barrier inside a loop put the loops' variables in the coroutine frame,
//    about doubling both phases' time (the weight pass ~50 -> ~30 ms without its barriers).
//  - Otherwise: workgroup memory (at most 16 KiB, WebGPU's default), a barrier after each phase,
//    as many lanes and blocks per chunk as fit.
import type { SilentElboGradients, SilentElboOperands, SilentElboTerm, View } from '../../../engine/backend.js';
import type { Dispatch } from '../queue.js';
import {
  bufferName, constantPartial, constantTerm, epilogueFunction, four, momentsUsed, offsetOf, operandOffsets, pixelFunction, power,
  rowAccumulators, SIGMA2, tileContraction, usesA, vec4Rows, type Moment,
} from './silent-elbo-common.js';
import { gemmDevice } from './gemm.js';
import { ceilDiv, entry, header, LANES, Params, SUBGROUP_DIRECTIVES, type BufferDecl } from './wgsl.js';

/** Floats of workgroup memory the partials may take: WebGPU's default 16 KiB limit. */
const WORKGROUP_FLOATS = 4096;
/** Phase A blocks (of 4 x lanes pixels or examples) per chunk at most, without subgroups. */
const MAX_BLOCKS = 32;

/**
 * Knobs, mutable for probes and tests: `vec` lets phase B read the [*, d] operands as vec4 rows
 * where d and offsets allow (SILENTGRAD_SILENT_ELBO_VEC=0 turns it off); `maxLanes` caps the
 * workgroup without subgroups; `fuseMoments` runs the moment pass in the forward (see the header;
 * SILENTGRAD_SILENT_ELBO_FUSE=0 turns it off).
 */
export const backwardTuning = {
  vec: process.env.SILENTGRAD_SILENT_ELBO_VEC !== '0',
  maxLanes: 64,
  fuseMoments: process.env.SILENTGRAD_SILENT_ELBO_FUSE !== '0',
};

type Targets = Partial<Record<keyof SilentElboGradients, GPUBuffer>>;
interface Binding { decl: BufferDecl; buffer: GPUBuffer }
interface Pass { source: string; bindings: Binding[]; groups: number }

/** How a pass splits its work; `stored` terms' partials are kept between the phases. */
interface Layout {
  share: boolean; vec: boolean;
  /** Lanes of the workgroup, phase A blocks per chunk, latent groups of 4 per lane. */
  lanes: number; blocks: number; groups: number;
  /** Floats per pixel (moment pass) or example (weight pass) in workgroup memory: 4 per stored term. */
  slots: number;
  /** Pixels (moment pass) or examples (weight pass) per chunk. */
  chunk: number;
  /** The lane's index: subgroup_invocation_id with subgroups, else local_invocation_index. */
  me: string;
}

function layout(d: number, stored: number, vec: boolean): Layout {
  const slots = 4 * stored;
  if (gemmDevice.shareRows) return { share: true, vec, lanes: LANES, blocks: 1, groups: ceilDiv(ceilDiv(d, 4), LANES), slots, chunk: 4 * LANES, me: 'lane' };
  const perLane = 4 * Math.max(slots, 1);
  const lanes = Math.max(LANES, Math.min(backwardTuning.maxLanes, Math.floor(WORKGROUP_FLOATS / perLane / LANES) * LANES));
  const blocks = Math.max(1, Math.min(MAX_BLOCKS, Math.floor(WORKGROUP_FLOATS / (perLane * lanes))));
  return { share: false, vec, lanes, blocks, groups: ceilDiv(ceilDiv(d, 4), lanes), slots, chunk: 4 * lanes * blocks, me: 'lid' };
}

/**
 * The 4 latents i0.. of `row` of a [rows, d] operand: one vec4 load with vec4 rows, else 4
 * loads from the clamped latents i_0..i_3.
 */
const gatherRow = (name: string, offset: string, row: string, vec: boolean): string => vec
  ? `${name}[(${offset} + ${row} * d) / 4u + min(i0 / 4u, d / 4u - 1u)]`
  : `vec4<f32>(${four.map((e) => `${name}[${offset} + ${row} * d + i_${e}]`).join(', ')})`;

/**
 * Add the vec4 `v` into OUT's row `row` at latents i0.. (where < d); the first chunk writes.
 * Gradients are fresh buffers: offset 0, rows of d, vec4 with vec4 rows.
 */
function addLatents(out: string, row: string, v: string, first: string, vec: boolean): string {
  const put = (at: string, value: string): string => `if (${first}) { ${out}[${at}] = ${value}; } else { ${out}[${at}] += ${value}; }`;
  return vec
    ? `if (i0 < d) { let at = ${row} * (d / 4u) + i0 / 4u; ${put('at', v)} }`
    : `{ let v = ${v}; ${four.map((e) => `if (i0 + ${e}u < d) { let at = ${row} * d + i0 + ${e}u; ${put('at', `v[${e}]`)} }`).join(' ')} }`;
}

/**
 * Phase A keeps stored term n's partials for each lane's 4 items (pixels or examples): in
 * registers as keep_n_f, a vec4 over the 4 items for each f of the 4 fixed rows or pixels; or
 * in workgroup memory, part[item * slots + 4n + f]. `loop(item, end, ns, body)` walks the
 * chunk's items 0..end-1 with P_n (a vec4 over f) declared for each n of `ns` before `body`.
 * From registers, item 4s + q is component q of lane s's keep_n_f, through subgroupShuffle. A
 * runtime q indexes a vector here: indexing an array of 4 vec4 by it was slower on lavapipe
 * (~1.3x the weight pass; llvmpipe goes through memory), and unrolling q 4 times no faster.
 */
function partials(l: Layout, stored: number): { declare: string; loop: (item: string, end: string, ns: readonly number[], body: string) => string } {
  const ns = Array.from({ length: stored }, (_, n) => n);
  if (l.share) return {
    declare: ns.map((n) => four.map((f) => `var keep_${n}_${f} = vec4<f32>(0.0);`).join(' ')).join(' '),
    loop: (item, end, list, body) => `for (var ${item} = 0u; ${item} < ${end}; ${item}++) {
        let src = ${item} / 4u; let q = ${item} % 4u;
        ${list.map((n) => `let P_${n} = vec4<f32>(${four.map((f) => `subgroupShuffle(keep_${n}_${f}[q], src)`).join(', ')});`).join(' ')}
        ${body}
      }`,
  };
  return {
    declare: '',
    loop: (item, end, list, body) => `for (var ${item} = 0u; ${item} < ${end}; ${item}++) {
        ${list.map((n) => `let P_${n} = vec4<f32>(${four.map((q) => `part[${item} * ${l.slots}u + ${4 * n + q}u]`).join(', ')});`).join(' ')}
        ${body}
      }`,
  };
}

/** The operand bindings the passes read: moments `moments`, W_mu, W_a if used, b_mu, b_a, x, g. */
function operandBindings(o: SilentElboOperands, moments: readonly Moment[], vec: boolean, buffer: (v: View) => GPUBuffer, gradOut: GPUBuffer | null): Binding[] {
  const row = (name: string): BufferDecl => ({ name, access: 'read', ...(vec ? { type: 'vec4<f32>' as const } : {}) });
  const list: [BufferDecl, View | null][] = [
    ...moments.map((m): [BufferDecl, View | null] => [row(bufferName[m]), m === 'mean' ? o.mean : o[m]]),
    [row('WMu'), o.wMu], [row('WA'), usesA(o.terms) ? o.wA : null],
    [{ name: 'BMu', access: 'read' }, o.bMu], [{ name: 'BA', access: 'read' }, o.bA], [{ name: 'X', access: 'read' }, o.x],
  ];
  return [
    ...list.filter((e): e is [BufferDecl, View] => e[1] !== null).map(([decl, v]) => ({ decl, buffer: buffer(v) })),
    ...(gradOut ? [{ decl: { name: 'G', access: 'read' as const }, buffer: gradOut }] : []),
  ];
}

const output = (name: string, buffer: GPUBuffer, vec: boolean): Binding =>
  ({ decl: { name, access: 'read_write', ...(vec ? { type: 'vec4<f32>' as const } : {}) }, buffer });

function shaderHead(title: string, o: SilentElboOperands, l: Layout, bindings: readonly Binding[], functions: string): string {
  return `${l.share ? SUBGROUP_DIRECTIVES : ''}// silent ELBO backward, ${title} (${o.form}: ${o.terms.map((t) => t.name).join(', ')})${l.share ? ' (shared rows)' : ''}${l.vec ? ' (vec4 rows)' : ''}
${header(bindings.map((b) => b.decl))}
${!l.share && l.slots ? `var<workgroup> part: array<f32, ${l.chunk * l.slots}>;` : ''}
${pixelFunction(o.form)}
${functions}
${entry([l.lanes], l.share ? '@builtin(subgroup_invocation_id) lane: u32' : '')}`;
}

/** Phase A's rows: `row_r` = recompute(...) for the 4 rows b0.. that are < B (else zero). */
function recomputeRows(stored: readonly SilentElboTerm[], recomputed: readonly SilentElboTerm[], j0: string, g: (r: number) => string): string {
  return four.map((r) => stored.length
    ? `var row_${r}: recomputeOut; if (b0 + ${r}u < B) { row_${r} = recompute(b0 + ${r}u, ${j0}, B, k, ${rowAccumulators(recomputed, r)}, ${g(r)}); }`
    : `var row_${r} = 0.0; if (b0 + ${r}u < B) { row_${r} = recompute(b0 + ${r}u, ${j0}, B, k, ${rowAccumulators(recomputed, r)}, ${g(r)}); }`).join('\n      ');
}

const barrier = (l: Layout): string => (l.share ? '' : 'workgroupBarrier();');

/**
 * The walk both passes make along their contraction axis (`count` items, `cursor` at each
 * chunk's start): phase A in blocks of 4 x lanes items, `block` given this lane's first item,
 * then phase B (if any) between barriers.
 */
function chunkWalk(l: Layout, cursor: string, count: string, block: (first: string) => string, phaseB: string): string {
  return `var ${cursor} = 0u;
  loop {
    for (var blk = 0u; blk < ${l.blocks}u; blk++) {
      let start = ${cursor} + blk * ${4 * l.lanes}u;
      if (start >= ${count}) { break; }
      ${block(`start + ${l.me} * 4u`)}
    }
    ${phaseB ? `${barrier(l)}
    ${phaseB}
    ${barrier(l)}` : ''}
    continuing {
      ${cursor} += ${l.chunk}u;
      break if ${cursor} >= ${count};
    }
  }`;
}

/**
 * What the moment pass computes: in the backward, g[b] x the contraction into the wanted
 * moments' gradients (and dL/dx); in the forward (fuseMoments), the values and the contraction
 * of every moment with g = 1, saved [moment][b][i] for the backward to scale by g[b].
 */
type MomentMode = { kind: 'backward'; g: Targets; gradOut: GPUBuffer } | { kind: 'forward'; out: GPUBuffer; saved: GPUBuffer };

/**
 * Moment pass: grid of one workgroup per 4 examples. Phase A's tile is the forward's, so it
 * costs what the forward does.
 */
function momentPass(o: SilentElboOperands, mode: MomentMode, buffer: (v: View) => GPUBuffer, vecOk: boolean): Pass | null {
  const [B, d] = o.mean.shape as [number, number];
  const constant = constantTerm(o);
  const forward = mode.kind === 'forward';
  // The forward's values need every term; only the backward leaves out the constant-partial one.
  const recomputed = forward ? o.terms : o.terms.filter((t) => t !== constant);
  const used = momentsUsed(o.terms);
  const wanted = mode.kind === 'forward' ? used : used.filter((m) => mode.g[m]);
  const wantX = mode.kind === 'backward' && !!mode.g.x;
  if (wanted.length === 0 && !wantX && !forward) return null;
  const stored = recomputed.filter((t) => t !== constant && wanted.includes(t.moment));
  const folded = constant && wanted.includes(constant.moment) ? constant : null;
  const l = layout(d, stored.length, vecOk);
  const { share, vec, lanes, groups, slots, chunk, me } = l;
  const bindings = [
    ...operandBindings(o, momentsUsed(recomputed), vec, buffer, mode.kind === 'backward' ? mode.gradOut : null),
    ...(mode.kind === 'forward' ? [output('Saved', mode.saved, vec), output('Out', mode.out, false)]
      : [...wanted.map((m) => output(`G${bufferName[m]}`, mode.g[m]!, vec)), ...(wantX ? [output('GX', mode.g.x!, false)] : [])]),
  ];
  // Where moment m's sums go: its gradient, or its rows of the saved [moment][b][i].
  const target = (m: Moment, row: string): [string, string] => forward ? ['Saved', `(${used.indexOf(m)}u * B + ${row})`] : [`G${bufferName[m]}`, row];
  const tile = tileContraction({ terms: recomputed, shared: share ? 'rows' : null, vec });
  const functions = epilogueFunction(o, 'recompute', recomputed, stored, 'g: f32', wantX ? 'GX[b * k + j] = -g * px.d[0];' : '');
  const kept = partials(l, stored.length);
  const ns = stored.map((_, n) => n);
  // Keep: pixel e of this lane's 4, as a vec4 over the 4 rows.
  const keep = share
    ? ns.map((n) => four.map((r) => `keep_${n}_${r} = row_${r}.p[${n}];`).join(' ')).join('\n      ')
    : four.map((e) => ns.map((n) => four.map((r) => `part[(j0 - c0 + ${e}u) * ${slots}u + ${4 * n + r}u] = row_${r}.p[${n}][${e}];`).join(' ')).join(' ')).join('\n      ');
  const needA = usesA([...stored, ...(folded ? [folded] : [])]);
  const sum = (m: Moment, r: number): string => `sum_${m}_${r}`;
  const phaseB = `let cEnd = min(${chunk}u, k - c0);
    for (var gg = 0u; gg < ${groups}u; gg++) {
      let i0 = (gg * ${lanes}u + ${me}) * 4u;
      ${share ? '' : 'if (i0 >= d) { break; }'}
      ${vec ? '' : four.map((e) => `let i_${e} = min(i0 + ${e}u, d - 1u);`).join(' ')}
      ${wanted.flatMap((m) => four.map((r) => `var ${sum(m, r)} = vec4<f32>(0.0);`)).join(' ')}
      ${folded ? 'var colsum = vec4<f32>(0.0);' : ''}
      ${kept.loop('jj', 'cEnd', ns, `let j = c0 + jj;
        let u = ${gatherRow('WMu', offsetOf.wMu, 'j', vec)};
        ${needA ? `let a = ${gatherRow('WA', offsetOf.wA, 'j', vec)};` : ''}
        ${stored.map((t, n) => `let w_${n} = ${power(t.powers[0], t.powers[1], 'u', 'a')};`).join(' ')}
        ${stored.flatMap((t, n) => four.map((r) => `${sum(t.moment, r)} += P_${n}[${r}] * w_${n};`)).join('\n        ')}
        ${folded ? `colsum += ${power(folded.powers[0], folded.powers[1], 'u', 'a')};` : ''}`)}
      ${folded ? four.map((r) => `${sum(folded.moment, r)} += (g_${r} * ${constantPartial[o.form].partial}) * colsum;`).join(' ') : ''}
      ${four.map((r) => `if (b0 + ${r}u < B) { ${wanted.map((m) => addLatents(...target(m, `(b0 + ${r}u)`), sum(m, r), 'c0 == 0u', vec)).join(' ')} }`).join('\n      ')}
    }`;
  const rows = (r: number): string => stored.length ? `row_${r}.value` : `row_${r}`;
  // The forward's values: each lane's share of its 4 rows, summed over the lanes at the end.
  const values = !forward ? '' : share
    ? four.map((r) => `let total_${r} = subgroupAdd(value_${r}); if (${me} == 0u && b0 + ${r}u < B) { Out[b0 + ${r}u] = total_${r}; }`).join('\n  ')
    : `${four.map((r) => `values[${me} * 4u + ${r}u] = value_${r};`).join(' ')}
  workgroupBarrier();
  if (${me} == 0u) {
    ${four.map((r) => `var total_${r} = 0.0;`).join(' ')}
    for (var l = 0u; l < ${lanes}u; l++) { ${four.map((r) => `total_${r} += values[l * 4u + ${r}u];`).join(' ')} }
    ${four.map((r) => `if (b0 + ${r}u < B) { Out[b0 + ${r}u] = total_${r}; }`).join(' ')}
  }`;
  const source = `${shaderHead(forward ? 'moment sums in the forward' : 'moment gradients', o, l, bindings, `${functions}${forward && !share ? `\nvar<workgroup> values: array<f32, ${4 * lanes}>;` : ''}`)} {
  let B = P[0]; let d = P[1]; let k = P[2]; let gOff = P[3]; let sigma2 = ${SIGMA2};
  let b0 = wid.x * 4u;
  ${four.map((r) => `let b_${r} = min(b0 + ${r}u, B - 1u); let g_${r} = ${forward ? '1.0' : `G[gOff + b_${r}]`};`).join(' ')}
  ${forward ? four.map((r) => `var value_${r} = 0.0;`).join(' ') : ''}
  ${tile.setup}
  ${kept.declare}
  ${chunkWalk(l, 'c0', 'k', (first) => `let j0 = ${first};
      ${four.map((e) => `let j_${e} = min(j0 + ${e}u, k - 1u);`).join(' ')}
      ${tile.init}
      ${tile.loop}
      ${recomputeRows(stored, recomputed, 'j0', (r) => `g_${r}`)}
      ${keep}
      ${forward ? four.map((r) => `value_${r} += ${rows(r)};`).join(' ') : ''}`, wanted.length ? phaseB : '')}
  ${values}
}`;
  return { source, bindings, groups: ceilDiv(B, 4) };
}

/**
 * Weight pass: gradients of W_mu, W_a, b_mu, b_a. Grid: one workgroup per 4 pixels. Phase A's
 * tile has the 4 pixels shared by the lanes and 4 examples per lane.
 */
function weightPass(o: SilentElboOperands, g: Targets, wantX: boolean, buffer: (v: View) => GPUBuffer, gradOut: GPUBuffer, vecOk: boolean): Pass | null {
  const [, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const needA = usesA(o.terms);
  const [wantU, wantA, wantBMu, wantBA] = [!!g.wMu, !!g.wA && needA, !!g.bMu, !!g.bA && needA];
  if (!wantU && !wantA && !wantBMu && !wantBA && !wantX) return null;
  const constant = constantTerm(o);
  const recomputed = o.terms.filter((t) => t !== constant);
  const feeds = (t: SilentElboTerm): boolean => (wantU && t.powers[0] > 0) || (wantA && t.powers[1] > 0);
  const chained = recomputed.filter(feeds);
  const stored = recomputed.filter((t) => feeds(t) || (wantBMu && t.name === 'Ubar') || (wantBA && t.name === 'Abar'));
  const folded = constant && feeds(constant) ? constant : null;
  const l = layout(d, stored.length, vecOk);
  const { share, vec, lanes, groups, slots, chunk, me } = l;
  const bindings = [
    ...operandBindings(o, momentsUsed([...recomputed, ...(folded ? [folded] : [])]), vec, buffer, gradOut),
    ...(wantU ? [output('GWMu', g.wMu!, vec)] : []), ...(wantA ? [output('GWA', g.wA!, vec)] : []),
    ...(wantBMu ? [output('GBMu', g.bMu!, false)] : []), ...(wantBA ? [output('GBA', g.bA!, false)] : []),
    ...(wantX ? [output('GX', g.x!, false)] : []),
  ];
  const tile = tileContraction({ terms: recomputed, shared: share ? 'pixels' : null, vec });
  const functions = epilogueFunction(o, 'recompute', recomputed, stored, 'g: f32', wantX ? 'GX[b * k + j] = -g * px.d[0];' : '');
  const kept = partials(l, stored.length);
  const ns = stored.map((_, n) => n);
  // Keep: example r of this lane's 4, as a vec4 over the 4 pixels.
  const keep = share
    ? ns.map((n) => four.map((e) => `keep_${n}_${e} = vec4<f32>(${four.map((r) => `row_${r}.p[${n}][${e}]`).join(', ')});`).join(' ')).join('\n      ')
    : four.map((r) => ns.map((n) => four.map((e) => `part[(b0 + ${r}u - bc) * ${slots}u + ${4 * n + e}u] = row_${r}.p[${n}][${e}];`).join(' ')).join(' ')).join('\n      ');
  const index = (t: SilentElboTerm): number => stored.indexOf(t);
  const biases = [[wantBMu, 'Ubar', 'GBMu'], [wantBA, 'Abar', 'GBA']] as const;
  const biasTerms = biases.flatMap(([want, name, out]) => {
    const t = stored.find((s) => s.name === name);
    return want && t ? [{ n: index(t), out }] : [];
  });
  const h = (n: number, e: number): string => `h_${n}_${e}`;
  // d(u^p a^q)/du = p u^(p-1) a^q, d/da = q u^p a^(q-1), times h (a vec4 expression).
  const chain = (which: 'u' | 'a', t: SilentElboTerm, hv: string): string => {
    const [p, q] = t.powers;
    const factor = which === 'u' ? p : q;
    if (factor === 0) return '';
    return ` + ${factor}.0 * ${which === 'u' ? power(p - 1, q, 'u', 'a') : power(p, q - 1, 'u', 'a')} * ${hv}`;
  };
  const chainAll = (which: 'u' | 'a', e: number): string =>
    `vec4<f32>(0.0)${chained.map((t) => chain(which, t, h(index(t), e))).join('')}${folded ? chain(which, folded, 'foldedH') : ''}`;
  const momentsB = momentsUsed([...chained, ...(folded ? [folded] : [])]);
  const phaseB = `let rEnd = min(${chunk}u, B - bc);
    ${biasTerms.length ? `{
      ${biasTerms.map(({ n }) => `var bias_${n} = vec4<f32>(0.0);`).join(' ')}
      ${kept.loop('bb', 'rEnd', biasTerms.map(({ n }) => n), biasTerms.map(({ n }) => `bias_${n} += P_${n};`).join(' '))}
      if (${me} == 0u) { ${biasTerms.map(({ n, out }) => four.map((e) => `if (j0 + ${e}u < k) { if (bc == 0u) { ${out}[j0 + ${e}u] = bias_${n}[${e}]; } else { ${out}[j0 + ${e}u] += bias_${n}[${e}]; } }`).join(' ')).join(' ')} }
    }` : ''}
    ${wantU || wantA ? `for (var gg = 0u; gg < ${groups}u; gg++) {
      let i0 = (gg * ${lanes}u + ${me}) * 4u;
      ${share ? '' : 'if (i0 >= d) { break; }'}
      ${vec ? '' : four.map((e) => `let i_${e} = min(i0 + ${e}u, d - 1u);`).join(' ')}
      ${chained.flatMap((t) => four.map((e) => `var ${h(index(t), e)} = vec4<f32>(0.0);`)).join(' ')}
      ${folded ? 'var colsum = vec4<f32>(0.0);' : ''}
      ${kept.loop('bb', 'rEnd', chained.map(index), `let b = bc + bb;
        ${momentsB.map((m) => `let m_${m} = ${gatherRow(bufferName[m], offsetOf[m], 'b', vec)};`).join(' ')}
        ${chained.flatMap((t) => four.map((e) => `${h(index(t), e)} += P_${index(t)}[${e}] * m_${t.moment};`)).join('\n        ')}
        ${folded ? `colsum += G[gOff + b] * m_${folded.moment};` : ''}`)}
      ${folded ? `let foldedH = ${constantPartial[o.form].partial} * colsum;` : ''}
      ${four.map((e) => `if (j0 + ${e}u < k) {
        let u = ${gatherRow('WMu', offsetOf.wMu, `j_${e}`, vec)};
        ${needA ? `let a = ${gatherRow('WA', offsetOf.wA, `j_${e}`, vec)};` : ''}
        ${wantU ? addLatents('GWMu', `j_${e}`, chainAll('u', e), 'bc == 0u', vec) : ''}
        ${wantA ? addLatents('GWA', `j_${e}`, chainAll('a', e), 'bc == 0u', vec) : ''}
      }`).join('\n      ')}
    }` : ''}`;
  const source = `${shaderHead('weight gradients', o, l, bindings, functions)} {
  let B = P[0]; let d = P[1]; let k = P[2]; let gOff = P[3]; let sigma2 = ${SIGMA2};
  let j0 = wid.x * 4u;
  ${four.map((e) => `let j_${e} = min(j0 + ${e}u, k - 1u);`).join(' ')}
  ${tile.setup}
  ${kept.declare}
  ${chunkWalk(l, 'bc', 'B', (first) => `let b0 = ${first};
      ${four.map((r) => `let b_${r} = min(b0 + ${r}u, B - 1u);`).join(' ')}
      ${tile.init}
      ${tile.loop}
      ${recomputeRows(stored, recomputed, 'j0', (r) => `G[gOff + b_${r}]`)}
      ${keep}`, phaseB)}
}`;
  return { source, bindings, groups: ceilDiv(k, 4) };
}

/**
 * The forward that saves what the backward needs (fuseMoments): the values into `out` and the
 * moment contraction (g = 1) into `saved`, [moment][b][i] in momentsUsed order.
 */
export function silentElboForwardSaving(o: SilentElboOperands, buffer: (v: View) => GPUBuffer, out: GPUBuffer, saved: GPUBuffer): Dispatch | null {
  const [B, d] = o.mean.shape as [number, number];
  if (B === 0) return null;
  const params = new Params().u32(B, d, o.x.shape[1]!, 0, ...operandOffsets(o)).f32(o.sigma2).build();
  const p = momentPass(o, { kind: 'forward', out, saved }, buffer, backwardTuning.vec && vec4Rows(o))!;
  return { source: p.source, buffers: p.bindings.map((b) => b.buffer), params, groups: [p.groups, 1, 1] };
}

/**
 * The backward's dispatches. `buffer` gives each operand view's buffer; `g` are the target
 * buffers (absent: not needed). With `fused`, the forward already contracted the moments
 * (silentElboForwardSaving) and the caller scales them; dL/dx then comes from the weight pass.
 */
export function silentElboBackward(o: SilentElboOperands, gradOut: { buffer: GPUBuffer; offset: number }, buffer: (v: View) => GPUBuffer, g: Targets, fused: boolean): Dispatch[] {
  const [B, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const params = new Params().u32(B, d, k, gradOut.offset, ...operandOffsets(o)).f32(o.sigma2).build();
  const vec = backwardTuning.vec && vec4Rows(o);
  const passes = [
    fused ? null : momentPass(o, { kind: 'backward', g, gradOut: gradOut.buffer }, buffer, vec),
    weightPass(o, g, fused && !!g.x, buffer, gradOut.buffer, vec),
  ];
  return passes.filter((p): p is Pass => p !== null).map((p) => ({
    source: p.source, buffers: p.bindings.map((b) => b.buffer), params, groups: p.groups === 0 ? 0 : [p.groups, 1, 1],
  }));
}
