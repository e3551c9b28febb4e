// The fused silent-ELBO backward: the gradients of sum_b g[b] out[b] from the saved partials
// P_t[b][j] = d(pixel term)/d(contraction t). Two passes, nothing of size B x d x k:
//  - over pixels j:  dL/dmoment[b,i] = g[b] sum_t sum_j P_t[b][j] u_ji^p a_ji^q   (and dL/dx = -g P_Ubar)
//  - over batch b:   h_t[j,i] = sum_b g[b] P_t[b][j] moment_t[b,i], then the chain rule through
//                    u^p a^q gives dL/dW_mu and dL/dW_a; dL/db_mu, dL/db_a = sum_b g P_Ubar, g P_Abar.
// Each invocation owns 4 rows (examples, or pixels) x 4 latents; all term accumulators stay live.
import type { SilentElboGradients, SilentElboOperands } from '../../../engine/backend.js';
import type { Dispatch } from '../queue.js';
import { bufferName, momentsUsed, offsetOf, operandOffsets, power, usesA, type Moment } from './silent-elbo-common.js';
import { gemmDevice } from './gemm.js';
import { ceilDiv, entry, header, laneShared, pickU32, Params, SUBGROUP_DIRECTIVES, type BufferDecl } from './wgsl.js';

const WG = 8;
/**
 * With shared rows (lavapipe's 8-lane subgroups, as in gemm.ts) a workgroup is one row of 8
 * lanes along the latents, all owning the same 4 rows, and the partials P_t[row][j], the same
 * for every lane, are loaded once per subgroup (laneShared) instead of once per lane: 40 loads
 * per lane and step become 5. B=64 d=200 k=784 learnable, Bernoulli moments, each dispatch
 * replayed alone on lavapipe (two runs of a loaded machine): moment pass 61.3 -> 11.8 ms,
 * weight pass 62.4 -> 20.5 ms (the forward, silent-elbo-forward.ts: 15.4 -> 10.4 ms); the
 * fused fwd+bwd in bench/silent-elbo.js 159 -> 65 ms, 0.68 -> 0.25 of the composite.
 */
const shared = (): boolean => gemmDevice.shareRows;
const rows = [0, 1, 2, 3], lanes = [0, 1, 2, 3];
type Buffers = Partial<Record<keyof SilentElboGradients, GPUBuffer>>;

/**
 * Common prologue: 4 rows of `rowCount` from wid.y, 4 latents from wid.x, clamped copies. With
 * shared rows no lane returns early (a broadcast reads the loading lanes): the grid starts no
 * row block past the end, latents past d are clamped and never written.
 */
function prologue(rowCount: string, share: boolean): string {
  return `let B = P[0]; let d = P[1]; let k = P[2]; let gOff = P[3];
  let i0 = (wid.x * ${WG}u + lid3.x) * 4u;
  let r0 = (wid.y * ${share ? 1 : WG}u + lid3.y) * 4u;
  ${share ? '' : `if (r0 >= ${rowCount} || (i0 >= d && i0 != 0u)) { return; }`}
  ${lanes.map((e) => `let i_${e} = min(i0 + ${e}u, d - 1u);`).join(' ')}
  ${rows.map((r) => `let row_${r} = min(r0 + ${r}u, ${rowCount} - 1u);`).join(' ')}`;
}

/**
 * The 4 latents i0.. of `row` of a [rows, d] operand. With `vec` (d and the operands' offsets
 * multiples of 4, the operand declared vec4) one vec4 load: llvmpipe's per-lane overhead is
 * paid once for the 4 elements instead of 4 times (weight pass 20-23 -> 16 ms, B=64 d=200
 * k=784 learnable, two interleaved runs; the moment pass, 8 of its 48 loads, unchanged).
 */
const gatherRow = (name: string, offset: string, row: string, vec: boolean): string => vec
  ? `${name}[(${offset} + ${row} * d) / 4u + min(i0 / 4u, d / 4u - 1u)]`
  : `vec4<f32>(${lanes.map((e) => `${name}[${offset} + ${row} * d + i_${e}]`).join(', ')})`;
const rowOperand = (name: string, vec: boolean): BufferDecl => ({ name, access: 'read', ...(vec ? { type: 'vec4<f32>' as const } : {}) });

/** Write vec4 `v` of row r to OUT[row * d + i] where in range. */
const writeLatents = (out: string, r: number, v: string): string =>
  lanes.map((e) => `if (i0 + ${e}u < d) { ${out}[(r0 + ${r}u) * d + i0 + ${e}u] = ${v}[${e}]; }`).join(' ');

function momentPass(o: SilentElboOperands, wanted: Moment[], wantX: boolean, share: boolean, vec: boolean): string {
  const terms = o.terms, needA = usesA(terms);
  const live = terms.map((t, n) => ({ t, n })).filter(({ t }) => wanted.includes(t.moment));
  // Slot 4 L + r: the partial of live term L at row r.
  const part = laneShared('part', 4 * live.length, 'Part', (q) => `(${pickU32(live.map(({ n }) => n), `${q} / 4u`)} * B + min(r0 + ${q} % 4u, B - 1u)) * k`, 'j');
  const ubar = terms.findIndex((t) => t.name === 'Ubar');
  const buffers: BufferDecl[] = [
    { name: 'Part', access: 'read' }, { name: 'G', access: 'read' }, rowOperand('WMu', vec),
    ...(needA ? [rowOperand('WA', vec)] : []),
    ...wanted.map((m) => ({ name: `G${bufferName[m]}`, access: 'read_write' as const })),
    ...(wantX ? [{ name: 'GX', access: 'read_write' as const }] : []),
  ];
  const body = [
    `let u = ${gatherRow('WMu', offsetOf.wMu, 'j', vec)};`,
    ...(needA ? [`let a = ${gatherRow('WA', offsetOf.wA, 'j', vec)};`] : []),
    ...live.map(({ t, n }) => `let w_${n} = ${power(t.powers[0], t.powers[1], 'u', 'a')};`),
    ...(share ? [part.loads] : []),
    ...live.flatMap(({ t, n }, L) => rows.map((r) => `acc_${t.moment}_${r} += ${share ? part.value(4 * L + r) : `Part[(${n}u * B + row_${r}) * k + j]`} * w_${n};`)),
    ...(wantX ? [`if (i0 == 0u) { ${rows.map((r) => `if (r0 + ${r}u < B) { GX[(r0 + ${r}u) * k + j] = -G[gOff + r0 + ${r}u] * Part[(${ubar}u * B + r0 + ${r}u) * k + j]; }`).join(' ')} }`] : []),
  ];
  return `${share ? SUBGROUP_DIRECTIVES : ''}// silent ELBO backward, moment gradients (${o.form}: ${terms.map((t) => t.name).join(', ')})${share ? ' (shared rows)' : ''}
${header(buffers)}
${entry([WG, share ? 1 : WG], share ? '@builtin(subgroup_invocation_id) lane: u32' : '')} {
  ${prologue('B', share)}
  ${share ? part.setup : ''}
  ${wanted.flatMap((m) => rows.map((r) => `var acc_${m}_${r} = vec4<f32>(0.0);`)).join(' ')}
  for (var j = 0u; j < k; j++) {
    ${body.join('\n    ')}
  }
  ${rows.map((r) => `if (r0 + ${r}u < B) { let g = G[gOff + r0 + ${r}u]; ${wanted.map((m) => writeLatents(`G${bufferName[m]}`, r, `(g * acc_${m}_${r})`)).join(' ')} }`).join('\n  ')}
}`;
}

function weightPass(o: SilentElboOperands, wantU: boolean, wantA: boolean, wantBMu: boolean, wantBA: boolean, share: boolean, vec: boolean): string {
  const terms = o.terms, moments = momentsUsed(terms), needA = usesA(terms);
  // Slot 4 n + r: the partial of term n at row (pixel) r.
  const part = laneShared('part', 4 * terms.length, 'Part', (q) => `${q} / 4u * B * k + min(r0 + ${q} % 4u, k - 1u)`, 'b * k');
  const weights = wantU || wantA;
  const ubar = terms.findIndex((t) => t.name === 'Ubar'), abar = terms.findIndex((t) => t.name === 'Abar');
  const buffers: BufferDecl[] = [
    { name: 'Part', access: 'read' }, { name: 'G', access: 'read' },
    ...moments.map((m) => rowOperand(bufferName[m], vec)),
    rowOperand('WMu', vec), ...(needA ? [rowOperand('WA', vec)] : []),
    ...(wantU ? [{ name: 'GWMu', access: 'read_write' as const }] : []),
    ...(wantA ? [{ name: 'GWA', access: 'read_write' as const }] : []),
    ...(wantBMu ? [{ name: 'GBMu', access: 'read_write' as const }] : []),
    ...(wantBA ? [{ name: 'GBA', access: 'read_write' as const }] : []),
  ];
  const body = [
    'let g = G[gOff + b];',
    ...(share ? [part.loads] : []),
    ...terms.flatMap((_, n) => rows.map((r) => `let s_${n}_${r} = g * ${share ? part.value(4 * n + r) : `Part[(${n}u * B + b) * k + row_${r}]`};`)),
    ...(weights ? moments.map((m) => `let m_${m} = ${gatherRow(bufferName[m], offsetOf[m], 'b', vec)};`) : []),
    ...(weights ? terms.flatMap((t, n) => rows.map((r) => `h_${n}_${r} += s_${n}_${r} * m_${t.moment};`)) : []),
    ...(wantBMu ? rows.map((r) => `gbMu_${r} += s_${ubar}_${r};`) : []),
    ...(wantBA ? rows.map((r) => `gbA_${r} += s_${abar}_${r};`) : []),
  ];
  // d(u^p a^q)/du = p u^(p-1) a^q, d/da = q u^p a^(q-1).
  const chain = (which: 'u' | 'a'): string => terms.map((t, n) => {
    const [p, q] = t.powers;
    const factor = which === 'u' ? p : q;
    if (factor === 0) return '';
    const pw = which === 'u' ? power(p - 1, q, 'u', 'a') : power(p, q - 1, 'u', 'a');
    return ` + ${factor}.0 * ${pw} * h_${n}_R`;
  }).join('');
  const epilogue = rows.map((r) => `if (r0 + ${r}u < k) {
    let u = ${gatherRow('WMu', offsetOf.wMu, `(r0 + ${r}u)`, vec)};
    ${needA ? `let a = ${gatherRow('WA', offsetOf.wA, `(r0 + ${r}u)`, vec)};` : ''}
    ${wantU ? `let gu = vec4<f32>(0.0)${chain('u').replace(/_R\b/g, `_${r}`)}; ${writeLatents('GWMu', r, 'gu')}` : ''}
    ${wantA ? `let ga = vec4<f32>(0.0)${chain('a').replace(/_R\b/g, `_${r}`)}; ${writeLatents('GWA', r, 'ga')}` : ''}
    ${wantBMu ? `if (i0 == 0u) { GBMu[r0 + ${r}u] = gbMu_${r}; }` : ''}
    ${wantBA ? `if (i0 == 0u) { GBA[r0 + ${r}u] = gbA_${r}; }` : ''}
  }`);
  return `${share ? SUBGROUP_DIRECTIVES : ''}// silent ELBO backward, weight gradients (${o.form}: ${terms.map((t) => t.name).join(', ')})${share ? ' (shared rows)' : ''}
${header(buffers)}
${entry([WG, share ? 1 : WG], share ? '@builtin(subgroup_invocation_id) lane: u32' : '')} {
  ${prologue('k', share)}
  ${share ? part.setup : ''}
  ${weights ? terms.flatMap((_, n) => rows.map((r) => `var h_${n}_${r} = vec4<f32>(0.0);`)).join(' ') : ''}
  ${wantBMu ? rows.map((r) => `var gbMu_${r} = 0.0;`).join(' ') : ''} ${wantBA ? rows.map((r) => `var gbA_${r} = 0.0;`).join(' ') : ''}
  for (var b = 0u; b < B; b++) {
    ${body.join('\n    ')}
  }
  ${epilogue.join('\n  ')}
}`;
}

/**
 * The backward's dispatches. `operand` gives each input view's buffer; `g` are the target
 * buffers (absent: not needed).
 */
export function silentElboBackward(o: SilentElboOperands, partials: GPUBuffer, gradOut: { buffer: GPUBuffer; offset: number },
  inputs: { moments: Record<Moment, GPUBuffer | null>; wMu: GPUBuffer; wA: GPUBuffer | null }, g: Buffers): Dispatch[] {
  const [B, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const params = new Params().u32(B, d, k, gradOut.offset, ...operandOffsets(o)).build();
  const needA = usesA(o.terms);
  const used = momentsUsed(o.terms);
  const wanted = used.filter((m) => g[m]);
  const dispatches: Dispatch[] = [];
  const latentGroups = Math.max(1, ceilDiv(d, 4));
  const share = shared(), rowsPerGroup = 4 * (share ? 1 : WG);
  // The moments' and weights' offsets (operandOffsets' first six) and d multiples of 4: vec4 rows.
  const vec = d >= 4 && d % 4 === 0 && operandOffsets(o).slice(0, 6).every((offset) => offset % 4 === 0);
  if (wanted.length > 0 || g.x) dispatches.push({
    source: momentPass(o, wanted, !!g.x, share, vec),
    buffers: [partials, gradOut.buffer, inputs.wMu, ...(needA ? [inputs.wA!] : []), ...wanted.map((m) => g[m]!), ...(g.x ? [g.x] : [])],
    params,
    groups: [ceilDiv(latentGroups, WG), ceilDiv(B, rowsPerGroup), 1],
  });
  const [wantU, wantA, wantBMu, wantBA] = [!!g.wMu, !!g.wA && needA, !!g.bMu, !!g.bA && needA];
  if (wantU || wantA || wantBMu || wantBA) dispatches.push({
    source: weightPass(o, wantU, wantA, wantBMu, wantBA, share, vec),
    buffers: [partials, gradOut.buffer, ...used.map((m) => inputs.moments[m]!), inputs.wMu, ...(needA ? [inputs.wA!] : []),
      ...(wantU ? [g.wMu!] : []), ...(wantA ? [g.wA!] : []), ...(wantBMu ? [g.bMu!] : []), ...(wantBA ? [g.bA!] : [])],
    params,
    groups: [ceilDiv(latentGroups, WG), ceilDiv(k, rowsPerGroup), 1],
  });
  return dispatches;
}
