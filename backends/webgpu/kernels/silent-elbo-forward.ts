// The fused silent-ELBO forward (math note, "Cost and what fused means"): each invocation owns
// 4 examples x 4 pixels and makes ONE pass over the latent dimension with every contraction's
// accumulator live in registers (up to 10 terms x 4 vec4), then runs the per-pixel epilogue:
// the closed form, its partial derivatives [term][b][j] for the backward, and the example's
// partial sum over its 4 pixels. Those row partials ([B, k/4]) are summed by the reduce kernel.
import type { SilentElboOperands, View } from '../../../engine/backend.js';
import { silentElboTerms } from '../../../engine/ops/silent-elbo.js';
import type { Dispatch } from '../queue.js';
import { reduce } from './reduce.js';
import { bufferName, momentsUsed, offsetOf, operandOffsets, power, usesA } from './silent-elbo-common.js';
import { gemmDevice } from './gemm.js';
import { ceilDiv, entry, header, laneShared, Params, SUBGROUP_DIRECTIVES, type BufferDecl } from './wgsl.js';

const SLOTS = silentElboTerms.map((t) => t.name);
const WG = 8;

/** The per-pixel closed forms; `d[slot]` = d(value)/d(contraction), slots in silentElboTerms order. */
const pixelFunction = (form: 'fixed' | 'learnable'): string => `
struct Pixel { value: f32, d: array<f32, ${SLOTS.length}> }
const LOG_2PI = 1.8378770664093453;
fn pixel(x: f32, v: array<f32, ${SLOTS.length}>, sigma2: f32) -> Pixel {
  var out: Pixel;
  let Ubar = v[0]; let Abar = v[1]; let Suu = v[2]; let Saa = v[3]; let Sua = v[4];
  let Tuaa = v[5]; let Tuua = v[6]; let Taaa = v[7]; let Kuuaa = v[8]; let Kaaaa = v[9];
${form === 'fixed' ? `
  // -((x - Ubar)^2 + Suu) / (2 s2) - log(2 pi s2) / 2
  let residual = x - Ubar;
  out.d[0] = residual / sigma2;
  out.d[2] = -0.5 / sigma2;
  out.value = -(residual * residual + Suu) / (2.0 * sigma2) - 0.5 * (LOG_2PI + log(sigma2));` : `
  // E[D^2 A^2], E[A^2], Var[A^2] and the second-order Taylor log term (math note).
  let D = x - Ubar; let A = Abar; let D2 = D * D; let A2 = A * A;
  let eDA = D2 * A2 + D2 * Saa + A2 * Suu - 4.0 * D * A * Sua - 2.0 * D * Tuaa + 2.0 * A * Tuua
    + Kuuaa + Suu * Saa + 2.0 * Sua * Sua;
  let eA2 = A2 + Saa;
  let varA2 = 4.0 * A2 * Saa + 4.0 * A * Taaa + Kaaaa + 2.0 * Saa * Saa;
  let logTerm = log(eA2) - varA2 / (2.0 * eA2 * eA2);
  let dLogdE = 1.0 / eA2 + varA2 / (eA2 * eA2 * eA2);
  let dLogdV = -1.0 / (2.0 * eA2 * eA2);
  let dEdD = 2.0 * D * A2 + 2.0 * D * Saa - 4.0 * A * Sua - 2.0 * Tuaa;
  let dEdA = 2.0 * D2 * A + 2.0 * A * Suu - 4.0 * D * Sua + 2.0 * Tuua;
  out.d[0] = 0.5 * dEdD;
  out.d[1] = -0.5 * dEdA + 0.5 * (dLogdE * 2.0 * A + dLogdV * (8.0 * A * Saa + 4.0 * Taaa));
  out.d[2] = -0.5 * (A2 + Saa);
  out.d[3] = -0.5 * (D2 + Suu) + 0.5 * (dLogdE + dLogdV * (4.0 * A2 + 4.0 * Saa));
  out.d[4] = 2.0 * D * A - 2.0 * Sua;
  out.d[5] = D;
  out.d[6] = -A;
  out.d[7] = 2.0 * A * dLogdV;
  out.d[8] = -0.5;
  out.d[9] = 0.5 * dLogdV;
  out.value = -0.5 * eDA + 0.5 * logTerm - 0.5 * LOG_2PI;`}
  return out;
}`;

/**
 * With shared rows (lavapipe's 8-lane subgroups, gemm.ts) a workgroup is one row of 8 lanes
 * along the pixels, all owning the same 4 examples: each moment's 4 values per step are loaded
 * once per subgroup (laneShared) instead of once per lane, 16 loads per lane become 4.
 */
function source(o: SilentElboOperands, withPartials: boolean, share: boolean): string {
  const terms = o.terms, moments = momentsUsed(terms), needA = usesA(terms);
  const buffers: BufferDecl[] = [
    ...moments.map((m) => ({ name: bufferName[m], access: 'read' as const })),
    { name: 'WMu', access: 'read' }, ...(needA ? [{ name: 'WA', access: 'read' as const }] : []),
    { name: 'BMu', access: 'read' }, ...(o.bA ? [{ name: 'BA', access: 'read' as const }] : []),
    { name: 'X', access: 'read' },
    ...(withPartials ? [{ name: 'Part', access: 'read_write' as const }] : []),
    { name: 'RowPart', access: 'read_write' },
  ];
  const rows = [0, 1, 2, 3], lanes = [0, 1, 2, 3];
  const gather = (name: string, offset: string): string =>
    `vec4<f32>(${lanes.map((e) => `${name}[${offset} + j_${e} * d + i]`).join(', ')})`;
  const shared = moments.map((m) => ({ m, s: laneShared(`sh${m}`, 4, bufferName[m], (q) => `${offsetOf[m]} + min(b0 + ${q}, B - 1u) * d`, 'i') }));
  const loop = [
    `let u = ${gather('WMu', offsetOf.wMu)};`,
    ...(needA ? [`let a = ${gather('WA', offsetOf.wA)};`] : []),
    ...(share
      ? shared.flatMap(({ m, s }) => [s.loads, ...rows.map((r) => `let ${m}_${r} = ${s.value(r)};`)])
      : moments.flatMap((m) => rows.map((r) => `let ${m}_${r} = ${bufferName[m]}[${offsetOf[m]} + b_${r} * d + i];`))),
    ...terms.map((t, n) => `let w_${n} = ${power(t.powers[0], t.powers[1], 'u', 'a')};`),
    ...terms.flatMap((t, n) => rows.map((r) => `acc_${n}_${r} += ${t.moment}_${r} * w_${n};`)),
  ];
  // The epilogue is a function called once per row with a runtime loop over the 4 pixels:
  // unrolled 16 times, the learnable closed form made LLVM compile for ~50 s on lavapipe.
  const T = terms.length;
  const epilogueFunction = `
fn epilogueRow(b: u32, j0: u32, B: u32, k: u32, acc: array<vec4<f32>, ${T}>) -> f32 {
  var rowSum = 0.0;
  for (var e = 0u; e < 4u; e++) {
    let j = j0 + e;
    if (j >= k) { break; }
    var v: array<f32, ${SLOTS.length}>;
    ${terms.map((t, n) => `v[${SLOTS.indexOf(t.name)}] = acc[${n}][e];`).join(' ')}
    v[0] += BMu[${offsetOf.bMu} + j];
    ${o.bA ? `v[1] += BA[${offsetOf.bA} + j];` : ''}
    let px = pixel(X[${offsetOf.x} + b * k + j], v, pf(13u));
    rowSum += px.value;
    ${withPartials ? terms.map((t, n) => `Part[(${n}u * B + b) * k + j] = px.d[${SLOTS.indexOf(t.name)}];`).join(' ') : ''}
  }
  return rowSum;
}`;
  const epilogue = rows.map((r) => `if (b0 + ${r}u < B${share ? ' && jg < P[3]' : ''}) {
    RowPart[(b0 + ${r}u) * P[3] + jg] = epilogueRow(b0 + ${r}u, j0, B, k, array<vec4<f32>, ${T}>(${terms.map((_, n) => `acc_${n}_${r}`).join(', ')}));
  }`);
  return `${share ? SUBGROUP_DIRECTIVES : ''}// silent ELBO forward (${o.form}: ${terms.map((t) => t.name).join(', ')})${share ? ' (shared rows)' : ''}
${header(buffers)}
${pixelFunction(o.form)}
${epilogueFunction}
${entry([WG, share ? 1 : WG], share ? '@builtin(subgroup_invocation_id) lane: u32' : '')} {
  let B = P[0]; let d = P[1]; let k = P[2];
  let jg = wid.x * ${WG}u + lid3.x;
  let j0 = jg * 4u;
  let b0 = (wid.y * ${share ? 1 : WG}u + lid3.y) * 4u;
  ${share
    // No early return: a broadcast reads the loading lanes. Pixels past k are clamped here and
    // skipped by the epilogue; the grid starts no example block past B.
    ? shared.map(({ s }) => s.setup).join(' ')
    : 'if (b0 >= B || j0 >= k) { return; }'}
  ${lanes.map((e) => `let j_${e} = min(j0 + ${e}u, k - 1u);`).join(' ')}
  ${rows.map((r) => `let b_${r} = min(b0 + ${r}u, B - 1u);`).join(' ')}
  ${terms.flatMap((_, n) => rows.map((r) => `var acc_${n}_${r} = vec4<f32>(0.0);`)).join(' ')}
  for (var i = 0u; i < d; i++) {
    ${loop.join('\n    ')}
  }
  ${epilogue.join('\n  ')}
}`;
}

/** Buffers of the operands in the order source() declares them. */
export function operandBuffers(o: SilentElboOperands, buffer: (v: View) => GPUBuffer): GPUBuffer[] {
  const moments = momentsUsed(o.terms);
  const list = [...moments.map((m) => (m === 'mean' ? o.mean : o[m])), o.wMu, usesA(o.terms) ? o.wA : null, o.bMu, o.bA, o.x];
  return list.filter((v): v is View => v !== null).map(buffer);
}

export function silentElboForward(o: SilentElboOperands, inputs: readonly GPUBuffer[], out: GPUBuffer, partials: GPUBuffer | null,
  scratch: (floats: number) => GPUBuffer): Dispatch[] {
  const [B, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const groups = ceilDiv(k, 4);
  if (B === 0) return [];
  const rowPart = scratch(B * groups);
  const params = new Params().u32(B, d, k, groups, ...operandOffsets(o)).f32(o.sigma2).build();
  const share = gemmDevice.shareRows;
  const fused: Dispatch = {
    source: source(o, partials !== null, share),
    buffers: [...inputs, ...(partials ? [partials] : []), rowPart],
    params,
    groups: k === 0 ? 0 : [ceilDiv(groups, WG), ceilDiv(B, 4 * (share ? 1 : WG)), 1],
  };
  const sum = reduce('sum', { buffer: rowPart, shape: [B, groups], strides: [groups, 1], offset: 0 }, [1], out);
  return [fused, ...(sum ? [sum] : [])];
}

