// 3x3 stride-1 convolutions by Winograd's F(4x4, 3x3) on WebGPU: the matrices, the rule for
// which layers take it and the straight-line transform code come from ../../winograd-f4x3.ts,
// shared with the CPU backend (cpu/winograd.ts); see there for the algorithm. Per pass, four
// dispatches over scratch buffers:
//   forward / input gradient: filter transform  U[ξ][co][ci] = (G g Gᵀ)_ξ
//                             input transform   V[ξ][ci][t]  = (Bᵀ d B)_ξ   (t: 6x6 tile)
//                             36 GEMMs, one batched dispatch  M_ξ[co, t] = U_ξ · V_ξ
//                             output transform  y block t = Aᵀ M A (edge blocks clipped)
//   filter gradient:          input transform V, output-gradient transform dM[ξ][t][o] =
//                             (A dY Aᵀ)_ξ (in vec4 blocks of 4 channels), 36 GEMMs
//                             dUᵀ_ξ[c, o] = V_ξ · dM_ξ (K = tiles), inverse transform
//                             dw[o][c] = Gᵀ dU G. V is the forward's own
//                             (KeptInputTransforms) when the forward kept it, which saves a
//                             transform per layer and step (docs/performance-log.md,
//                             "Winograd F(4x4, 3x3) against implicit GEMM on lavapipe").
// The transforms run in float32 (the CPU's in float64); F(4,3)'s constants are mild and the
// conformance tolerances hold. Tiles t count image-major, then tile row, then tile column, and
// are padded to a multiple of 4 (Tp) with zero tiles, so the GEMMs read and write vec4 along t.
// A transform invocation handles 4 consecutive tiles of one channel (output gradient: one tile
// of 4 channels; filters: one), zero padding by clamped loads + select (no divergent branches,
// which lavapipe compiles slowly). TuningProfile.winograd chooses the passes (SILENTGRAD_WEBGPU_WINOGRAD).
//
// On lavapipe the gain is well short of the 4x fewer multiply-adds: every float a kernel moves
// through a storage buffer costs ~8-17 instructions a lane (see GROUP), and Winograd moves each
// tile's 36 values through V and M twice (written, then read), about as many accesses as the
// implicit GEMM's gathers. On the Table-5 32 -> 32 layer it is still faster in every pass
// (docs/performance-log.md, "Winograd F(4x4, 3x3) against implicit GEMM on lavapipe";
// bench/winograd.js reproduces it).
import type { Conv2dGeometry } from '../../../engine/backend.js';
import { OUT, TILE, transforms, XI, sandwichLines, winogradApplies, type Matrix } from '../../winograd-f4x3.js';
import { linearGroup, type Dispatch } from '../queue.js';
import type { TuningProfile, WinogradPass } from '../tuning.js';
import type { GpuView } from '../kernels/elementwise.js';
import { bakeWords, cachedSource, ceilDiv, entry, header, range, type BufferDecl } from '../kernels/wgsl.js';
import { gemmDispatch, type GemmSpec } from './gemm.js';
import { batchedMatmul } from './matmul.js';
import { BAKE_MIN_WORK } from './wgsl.js';

/**
 * One correlation with 3x3 filters: input [N, Cin, Hin, Win] -> [N, Cout, Hout, Wout], zero
 * padding `pad`; `flip` reads the filters as the input gradient needs them:
 * g(co, ci)[i][j] = w[ci][co][2-i][2-j] instead of w[co][ci][i][j].
 */
interface Problem {
  N: number; Cin: number; Hin: number; Win: number;
  Cout: number; Hout: number; Wout: number; pad: number; flip: boolean;
}

const forwardProblem = (g: Conv2dGeometry): Problem => ({
  N: g.batch, Cin: g.inChannels, Hin: g.height, Win: g.width, Cout: g.outChannels, Hout: g.outHeight, Wout: g.outWidth, pad: g.padding, flip: false,
});
const inputGradientProblem = (g: Conv2dGeometry): Problem => ({
  N: g.batch, Cin: g.outChannels, Hin: g.outHeight, Win: g.outWidth, Cout: g.inChannels, Hout: g.height, Wout: g.width, pad: 2 - g.padding, flip: true,
});

const tileCounts = (p: Problem): { ty: number; tx: number; T: number; Tp: number } => {
  const ty = ceilDiv(p.Hout, OUT), tx = ceilDiv(p.Wout, OUT), T = p.N * ty * tx;
  return { ty, tx, T, Tp: ceilDiv(T, 4) * 4 };
};

/**
 * Whether `pass` of this layer goes through Winograd under `w`: a pass it lists, on top of the
 * shared rule (8+ channels) at least `minChannels` input and output channels, and scratch
 * buffers that fit one binding (else the implicit GEMM runs). The transforms cost per channel
 * and the GEMMs save per pair of channels, so below 24 channels each side the implicit GEMMs were
 * faster on lavapipe (docs/performance-log.md, "Winograd F(4x4, 3x3) against implicit GEMM on
 * lavapipe"); the tests lower the bar to 8 to run the kernels on small layers.
 */
export function winogradServes(w: TuningProfile['winograd'], pass: WinogradPass, g: Conv2dGeometry): boolean {
  if (!w.passes.includes(pass) || Math.min(g.inChannels, g.outChannels) < w.minChannels) return false;
  if (!winogradApplies(g.inChannels, g.outChannels, g.kernelH, g.kernelW, g.stride, g.padding, g.outHeight, g.outWidth)) return false;
  const p = pass === 'input' ? inputGradientProblem(g) : forwardProblem(g);
  return XI * Math.max(p.Cin, p.Cout) * tileCounts(p).Tp * 4 <= w.maxBindingBytes;
}

// ---- transform kernels -----------------------------------------------------------------------


/**
 * Parameter words of every transform kernel. Offsets (words 12, 13) are never baked: they
 * change with slicing.
 */
const WORDS = `
fn COUNT() -> u32 { return P[0]; } fn CIN() -> u32 { return P[1]; } fn HIN() -> u32 { return P[2]; }
fn WIN() -> u32 { return P[3]; } fn COUT() -> u32 { return P[4]; } fn HOUT() -> u32 { return P[5]; }
fn WOUT() -> u32 { return P[6]; } fn PAD() -> i32 { return i32(P[7]); } fn TY() -> u32 { return P[8]; }
fn TX() -> u32 { return P[9]; } fn TILES() -> u32 { return P[10]; } fn TP() -> u32 { return P[11]; }
fn OFF_A() -> u32 { return P[12]; } fn OFF_B() -> u32 { return P[13]; }`;
const OFFSETS = [12, 13];
const WORKGROUP = 64;

const wgslSyntax = { declare: (name: string, expr: string): string => `let ${name} = ${expr};` };
const body = (L: Matrix, load: (k: number, c: number) => string, store: (r: number, s: number, e: string) => string): string =>
  sandwichLines(L, load, store, wgslSyntax).join('\n  ');

/** Clamped loads (f32, or vec4 when `wide`) that read 0 outside (`inside` false): no branch. */
const LOAD_FN = (buffer: string, wide: boolean): string => wide
  ? `fn load${buffer}(at: i32, inside: bool) -> vec4<f32> { return select(vec4<f32>(0.0), ${buffer}[select(0u, u32(at), inside)], inside); }`
  : `fn load${buffer}(at: i32, inside: bool) -> f32 { return select(0.0, ${buffer}[select(0u, u32(at), inside)], inside); }`;

function kernel(name: string, buffers: readonly BufferDecl[], functions: string, main: string): string {
  return `// winograd F(4x4, 3x3): ${name}
${header(buffers)}
${WORDS}
${functions}
${entry([WORKGROUP])} {
  let i = (${linearGroup}) * ${WORKGROUP}u + lid;
  if (i >= COUNT()) { return; }
  ${main}
}`;
}

/**
 * Tiles per invocation: 4 consecutive tiles t = 4q + u (u = 0..3), so V and M, laid out
 * [ξ][channel][t], are read and written one vec4 per ξ (component u: tile u). On lavapipe a
 * storage access costs ~10 instructions a lane per float (every float of a vec4 is
 * bounds-checked on its own, the vec4 shares the rest), more than a tile's arithmetic, so the
 * transforms are priced by their accesses. Where an image's rows are whole aligned vec4s (width
 * and offset multiples of 4, as the Table-5 encoder's 28x28) the output and output-gradient
 * transforms move 4-wide block rows as one vec4 each, and the input transform reads tile rows
 * as vec4s (`wide`). The 4 tiles are a loop, not unrolled: unrolled, LLVM took ~5 s to compile
 * the input transform and the kernel ran slower (9.5 vs 13.3 ms, min of 15 interleaved rounds,
 * 32 channels at batch 64).
 */
const GROUP = 4;
const QUADS = `(TP() / ${GROUP}u)`;
/** Output channels in groups of 4 (the last padded), as dM lays them out. */
const OUT_QUADS = `((COUT() + ${GROUP - 1}u) / ${GROUP}u)`;

/** WGSL opening the loop over this invocation's tiles: t, its image n, block row r and column s, live = t < T. */
const TILE_LOOP = `for (var u = 0u; u < ${GROUP}u; u++) {
  let t = q * ${GROUP}u + u; let n = t / (TY() * TX()); let r = t % (TY() * TX()) / TX(); let s = t % TX(); let live = t < TILES();`;
const f32OrVec4 = (wide: boolean): BufferDecl['type'] => (wide ? 'vec4<f32>' : 'f32');
const xiVars = range(XI).map((xi) => `var v${xi} = vec4<f32>(0.0);`).join(' ');

/**
 * i = ci·(Tp/4) + q -> V[ξ][ci][4q .. 4q+3] = (Bᵀ d B)_ξ of those tiles (zeros outside the image,
 * and for t >= T). Scalar loads, 36 a tile; or, where the image's rows are whole aligned vec4s
 * (`wide`: width and offset multiples of 4), each tile row by the 2-3 vec4s that hold its 6
 * columns: block column s starts at image column 4s - pad, so its columns lie in vec4s
 * s + floor(-pad/4) .. s + floor((5 - pad)/4), each wholly inside or outside the image. On
 * lavapipe a load costs mostly per access (the lane's mask test, address and bounds check), less
 * per float, so 12-18 vec4s beat 36 scalars: bench/winograd.js's layer (batch 64, 32 channels,
 * 28x28), this dispatch alone, old and new interleaved, medians of 21 rounds 10.1 -> 8.0 ms at
 * padding 1, of 15 rounds 9.5 -> 7.5 at padding 0. Reusing a tile's vec4s for its right
 * neighbour (they overlap by 2 columns) did not pay at padding 1, each against loading all in
 * the same run: loading the rest only at a row's start, under a branch, 11.5 vs 8.6 ms; the 4
 * tiles unrolled, the left vec4 carried by a select, 8.0 vs 7.4; the left vec4 carried across
 * the loop 8.7 vs 8.3 (at padding 2, 10.6 vs 12.1: not worth a second code path).
 */
function inputTransformSource(wide: boolean, pad: number): string {
  const scalar = `
  let left = i32(s * ${OUT}u) - PAD();
  let at = i32(OFF_A() + (n * CIN() + c) * HIN() * WIN()) + top * i32(WIN()) + left;
  ${range(TILE).map((j) => `let colOk${j} = u32(left + ${j}) < WIN();`).join(' ')}`;
  // Column j of a tile: component e of vec4 s + d (d from lo to hi, tagged m1 for -1).
  const vec = (j: number): { d: number; e: number } => ({ d: Math.floor((j - pad) / 4), e: (((j - pad) % 4) + 4) % 4 });
  const ds = range(vec(TILE - 1).d - vec(0).d + 1).map((k) => k + vec(0).d), tag = (d: number): string => (d < 0 ? `m${-d}` : `${d}`);
  const rows = `
  let at = i32((OFF_A() + (n * CIN() + c) * HIN() * WIN()) / 4u) + top * i32(WIN() / 4u) + i32(s);
  ${ds.map((d) => `let colOk${tag(d)} = u32(i32(s) + ${d}) < WIN() / 4u;`).join(' ')}
  ${range(TILE).flatMap((k) => ds.map((d) => `let a${k}_${tag(d)} = loadX(at + ${k} * i32(WIN() / 4u) + ${d}, rowOk${k} & colOk${tag(d)});`)).join('\n  ')}`;
  const element = wide
    ? (k: number, j: number): string => `a${k}_${tag(vec(j).d)}[${vec(j).e}]`
    : (k: number, j: number): string => `loadX(at + ${k} * i32(WIN()) + ${j}, rowOk${k} & colOk${j})`;
  return kernel(`input transform${wide ? ' (vec4 rows)' : ''}`,
    [{ name: 'X', access: 'read', type: f32OrVec4(wide) }, { name: 'V', access: 'read_write', type: 'vec4<f32>' }], LOAD_FN('X', wide), `
  let c = i / ${QUADS}; let q = i % ${QUADS};
  ${xiVars}
  ${TILE_LOOP}
  let top = i32(r * ${OUT}u) - PAD();
  ${range(TILE).map((k) => `let rowOk${k} = live & (u32(top + ${k}) < HIN());`).join(' ')}
  ${wide ? rows : scalar}
  ${body(transforms.input, element, (r, s, e) => `v${r * TILE + s}[u] = ${e};`)}
  }
  ${range(XI).map((xi) => `V[${xi}u * CIN() * ${QUADS} + i] = v${xi};`).join('\n  ')}`);
}

/** i = co·Cin + ci -> U[ξ][co][ci] = (G g Gᵀ)_ξ; flipped: g(co, ci)[a][b] = w[ci][co][2-a][2-b]. */
const filterTransformSource = (flip: boolean): string => kernel(`filter transform${flip ? ' (flipped)' : ''}`,
  [{ name: 'Wt', access: 'read' }, { name: 'U', access: 'read_write' }], '', `
  let co = i / CIN(); let ci = i % CIN();
  let base = OFF_A() + ${flip ? '(ci * COUT() + co)' : 'i'} * 9u;
  ${body(transforms.filter, (k, c) => `Wt[base + ${flip ? 8 - (3 * k + c) : 3 * k + c}u]`, (r, s, e) => `U[${r * TILE + s}u * COUT() * CIN() + i] = ${e};`)}`);

/**
 * i = co·(Tp/4) + q -> the 4x4 blocks 4q .. 4q+3 (those < T) of channel co = Aᵀ M A, computed for
 * the 4 tiles at once in vec4 arithmetic, then stored tile by tile, clipped at the image's edge.
 * Wide: a block row is one vec4 (the width a multiple of 4, so never clipped).
 * Its 36 loads come from 36 planes of M, and cache misses cost it about a third. Tried: M laid
 * out [co][t/4][ξ] (the GEMM writing a tile's 36 products side by side, batches first in its
 * grid), one Gaussian training step's replayed dispatches on lavapipe: the 4 output transforms
 * 41.7 -> 32.9 ms, the 4 batched GEMMs 51.4 -> 66.2 ms. The misses moved into the GEMM.
 */
function outputTransformSource(wide: boolean): string {
  const stores = wide
    ? `let base = (OFF_B() + (n * COUT() + co) * HOUT() * WOUT()) / 4u + r * ${OUT}u * (WOUT() / 4u) + s;
  ${range(OUT).map((k) => `if (live & (r * ${OUT}u + ${k}u < HOUT())) { Y[base + ${k}u * (WOUT() / 4u)] = vec4<f32>(${range(OUT).map((j) => `y${k}_${j}[u]`).join(', ')}); }`).join('\n  ')}`
    : `let base = OFF_B() + (n * COUT() + co) * HOUT() * WOUT() + r * ${OUT}u * WOUT() + s * ${OUT}u;
  ${range(OUT).map((k) => `let rowOk${k} = live & (r * ${OUT}u + ${k}u < HOUT()); let colOk${k} = s * ${OUT}u + ${k}u < WOUT();`).join('\n  ')}
  ${range(OUT).flatMap((k) => range(OUT).map((j) => `if (rowOk${k} & colOk${j}) { Y[base + ${k}u * WOUT() + ${j}u] = y${k}_${j}[u]; }`)).join('\n  ')}`;
  return kernel(`output transform${wide ? ' (vec4 rows)' : ''}`,
    [{ name: 'M', access: 'read', type: 'vec4<f32>' }, { name: 'Y', access: 'read_write', type: f32OrVec4(wide) }], '', `
  let co = i / ${QUADS}; let q = i % ${QUADS};
  ${body(transforms.output, (k, c) => `M[${k * TILE + c}u * COUT() * ${QUADS} + i]`, (r, s, e) => `let y${r}_${s} = ${e};`)}
  ${TILE_LOOP}
  ${stores}
  }`);
}

/**
 * i = g·Tp + t -> dM[ξ][g][t] = (A dY Aᵀ)_ξ of block t of channels 4g .. 4g+3, one vec4 (zeros
 * outside, for t >= T and for channels past O). dM is laid out [ξ][O/4][t][4] so that the filter
 * gradient's GEMM reads it as B in k-contiguous vec4 blocks (filterGradientSpec); consecutive
 * invocations take neighbouring blocks, as in the other transforms. Wide: a block row is one vec4.
 */
function outputGradientTransformSource(wide: boolean): string {
  const loads = wide
    ? `let at = i32((OFF_A() + (n * COUT() + o) * HOUT() * WOUT()) / 4u + r * ${OUT}u * (WOUT() / 4u) + s);
  ${range(OUT).map((k) => `let dyr${k} = loadDY(at + ${k} * i32(WOUT() / 4u), live & (r * ${OUT}u + ${k}u < HOUT()));`).join('\n  ')}`
    : `let at = i32(OFF_A() + (n * COUT() + o) * HOUT() * WOUT() + r * ${OUT}u * WOUT() + s * ${OUT}u);
  ${range(OUT).map((k) => `let rowOk${k} = live & (r * ${OUT}u + ${k}u < HOUT()); let colOk${k} = s * ${OUT}u + ${k}u < WOUT();`).join('\n  ')}`;
  const element = wide
    ? (k: number, c: number): string => `dyr${k}[${c}]`
    : (k: number, c: number): string => `loadDY(at + ${k} * i32(WOUT()) + ${c}, rowOk${k} & colOk${c})`;
  return kernel(`output-gradient transform${wide ? ' (vec4 rows)' : ''}`,
    [{ name: 'DY', access: 'read', type: f32OrVec4(wide) }, { name: 'DM', access: 'read_write', type: 'vec4<f32>' }], LOAD_FN('DY', wide), `
  let g = i / TP(); let t = i % TP();
  let n = t / (TY() * TX()); let r = t % (TY() * TX()) / TX(); let s = t % TX();
  ${xiVars}
  for (var u = 0u; u < ${GROUP}u; u++) {
  let o = g * ${GROUP}u + u; let live = (t < TILES()) & (o < COUT());
  ${loads}
  ${body(transforms.outputGradient, element, (r, s, e) => `v${r * TILE + s}[u] = ${e};`)}
  }
  ${range(XI).map((xi) => `DM[${xi}u * ${OUT_QUADS} * TP() + i] = v${xi};`).join('\n  ')}`);
}

/** i = o·C + c -> dw[o][c] = Gᵀ dU G (overwritten), from dUᵀ laid out [ξ][c][Op]. */
const filterGradientTransformSource = (): string => kernel('filter-gradient transform', [{ name: 'DU', access: 'read' }, { name: 'DW', access: 'read_write' }], '', `
  let o = i / CIN(); let ci = i % CIN();
  ${body(transforms.filterGradient, (k, c) => `DU[(${k * TILE + c}u * CIN() + ci) * ${OUT_QUADS} * 4u + o]`, (r, s, e) => `DW[i * 9u + ${r * 3 + s}u] = ${e};`)}`);

/**
 * The filter gradient's 36 products dUᵀ_ξ[c, o] = sum_t V_ξ[c, t] dM_ξ[t, o] (M = C, N = Op, K =
 * Tp), one batched dispatch: A's rows stream through the shared-row loaders, each B vec4 block
 * (4 channels) walks t contiguously. As dU_ξ = dM_ξ V_ξᵀ (dM [ξ][o][t]) each of B's columns was
 * a memory stream of its own, 64 a workgroup. The pass's GEMM and transforms, 4 alternating
 * pairs of bench/webgpu-profile.js runs: 67.9-81.0 ms before, 57.5-70.2 after (GEMM 50 -> 35);
 * the whole training step, both forms alternating in one process: 698 -> 674 ms.
 */
const filterGradientSpec: GemmSpec = {
  name: 'winograd filter gradient', batched: true,
  inputs: [{ name: 'A', access: 'read' }, { name: 'B', access: 'read', type: 'vec4<f32>' }],
  aAt: (row) => `A[batch * M * K + ${row} * K + k]`,
  bVec: (c) => `B[batch * (N / 4u) * K + cg_${c} * K + k]`,
  store: (row, col, v) => `O[batch * M * N + ${row} * N + ${col}] = ${v};`,
  store4: (row, group, v) => `O[batch * M * (N / 4u) + ${row} * (N / 4u) + ${group}] = ${v};`,
};

/**
 * A transform dispatch of `count` invocations; `variant` names what `make` generates. Sizes are
 * baked into the shader (as the GEMM does) when the layer is big enough to repeat every
 * training step.
 */
function transform(variant: string, make: () => string, p: Problem, count: number, offsets: [number, number], buffers: GPUBuffer[]): Dispatch {
  const { ty, tx, T, Tp } = tileCounts(p);
  const params = Uint32Array.from([count, p.Cin, p.Hin, p.Win, p.Cout, p.Hout, p.Wout, p.pad, ty, tx, T, Tp, ...offsets]);
  const bake = XI * p.Cin * p.Cout * Tp >= BAKE_MIN_WORK;
  const key = `winograd|${variant}|${bake ? params.slice(0, OFFSETS[0]).join(',') : ''}`;
  const code = cachedSource(key, () => {
    const source = make();
    // Bake the body only (header()'s nanF reads P[0]); the WORDS accessors are part of it.
    const [head, rest] = [source.slice(0, source.indexOf(WORDS)), source.slice(source.indexOf(WORDS))];
    return bake ? head + bakeWords(rest, params, range(params.length).filter((w) => !OFFSETS.includes(w))) : source;
  });
  return { source: code, buffers, params, groups: ceilDiv(count, WORKGROUP) };
}

/** An image read or written as vec4 rows: its width and element offset multiples of 4. */
const wideRows = (width: number, offset: number): boolean => width % 4 === 0 && offset % 4 === 0;

function inputTransform(p: Problem, x: GpuView, V: GPUBuffer): Dispatch {
  const wide = wideRows(p.Win, x.offset);
  return transform(`input ${wide ? `vec4 rows, padding ${p.pad}` : 'scalar'}`, () => inputTransformSource(wide, p.pad), p, p.Cin * tileCounts(p).Tp / GROUP, [x.offset, 0], [x.buffer, V]);
}

const view = (buffer: GPUBuffer, rows: number, cols: number): GpuView => ({ buffer, shape: [rows, cols], strides: [cols, 1], offset: 0 });

// ---- the three passes ------------------------------------------------------------------------

/** y = conv(x, w) (or, flipped, the input gradient: dx from dy): U, V, the batched GEMM, Aᵀ M A. */
function correlate(tuning: TuningProfile, x: GpuView, w: GpuView, p: Problem, out: GPUBuffer, scratch: (floats: number) => GPUBuffer,
  keepV: ((floats: number) => GPUBuffer) | null = null): Dispatch[] {
  const { Cin, Cout } = p, { Tp } = tileCounts(p);
  const U = scratch(XI * Cout * Cin), V = (keepV ?? scratch)(XI * Cin * Tp), M = scratch(XI * Cout * Tp);
  return [
    transform(`filter ${p.flip}`, () => filterTransformSource(p.flip), p, Cout * Cin, [w.offset, 0], [w.buffer, U]),
    inputTransform(p, x, V),
    batchedMatmul(tuning, view(U, Cout, Cin), false, view(V, Cin, Tp), false, M, { count: XI, a: Cout * Cin, b: Cin * Tp, out: Cout * Tp }),
    transform(`output ${wideRows(p.Wout, 0)}`, () => outputTransformSource(wideRows(p.Wout, 0)), p, Cout * Tp / GROUP, [0, 0], [M, out]),
  ];
}

/**
 * Input transforms V kept from a layer's forward for its filter gradient, which needs exactly
 * that V (same tiles, padding and layout): one input transform fewer per layer and training
 * step (~8 ms for the Table-5 32 -> 32 layer on lavapipe). An entry is keyed by the input's
 * buffer, offset and geometry, and dropped (its V back to the pool) when the filter gradient
 * takes it, when the same input is transformed again, or when the backend frees or updates
 * that buffer in place (AdamW, the one in-place kernel): a V never outlives the values it was
 * computed from. A forward whose filter gradient never comes holds its V until its input goes.
 */
export class KeptInputTransforms {
  private readonly byInput = new Map<GPUBuffer, Map<string, GPUBuffer>>();

  constructor(private readonly allocate: (floats: number) => GPUBuffer, private readonly release: (buffer: GPUBuffer) => void) {}

  /** A buffer of `floats` for the V of (x, geometry), kept until taken or dropped. */
  keep(x: GpuView, g: Conv2dGeometry, floats: number): GPUBuffer {
    const entries = this.byInput.get(x.buffer) ?? new Map<string, GPUBuffer>();
    this.byInput.set(x.buffer, entries);
    const key = keyOf(x, g), old = entries.get(key);
    if (old) this.release(old);
    const V = this.allocate(floats);
    entries.set(key, V);
    return V;
  }

  /** The kept V of (x, geometry), no longer kept: the caller gives it back after use. */
  take(x: GpuView, g: Conv2dGeometry): GPUBuffer | undefined {
    const entries = this.byInput.get(x.buffer), key = keyOf(x, g), V = entries?.get(key);
    entries?.delete(key);
    if (entries?.size === 0) this.byInput.delete(x.buffer);
    return V;
  }

  /** Forget (and release) every V computed from `buffer`: it is freed or about to change. */
  drop(buffer: GPUBuffer): void {
    for (const V of this.byInput.get(buffer)?.values() ?? []) this.release(V);
    this.byInput.delete(buffer);
  }

  /** Buffers held (the stability test's flat-memory figure counts them as live). */
  get size(): number {
    let n = 0;
    for (const entries of this.byInput.values()) n += entries.size;
    return n;
  }
}

const keyOf = (x: GpuView, g: Conv2dGeometry): string => `${x.offset}|${JSON.stringify(forwardProblem(g))}`;

/**
 * y[N,O,Ho,Wo] = conv2d(x[N,C,H,W], w[O,C,3,3]), stride 1; V kept in `kept` when the filter
 * gradient will run through Winograd too.
 */
export function winogradForward(tuning: TuningProfile, x: GpuView, w: GpuView, g: Conv2dGeometry, out: GPUBuffer, scratch: (floats: number) => GPUBuffer,
  kept: KeptInputTransforms): Dispatch[] {
  const p = forwardProblem(g);
  const keep = winogradServes(tuning.winograd, 'filter', g) ? (floats: number) => kept.keep(x, g, floats) : null;
  return correlate(tuning, x, w, p, out, scratch, keep);
}

/** dx[N,C,H,W] from dy[N,O,Ho,Wo]: the forward on dy with rotated, transposed filters, padding 2 - p. */
export function winogradBackwardInput(tuning: TuningProfile, dy: GpuView, w: GpuView, g: Conv2dGeometry, dx: GPUBuffer, scratch: (floats: number) => GPUBuffer): Dispatch[] {
  return correlate(tuning, dy, w, inputGradientProblem(g), dx, scratch);
}

/**
 * dw[O,C,3,3] (overwritten) from x[N,C,H,W] and dy[N,O,Ho,Wo], with the forward's V when `kept`
 * has it (`adopt` hands it back to the pool after this call's dispatches are recorded).
 */
export function winogradBackwardFilter(tuning: TuningProfile, x: GpuView, dy: GpuView, g: Conv2dGeometry, dw: GPUBuffer, scratch: (floats: number) => GPUBuffer,
  kept: KeptInputTransforms, adopt: (buffer: GPUBuffer) => void): Dispatch[] {
  const p = forwardProblem(g), { Cin: C, Cout: O } = p, { Tp } = tileCounts(p);
  const saved = kept.take(x, g);
  if (saved) adopt(saved);
  const Op = ceilDiv(O, GROUP) * GROUP;
  const V = saved ?? scratch(XI * C * Tp), dM = scratch(XI * Op * Tp), dU = scratch(XI * C * Op);
  return [
    ...(saved ? [] : [inputTransform(p, x, V)]),
    transform(`output gradient ${wideRows(p.Wout, dy.offset)}`, () => outputGradientTransformSource(wideRows(p.Wout, dy.offset)), p, Op * Tp / GROUP, [dy.offset, 0], [dy.buffer, dM]),
    gemmDispatch(tuning, filterGradientSpec, [V, dM, dU], C, Op, Tp, [0, 0], 1, XI),
    transform('filter gradient', filterGradientTransformSource, p, O * C, [0, 0], [dU, dw]),
  ];
}
