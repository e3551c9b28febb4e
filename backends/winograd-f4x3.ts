// Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016) as data: the transform matrices, the tile sizes, which layers take it,
// and a generator of straight-line code for L·X·Lᵀ. The CPU backend (cpu/winograd.ts, JavaScript
// via new Function) and the WebGPU backend (webgpu/tuned/winograd.ts, WGSL) both build their
// transforms from this one module, so the two cannot drift. No backend imports here.
//
// Each 4x4 block of output is computed from a 6x6 input tile as
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
// the sum over input channels being, at each of the 36 tile positions ξ, one GEMM. The three
// passes of conv2d:
//   forward          the algorithm above;
//   backward input   the same forward on dy with the filters rotated 180 degrees and their
//                    in/out channels swapped, padding 2 - p (a full correlation);
//   backward filter  dM_ξ = (A dY Aᵀ)_ξ per tile, dU_ξ = V_ξᵀ · dM_ξ (36 GEMMs over the tiles),
//                    dg = Gᵀ dU G.

export type Matrix = readonly (readonly number[])[];

/** Input transform: d (6x6) -> Bᵀ d B. */
export const BT: Matrix = [
  [4, 0, -5, 0, 1, 0],
  [0, -4, -4, 1, 1, 0],
  [0, 4, -4, -1, 1, 0],
  [0, -2, -1, 2, 1, 0],
  [0, 2, -1, -2, 1, 0],
  [0, 4, 0, -5, 0, 1],
];
/** Filter transform: g (3x3) -> G g Gᵀ (6x6). */
export const G: Matrix = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
];
/** Output transform: M (6x6) -> Aᵀ M A (4x4). */
export const AT: Matrix = [
  [1, 1, 1, 1, 1, 0],
  [0, 1, -1, 2, -2, 0],
  [0, 1, 1, 4, 4, 0],
  [0, 1, -1, 8, -8, 1],
];
export const transpose = (m: Matrix): Matrix => m[0]!.map((_, j) => m.map((row) => row[j]!));

/** Input tile side, output block side, tile positions (GEMMs per pass). */
export const TILE = 6, OUT = 4, XI = TILE * TILE;

/**
 * The layer shapes Winograd serves: 3x3 filters, stride 1, padding 0-2, 8+ channels each side,
 * an output of at least one whole 4x4 block. Ho, Wo are the forward output's size.
 */
export function winogradApplies(C: number, O: number, kh: number, kw: number, stride: number, padding: number,
  Ho: number, Wo: number): boolean {
  return kh === 3 && kw === 3 && stride === 1 && padding <= 2 && C >= 8 && O >= 8 && Ho >= OUT && Wo >= OUT;
}

/** The five transforms, each as the L of an L·X·Lᵀ. */
export const transforms = {
  /** d (6x6) -> Bᵀ d B */
  input: BT,
  /** g (3x3) -> G g Gᵀ (6x6) */
  filter: G,
  /** M (6x6) -> Aᵀ M A (4x4) */
  output: AT,
  /** dY (4x4) -> A dY Aᵀ (6x6) */
  outputGradient: transpose(AT),
  /** dU (6x6) -> Gᵀ dU G (3x3) */
  filterGradient: transpose(G),
} as const;

/** How a language spells the pieces of the generated code. */
export interface Syntax {
  /** A local holding `expr` (e.g. `const n=expr;` or `let n = expr;`). */
  declare(name: string, expr: string): string;
}

/**
 * Straight-line statements for out = L · X · Lᵀ (X square, q x q; out p x p) from L's nonzero
 * entries: the transforms are mostly additions, and the body loads each element of X once
 * (`load(k, c)`: an expression for X[k][c]), keeps every intermediate in a local
 * (x{k}_{c}, t{r}_{c}) and ends with `store(r, s, expr)` for each element of out.
 */
export function sandwichLines(L: Matrix, load: (k: number, c: number) => string,
  store: (r: number, s: number, expr: string) => string, syntax: Syntax): string[] {
  const p = L.length, q = L[0]!.length;
  const sum = (terms: [number, string][]): string => terms.filter(([c]) => c !== 0)
    .map(([c, v], i) => (c === 1 ? `${i ? '+' : ''}${v}` : c === -1 ? `-${v}` : `${i && c > 0 ? '+' : ''}${c}*${v}`)).join('') || '0';
  const lines: string[] = [];
  for (let k = 0; k < q; k++)
    for (let c = 0; c < q; c++) lines.push(syntax.declare(`x${k}_${c}`, load(k, c)));
  for (let r = 0; r < p; r++)
    for (let c = 0; c < q; c++) lines.push(syntax.declare(`t${r}_${c}`, sum(L[r]!.map((w, k) => [w, `x${k}_${c}`]))));
  for (let r = 0; r < p; r++)
    for (let s = 0; s < p; s++) lines.push(store(r, s, sum(L[s]!.map((w, k) => [w, `t${r}_${k}`]))));
  return lines;
}
