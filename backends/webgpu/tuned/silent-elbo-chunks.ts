// How the fused silent-ELBO backward's passes (silent-elbo-backward.ts) walk their contraction
// axis: in chunks of pixels or examples, phase A recomputing the forward's tile for a block of
// them and keeping its partials, phase B contracting those partials into the gradients.
//
// Where a chunk's partials live between the phases:
//  - With shared rows (lavapipe's subgroups, TuningProfile.sharedRows): a workgroup is one subgroup of 8 lanes and
//    a chunk is one block of 32 pixels or examples; each lane keeps the partials it computed in
//    registers. Phase B either fetches them with subgroupShuffle (an AVX2 permute per value on
//    llvmpipe) as it walks latent groups, or leaves them in place and walks the latents, the
//    lanes' sums meeting by scatterSums (silent-elbo-backward.ts, walksLatents). No workgroup
//    memory and no barrier: llvmpipe runs a shader with barriers as a coroutine, and a barrier
//    inside a loop put the loops' variables in the coroutine frame, about doubling both phases'
//    time (the weight pass ~50 -> ~30 ms without its barriers).
//  - Otherwise: workgroup memory (at most 16 KiB, WebGPU's default), a barrier after each phase,
//    as many lanes and blocks per chunk as fit.
import type { SilentElboOperands, SilentElboTerm, View } from '../../../engine/backend.js';
import { bufferName, pixelFunction, usesA, type Moment } from '../kernels/silent-elbo-common.js';
import { four, halfName, rowAccumulators } from './silent-elbo-tiles.js';
import { ceilDiv, entry, header, range, type BufferDecl } from '../kernels/wgsl.js';
import { LANES, SUBGROUP_DIRECTIVES } from './wgsl.js';

/** Floats of workgroup memory the partials may take: WebGPU's default 16 KiB limit. */
const WORKGROUP_FLOATS = 4096;
/** Phase A blocks (of 4 x lanes pixels or examples) per chunk at most, without subgroups. */
const MAX_BLOCKS = 32;

export interface Binding { decl: BufferDecl; buffer: GPUBuffer }
export interface Pass { source: string; bindings: Binding[]; groups: number }

/** How a pass splits its work; `stored` terms' partials are kept between the phases. */
export interface Layout {
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

/** Lanes of a workgroup at most, without shared rows. */
const MAX_LANES = 64;

/**
 * How a pass over d latents that keeps `stored` terms' partials splits its work: one subgroup and
 * registers with shared rows, else as many lanes (at most MAX_LANES) and blocks as workgroup memory holds.
 */
export function layout(share: boolean, d: number, stored: number, vec: boolean): Layout {
  const slots = 4 * stored;
  if (share) return { share: true, vec, lanes: LANES, blocks: 1, groups: ceilDiv(ceilDiv(d, 4), LANES), slots, chunk: 4 * LANES, me: 'lane' };
  const perLane = 4 * Math.max(slots, 1);
  const lanes = Math.max(LANES, Math.min(MAX_LANES, Math.floor(WORKGROUP_FLOATS / perLane / LANES) * LANES));
  const blocks = Math.max(1, Math.min(MAX_BLOCKS, Math.floor(WORKGROUP_FLOATS / (perLane * lanes))));
  return { share: false, vec, lanes, blocks, groups: ceilDiv(ceilDiv(d, 4), lanes), slots, chunk: 4 * lanes * blocks, me: 'lid' };
}

/**
 * The 4 latents i0.. of `row` of a [rows, d] operand: one vec4 load with vec4 rows, else 4
 * loads from the clamped latents i_0..i_3.
 */
export const gatherRow = (name: string, offset: string, row: string, vec: boolean): string => vec
  ? `${name}[(${offset} + ${row} * d) / 4u + min(i0 / 4u, d / 4u - 1u)]`
  : `vec4<f32>(${four.map((e) => `${name}[${offset} + ${row} * d + i_${e}]`).join(', ')})`;

/** Element (row, i) of a [rows, d] operand, i the latent: from a vec4 row, or a scalar. */
export const elementAt = (name: string, offset: string, row: string, vec: boolean): string => vec
  ? `${name}[(${offset} + ${row} * d) / 4u + i / 4u][i % 4u]`
  : `${name}[${offset} + ${row} * d + i]`;

/**
 * WGSL leaving `sum(n)` on lane l = the sum over the subgroup's LANES lanes of `value(n, l)`,
 * for each n of `ns` and l < `width` (a power of two, at most LANES): a reduce-scatter by
 * subgroupShuffleXor. Each step pairs the lanes across one bit; while the values still span
 * that bit of the item index, a lane keeps the half matching its own bit and adds its partner's
 * copy of it, and above the items' bits partners just add. A shuffle by a constant xor costs
 * next to nothing on llvmpipe, where subgroupAdd costs several adds (docs/performance-log.md,
 * "Subgroup reductions on llvmpipe: shuffle-xor against subgroupAdd").
 */
export function scatterSums(value: (n: number, f: number) => string, ns: readonly number[], width: number, sum: (n: number) => string): string {
  const lines: string[] = [];
  let at = value, span = width;
  for (let bit = LANES / 2, step = 0; bit >= 1; bit /= 2, step++) {
    const from = at, name = (n: number, f: number): string => `rs${step}_${n}_${f}`;
    if (bit >= span) {
      for (const n of ns) for (const f of range(span)) lines.push(`let ${name(n, f)} = ${from(n, f)} + subgroupShuffleXor(${from(n, f)}, ${bit}u);`);
    } else {
      lines.push(`let hi${bit} = (lane & ${bit}u) != 0u;`);
      for (const n of ns) for (const f of range(bit)) {
        const [lo, hi] = [from(n, f), from(n, f + bit)];
        lines.push(`let ${name(n, f)} = select(${lo}, ${hi}, hi${bit}) + subgroupShuffleXor(select(${hi}, ${lo}, hi${bit}), ${bit}u);`);
      }
      span = bit;
    }
    at = name;
  }
  return [...lines, ...ns.map((n) => `let ${sum(n)} = ${at(n, 0)};`)].join(' ');
}

/**
 * Add the vec4 `v` into OUT's row `row` at latents i0.. (where < d); the first chunk writes.
 * Gradients are fresh buffers: offset 0, rows of d, vec4 with vec4 rows.
 */
export function addLatents(out: string, row: string, v: string, first: string, vec: boolean): string {
  const put = (at: string, value: string): string => `if (${first}) { ${out}[${at}] = ${value}; } else { ${out}[${at}] += ${value}; }`;
  return vec
    ? `if (i0 < d) { let at = ${row} * (d / 4u) + i0 / 4u; ${put('at', v)} }`
    : `{ let v = ${v}; ${four.map((e) => `if (i0 + ${e}u < d) { let at = ${row} * d + i0 + ${e}u; ${put('at', `v[${e}]`)} }`).join(' ')} }`;
}

/**
 * Phase A keeps stored term n's partials for each lane's 4 items (pixels or examples): in
 * registers as keep_n_f, a vec4 over the 4 items for each f of the `width` (4 or 8) fixed rows
 * or pixels; or in workgroup memory (width 4), part[item * slots + 4n + f]. `loop(item, end,
 * ns, body)` walks the chunk's items 0..end-1 with, for each n of `ns`, P_n (a vec4 over f)
 * declared before `body`, or with width 8 P_n_0 and P_n_1 (f = 0..3 and 4..7).
 * From registers, item 4s + q is component q of lane s's keep_n_f, through subgroupShuffle.
 * The walk takes the items q-major (q = 0..3, then s) so that the runtime q picks each keep's
 * component once per q, not once per item: llvmpipe extracts a vector component at a runtime
 * index through memory, which costs more than the shuffle it feeds (a shuffle from a runtime
 * but uniform lane costs next to nothing). The learnable calls got faster, the fixed form
 * stayed neutral, and the alternatives (an array of 4 vec4 indexed by q, q unrolled) were no
 * better (docs/performance-log.md, "Silent-ELBO passes: partials taken q-major").
 */
export interface Partials {
  declare: string;
  loop: (item: string, end: string, ns: readonly number[], body: string) => string;
  /** In `loop`'s body: the vec4 of stored term n over f = 4h..4h+3, and the scalar at f. */
  half: (n: number, h: number) => string;
  at: (n: number, f: number) => string;
}

export function partials(l: Layout, stored: number, width = 4): Partials {
  const ns = range(stored), fs = range(width), halves = range(width / 4);
  const half = (n: number, h: number): string => (width === 4 ? `P_${n}` : `P_${n}_${h}`);
  const at = (n: number, f: number): string => `${half(n, f >> 2)}[${f & 3}]`;
  if (l.share) return {
    half, at,
    declare: ns.map((n) => fs.map((f) => `var keep_${n}_${f} = vec4<f32>(0.0);`).join(' ')).join(' '),
    loop: (item, end, list, body) => `for (var q = 0u; q < 4u; q++) {
        ${list.map((n) => fs.map((f) => `let kq_${n}_${f} = keep_${n}_${f}[q];`).join(' ')).join(' ')}
        for (var src = 0u; 4u * src + q < ${end}; src++) {
          let ${item} = 4u * src + q;
          ${list.map((n) => halves.map((h) => `let ${half(n, h)} = vec4<f32>(${four.map((f) => `subgroupShuffle(kq_${n}_${4 * h + f}, src)`).join(', ')});`).join(' ')).join(' ')}
          ${body}
        }
      }`,
  };
  return {
    declare: '', half, at,
    loop: (item, end, list, body) => `for (var ${item} = 0u; ${item} < ${end}; ${item}++) {
        ${list.map((n) => `let ${half(n, 0)} = vec4<f32>(${four.map((q) => `part[${item} * ${l.slots}u + ${4 * n + q}u]`).join(', ')});`).join(' ')}
        ${body}
      }`,
  };
}

/** The operand bindings the passes read: moments `moments`, W_mu, W_a if used, b_mu, b_a, x, g. */
export function operandBindings(o: SilentElboOperands, moments: readonly Moment[], vec: boolean, buffer: (v: View) => GPUBuffer, gradOut: GPUBuffer | null): Binding[] {
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

export const output = (name: string, buffer: GPUBuffer, vec: boolean): Binding =>
  ({ decl: { name, access: 'read_write', ...(vec ? { type: 'vec4<f32>' as const } : {}) }, buffer });

export function shaderHead(title: string, o: SilentElboOperands, l: Layout, bindings: readonly Binding[], functions: string): string {
  return `${l.share ? SUBGROUP_DIRECTIVES : ''}// silent ELBO backward, ${title} (${o.form}: ${o.terms.map((t) => t.name).join(', ')})${l.share ? ' (shared rows)' : ''}${l.vec ? ' (vec4 rows)' : ''}
${header(bindings.map((b) => b.decl))}
${!l.share && l.slots ? `var<workgroup> part: array<f32, ${l.chunk * l.slots}>;` : ''}
${pixelFunction(o.form)}
${functions}
${entry([l.lanes], l.share ? '@builtin(subgroup_invocation_id) lane: u32' : '')}`;
}

/** Row r's (pixel half h's) result of recomputeRows. */
export const rowOut = (r: number, h = 0): string => halfName(`row_${r}`, h);

/**
 * Phase A's rows: rowOut(r, h) = recompute(...) for the `rows` rows b0.. that are < B (else
 * zero) and each vec4 half h of the tile's `pixels`.
 */
export function recomputeRows(stored: readonly SilentElboTerm[], recomputed: readonly SilentElboTerm[], j0: string, g: (r: number) => string, rows = 4, pixels = 4): string {
  const call = (r: number, h: number): string => `${rowOut(r, h)} = recompute(b0 + ${r}u, ${j0}${h ? ` + ${4 * h}u` : ''}, B, k, ${rowAccumulators(recomputed, r, h)}, ${g(r)});`;
  return range(rows).map((r) => range(pixels / 4).map((h) => stored.length
    ? `var ${rowOut(r, h)}: recomputeOut; if (b0 + ${r}u < B) { ${call(r, h)} }`
    : `var ${rowOut(r, h)} = 0.0; if (b0 + ${r}u < B) { ${call(r, h)} }`).join(' ')).join('\n      ');
}

const barrier = (l: Layout): string => (l.share ? '' : 'workgroupBarrier();');

/**
 * The walk both passes make along their contraction axis (`count` items, `cursor` at each
 * chunk's start): phase A in blocks of 4 x lanes items, `block` given this lane's first item,
 * then phase B (if any) between barriers.
 */
export function chunkWalk(l: Layout, cursor: string, count: string, block: (first: string) => string, phaseB: string): string {
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
