// The convolution family: three kernels (forward, gradient w.r.t. input, gradient w.r.t.
// filter), NCHW layout, square stride and padding. ConvTranspose2d's forward IS the
// input-gradient kernel, so the two ops' backward rules are each other's forward.
import { record } from '../graph.js';
import type { Conv2dGeometry } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { checkCompatible, checkRank, defineOp, empty, shapeString } from './core.js';
import { contiguous } from './shape.js';

function geometry(op: string, input: readonly number[], weight: readonly number[], stride: number, padding: number, outHW?: [number, number]): Conv2dGeometry {
  const [batch, inChannels, height, width] = input as [number, number, number, number];
  const [outChannels, wIn, kernelH, kernelW] = weight as [number, number, number, number];
  if (wIn !== inChannels)
    throw new Error(`${op}: input has ${inChannels} channels but the weight [${weight}] expects ${wIn}`);
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(padding) || padding < 0)
    throw new Error(`${op}: stride must be a positive integer and padding a non-negative one (got ${stride}, ${padding})`);
  const outHeight = outHW?.[0] ?? Math.floor((height + 2 * padding - kernelH) / stride) + 1;
  const outWidth = outHW?.[1] ?? Math.floor((width + 2 * padding - kernelW) / stride) + 1;
  if (outHeight < 1 || outWidth < 1)
    throw new Error(`${op}: a ${kernelH}x${kernelW} kernel with padding ${padding} does not fit a ${height}x${width} input`);
  return { batch, inChannels, height, width, outChannels, kernelH, kernelW, stride, padding, outHeight, outWidth };
}

/** x [N,C,H,W] * w [O,C,kh,kw] -> [N,O,Ho,Wo]. */
export const conv2d = defineOp('conv2d', true, (x: Tensor, w: Tensor, stride: number = 1, padding: number = 0): Tensor => {
  checkCompatible('conv2d', { x, w });
  checkRank('conv2d', 'x', x, 4);
  checkRank('conv2d', 'weight', w, 4);
  const geo = geometry('conv2d', x.shape, w.shape, stride, padding);
  const [xc, wc] = [contiguous(x), contiguous(w)];
  const out = empty([geo.batch, geo.outChannels, geo.outHeight, geo.outWidth], x.dtype, x.backend);
  x.backend.conv2d(xc, wc, geo, out.storage);
  return record(out, 'conv2d', [x, w], (g) => [
    x.requiresGrad ? convTranspose2d(g, w, stride, padding, [geo.height, geo.width]) : null,
    w.requiresGrad ? conv2dFilterGradient(x, g, geo) : null,
  ]);
});

/**
 * The transpose (adjoint) of conv2d: x [N,Cin,H,W], w [Cin,Cout,kh,kw] as PyTorch stores it.
 * Output size (H-1)*stride - 2*padding + kh unless `outSize` pins it (used by conv2d's backward).
 */
export const convTranspose2d = defineOp('convTranspose2d', true, (x: Tensor, w: Tensor, stride: number = 1, padding: number = 0, outSize?: [number, number]): Tensor => {
  checkCompatible('convTranspose2d', { x, w });
  checkRank('convTranspose2d', 'x', x, 4);
  checkRank('convTranspose2d', 'weight', w, 4);
  if (x.shape[1] !== w.shape[0])
    throw new Error(`convTranspose2d: input ${shapeString(x)} has ${x.shape[1]} channels but the weight ${shapeString(w)} expects ${w.shape[0]}`);
  const [kh, kw] = [w.shape[2]!, w.shape[3]!];
  const [h, wd] = outSize ?? [(x.shape[2]! - 1) * stride - 2 * padding + kh, (x.shape[3]! - 1) * stride - 2 * padding + kw];
  // The conv2d whose input gradient this is: input [N,Cout,h,wd], weight w, output x.
  const geo = geometry('convTranspose2d', [x.shape[0]!, w.shape[1]!, h, wd], [w.shape[0]!, w.shape[1]!, kh, kw], stride, padding, [x.shape[2]!, x.shape[3]!]);
  const expectH = Math.floor((h + 2 * padding - kh) / stride) + 1;
  const expectW = Math.floor((wd + 2 * padding - kw) / stride) + 1;
  if (expectH !== x.shape[2] || expectW !== x.shape[3])
    throw new Error(`convTranspose2d: output size ${h}x${wd} is inconsistent with input ${shapeString(x)}, stride ${stride}, padding ${padding}`);
  const [xc, wc] = [contiguous(x), contiguous(w)];
  const out = empty([geo.batch, geo.inChannels, h, wd], x.dtype, x.backend);
  x.backend.conv2dBackwardInput(xc, wc, geo, out.storage);
  return record(out, 'convTranspose2d', [x, w], (g) => [
    x.requiresGrad ? conv2d(g, w, stride, padding) : null,
    w.requiresGrad ? conv2dFilterGradient(g, x, geo) : null,
  ]);
});

/** d(loss)/d(weight) of conv2d given its input x and output gradient dy; used only in backward. */
const conv2dFilterGradient = defineOp('conv2dFilterGradient', false, (x: Tensor, dy: Tensor, geo: Conv2dGeometry): Tensor => {
  const out = empty([geo.outChannels, geo.inChannels, geo.kernelH, geo.kernelW], x.dtype, x.backend);
  x.backend.conv2dBackwardFilter(contiguous(x), contiguous(dy), geo, out.storage);
  return out;
});
