// The tuned silent-ELBO kernels' tiling (silent-elbo-forward.ts, silent-elbo-backward.ts,
// silent-elbo-chunks.ts): the two halves of the forward that the backward's passes run again
// instead of saving anything, and what the plain kernel (../kernels/silent-elbo.ts) does without:
//  - tileContraction: one pass over the latents for a tile of 4 or 8 examples x 4 or 8 pixels with
//    every term's accumulator live;
//  - epilogueFunction: the per-pixel closed form and its partial derivatives (pixelFunction),
//    with what to do with them (sum the values, or keep the partials in workgroup memory);
//  - the constant-partial term, contracted apart, and when operands can be read as vec4 rows.
import type { SilentElboOperands, SilentElboTerm } from '../../../engine/backend.js';
import { pixelExpression, pixelForms, type PixelForm } from '../../../engine/ops/silent-elbo-pixel.js';
import { silentElboTerms } from '../../../engine/ops/silent-elbo.js';
import { bufferName, momentsUsed, offsetOf, operandOffsets, power, SIGMA2, slotOf, usesA } from '../kernels/silent-elbo-common.js';
import { range } from '../kernels/wgsl.js';
import { laneShared } from './wgsl.js';

const wgsl = (expression: string): string => pixelExpression(expression, 'wgsl');
/**
 * Whether the [*, d] operands (moments, W_mu, W_a) can be bound as vec4 rows: d and their
 * offsets multiples of 4. The kernels then step the latents 4 at a time, one load per 4.
 */
export function vec4Rows(o: SilentElboOperands): boolean {
  const [, d] = o.mean.shape as [number, number];
  return d >= 4 && d % 4 === 0 && operandOffsets(o).slice(0, 6).every((offset) => offset % 4 === 0);
}

const constantOf = (f: PixelForm): { name: string; partial: string } => ({ name: f.constant, partial: wgsl(f.partials[f.constant]!) });

/**
 * The one term per form whose partial is the same for every pixel (PixelForm.constant: Suu
 * fixed, Kuuaa learnable): it enters the value only as partial x contraction, and no other
 * partial reads it. The backward passes leave it out of the per-pixel work and contract it as
 * a column sum (over pixels of its weight power, or over the batch of g x its moment).
 * `partial` is WGSL in `sigma2`, the expression pixelFunction writes.
 */
export const constantPartial: Record<SilentElboOperands['form'], { name: string; partial: string }> = {
  fixed: constantOf(pixelForms.fixed), learnable: constantOf(pixelForms.learnable),
};

/** The constant-partial term among the operands' terms, if present. */
export const constantTerm = (o: SilentElboOperands): SilentElboTerm | undefined =>
  o.terms.find((t) => t.name === constantPartial[o.form].name);

/** The 4 rows, pixels or latents of a tile side, as indices for the code generators. */
export const four = [0, 1, 2, 3];

/**
 * How a tile of examples (rows) x pixels gets its operands. The names in scope where the
 * code goes: B, d, k (u32), `b_r` and `j_e` (the tile's rows and pixels, clamped in range),
 * `b0` / `j0` (the first row / pixel) and, with `shared`, `lane` (subgroup_invocation_id).
 */
export interface TileSpec {
  /** The contracted terms: accumulator acc_n_r (vec4 over the 4 pixels) is term n, row r. */
  readonly terms: readonly SilentElboTerm[];
  /**
   * Which side every lane of a subgroup has in common, loaded once per subgroup and handed
   * round (laneShared): 'rows' (the forward and the moment pass: lanes own different pixels),
   * 'pixels' (the weight pass: lanes own different rows); null: no subgroups, every lane loads.
   */
  readonly shared: 'rows' | 'pixels' | null;
  /** The [*, d] operands are bound as vec4 rows (vec4Rows, for the backward's phase B). */
  readonly vec: boolean;
  /** Rows (examples) of the tile: 4 (the default) or 8. */
  readonly rows?: number;
  /** Pixels of the tile: 4 (the default) or 8, as vec4 halves h (accumulator acc_n_r_h for h > 0). */
  readonly pixels?: number;
}

/**
 * One pass over the latent dimension for a tile of 4 (or `rows`) examples x 4 (or `pixels`)
 * pixels with every term's accumulator live (on llvmpipe they spill: silent-elbo-backward.ts).
 * `setup` goes once before any loop (the shared side's addresses depend only on b0 or j0),
 * `init` declares the accumulators, `loop` is the pass. Each step loads the used moments for
 * every row and u, a for every pixel and does terms x rows x pixels multiply-adds; the shared
 * side comes 1/8 per lane through subgroupBroadcast. With vec4 rows each step reads one component
 * (tried on lavapipe: the lane's own side as one vec4 load per 4 steps, 1.3-1.5x slower
 * kernels; two steps summed per accumulator update as in gemm.ts's kSum, no faster).
 */
export function tileContraction(spec: TileSpec): { setup: string; init: string; loop: string } {
  const { terms, shared, vec } = spec;
  const rowIds = range(spec.rows ?? 4), pixelIds = range(spec.pixels ?? 4), halves = range(pixelIds.length / 4);
  const moments = momentsUsed(terms), needA = usesA(terms);
  interface Operand { name: string; buffer: string; offset: string }
  const weights: Operand[] = [{ name: 'u', buffer: 'WMu', offset: offsetOf.wMu }, ...(needA ? [{ name: 'a', buffer: 'WA', offset: offsetOf.wA }] : [])];
  const rowsOf: Operand[] = moments.map((m) => ({ name: m, buffer: bufferName[m], offset: offsetOf[m] }));
  // Element i of row `row` of a [*, d] operand.
  const own = (s: Operand, row: string): string =>
    vec ? `${s.buffer}[${s.offset} / 4u + ${row} * (d / 4u) + i / 4u][i % 4u]` : `${s.buffer}[${s.offset} + ${row} * d + i]`;
  const sharedLoads = (side: Operand[], first: string, count: string, n: number) => side.map((s) => ({
    s, n, l: laneShared(`sh_${s.name}`, n, s.buffer, (q) => vec
      ? `${s.offset} / 4u + min(${first} + ${q}, ${count} - 1u) * (d / 4u)`
      : `${s.offset} + min(${first} + ${q}, ${count} - 1u) * d`, vec ? 'i / 4u][i % 4u' : 'i'),
  }));
  const sharedSide = shared === 'rows' ? sharedLoads(rowsOf, 'b0', 'B', rowIds.length) : shared === 'pixels' ? sharedLoads(weights, 'j0', 'k', pixelIds.length) : [];
  const body = [
    ...sharedSide.flatMap(({ s, l, n }) => [l.loads, ...range(n).map((q) => `let ${s.name}_${q} = ${l.value(q)};`)]),
    ...(shared !== 'rows' ? rowsOf.flatMap((s) => rowIds.map((r) => `let ${s.name}_${r} = ${own(s, `b_${r}`)};`)) : []),
    ...(shared !== 'pixels' ? weights.flatMap((s) => pixelIds.map((e) => `let ${s.name}_${e} = ${own(s, `j_${e}`)};`)) : []),
    ...halves.flatMap((h) => [
      ...weights.map((w) => `let ${halfName(w.name, h)} = vec4<f32>(${four.map((e) => `${w.name}_${4 * h + e}`).join(', ')});`),
      ...terms.map((t, n) => `let ${halfName(`w_${n}`, h)} = ${power(t.powers[0], t.powers[1], halfName('u', h), halfName('a', h))};`),
      ...terms.flatMap((t, n) => rowIds.map((r) => `${accumulator(n, r, h)} += ${t.moment}_${r} * ${halfName(`w_${n}`, h)};`)),
    ]),
  ];
  return {
    setup: sharedSide.map(({ l }) => l.setup).join(' '),
    init: halves.flatMap((h) => terms.flatMap((_, n) => rowIds.map((r) => `var ${accumulator(n, r, h)} = vec4<f32>(0.0);`))).join(' '),
    loop: `for (var i = 0u; i < d; i++) {
    ${body.join('\n    ')}
  }`,
  };
}

/** Term n's accumulator for row r and the vec4 half h of the tile's pixels. */
const accumulator = (n: number, r: number, h: number): string => halfName(`acc_${n}_${r}`, h);

/** The name of `name`'s copy for the vec4 half h of a tile's pixels: the name itself for h = 0. */
export const halfName = (name: string, h: number): string => (h === 0 ? name : `${name}_h${h}`);

/** The accumulators of row r (pixel half h), as the array an epilogue function takes. */
export const rowAccumulators = (terms: readonly SilentElboTerm[], r: number, h = 0): string =>
  `array<vec4<f32>, ${terms.length}>(${terms.map((_, n) => accumulator(n, r, h)).join(', ')})`;

/**
 * WGSL function `name(b, j0, B, k, acc, <extra>)` for the pixels j0..j0+3 (< k) of example b:
 * adds the biases to the contractions `acc` (of `terms`, as tileContraction left them),
 * evaluates pixel() and runs `sink` (statements seeing b, j, e, px). Without `stored` terms it
 * returns the sum of the values; with them (and a parameter `g`) a struct `<name>Out` whose
 * p[n][e] is g x d(value)/d(stored[n]) at pixel j0 + e, the partials the backward contracts.
 * A runtime loop over the pixels, called once per row: unrolled (4 calls x 4 pixels) the
 * closed form with its partials made LLVM compile for 15-50 s on lavapipe, so its bound is
 * one LLVM cannot see through.
 */
export function epilogueFunction(o: SilentElboOperands, name: string, terms: readonly SilentElboTerm[], stored: readonly SilentElboTerm[],
  extra: string, sink: string): string {
  const out = stored.length ? `${name}Out` : 'f32';
  return `${stored.length ? `
struct ${out} { value: f32, p: array<vec4<f32>, ${stored.length}> }` : ''}
fn ${name}(b: u32, j0: u32, B: u32, k: u32, acc: array<vec4<f32>, ${terms.length}>${extra ? `, ${extra}` : ''}) -> ${out} {
  var rowSum = 0.0;
  ${stored.length ? `var out: ${out};` : ''}
  let count = select(0u, min(4u, k - j0), j0 < k);
  for (var e = 0u; e < count; e++) {
    let j = j0 + e;
    var v: array<f32, ${silentElboTerms.length}>;
    ${terms.map((t, n) => `v[${slotOf(t)}] = acc[${n}][e];`).join(' ')}
    v[0] += BMu[${offsetOf.bMu} + j];
    ${o.bA ? `v[1] += BA[${offsetOf.bA} + j];` : ''}
    let px = pixel(X[${offsetOf.x} + b * k + j], v, ${SIGMA2});
    rowSum += px.value;
    ${stored.map((t, n) => `out.p[${n}][e] = g * px.d[${slotOf(t)}];`).join(' ')}
    ${sink}
  }
  ${stored.length ? 'out.value = rowSum; return out;' : 'return rowSum;'}
}`;
}
