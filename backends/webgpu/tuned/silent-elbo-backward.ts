// The fused silent-ELBO backward: the gradients of sum_b g[b] out[b]. With
// P_t[b][j] = d(pixel term)/d(contraction t) and s_t[b][j] = g[b] P_t[b][j]:
//  - over pixels j:  dL/dmoment[b,i] = sum_t sum_j s_t[b][j] u_ji^p a_ji^q   (and dL/dx = -s_Ubar)
//  - over batch b:   h_t[j,i] = sum_b s_t[b][j] moment_t[b,i], then the chain rule through
//                    u^p a^q gives dL/dW_mu and dL/dW_a; dL/db_mu, dL/db_a = sum_b s_Ubar, s_Abar.
// Nothing of size B x d x k, and no B x k x accumulators, in global memory (issue 5): the
// passes recompute the partials a block at a time and keep them on chip.
//  - Moment pass: a workgroup owns 8 examples (4 without subgroups) and every latent, and walks
//    the pixels in chunks. Phase A runs the forward's tile (tileContraction, epilogueFunction:
//    the rows shared by the lanes, 4 pixels per lane) over the chunk and keeps its partials;
//    phase B has each lane contract its latents' moment gradients over the chunk's pixels.
//  - Weight pass: the same with the roles swapped: a workgroup owns 8 pixels (4 without
//    subgroups) and every latent and walks the batch in chunks; phase A's tile has the pixels
//    shared and 4 examples per lane; phase B accumulates h_t per lane, and the chain rule runs
//    once per chunk into the weight gradients; the bias gradients are sums of phase A's s.
// Why 8 on the shared side (SHARED_SIDE below): llvmpipe loads storage lane by lane, ~15
// instructions per lane and element with its bounds check (read off the JIT code's
// disassembly), while every accumulator spills whatever the tile (an update is load, mul, add,
// blend, store). An 8-wide shared side fills the 8 loading lanes and feeds each of the lane's
// own loads to twice the multiply-adds, in phase A and phase B alike.
// In phase B a lane owns 4 latents at a time and walks its groups of 4 (every latent is
// covered whatever d is), adding each group's sums into its outputs once per chunk. With
// subgroups and several terms, phase B instead walks the latents with each lane keeping its own
// pixels or examples (walksLatents; the walk in each pass is `latentWalk`). The term
// whose partial is a constant (constantPartial) is not recomputed per pixel: phase B folds it in
// as a column sum (of its weight power over the chunk's pixels, or of g x its moment over the
// chunk's examples). At d = 200 the last of the 7 groups has 2 of its 8 lanes at work; dealing
// such a remainder one latent per lane instead cut the passes' kernel-alone times but not a
// call's, so it was not kept. B, d and k come from the parameter block although these shaders
// are per shape already: baked in as literals (as gemm.ts does) they made the call slower
// (both: docs/performance-log.md, "Silent-ELBO backward: an 8-wide shared side").
//
// The moment pass runs in the forward (TuningProfile.silentElbo.momentsInForward): g[b] only scales row b, so
// the forward, when the op will be differentiated, computes the values and the contraction
// with g = 1 and saves it, [moments, B, d], as big as the moment gradients; the backward
// multiplies by g[b] and runs the weight pass, which also writes dL/dx. That is one recompute
// instead of two, and measured faster than both passes in the backward (docs/performance-log.md,
// "Silent-ELBO backward: the moment pass in the forward"). Without it (SILENTGRAD_SILENT_ELBO_FUSE=0)
// the moment pass is back in the backward (it then writes dL/dx) and the forward saves nothing.
//
// The chunked walk both passes make, and where a chunk's partials live between its phases, are
// in silent-elbo-chunks.ts.
import type { SilentElboOperands, SilentElboTerm, View } from '../../../engine/backend.js';
import type { Dispatch } from '../queue.js';
import type { Targets } from '../kernels/silent-elbo.js';
import type { TuningProfile } from '../tuning.js';
import {
  addLatents, chunkWalk, elementAt, gatherRow, layout, operandBindings, output, partials, recomputeRows, rowOut, scatterSums, shaderHead,
  type Binding, type Layout, type Pass,
} from './silent-elbo-chunks.js';
import { bufferName, momentsUsed, offsetOf, operandOffsets, power, SIGMA2, usesA, type Moment } from '../kernels/silent-elbo-common.js';
import { constantPartial, constantTerm, epilogueFunction, four, tileContraction, vec4Rows } from './silent-elbo-tiles.js';
import { cachedSource, ceilDiv, elementLoop, elementsPerInvocation, entry, header, Params, range } from '../kernels/wgsl.js';
import { LANES } from './wgsl.js';

/**
 * Rows of the moment pass's tile and pixels of the weight pass's, with shared rows: 8 made both
 * passes faster than 4, and 16 slower (docs/performance-log.md, "Silent-ELBO backward: an 8-wide
 * shared side").
 */
const SHARED_SIDE = LANES;

/**
 * What the moment pass computes: in the backward, g[b] x the contraction into the wanted
 * moments' gradients (and dL/dx); in the forward (momentsInForward), the values and the contraction
 * of every moment with g = 1, saved [moment][b][i] for the backward to scale by g[b].
 */
type MomentMode = { kind: 'backward'; g: Targets; gradOut: GPUBuffer } | { kind: 'forward'; out: GPUBuffer; saved: GPUBuffer };

/**
 * Whether a pass's phase B walks the latents with each lane keeping its own items, instead of
 * latent groups: with subgroups, and for two or more terms' sums. After phase A a lane holds its
 * 4 items' partials (pixels in the moment pass, examples in the weight pass) in registers. Per
 * latent it dots them with its items' weight powers or moments, scatterSums leaves lane l the
 * chunk's sums for row or pixel l, and lane l adds them into its outputs. Nothing is carried
 * across the walk, where the latent-group walk carries every term's sums for all 8 rows or
 * pixels (72 vec4 per lane in the learnable form), which llvmpipe spills and masks on every
 * update. Items past B or k are masked out by their moments or weights: their partials are not
 * zeroed (a probe found the previous chunk's there).
 * Walking the latents made whole learnable calls faster in both passes; with one term (the
 * fixed form) the latent-group walk carries little, and the per-latent reduce and stores made
 * the call slower (docs/performance-log.md, "Silent-ELBO backward: phase B walks the latents").
 */
const walksLatents = (tuning: TuningProfile, terms: number): boolean => tuning.sharedRows && tuning.silentElbo.latentWalk && terms > 1;

/**
 * The key a pass's generated WGSL is cached under (cachedSource): everything its source reads
 * but the buffers. The layout carries what d and shared rows decide, the declarations which
 * operands and gradients are bound, the profile whether phase B walks the latents.
 */
const passKey = (tuning: TuningProfile, title: string, o: SilentElboOperands, l: Layout, bindings: readonly Binding[]): string =>
  JSON.stringify(['silent ELBO backward', title, o.form, o.terms.map((t) => t.name), l, tuning.silentElbo.latentWalk, bindings.map((b) => b.decl)]);

/** What both passes read of the parameter words silentElboBackward and the forward write. */
const PASS_WORDS = `let B = P[0]; let d = P[1]; let k = P[2]; let gOff = P[3]; let sigma2 = ${SIGMA2};`;

/**
 * Moment pass: grid of one workgroup per 8 examples (4 without subgroups). Phase A's tile is
 * the forward's, 8 rows tall, so it costs what the forward does.
 */
function momentPass(tuning: TuningProfile, o: SilentElboOperands, mode: MomentMode, buffer: (v: View) => GPUBuffer, vecOk: boolean): Pass | null {
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
  const l = layout(tuning.sharedRows, d, stored.length, vecOk);
  const { share, vec, lanes, groups, slots, chunk, me } = l;
  // Rows of the workgroup's tile: 8 fill the subgroup's 8 loading lanes (shared rows only).
  const R = share ? SHARED_SIDE : 4;
  const rowIds = range(R);
  const bindings = [
    ...operandBindings(o, momentsUsed(recomputed), vec, buffer, mode.kind === 'backward' ? mode.gradOut : null),
    ...(mode.kind === 'forward' ? [output('Saved', mode.saved, vec), output('Out', mode.out, false)]
      : [...wanted.map((m) => output(`G${bufferName[m]}`, mode.g[m]!, vec)), ...(wantX ? [output('GX', mode.g.x!, false)] : [])]),
  ];
  const title = forward ? 'moment sums in the forward' : 'moment gradients';
  const source = cachedSource(passKey(tuning, title, o, l, bindings), () => {
    // Where moment m's sums go: its gradient, or its rows of the saved [moment][b][i].
    const target = (m: Moment, row: string): [string, string] => forward ? ['Saved', `(${used.indexOf(m)}u * B + ${row})`] : [`G${bufferName[m]}`, row];
    const tile = tileContraction({ terms: recomputed, shared: share ? 'rows' : null, vec, rows: R });
    const functions = epilogueFunction(o, 'recompute', recomputed, stored, 'g: f32', wantX ? 'GX[b * k + j] = -g * px.d[0];' : '');
    const kept = partials(l, stored.length, R);
    const ns = stored.map((_, n) => n);
    // Keep: with subgroups keep_n_r, row r's partials for the lane's 4 pixels; else, for each of
    // them, the 4 rows' in workgroup memory.
    const keep = share
      ? ns.map((n) => rowIds.map((r) => `keep_${n}_${r} = row_${r}.p[${n}];`).join(' ')).join('\n      ')
      : four.map((e) => ns.map((n) => four.map((r) => `part[(j0 - c0 + ${e}u) * ${slots}u + ${4 * n + r}u] = row_${r}.p[${n}][${e}];`).join(' ')).join(' ')).join('\n      ');
    const needA = usesA([...stored, ...(folded ? [folded] : [])]);
    const sum = (m: Moment, r: number): string => `sum_${m}_${r}`;
    // walksLatents: lanes keep their 4 pixels; lane l ends with row l's sums. The folded term's
    // column sum enters on lane 0 only, so the reduce counts it once.
    const momentSum = (m: Moment, r: number): string => [
      ...stored.flatMap((t, n) => (t.moment === m ? [`dot(keep_${n}_${r}, w_${n})`] : [])),
      ...(folded?.moment === m ? [`select(0.0, g_${r} * ${constantPartial[o.form].partial} * colsum, ${me} == 0u)`] : []),
    ].join(' + ') || '0.0';
    const latentWalk = `let jb = c0 + ${me} * 4u;
      ${four.map((e) => `let jx_${e} = min(jb + ${e}u, k - 1u);`).join(' ')}
      let valid = vec4<f32>(${four.map((e) => `select(0.0, 1.0, jb + ${e}u < k)`).join(', ')});
      let bl = b0 + ${me};
      for (var i = 0u; i < d; i++) {
        let u = valid * vec4<f32>(${four.map((e) => elementAt('WMu', offsetOf.wMu, `jx_${e}`, vec)).join(', ')});
        ${needA ? `let a = valid * vec4<f32>(${four.map((e) => elementAt('WA', offsetOf.wA, `jx_${e}`, vec)).join(', ')});` : ''}
        ${stored.map((t, n) => `let w_${n} = ${power(t.powers[0], t.powers[1], 'u', 'a')};`).join(' ')}
        ${folded ? `let colsum = subgroupAdd(dot(${power(folded.powers[0], folded.powers[1], 'u', 'a')}, vec4<f32>(1.0)));` : ''}
        ${wanted.flatMap((m, mi) => rowIds.map((r) => `let v_${mi}_${r} = ${momentSum(m, r)};`)).join(' ')}
        ${scatterSums((mi, r) => `v_${mi}_${r}`, wanted.map((_, mi) => mi), R, (mi) => `s_${mi}`)}
        if (${me} < ${R}u && bl < B) {
          ${wanted.map((m, mi) => {
            const [out, row] = target(m, 'bl');
            const at = elementAt(out, '0u', row, vec);
            return `if (c0 == 0u) { ${at} = s_${mi}; } else { ${at} += s_${mi}; }`;
          }).join('\n          ')}
        }
      }`;
    const phaseB = walksLatents(tuning, stored.length) ? latentWalk : `let cEnd = min(${chunk}u, k - c0);
      for (var gg = 0u; gg < ${groups}u; gg++) {
        let i0 = (gg * ${lanes}u + ${me}) * 4u;
        ${share ? '' : 'if (i0 >= d) { break; }'}
        ${vec ? '' : four.map((e) => `let i_${e} = min(i0 + ${e}u, d - 1u);`).join(' ')}
        ${wanted.flatMap((m) => rowIds.map((r) => `var ${sum(m, r)} = vec4<f32>(0.0);`)).join(' ')}
        ${folded ? 'var colsum = vec4<f32>(0.0);' : ''}
        ${kept.loop('jj', 'cEnd', ns, `let j = c0 + jj;
          let u = ${gatherRow('WMu', offsetOf.wMu, 'j', vec)};
          ${needA ? `let a = ${gatherRow('WA', offsetOf.wA, 'j', vec)};` : ''}
          ${stored.map((t, n) => `let w_${n} = ${power(t.powers[0], t.powers[1], 'u', 'a')};`).join(' ')}
          ${stored.flatMap((t, n) => rowIds.map((r) => `${sum(t.moment, r)} += ${kept.at(n, r)} * w_${n};`)).join('\n        ')}
          ${folded ? `colsum += ${power(folded.powers[0], folded.powers[1], 'u', 'a')};` : ''}`)}
        ${folded ? rowIds.map((r) => `${sum(folded.moment, r)} += (g_${r} * ${constantPartial[o.form].partial}) * colsum;`).join(' ') : ''}
        ${rowIds.map((r) => `if (b0 + ${r}u < B) { ${wanted.map((m) => addLatents(...target(m, `(b0 + ${r}u)`), sum(m, r), 'c0 == 0u', vec)).join(' ')} }`).join('\n      ')}
      }`;
    const rows = (r: number): string => stored.length ? `row_${r}.value` : `row_${r}`;
    // The forward's values: each lane's share of its rows, summed over the lanes at the end.
    const values = !forward ? '' : share
      ? rowIds.map((r) => `let total_${r} = subgroupAdd(value_${r}); if (${me} == 0u && b0 + ${r}u < B) { Out[b0 + ${r}u] = total_${r}; }`).join('\n  ')
      : `${four.map((r) => `values[${me} * 4u + ${r}u] = value_${r};`).join(' ')}
    workgroupBarrier();
    if (${me} == 0u) {
      ${four.map((r) => `var total_${r} = 0.0;`).join(' ')}
      for (var l = 0u; l < ${lanes}u; l++) { ${four.map((r) => `total_${r} += values[l * 4u + ${r}u];`).join(' ')} }
      ${four.map((r) => `if (b0 + ${r}u < B) { Out[b0 + ${r}u] = total_${r}; }`).join(' ')}
    }`;
    return `${shaderHead(title, o, l, bindings, `${functions}${forward && !share ? `\nvar<workgroup> values: array<f32, ${4 * lanes}>;` : ''}`)} {
    ${PASS_WORDS}
    let b0 = wid.x * ${R}u;
    ${rowIds.map((r) => `let b_${r} = min(b0 + ${r}u, B - 1u); let g_${r} = ${forward ? '1.0' : `G[gOff + b_${r}]`};`).join(' ')}
    ${forward ? rowIds.map((r) => `var value_${r} = 0.0;`).join(' ') : ''}
    ${tile.setup}
    ${kept.declare}
    ${chunkWalk(l, 'c0', 'k', (first) => `let j0 = ${first};
        ${four.map((e) => `let j_${e} = min(j0 + ${e}u, k - 1u);`).join(' ')}
        ${tile.init}
        ${tile.loop}
        ${recomputeRows(stored, recomputed, 'j0', (r) => `g_${r}`, R)}
        ${keep}
        ${forward ? rowIds.map((r) => `value_${r} += ${rows(r)};`).join(' ') : ''}`, wanted.length ? phaseB : '')}
    ${values}
  }`;
  });
  return { source, bindings, groups: ceilDiv(B, R) };
}

/**
 * Weight pass: gradients of W_mu, W_a, b_mu, b_a. Grid: one workgroup per 8 pixels (4 without
 * subgroups). Phase A's tile has the pixels shared by the lanes and 4 examples per lane.
 */
function weightPass(tuning: TuningProfile, o: SilentElboOperands, g: Targets, wantX: boolean, buffer: (v: View) => GPUBuffer, gradOut: GPUBuffer, vecOk: boolean): Pass | null {
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
  const l = layout(tuning.sharedRows, d, stored.length, vecOk);
  const { share, vec, lanes, groups, slots, chunk, me } = l;
  // Pixels of the workgroup's tile (shared rows only; workgroup memory holds 4).
  const E = share ? SHARED_SIDE : 4;
  const pixelIds = range(E), halves = range(E / 4);
  const bindings = [
    ...operandBindings(o, momentsUsed([...recomputed, ...(folded ? [folded] : [])]), vec, buffer, gradOut),
    ...(wantU ? [output('GWMu', g.wMu!, vec)] : []), ...(wantA ? [output('GWA', g.wA!, vec)] : []),
    ...(wantBMu ? [output('GBMu', g.bMu!, false)] : []), ...(wantBA ? [output('GBA', g.bA!, false)] : []),
    ...(wantX ? [output('GX', g.x!, false)] : []),
  ];
  const source = cachedSource(passKey(tuning, 'weight gradients', o, l, bindings), () => {
    const tile = tileContraction({ terms: recomputed, shared: share ? 'pixels' : null, vec, pixels: E });
    const functions = epilogueFunction(o, 'recompute', recomputed, stored, 'g: f32', wantX ? 'GX[b * k + j] = -g * px.d[0];' : '');
    const kept = partials(l, stored.length, E);
    const ns = stored.map((_, n) => n);
    // Keep: with subgroups keep_n_e, pixel e's partials for the lane's 4 examples; else, for each
    // of them, the 4 pixels' in workgroup memory.
    const keep = share
      ? ns.map((n) => pixelIds.map((e) => `keep_${n}_${e} = vec4<f32>(${four.map((r) => `${rowOut(r, e >> 2)}.p[${n}][${e & 3}]`).join(', ')});`).join(' ')).join('\n      ')
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
    // walksLatents: lanes keep their 4 examples; lane l ends with pixel l's sums and runs the
    // chain rule for it.
    const chainOne = (which: 'u' | 'a'): string =>
      `0.0${chained.map((t) => chain(which, t, `h_${index(t)}`)).join('')}${folded ? chain(which, folded, 'foldedH') : ''}`;
    const putOne = (out: string, which: 'u' | 'a'): string => {
      const at = elementAt(out, '0u', 'jl', vec);
      return `{ let v = ${chainOne(which)}; if (bc == 0u) { ${at} = v; } else { ${at} += v; } }`;
    };
    const latentWalk = `let eb = bc + ${me} * 4u;
      ${four.map((r) => `let ex_${r} = min(eb + ${r}u, B - 1u);`).join(' ')}
      let valid = vec4<f32>(${four.map((r) => `select(0.0, 1.0, eb + ${r}u < B)`).join(', ')});
      ${folded ? `let gv = valid * vec4<f32>(${four.map((r) => `G[gOff + ex_${r}]`).join(', ')});` : ''}
      let jl = j0 + ${me};
      for (var i = 0u; i < d; i++) {
        ${momentsB.map((m) => `let m_${m} = valid * vec4<f32>(${four.map((r) => elementAt(bufferName[m], offsetOf[m], `ex_${r}`, vec)).join(', ')});`).join(' ')}
        ${folded ? `let foldedH = ${constantPartial[o.form].partial} * subgroupAdd(dot(gv, m_${folded.moment}));` : ''}
        ${chained.flatMap((t) => pixelIds.map((e) => `let v_${index(t)}_${e} = dot(keep_${index(t)}_${e}, m_${t.moment});`)).join(' ')}
        ${scatterSums((n, e) => `v_${n}_${e}`, chained.map(index), E, (n) => `h_${n}`)}
        if (${me} < ${E}u && jl < k) {
          let u = ${elementAt('WMu', offsetOf.wMu, 'jl', vec)};
          ${needA ? `let a = ${elementAt('WA', offsetOf.wA, 'jl', vec)};` : ''}
          ${wantU ? putOne('GWMu', 'u') : ''}
          ${wantA ? putOne('GWA', 'a') : ''}
        }
      }`;
    const phaseB = `let rEnd = min(${chunk}u, B - bc);
      ${biasTerms.length ? `{
        ${biasTerms.map(({ n }) => halves.map((h) => `var bias_${n}_${h} = vec4<f32>(0.0);`).join(' ')).join(' ')}
        ${kept.loop('bb', 'rEnd', biasTerms.map(({ n }) => n), biasTerms.map(({ n }) => halves.map((h) => `bias_${n}_${h} += ${kept.half(n, h)};`).join(' ')).join(' '))}
        if (${me} == 0u) { ${biasTerms.map(({ n, out }) => pixelIds.map((e) => `if (j0 + ${e}u < k) { if (bc == 0u) { ${out}[j0 + ${e}u] = bias_${n}_${e >> 2}[${e & 3}]; } else { ${out}[j0 + ${e}u] += bias_${n}_${e >> 2}[${e & 3}]; } }`).join(' ')).join(' ')} }
      }` : ''}
      ${!(wantU || wantA) ? '' : walksLatents(tuning, chained.length) ? latentWalk : `for (var gg = 0u; gg < ${groups}u; gg++) {
        let i0 = (gg * ${lanes}u + ${me}) * 4u;
        ${share ? '' : 'if (i0 >= d) { break; }'}
        ${vec ? '' : four.map((e) => `let i_${e} = min(i0 + ${e}u, d - 1u);`).join(' ')}
        ${chained.flatMap((t) => pixelIds.map((e) => `var ${h(index(t), e)} = vec4<f32>(0.0);`)).join(' ')}
        ${folded ? 'var colsum = vec4<f32>(0.0);' : ''}
        ${kept.loop('bb', 'rEnd', chained.map(index), `let b = bc + bb;
          ${momentsB.map((m) => `let m_${m} = ${gatherRow(bufferName[m], offsetOf[m], 'b', vec)};`).join(' ')}
          ${chained.flatMap((t) => pixelIds.map((e) => `${h(index(t), e)} += ${kept.at(index(t), e)} * m_${t.moment};`)).join('\n        ')}
          ${folded ? `colsum += G[gOff + b] * m_${folded.moment};` : ''}`)}
        ${folded ? `let foldedH = ${constantPartial[o.form].partial} * colsum;` : ''}
        ${pixelIds.map((e) => `if (j0 + ${e}u < k) {
          let u = ${gatherRow('WMu', offsetOf.wMu, `j_${e}`, vec)};
          ${needA ? `let a = ${gatherRow('WA', offsetOf.wA, `j_${e}`, vec)};` : ''}
          ${wantU ? addLatents('GWMu', `j_${e}`, chainAll('u', e), 'bc == 0u', vec) : ''}
          ${wantA ? addLatents('GWA', `j_${e}`, chainAll('a', e), 'bc == 0u', vec) : ''}
        }`).join('\n      ')}
      }`}`;
    return `${shaderHead('weight gradients', o, l, bindings, functions)} {
    ${PASS_WORDS}
    let j0 = wid.x * ${E}u;
    ${pixelIds.map((e) => `let j_${e} = min(j0 + ${e}u, k - 1u);`).join(' ')}
    ${tile.setup}
    ${kept.declare}
    ${chunkWalk(l, 'bc', 'B', (first) => `let b0 = ${first};
        ${four.map((r) => `let b_${r} = min(b0 + ${r}u, B - 1u);`).join(' ')}
        ${tile.init}
        ${tile.loop}
        ${recomputeRows(stored, recomputed, 'j0', (r) => `G[gOff + b_${r}]`, 4, E)}
        ${keep}`, phaseB)}
  }`;
  });
  return { source, bindings, groups: ceilDiv(k, E) };
}

/**
 * The forward that saves what the backward needs (momentsInForward): the values into `out` and the
 * moment contraction (g = 1) into `saved`, [moment][b][i] in momentsUsed order.
 */
export function silentElboForwardSaving(tuning: TuningProfile, o: SilentElboOperands, buffer: (v: View) => GPUBuffer, out: GPUBuffer, saved: GPUBuffer): Dispatch | null {
  const [B, d] = o.mean.shape as [number, number];
  if (B === 0) return null;
  const params = new Params().u32(B, d, o.x.shape[1]!, 0, ...operandOffsets(o)).f32(o.sigma2).build();
  const p = momentPass(tuning, o, { kind: 'forward', out, saved }, buffer, tuning.silentElbo.vec4Rows && vec4Rows(o))!;
  return { source: p.source, buffers: p.bindings.map((b) => b.buffer), params, groups: [p.groups, 1, 1] };
}

const SCALE_WORKGROUP = 64;

/**
 * dL/dmoment[b, i] = g[b] x the forward's saved contraction (momentsInForward), every wanted moment
 * in one dispatch: lavapipe spends ~0.35 ms on a dispatch whatever its size, so a multiply per
 * moment cost four of them. `P[14]` is the elements per invocation.
 */
function savedScaling(o: SilentElboOperands, saved: GPUBuffer, g: Targets, gradOut: GPUBuffer): Pass | null {
  const [B, d] = o.mean.shape as [number, number];
  const wanted = momentsUsed(o.terms).map((m, n) => ({ m, n })).filter(({ m }) => g[m]);
  if (wanted.length === 0 || B * d === 0) return null;
  const bindings: Binding[] = [
    { decl: { name: 'Saved', access: 'read' }, buffer: saved }, { decl: { name: 'G', access: 'read' }, buffer: gradOut },
    ...wanted.map(({ m }) => output(`G${bufferName[m]}`, g[m]!, false)),
  ];
  const source = cachedSource(JSON.stringify(['silent ELBO saved scaling', wanted]), () => `// silent ELBO backward, moment gradients from the forward's saved contraction (${wanted.map(({ m }) => m).join(', ')})
${header(bindings.map((b) => b.decl))}
${entry([SCALE_WORKGROUP])} {
  let B = P[0]; let d = P[1]; let gOff = P[3];
  ${elementLoop(SCALE_WORKGROUP, 'P[14]', 'B * d')}
    let g = G[gOff + index / d];
    ${wanted.map(({ m, n }) => `G${bufferName[m]}[index] = g * Saved[${n}u * B * d + index];`).join(' ')}
  }
}`);
  return { source, bindings, groups: ceilDiv(B * d, SCALE_WORKGROUP * elementsPerInvocation(B * d, SCALE_WORKGROUP)) };
}

/**
 * The backward's dispatches. `buffer` gives each operand view's buffer; `g` are the target
 * buffers (absent: not needed). With `saved` (momentsInForward), the forward already contracted the
 * moments (silentElboForwardSaving) and the moment gradients are that scaled by g; dL/dx then
 * comes from the weight pass.
 */
export function silentElboBackward(tuning: TuningProfile, o: SilentElboOperands, gradOut: { buffer: GPUBuffer; offset: number }, buffer: (v: View) => GPUBuffer, g: Targets, saved: GPUBuffer | null): Dispatch[] {
  const [B, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const params = new Params().u32(B, d, k, gradOut.offset, ...operandOffsets(o)).f32(o.sigma2).u32(elementsPerInvocation(B * d, SCALE_WORKGROUP)).build();
  const vec = tuning.silentElbo.vec4Rows && vec4Rows(o);
  const passes = [
    saved ? savedScaling(o, saved, g, gradOut.buffer) : momentPass(tuning, o, { kind: 'backward', g, gradOut: gradOut.buffer }, buffer, vec),
    weightPass(tuning, o, g, !!saved && !!g.x, buffer, gradOut.buffer, vec),
  ];
  return passes.filter((p): p is Pass => p !== null).map((p) => ({
    source: p.source, buffers: p.bindings.map((b) => b.buffer), params, groups: p.groups,
  }));
}
