// Float32 Winograd F(4x4, 3x3) on the WebAssembly kernels of wasm/winograd-f32.ts: winograd.ts's
// forward and filter-gradient ranges for float32 arrays when float32 products run in Wasm
// (SILENTGRAD_CPU_KERNELS, gemm.ts). Per chunk of images, in this thread's scratch (in the heap
// where the module imports it, which arrays in the heap are read from and written to in place):
//   raw      the chunk's planes, copied in with one set() (and the output's, on the way out)
//   in, out  the same planes zero-padded so every tile lies wholly inside, with the channel count
//            rounded up to 4 so four-channel lanes never reach another image
//   V, M     the transforms' results, laid out as the packed panels the macro kernel reads
//   U        the transformed filters (float64 arithmetic in winograd-transforms.ts, stored once)
// Everything else is float32 arithmetic, as in PyTorch's float32 convolutions; the error against
// the float64 path is measured in test/cpu-wasm.test.ts and docs/performance-log.md.
import { OUT, XI } from '../winograd-f4x3.js';
import type { FloatArray } from '../../engine/dtype.js';
import { heapAddress } from './heap.js';
import { DEFAULT_TILE } from './wasm/gemm-f32.js';
import { winogradWasm, type WinogradWasm } from './wasm/winograd-f32.js';
import { chunkImages, tilesX, tilesY, transformFilters, type Problem } from './winograd-transforms.js';

const { mr: MR, nr: NR } = DEFAULT_TILE; // the macro kernel's tile
const up = (n: number, m: number): number => Math.ceil(n / m) * m;

/** Zero-padded planes: `channels` per image, each rows x cols floats. */
interface Planes { channels: number; rows: number; cols: number }
const planeBytes = (p: Planes): number => p.rows * p.cols * 4;
const imageBytes = (p: Planes): number => p.channels * planeBytes(p);

/** Byte addresses of the regions for one problem's chunks (see the header), and the total. */
interface Layout {
  input: Planes; output: Planes;
  raw: number; in: number; out: number; tableA: number; tableB: number; U: number; V: number; M: number; end: number;
}

/** The regions from byte address `base` (0 to learn the size first). */
function layoutOf(g: Problem, base = 0): Layout {
  const ty = tilesY(g), tx = tilesX(g), b = chunkImages(g), T = b * ty * tx, T4 = up(T, MR);
  const Cin4 = up(g.Cin, 4), Cout4 = up(g.Cout, 4), Cout8 = up(g.Cout, NR);
  const input: Planes = { channels: Cin4, rows: ty * OUT + 2, cols: tx * OUT + 2 };
  const output: Planes = { channels: Cout4, rows: ty * OUT, cols: tx * OUT };
  const sizes = {
    raw: 4 * b * Math.max(g.Cin * g.Hin * g.Win, g.Cout * g.Hout * g.Wout),
    in: b * imageBytes(input), out: b * imageBytes(output), tableA: 4 * 4 * T4, tableB: 4 * 4 * T4,
    U: 4 * XI * Cin4 * Cout8, V: 4 * XI * T4 * Cin4, M: 4 * XI * T4 * Cout8,
  };
  let at = base;
  const place = (bytes: number): number => { const a = at; at += up(bytes, 16); return a; };
  const raw = place(sizes.raw), inAt = place(sizes.in), out = place(sizes.out), tableA = place(sizes.tableA);
  const tableB = place(sizes.tableB), U = place(sizes.U), V = place(sizes.V), M = place(sizes.M);
  return { input, output, raw, in: inAt, out, tableA, tableB, U, V, M, end: at - base };
}

/**
 * Fill table[o] (4 i32 lane addresses at table + 16·o) for `count` outer steps: lane l of step o
 * is tile `tileOf(o, l)` of the chunk (image-major, then row, then column) in `planes` at `base`,
 * plus `laneStride` bytes per lane.
 */
function fillTable(i32: Int32Array, table: number, count: number, g: Problem, planes: Planes, base: number,
  tileOf: (o: number, l: number) => number, laneStride: number): void {
  const ty = tilesY(g), tx = tilesX(g);
  for (let o = 0; o < count; o++) {
    for (let l = 0; l < 4; l++) {
      const t = tileOf(o, l), s = t % tx, r = Math.floor(t / tx) % ty, image = Math.floor(t / (tx * ty));
      i32[table / 4 + 4 * o + l] = base + image * imageBytes(planes) + (r * OUT * planes.cols + s * OUT) * 4 + l * laneStride;
    }
  }
}

/**
 * Copy images [n, n + b) of an [N, C, H, W] array into `planes` at `at`, zero-padded, the data at
 * (top, left). An array in the module's memory (the heap) is read where it lies; others are
 * first copied into `raw` with one set().
 */
function padIn(k: WinogradWasm, f32: Float32Array, src: Float32Array, off: number, C: number, H: number, W: number,
  n: number, b: number, lay: Layout, planes: Planes, at: number, top: number, left: number): void {
  const first = off + n * C * H * W, inPlace = k.inHeap ? heapAddress(src) : null;
  if (inPlace === null) f32.set(src.subarray(first, first + b * C * H * W), lay.raw / 4);
  f32.fill(0, at / 4, at / 4 + (b * imageBytes(planes)) / 4);
  k.copy(inPlace === null ? lay.raw : inPlace + first * 4, at + (top * planes.cols + left) * 4, b, C, H, W * 4, W * 4, H * W * 4, C * H * W * 4,
    planes.cols * 4, planeBytes(planes), imageBytes(planes));
}

/** Scratch for problem g in this thread's memory and the layout of its regions there; null if the heap is full. */
function scratchFor(k: WinogradWasm, g: Problem): { f32: Float32Array; i32: Int32Array; lay: Layout } | null {
  const views = k.views(layoutOf(g).end);
  return views && { f32: views.f32, i32: views.i32, lay: layoutOf(g, views.base) };
}

/** y for images [n0, n1): the forward of winograd.ts, float32 in WebAssembly. */
export function forwardRangeWasm(x: Float32Array, xOff: number, w: Float32Array, wOff: number, y: Float32Array, yOff: number,
  g: Problem, n0: number, n1: number): boolean {
  const { Cin, Cout, Hin, Win, Hout, Wout } = g;
  const k = winogradWasm(), scratch = scratchFor(k, g);
  if (!scratch) return false;
  const { f32, i32, lay } = scratch;
  const { input, output } = lay, chunk = chunkImages(g), tiles = tilesY(g) * tilesX(g);
  const Cout8 = up(Cout, NR), US = Cin * Cout8 * 4;
  // Columns past Cout only feed outputs nobody reads, but stale bits there could be slow denormals.
  if (Cout8 !== Cout) f32.fill(0, lay.U / 4, (lay.U + XI * US) / 4);
  transformFilters(w, wOff, g, f32, lay.U / 4, US / 4, (ci, co) => (Math.floor(co / NR) * Cin + ci) * NR + (co % NR));
  const exact = output.channels === Cout && output.rows === Hout && output.cols === Wout;
  for (let n = n0; n < n1; n += chunk) {
    const b = Math.min(chunk, n1 - n), T = b * tiles, panels = Math.ceil(T / MR);
    const VS = panels * MR * Cin * 4, MS = panels * MR * Cout8 * 4;
    padIn(k, f32, x, xOff, Cin, Hin, Win, n, b, lay, input, lay.in, g.pad, g.pad);
    // A panels of four tiles (past the last tile, repeats of it), k-major over channels.
    fillTable(i32, lay.tableA, panels, g, input, lay.in, (o, l) => Math.min(o * MR + l, T - 1), 0);
    k.inputTransform(lay.tableA, panels, Cin, planeBytes(input), lay.V, Cin * 16, 32, 16, VS, input.cols * 4);
    for (let xi = 0; xi < XI; xi++) k.macro(Cin, T, Cout, lay.V + xi * VS, lay.U + xi * US, lay.M + xi * MS, Cout8 * 4, 0);
    // Each tile's outputs, four channels at a time, into the padded output planes.
    fillTable(i32, lay.tableB, T, g, output, lay.out, (o) => o, planeBytes(output));
    k.outputTransform(lay.M, T, output.channels / 4, Cout8 * 4, 16, MS, lay.tableB, 4 * planeBytes(output), output.cols * 4);
    // Into y where it lies when it is in the heap, else through raw (or straight from the planes).
    const first = yOff + n * Cout * Hout * Wout, inPlace = k.inHeap ? heapAddress(y) : null;
    let from = lay.out;
    if (!exact || inPlace !== null) {
      const to = inPlace === null ? lay.raw : inPlace + first * 4;
      k.copy(lay.out, to, b, Cout, Hout, Wout * 4, output.cols * 4, planeBytes(output), imageBytes(output),
        Wout * 4, Hout * Wout * 4, Cout * Hout * Wout * 4);
      if (inPlace !== null) continue;
      from = lay.raw;
    }
    y.set(f32.subarray(from / 4, from / 4 + b * Cout * Hout * Wout), first);
  }
  return true;
}

/**
 * dU for images [n0, n1), each chunk into its own slot of `slots` (XI·Cin·Cout each, [ξ][ci][co]),
 * as winograd.ts's filterGradRange writes them.
 */
export function filterGradRangeWasm(x: Float32Array, xOff: number, dy: Float32Array, dyOff: number, slots: FloatArray,
  g: Problem, n0: number, n1: number): boolean {
  const { Cin, Cout, Hin, Win, Hout, Wout } = g;
  const k = winogradWasm(), scratch = scratchFor(k, g);
  if (!scratch) return false;
  const { f32, i32, lay } = scratch;
  const { input, output } = lay, chunk = chunkImages(g), tiles = tilesY(g) * tilesX(g);
  const Cin4 = input.channels, Cout8 = up(Cout, NR), US = Cin4 * Cout8 * 4;
  for (let n = n0; n < n1; n += chunk) {
    const b = Math.min(chunk, n1 - n), T = b * tiles;
    const VS = Cin4 * T * 4, MS = Cout8 * T * 4;
    // Vᵀ as A: row panels of four channels, k-major over the tiles.
    padIn(k, f32, x, xOff, Cin, Hin, Win, n, b, lay, input, lay.in, g.pad, g.pad);
    fillTable(i32, lay.tableA, T, g, input, lay.in, (o) => o, planeBytes(input));
    k.inputTransform(lay.tableA, T, Cin4 / 4, 4 * planeBytes(input), lay.V, 16, 2 * T * 16, T * 16, VS, input.cols * 4);
    // dM as B: column panels of eight output channels (two lanes' worth), k-major over the tiles.
    padIn(k, f32, dy, dyOff, Cout, Hout, Wout, n, b, lay, output, lay.out, 0, 0);
    if (output.channels !== Cout8) f32.fill(0, lay.M / 4, (lay.M + XI * MS) / 4); // the half panel no lane fills
    fillTable(i32, lay.tableB, T, g, output, lay.out, (o) => o, planeBytes(output));
    k.outputGradTransform(lay.tableB, T, output.channels / 4, 4 * planeBytes(output), lay.M, 32, T * 32, 16, MS, output.cols * 4);
    for (let xi = 0; xi < XI; xi++) k.macro(T, Cin, Cout, lay.V + xi * VS, lay.M + xi * MS, lay.U + xi * US, Cout8 * 4, 0);
    const slot = (n / chunk) * XI * Cin * Cout;
    for (let xi = 0; xi < XI; xi++) {
      for (let ci = 0; ci < Cin; ci++) {
        const from = (lay.U + xi * US) / 4 + ci * Cout8, to = slot + (xi * Cin + ci) * Cout;
        for (let co = 0; co < Cout; co++) slots[to + co] = f32[from + co]!;
      }
    }
  }
  return true;
}
