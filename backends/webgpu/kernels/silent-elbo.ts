// The plain silent ELBO, shaped like the CPU reference (backends/cpu/silent-elbo.ts). The
// forward gives each (example b, pixel j) one invocation: it computes every contraction
// sum_i u_ji^p a_ji^q moment_bi (docs/silent-elbo.md, section 4), evaluates the per-pixel
// closed form (pixelFunction) and, when the op will be differentiated, saves its partials
// d(value)/d(contraction) laid out [term][b][j]. The backward contracts those partials: over
// pixels into the moment gradients, over the batch into the weight gradients, and sums them
// into the bias and data gradients. tuned/silent-elbo-*.ts hold the fused variants, which save
// no per-pixel partials and recompute them instead.
import type { SilentElboGradients, SilentElboOperands, View } from '../../../engine/backend.js';
import { silentElboTerms } from '../../../engine/ops/silent-elbo.js';
import { linearGroup, type Dispatch } from '../queue.js';
import { reduce } from './reduce.js';
import { bufferName, momentsUsed, offsetOf, operandOffsets, pixelFunction, power, SIGMA2, slotOf, usesA, type Moment } from './silent-elbo-common.js';
import { cachedSource, ceilDiv, entry, header, Params, type BufferDecl } from './wgsl.js';

const WORKGROUP = 64;

export type Targets = Partial<Record<keyof SilentElboGradients, GPUBuffer>>;
/** A binding: what the shader declares and the buffer bound there (null: left out). */
type Binding = [decl: BufferDecl, buffer: GPUBuffer | null];

const read = (name: string): BufferDecl => ({ name, access: 'read' });
const write = (name: string): BufferDecl => ({ name, access: 'read_write' });

type Walk = 'pixels' | 'latents' | 'weights' | 'columns';

/** A kernel's title, and its invocations (`at` in WGSL), one per (b, j), (b, i), (j, i) or j: in WGSL and counted. */
const walk = (w: Walk, B: number, d: number, k: number): readonly [title: string, wgsl: string, count: number] => ({
  pixels: ['values and partials', 'B * k', B * k], latents: ['moment gradients', 'B * d', B * d],
  weights: ['weight gradients', 'k * d', k * d], columns: ['bias and data gradients', 'k', k],
} as const)[w];

/**
 * A kernel walking `w`, reading B, d, k, g's offset (P[3]), the operands' offsets
 * (silent-elbo-common.ts, offsetOf) and sigma2 from its parameters. `key` names everything
 * `body` reads but the buffers, so the generated source is cached by it.
 */
function kernel(o: SilentElboOperands, w: Walk, key: readonly unknown[], bindings: readonly Binding[], gOffset: number,
  functions: string, body: () => string): Dispatch | null {
  const [B, d] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const [title, invocations, count] = walk(w, B, d, k);
  if (count === 0) return null;
  const bound = bindings.filter((b): b is [BufferDecl, GPUBuffer] => b[1] !== null);
  const source = cachedSource(JSON.stringify(['plain silent ELBO', w, o.form, o.terms.map((t) => t.name), ...key, bound.map(([decl]) => decl.name)]), () => `// plain silent ELBO, ${title} (${o.form})
${header(bound.map(([decl]) => decl))}
${functions}
${entry([WORKGROUP])} {
  let B = P[0]; let d = P[1]; let k = P[2]; let sigma2 = ${SIGMA2};
  let at = (${linearGroup}) * ${WORKGROUP}u + lid;
  if (at >= ${invocations}) { return; }
  ${body()}
}`);
  const params = new Params().u32(B, d, k, gOffset, ...operandOffsets(o)).f32(o.sigma2).build();
  return { source, buffers: bound.map(([, buffer]) => buffer), params, groups: ceilDiv(count, WORKGROUP) };
}

/** The weights of pixel `row` at latent i: `let u` and, with `withA`, `let a`. */
const weightsAt = (row: string, withA: boolean): string =>
  `let u = WMu[${offsetOf.wMu} + ${row} * d + i];${withA ? ` let a = WA[${offsetOf.wA} + ${row} * d + i];` : ''}`;

const momentOf = (o: SilentElboOperands, m: Moment): View => (m === 'mean' ? o.mean : o[m]!);

/** The partials the forward saves and the backward reads, [terms, B, k]. */
export const savedShape = (o: SilentElboOperands): number[] => [o.terms.length, o.mean.shape[0]!, o.x.shape[1]!];

/** out[b] = the sum over pixels of the per-pixel values; `saved` (when given) gets the partials. */
export function silentElboForward(o: SilentElboOperands, buffer: (v: View) => GPUBuffer, out: GPUBuffer, saved: GPUBuffer | null,
  scratch: (floats: number) => GPUBuffer): Dispatch[] {
  const [B] = o.mean.shape as [number, number];
  const k = o.x.shape[1]!;
  const moments = momentsUsed(o.terms), needA = usesA(o.terms);
  const values = scratch(B * k);
  const bindings: Binding[] = [
    ...moments.map((m): Binding => [read(bufferName[m]), buffer(momentOf(o, m))]),
    [read('WMu'), buffer(o.wMu)], [read('WA'), needA ? buffer(o.wA!) : null],
    [read('BMu'), buffer(o.bMu)], [read('BA'), o.bA ? buffer(o.bA) : null], [read('X'), buffer(o.x)],
    [write('Values'), values], [write('Saved'), saved],
  ];
  const pixels = kernel(o, 'pixels', [], bindings, 0, pixelFunction(o.form), () => `
  let b = at / k; let j = at % k;
  var v: array<f32, ${silentElboTerms.length}>;
  for (var i = 0u; i < d; i++) {
    ${weightsAt('j', needA)}
    ${moments.map((m) => `let m_${m} = ${bufferName[m]}[${offsetOf[m]} + b * d + i];`).join(' ')}
    ${o.terms.map((t) => `v[${slotOf(t)}] += m_${t.moment} * ${power(t.powers[0], t.powers[1], 'u', 'a')};`).join('\n    ')}
  }
  v[0] += BMu[${offsetOf.bMu} + j];
  ${o.bA ? `v[1] += BA[${offsetOf.bA} + j];` : ''}
  let px = pixel(X[${offsetOf.x} + at], v, sigma2);
  Values[at] = px.value;
  ${saved ? o.terms.map((t, n) => `Saved[${n}u * B * k + at] = px.d[${slotOf(t)}];`).join(' ') : ''}`);
  const sum = reduce('sum', { buffer: values, shape: [B, k], strides: [k, 1], offset: 0 }, [1], out);
  return [pixels, sum].filter((x): x is Dispatch => x !== null);
}

/**
 * The gradients of sum_b g[b] out[b] into `targets` (absent: not wanted), from the saved
 * partials: s_t[b][j] = g[b] x partial t. Moment m: sum_j s_t[b][j] u_ji^p a_ji^q over its terms;
 * weights: h_t[j][i] = sum_b s_t[b][j] moment_t[b][i] through the chain rule of u^p a^q; b_mu and
 * b_a: sum_b of s_Ubar and s_Abar; x: -s_Ubar (the value reads x - Ubar).
 */
export function silentElboBackward(o: SilentElboOperands, saved: GPUBuffer, gradOut: { buffer: GPUBuffer; offset: number },
  buffer: (v: View) => GPUBuffer, targets: Targets): Dispatch[] {
  const terms = o.terms.map((t, n) => ({ t, n, s: `Saved[${n}u * B * k + b * k + j]` }));
  const wantedMoments = momentsUsed(o.terms).filter((m) => targets[m]);
  const momentTerms = terms.filter(({ t }) => wantedMoments.includes(t.moment));
  const common: Binding[] = [[read('Saved'), saved], [read('G'), gradOut.buffer]];
  const moments = wantedMoments.length === 0 ? null : kernel(o, 'latents', [wantedMoments], [
    ...common, [read('WMu'), buffer(o.wMu)], [read('WA'), usesA(momentTerms.map(({ t }) => t)) ? buffer(o.wA!) : null],
    ...wantedMoments.map((m): Binding => [write(`G${bufferName[m]}`), targets[m]!]),
  ], gradOut.offset, '', () => `
  let b = at / d; let i = at % d;
  ${wantedMoments.map((m) => `var s_${m} = 0.0;`).join(' ')}
  for (var j = 0u; j < k; j++) {
    ${weightsAt('j', usesA(momentTerms.map(({ t }) => t)))}
    ${momentTerms.map(({ t, s }) => `s_${t.moment} += ${s} * ${power(t.powers[0], t.powers[1], 'u', 'a')};`).join('\n    ')}
  }
  ${wantedMoments.map((m) => `G${bufferName[m]}[at] = G[P[3] + b] * s_${m};`).join(' ')}`);
  const [wantU, wantA] = [!!targets.wMu, !!targets.wA && usesA(o.terms)];
  // d(u^p a^q)/du = p u^(p-1) a^q and d/da = q u^p a^(q-1), each times h_t.
  const chain = (which: 'u' | 'a'): string => terms.flatMap(({ t: { powers: [p, q] }, n }) => {
    const factor = which === 'u' ? p : q;
    return factor ? [`${factor}.0 * ${which === 'u' ? power(p - 1, q, 'u', 'a') : power(p, q - 1, 'u', 'a')} * h_${n}`] : [];
  }).join(' + ') || '0.0';
  const weights = !wantU && !wantA ? null : kernel(o, 'weights', [wantU, wantA], [
    ...common, ...momentsUsed(o.terms).map((m): Binding => [read(bufferName[m]), buffer(momentOf(o, m))]),
    [read('WMu'), buffer(o.wMu)], [read('WA'), usesA(o.terms) ? buffer(o.wA!) : null],
    [write('GWMu'), targets.wMu ?? null], [write('GWA'), wantA ? targets.wA! : null],
  ], gradOut.offset, '', () => `
  let j = at / d; let i = at % d;
  ${terms.map(({ n }) => `var h_${n} = 0.0;`).join(' ')}
  for (var b = 0u; b < B; b++) {
    let g = G[P[3] + b];
    ${terms.map(({ t, n, s }) => `h_${n} += g * ${s} * ${bufferName[t.moment]}[${offsetOf[t.moment]} + b * d + i];`).join('\n    ')}
  }
  ${weightsAt('j', usesA(o.terms))}
  ${wantU ? `GWMu[at] = ${chain('u')};` : ''}
  ${wantA ? `GWA[at] = ${chain('a')};` : ''}`);
  const ubar = terms.find(({ t }) => t.name === 'Ubar')!, abar = terms.find(({ t }) => t.name === 'Abar');
  const [wantBMu, wantBA, wantX] = [!!targets.bMu, !!targets.bA && !!abar, !!targets.x];
  const columns = !wantBMu && !wantBA && !wantX ? null : kernel(o, 'columns', [wantBMu, wantBA, wantX], [
    ...common, [write('GBMu'), targets.bMu ?? null], [write('GBA'), wantBA ? targets.bA! : null], [write('GX'), targets.x ?? null],
  ], gradOut.offset, '', () => `
  let j = at;
  var sumU = 0.0; var sumA = 0.0;
  for (var b = 0u; b < B; b++) {
    let g = G[P[3] + b];
    let sU = g * ${ubar.s};
    sumU += sU;
    ${wantX ? 'GX[b * k + j] = -sU;' : ''}
    ${wantBA ? `sumA += g * ${abar!.s};` : ''}
  }
  ${wantBMu ? 'GBMu[j] = sumU;' : ''}
  ${wantBA ? 'GBA[j] = sumA;' : ''}`);
  return [moments, weights, columns].filter((x): x is Dispatch => x !== null);
}
