// 3x3, stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016), the CPU backend's fast path for the
// Table-5 encoder's 32 -> 32 layers.
//
// Each 4x4 block of output is computed from a 6x6 input tile as
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
// and the sum over input channels of the elementwise product is, at each of the 36 tile
// positions ξ, one GEMM  M_ξ[tiles, out] = V_ξ[tiles, in] · U_ξ[in, out]. That is 36 x 16
// multiplies per output block and channel pair where im2col does 4 x 4 x 9 = 144: 4x fewer.
// Here the transforms and GEMMs run in float64 (winograd-transforms.ts, gemm.ts): the reference,
// and every float64 convolution. Float32 convolutions run it in WebAssembly SIMD in float32
// (winograd-wasm.ts) when float32 products do (SILENTGRAD_CPU_KERNELS, gemm.ts): several times
// faster, with 10-25 times float32 im2col's error (docs/performance-log.md, "CPU Winograd in
// WebAssembly"). The matrices, the applicability rule and the straight-line code generator live
// in ../winograd-f4x3.ts, shared with the WebGPU backend (webgpu/tuned/winograd.ts).
//
// The three passes of conv2d:
//   forward          the algorithm above;
//   backward input   the same forward on dy with the filters rotated 180 degrees and their
//                    in/out channels swapped, padding 2 - p (a full correlation);
//   backward filter  dM_ξ = (A dY Aᵀ)_ξ per tile, dU_ξ = V_ξᵀ · dM_ξ (36 GEMMs over the tiles),
//                    dg = Gᵀ dU G.
import { OUT, TILE, XI } from '../winograd-f4x3.js';
import type { FloatArray } from '../../engine/dtype.js';
import { gemmStrided, getCpuKernels } from './gemm.js';
import { allocShared, defineKernel, parallelFor } from './parallel.js';
import { wasmWinogradAvailable } from './wasm/winograd-f32.js';
import { filterGradRangeWasm, forwardRangeWasm } from './winograd-wasm.js';
import {
  chunkImages, filterGradTransform, inputTransform, outputGradTransform, outputTransform, tilesX, tilesY, transformFilters,
  type Problem,
} from './winograd-transforms.js';

export { winogradApplies } from '../winograd-f4x3.js';

/** Float64 scratch per thread, by slot; reused across calls. */
const scratch: Float64Array[] = [];
function scratchOf(slot: number, n: number): Float64Array {
  if (!scratch[slot] || scratch[slot]!.length < n) scratch[slot] = new Float64Array(n);
  return scratch[slot]!;
}
const tile = new Float64Array(XI);

/**
 * V[ξ][t][c] = (Bᵀ d B)_ξ for every 6x6 input tile t of images [n, n + b) (t counts tiles
 * image-major, then row, then column) and channel c.
 */
function transformInput(x: FloatArray, xOff: number, g: Problem, n: number, b: number, V: Float64Array): void {
  const { Cin, Hin, Win, pad } = g;
  const ty = tilesY(g), tx = tilesX(g), T = b * ty * tx;
  for (let bi = 0; bi < b; bi++) {
    for (let r = 0; r < ty; r++) {
      const top = r * OUT - pad;
      for (let s = 0; s < tx; s++) {
        const left = s * OUT - pad;
        const t = (bi * ty + r) * tx + s;
        const inside = top >= 0 && left >= 0 && top + TILE <= Hin && left + TILE <= Win;
        for (let c = 0; c < Cin; c++) {
          const plane = xOff + ((n + bi) * Cin + c) * Hin * Win;
          const to = t * Cin + c;
          if (inside) {
            inputTransform(x, plane + top * Win + left, Win, 1, V, to, TILE * T * Cin, T * Cin);
            continue;
          }
          for (let i = 0; i < TILE; i++) {
            const h = top + i;
            for (let j = 0; j < TILE; j++) {
              const w = left + j;
              tile[i * TILE + j] = h >= 0 && h < Hin && w >= 0 && w < Win ? x[plane + h * Win + w]! : 0;
            }
          }
          inputTransform(tile, 0, TILE, 1, V, to, TILE * T * Cin, T * Cin);
        }
      }
    }
  }
}

/**
 * Output tile t of a chunk: its image in the chunk, the offset of its top-left element in an
 * [Hout, Wout] plane, and how many of its 4 rows and columns lie inside (edge tiles).
 */
function outputBlock(g: Problem, t: number): { image: number; corner: number; rows: number; cols: number } {
  const ty = tilesY(g), tx = tilesX(g);
  const r = Math.floor(t / tx) % ty, s = t % tx;
  return {
    image: Math.floor(t / (ty * tx)), corner: r * OUT * g.Wout + s * OUT,
    rows: Math.min(OUT, g.Hout - r * OUT), cols: Math.min(OUT, g.Wout - s * OUT),
  };
}

function forwardRange(x: FloatArray, xOff: number, w: FloatArray, wOff: number, y: FloatArray, yOff: number,
  g: Problem, n0: number, n1: number): void {
  const { Cin, Cout, Hout, Wout } = g;
  const ty = tilesY(g), tx = tilesX(g), chunk = chunkImages(g);
  const U = scratchOf(0, XI * Cin * Cout);
  transformFilters(w, wOff, g, U, 0, Cin * Cout, (ci, co) => ci * Cout + co);
  const out4 = new Float64Array(OUT * OUT);
  for (let n = n0; n < n1; n += chunk) {
    const b = Math.min(chunk, n1 - n), T = b * ty * tx;
    const V = scratchOf(1, XI * T * Cin), M = scratchOf(2, XI * T * Cout);
    transformInput(x, xOff, g, n, b, V);
    for (let xi = 0; xi < XI; xi++)
      gemmStrided(T, Cout, Cin, V, xi * T * Cin, Cin, false, U, xi * Cin * Cout, Cout, false, M, xi * T * Cout, Cout, false);
    for (let t = 0; t < T; t++) {
      const { image, corner, rows, cols } = outputBlock(g, t);
      for (let co = 0; co < Cout; co++) {
        const base = yOff + ((n + image) * Cout + co) * Hout * Wout + corner;
        if (rows === OUT && cols === OUT) {
          outputTransform(M, t * Cout + co, TILE * T * Cout, T * Cout, y, base, Wout, 1);
          continue;
        }
        outputTransform(M, t * Cout + co, TILE * T * Cout, T * Cout, out4, 0, OUT, 1);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) y[base + i * Wout + j] = out4[i * OUT + j]!;
      }
    }
  }
}

/**
 * dU for images [n0, n1), each chunk of images into its own slot (XI·Cin·Cout each) so the sum
 * the caller forms in slot order does not depend on thread timing.
 */
function filterGradRange(x: FloatArray, xOff: number, dy: FloatArray, dyOff: number, slots: FloatArray,
  g: Problem, n0: number, n1: number): void {
  const { Cin, Cout, Hout, Wout } = g;
  const ty = tilesY(g), tx = tilesX(g), chunk = chunkImages(g);
  const dy4 = new Float64Array(OUT * OUT);
  const dU = scratchOf(0, XI * Cin * Cout);
  for (let n = n0; n < n1; n += chunk) {
    const b = Math.min(chunk, n1 - n), T = b * ty * tx;
    const V = scratchOf(1, XI * T * Cin), dM = scratchOf(2, XI * T * Cout);
    transformInput(x, xOff, g, n, b, V);
    for (let t = 0; t < T; t++) {
      const { image, corner, rows, cols } = outputBlock(g, t);
      for (let co = 0; co < Cout; co++) {
        const base = dyOff + ((n + image) * Cout + co) * Hout * Wout + corner;
        const to = t * Cout + co;
        if (rows === OUT && cols === OUT) {
          outputGradTransform(dy, base, Wout, 1, dM, to, TILE * T * Cout, T * Cout);
          continue;
        }
        dy4.fill(0);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) dy4[i * OUT + j] = dy[base + i * Wout + j]!;
        outputGradTransform(dy4, 0, OUT, 1, dM, to, TILE * T * Cout, T * Cout);
      }
    }
    for (let xi = 0; xi < XI; xi++)
      gemmStrided(Cin, Cout, T, V, xi * T * Cin, Cin, true, dM, xi * T * Cout, Cout, false, dU, xi * Cin * Cout, Cout, false);
    const slot = (n / chunk) * XI * Cin * Cout;
    for (let i = 0; i < XI * Cin * Cout; i++) slots[slot + i] = dU[i]!;
  }
}

// Kernel args: N, Cin, Hin, Win, Cout, Hout, Wout, pad, flip, then element offsets.
const problemArgs = (g: Problem): number[] => [g.N, g.Cin, g.Hin, g.Win, g.Cout, g.Hout, g.Wout, g.pad, g.flip ? 1 : 0];
const problemFrom = (a: ArrayLike<number>): Problem => ({
  N: a[0]!, Cin: a[1]!, Hin: a[2]!, Win: a[3]!, Cout: a[4]!, Hout: a[5]!, Wout: a[6]!, pad: a[7]!, flip: a[8] === 1,
});

/**
 * Float32 operands go to the WebAssembly kernels when float32 products do (gemm.ts), unless the
 * heap has no room for their scratch; then the TypeScript path runs.
 */
const onWasm = (arrays: readonly FloatArray[]): boolean =>
  arrays[0] instanceof Float32Array && getCpuKernels() === 'wasm' && wasmWinogradAvailable();

const forwardKernel = defineKernel('silentgrad.winograd.forward', import.meta.url, (arrays, a, n0, n1) => {
  const [x, w, y] = arrays as [FloatArray, FloatArray, FloatArray];
  if (!onWasm(arrays) || !forwardRangeWasm(x as Float32Array, a[9]!, w as Float32Array, a[10]!, y as Float32Array, a[11]!, problemFrom(a), n0, n1))
    forwardRange(x, a[9]!, w, a[10]!, y, a[11]!, problemFrom(a), n0, n1);
});
const filterGradKernel = defineKernel('silentgrad.winograd.filterGrad', import.meta.url, (arrays, a, n0, n1) => {
  const [x, dy, slots] = arrays as [FloatArray, FloatArray, FloatArray];
  if (!onWasm(arrays) || !filterGradRangeWasm(x as Float32Array, a[9]!, dy as Float32Array, a[10]!, slots, problemFrom(a), n0, n1))
    filterGradRange(x, a[9]!, dy, a[10]!, slots, problemFrom(a), n0, n1);
});

function run(kernel: typeof forwardKernel, arrays: FloatArray[], g: Problem, offsets: number[]): void {
  const chunk = chunkImages(g);
  parallelFor(kernel, arrays, [...problemArgs(g), ...offsets], g.N, chunk, g.N * g.Cout * g.Cin * 9 * g.Hout * g.Wout, { chunk });
}

/** y[N,O,Ho,Wo] = conv2d(x[N,C,H,W], w[O,C,3,3]), stride 1. */
export function winogradForward(x: FloatArray, xOff: number, w: FloatArray, wOff: number, y: FloatArray, yOff: number,
  N: number, C: number, H: number, W: number, O: number, padding: number): void {
  const g: Problem = { N, Cin: C, Hin: H, Win: W, Cout: O, Hout: H + 2 * padding - 2, Wout: W + 2 * padding - 2, pad: padding, flip: false };
  run(forwardKernel, [x, w, y], g, [xOff, wOff, yOff]);
}

/** dx[N,C,H,W] from dy[N,O,Ho,Wo]: the forward on dy with rotated, transposed filters. */
export function winogradBackwardInput(dy: FloatArray, dyOff: number, w: FloatArray, wOff: number, dx: FloatArray, dxOff: number,
  N: number, C: number, H: number, W: number, O: number, padding: number): void {
  const g: Problem = { N, Cin: O, Hin: H + 2 * padding - 2, Win: W + 2 * padding - 2, Cout: C, Hout: H, Wout: W, pad: 2 - padding, flip: true };
  run(forwardKernel, [dy, w, dx], g, [dyOff, wOff, dxOff]);
}

let slotsOf: FloatArray | null = null;

/** dw[O,C,3,3] (overwritten) from x[N,C,H,W] and dy[N,O,Ho,Wo]. */
export function winogradBackwardFilter(x: FloatArray, xOff: number, dy: FloatArray, dyOff: number, dw: FloatArray, dwOff: number,
  N: number, C: number, H: number, W: number, O: number, padding: number): void {
  const g: Problem = { N, Cin: C, Hin: H, Win: W, Cout: O, Hout: H + 2 * padding - 2, Wout: W + 2 * padding - 2, pad: padding, flip: false };
  const size = XI * C * O, chunks = Math.ceil(N / chunkImages(g));
  if (!slotsOf || slotsOf.length < chunks * size) slotsOf = allocShared('float64', chunks * size);
  const slots = slotsOf;
  run(filterGradKernel, [x, dy, slots], g, [xOff, dyOff]);
  // The chunks' sum in slot order, each slot read straight through; dU[ξ][c][o].
  const dU = scratchOf(3, size).fill(0, 0, size);
  for (let k = 0; k < chunks; k++) for (let i = 0; i < size; i++) dU[i]! += slots[k * size + i]!;
  for (let o = 0; o < O; o++)
    for (let c = 0; c < C; c++) filterGradTransform(dU, c * O + o, TILE * C * O, C * O, dw, dwOff + (o * C + c) * 9, 3, 1);
}
