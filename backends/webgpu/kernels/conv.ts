// The plain convolutions (NCHW, square stride and padding): one invocation per output element
// sums its window directly, skipping taps that fall in the padding.
//   forward:         y[b,o,oy,ox]  = sum_(c,i,j)   w[o,c,i,j] x[b,c,oy*s-p+i,ox*s-p+j]
//   input gradient:  dx[b,c,y,x]   = sum_(o,i,j)   w[o,c,i,j] dy[b,o,(y+p-i)/s,(x+p-j)/s]  where s divides
//   filter gradient: dw[o,c,i,j]   = sum_(b,oy,ox) dy[b,o,oy,ox] x[b,c,oy*s-p+i,ox*s-p+j]
// tuned/conv.ts holds the implicit GEMMs and Winograd.
import type { Conv2dGeometry } from '../../../engine/backend.js';
import { linearGroup, type Dispatch } from '../queue.js';
import type { GpuView } from './elementwise.js';
import { ceilDiv, entry, header, Params } from './wgsl.js';

const WORKGROUP = 64;

/** A kernel over `count` (P[0]) outputs; the operands' offsets are P[1] and P[2], the geometry after. */
function source(pass: string, inputs: readonly [string, string], body: string): string {
  return `// plain conv2d ${pass}
${header([{ name: inputs[0], access: 'read' }, { name: inputs[1], access: 'read' }, { name: 'O', access: 'read_write' }])}
${entry([WORKGROUP])} {
  let at = (${linearGroup}) * ${WORKGROUP}u + lid;
  if (at >= P[0]) { return; }
  let N = P[3]; let C = P[4]; let H = P[5]; let W = P[6]; let OC = P[7]; let KH = P[8]; let KW = P[9];
  let S = P[10]; let PAD = P[11]; let HO = P[12]; let WO = P[13];
  var sum = 0.0;
  ${body}
  O[at] = sum;
}`;
}

const sources = {
  forward: source('forward', ['X', 'Wt'], `
  let ox = at % WO; let oy = at / WO % HO; let o = at / (WO * HO) % OC; let b = at / (WO * HO * OC);
  for (var c = 0u; c < C; c++) { for (var i = 0u; i < KH; i++) { for (var j = 0u; j < KW; j++) {
    let y = oy * S + i - PAD; let x = ox * S + j - PAD;
    // Above the padding u32 arithmetic wraps past H and W, so one compare per axis suffices.
    if (y < H && x < W) { sum += Wt[P[2] + ((o * C + c) * KH + i) * KW + j] * X[P[1] + ((b * C + c) * H + y) * W + x]; }
  } } }`),
  input: source('input gradient', ['DY', 'Wt'], `
  let x = at % W; let y = at / W % H; let c = at / (W * H) % C; let b = at / (W * H * C);
  for (var o = 0u; o < OC; o++) { for (var i = 0u; i < KH; i++) { for (var j = 0u; j < KW; j++) {
    let ty = y + PAD - i; let tx = x + PAD - j;
    let oy = ty / S; let ox = tx / S;
    if (oy < HO && ox < WO && ty % S == 0u && tx % S == 0u) { sum += Wt[P[2] + ((o * C + c) * KH + i) * KW + j] * DY[P[1] + ((b * OC + o) * HO + oy) * WO + ox]; }
  } } }`),
  filter: source('filter gradient', ['X', 'DY'], `
  let j = at % KW; let i = at / KW % KH; let c = at / (KW * KH) % C; let o = at / (KW * KH * C);
  for (var b = 0u; b < N; b++) { for (var oy = 0u; oy < HO; oy++) { for (var ox = 0u; ox < WO; ox++) {
    let y = oy * S + i - PAD; let x = ox * S + j - PAD;
    if (y < H && x < W) { sum += DY[P[2] + ((b * OC + o) * HO + oy) * WO + ox] * X[P[1] + ((b * C + c) * H + y) * W + x]; }
  } } }`),
};

function dispatch(pass: keyof typeof sources, count: number, first: GpuView, second: GpuView, out: GPUBuffer, g: Conv2dGeometry): Dispatch | null {
  if (count === 0) return null;
  const params = new Params().u32(count, first.offset, second.offset, g.batch, g.inChannels, g.height, g.width, g.outChannels,
    g.kernelH, g.kernelW, g.stride, g.padding, g.outHeight, g.outWidth).build();
  return { source: sources[pass], buffers: [first.buffer, second.buffer, out], params, groups: ceilDiv(count, WORKGROUP) };
}

export const conv2dForward = (x: GpuView, w: GpuView, g: Conv2dGeometry, y: GPUBuffer): Dispatch | null =>
  dispatch('forward', g.batch * g.outChannels * g.outHeight * g.outWidth, x, w, y, g);

export const conv2dBackwardInput = (dy: GpuView, w: GpuView, g: Conv2dGeometry, dx: GPUBuffer): Dispatch | null =>
  dispatch('input', g.batch * g.inChannels * g.height * g.width, dy, w, dx, g);

export const conv2dBackwardFilter = (x: GpuView, dy: GpuView, g: Conv2dGeometry, dw: GPUBuffer): Dispatch | null =>
  dispatch('filter', g.outChannels * g.inChannels * g.kernelH * g.kernelW, x, dy, dw, g);
