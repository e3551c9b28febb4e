// conv2d forward, input gradient and filter gradient (NCHW, square stride and padding) as
// implicit GEMMs on the template of gemm.ts: the im2col matrix is never formed; each B
// element is gathered from the image with its padding test. Per-column index arithmetic is
// hoisted out of the k loop (colSetup), per-k arithmetic is shared by the 16 columns (kSetup).
//   forward:         y[o, (b,oy,ox)]  = sum_(c,i,j)  w[o,(c,i,j)] x[b,c,oy*s-p+i,ox*s-p+j]
//   input gradient:  dx[c, (b,y,x)]   = sum_(o,i,j)  w[o,c,i,j] dy[b,o,(y+p-i)/s,(x+p-j)/s]
//   filter gradient: dw[o, (c,i,j)]   = sum_(b,oy,ox) dy[b,o,oy,ox] x[b,c,oy*s-p+i,ox*s-p+j]
// 3x3 stride-1 layers with enough channels each side (24+ on lavapipe) go to winograd.ts
// instead (4x fewer multiply-adds), pass by pass as winogradServes says.
import type { Conv2dGeometry } from '../../../engine/backend.js';
import type { Dispatch } from '../queue.js';
import type { TuningProfile } from '../tuning.js';
import type { GpuView } from '../kernels/elementwise.js';
import { reduce } from '../kernels/reduce.js';
import { gemmDispatch, splitCount, type GemmSpec } from './gemm.js';
import { winogradBackwardFilter, winogradBackwardInput, winogradForward, winogradServes, type KeptInputTransforms } from './winograd.js';

// Parameter slots after the GEMM's four: two operand offsets, then the geometry.
const GEOMETRY = `
fn C() -> u32 { return P[6]; } fn H() -> u32 { return P[7]; } fn W() -> u32 { return P[8]; }
fn O_() -> u32 { return P[9]; } fn KH() -> u32 { return P[10]; } fn KW() -> u32 { return P[11]; }
fn S() -> u32 { return P[12]; } fn PAD() -> i32 { return i32(P[13]); }
fn HO() -> u32 { return P[14]; } fn WO() -> u32 { return P[15]; }`;

// Branch-free gathers (clamped load + select): lavapipe runs 8 invocations per SIMD register,
// and divergent branches in the 16 unrolled columns made LLVM take ~20 s to compile a kernel.
// The element's flat index is split into a per-column and a per-k part, each computed once
// (colSetup / kSetup) and added per gather; the padding test is two unsigned compares (a
// negative coordinate wraps past the size) and out-of-image gathers read element 0.
const gather = (buffer: string, height: string, width: string): string => `
fn at${buffer}(at: i32, y: i32, x: i32) -> f32 {
  let inside = (u32(y) < ${height}) & (u32(x) < ${width});
  return select(0.0, ${buffer}[select(0u, u32(at), inside)], inside);
}`;

/** dy[b, o, y/s, x/s] where (y, x) lands on an output position, else 0 (strides above 1). */
const dyAtStrided = `
fn dyAt(b: u32, o: u32, y: i32, x: i32) -> f32 {
  let s = i32(S());
  let oy = y / s; let ox = x / s;
  let inside = (y >= 0) & (x >= 0) & (y % s == 0) & (x % s == 0) & (oy < i32(HO())) & (ox < i32(WO()));
  let yy = u32(clamp(oy, 0, i32(HO()) - 1)); let xx = u32(clamp(ox, 0, i32(WO()) - 1));
  return select(0.0, DY[P[4] + ((b * O_() + o) * HO() + yy) * WO() + xx], inside);
}`;

const KSPLIT = 'let kr = k % (KH() * KW()); let ki = i32(kr / KW()); let kj = i32(kr % KW());';

const forwardSpec: GemmSpec = {
  name: 'conv2d forward',
  inputs: [{ name: 'X', access: 'read' }, { name: 'Wt', access: 'read' }],
  functions: GEOMETRY + gather('X', 'H()', 'W()'),
  kSetup: `let kc = k / (KH() * KW()); ${KSPLIT} let kAt = i32(kc * H() * W()) + ki * i32(W()) + kj;`,
  aAt: (row) => `Wt[P[5] + ${row} * K + k]`,
  colSetup: (t) => `let cb_${t} = col_${t} / (HO() * WO()); let cp_${t} = col_${t} % (HO() * WO()); ` +
    `let cy_${t} = i32((cp_${t} / WO()) * S()) - PAD(); let cx_${t} = i32((cp_${t} % WO()) * S()) - PAD(); ` +
    `let cAt_${t} = i32(P[4] + cb_${t} * C() * H() * W()) + cy_${t} * i32(W()) + cx_${t};`,
  bAt: (t) => `atX(cAt_${t} + kAt, cy_${t} + ki, cx_${t} + kj)`,
  store: (row, col, v) => `O[(${col} / (HO() * WO()) * M + ${row}) * (HO() * WO()) + ${col} % (HO() * WO())] = ${v};`,
};

const inputGradientShared = {
  name: 'conv2d input gradient',
  inputs: [{ name: 'DY', access: 'read' }, { name: 'Wt', access: 'read' }],
  aAt: (row: string) => `Wt[P[5] + (ko * C() + ${row}) * (KH() * KW()) + kr]`,
  store: (row: string, col: string, v: string) => `O[(${col} / (H() * W()) * M + ${row}) * (H() * W()) + ${col} % (H() * W())] = ${v};`,
} as const;

/** Stride 1: dx[c, b, y, x] = sum w[o, c, i, j] dy[b, o, y + p - i, x + p - j]. */
const inputGradientSpec: GemmSpec = {
  ...inputGradientShared,
  functions: GEOMETRY + gather('DY', 'HO()', 'WO()'),
  kSetup: `let ko = k / (KH() * KW()); ${KSPLIT} let kAt = i32(ko * HO() * WO()) - ki * i32(WO()) - kj;`,
  colSetup: (t) => `let cb_${t} = col_${t} / (H() * W()); let cp_${t} = col_${t} % (H() * W()); ` +
    `let cy_${t} = i32(cp_${t} / W()) + PAD(); let cx_${t} = i32(cp_${t} % W()) + PAD(); ` +
    `let cAt_${t} = i32(P[4] + cb_${t} * O_() * HO() * WO()) + cy_${t} * i32(WO()) + cx_${t};`,
  bAt: (t) => `atDY(cAt_${t} + kAt, cy_${t} - ki, cx_${t} - kj)`,
};

const inputGradientStridedSpec: GemmSpec = {
  ...inputGradientShared,
  name: 'conv2d input gradient strided',
  functions: GEOMETRY + dyAtStrided,
  kSetup: `let ko = k / (KH() * KW()); ${KSPLIT}`,
  colSetup: (t) => `let cb_${t} = col_${t} / (H() * W()); let cp_${t} = col_${t} % (H() * W()); ` +
    `let cy_${t} = i32(cp_${t} / W()) + PAD(); let cx_${t} = i32(cp_${t} % W()) + PAD();`,
  bAt: (t) => `dyAt(cb_${t}, ko, cy_${t} - ki, cx_${t} - kj)`,
};

const filterGradientSpec: GemmSpec = {
  name: 'conv2d filter gradient',
  inputs: [{ name: 'X', access: 'read' }, { name: 'DY', access: 'read' }],
  functions: GEOMETRY + gather('X', 'H()', 'W()'),
  kSetup: 'let kb = k / (HO() * WO()); let kp = k % (HO() * WO()); ' +
    'let ky = i32((kp / WO()) * S()) - PAD(); let kx = i32((kp % WO()) * S()) - PAD(); ' +
    'let kAt = i32(P[4] + kb * C() * H() * W()) + ky * i32(W()) + kx;',
  aAt: (row) => `DY[P[5] + (kb * M + ${row}) * (HO() * WO()) + kp]`,
  colSetup: (t) => `let cc_${t} = col_${t} / (KH() * KW()); let cr_${t} = col_${t} % (KH() * KW()); ` +
    `let ci_${t} = i32(cr_${t} / KW()); let cj_${t} = i32(cr_${t} % KW()); ` +
    `let cAt_${t} = i32(cc_${t} * H() * W()) + ci_${t} * i32(W()) + cj_${t};`,
  bAt: (t) => `atX(kAt + cAt_${t}, ky + ci_${t}, kx + cj_${t})`,
  store: (row, col, v) => `O[${row} * N + ${col}] = ${v};`,
};

const geometryParams = (g: Conv2dGeometry): number[] =>
  [g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW, g.stride, g.padding, g.outHeight, g.outWidth];

export function conv2dForward(tuning: TuningProfile, x: GpuView, w: GpuView, g: Conv2dGeometry, out: GPUBuffer, scratch: (floats: number) => GPUBuffer,
  kept: KeptInputTransforms): Dispatch | Dispatch[] {
  if (winogradServes(tuning.winograd, 'forward', g)) return winogradForward(tuning, x, w, g, out, scratch, kept);
  const K = g.inChannels * g.kernelH * g.kernelW;
  return gemmDispatch(tuning, forwardSpec, [x.buffer, w.buffer, out], g.outChannels, g.batch * g.outHeight * g.outWidth, K,
    [x.offset, w.offset, ...geometryParams(g)], 1);
}

export function conv2dBackwardInput(tuning: TuningProfile, dy: GpuView, w: GpuView, g: Conv2dGeometry, dx: GPUBuffer, scratch: (floats: number) => GPUBuffer): Dispatch | Dispatch[] {
  if (winogradServes(tuning.winograd, 'input', g)) return winogradBackwardInput(tuning, dy, w, g, dx, scratch);
  const K = g.outChannels * g.kernelH * g.kernelW;
  return gemmDispatch(tuning, g.stride === 1 ? inputGradientSpec : inputGradientStridedSpec, [dy.buffer, w.buffer, dx], g.inChannels, g.batch * g.height * g.width, K,
    [dy.offset, w.offset, ...geometryParams(g)], 1);
}

/** The filter gradient sums over every pixel of the batch: split K when the output is small. */
export function conv2dBackwardFilter(tuning: TuningProfile, x: GpuView, dy: GpuView, g: Conv2dGeometry, dw: GPUBuffer, scratch: (floats: number) => GPUBuffer,
  kept: KeptInputTransforms, adopt: (buffer: GPUBuffer) => void): Dispatch[] {
  if (winogradServes(tuning.winograd, 'filter', g)) return winogradBackwardFilter(tuning, x, dy, g, dw, scratch, kept, adopt);
  const [M, N, K] = [g.outChannels, g.inChannels * g.kernelH * g.kernelW, g.batch * g.outHeight * g.outWidth];
  const splits = splitCount(tuning, M, N, K);
  const extra = [x.offset, dy.offset, ...geometryParams(g)];
  if (splits === 1) return [gemmDispatch(tuning, filterGradientSpec, [x.buffer, dy.buffer, dw], M, N, K, extra, 1)];
  const partial = scratch(splits * M * N);
  const sum = reduce('sum', { buffer: partial, shape: [splits, M * N], strides: [M * N, 1], offset: 0 }, [0], dw);
  return [gemmDispatch(tuning, filterGradientSpec, [x.buffer, dy.buffer, partial], M, N, K, extra, splits), ...(sum ? [sum] : [])];
}
