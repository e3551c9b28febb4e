// The JavaScript side of the CPU backend's Winograd F(4x4, 3x3): the problem one pass solves, its
// tiling, and the five transforms as straight-line functions built from ../winograd-f4x3.ts.
// winograd.ts (the reference, float64 inside) runs all five; winograd-wasm.ts (float32 in
// WebAssembly) takes the filter transforms from here and generates the other three as SIMD.
import { OUT, TILE, transforms, sandwichLines, type Matrix } from '../winograd-f4x3.js';
import type { FloatArray } from '../../engine/dtype.js';
import { generatedFunction } from './generated.js';

/**
 * out = L · X · Lᵀ for a square X, read and written in place with strides: X[r][c] is
 * x[xo + r·xs + c·xc] and out[r][s] is out[oo + r·os + s·oc], so tiles go straight from an
 * image into the GEMM operands' layout and back without staging copies.
 */
type Sandwich = (x: FloatArray, xo: number, xs: number, xc: number, out: FloatArray, oo: number, os: number, oc: number) => void;

/**
 * The straight-line body of ../winograd-f4x3.ts (shared with the WebGPU backend) as a
 * JavaScript function: each element of X loaded once, every intermediate in a local.
 */
function sandwich(transform: string, L: Matrix): Sandwich {
  const lines = sandwichLines(L, (k, c) => `x[xo+${k}*xs+${c}*xc]`, (r, s, e) => `out[oo+${r}*os+${s}*oc]=${e};`,
    { declare: (name, expr) => `const ${name}=${expr};` });
  return generatedFunction<Sandwich>(`winograd_${transform}`, ['x', 'xo', 'xs', 'xc', 'out', 'oo', 'os', 'oc'], lines.join('\n'));
}

export const inputTransform = sandwich('input', transforms.input); // d (6x6) -> Bᵀ d B
const filterTransform = sandwich('filter', transforms.filter); // g (3x3) -> G g Gᵀ (6x6)
export const outputTransform = sandwich('output', transforms.output); // M (6x6) -> Aᵀ M A (4x4)
export const outputGradTransform = sandwich('outputGradient', transforms.outputGradient); // dY (4x4) -> A dY Aᵀ (6x6)
export const filterGradTransform = sandwich('filterGradient', transforms.filterGradient); // dU (6x6) -> Gᵀ dU G (3x3)

/**
 * One correlation with 3x3 filters: `input` [N, Cin, Hin, Win] -> [N, Cout, Hout, Wout] with
 * zero padding `pad`. `flip` reads the filters as the backward-input pass needs them:
 * g(co, ci)[i][j] = w[ci][co][2-i][2-j] instead of w[co][ci][i][j].
 */
export interface Problem {
  N: number; Cin: number; Hin: number; Win: number;
  Cout: number; Hout: number; Wout: number; pad: number; flip: boolean;
}

export const tilesY = (g: Problem): number => Math.ceil(g.Hout / OUT);
export const tilesX = (g: Problem): number => Math.ceil(g.Wout / OUT);

/** Images per chunk: about 400 tiles, the GEMMs' row count. */
export function chunkImages(g: Problem): number {
  return Math.max(1, Math.min(g.N, Math.ceil(400 / (tilesY(g) * tilesX(g)))));
}

/**
 * U_ξ[ci][co] = (G g(co, ci) Gᵀ)_ξ, in float64 and stored once, at U[base + ξ·xiStride + at(ci, co)]
 * (winograd.ts lays each U_ξ out as [Cin, Cout], winograd-wasm.ts as the GEMM's column panels).
 */
export function transformFilters(w: FloatArray, wOff: number, g: Problem, U: FloatArray, base: number, xiStride: number,
  at: (ci: number, co: number) => number): void {
  const { Cin, Cout, flip } = g;
  const f = new Float64Array(9);
  for (let co = 0; co < Cout; co++) {
    for (let ci = 0; ci < Cin; ci++) {
      const from = wOff + (flip ? ci * Cout + co : co * Cin + ci) * 9;
      for (let k = 0; k < 9; k++) f[k] = w[from + (flip ? 8 - k : k)]!;
      filterTransform(f, 0, 3, 1, U, base + at(ci, co), TILE * xiStride, xiStride);
    }
  }
}
