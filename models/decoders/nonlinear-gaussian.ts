// The paper's nonlinear decoders for the learnable-variance study (Sec. 4.2, App. B.2 Tables 6
// and 8). A network maps z to two maps per image channel, a mean and a raw scale, and
//
//     p(x|z) = N(x; mean(z), diag(sigma(z)^2)),   sigma = MIN_STD_DEV + softplus(raw)
//
// per pixel. Nothing here has a closed-form expectation under q, so these are LikelihoodModels
// that the sampling estimators (and the noisy half of Algorithm 1) score on sampled z.
//
// sigma is kept positive by softplus, whose slope sigmoid(raw) lies in (0, 1): no exp to
// overflow and no clamp whose flat side would stop a pixel's variance from learning. The
// floor MIN_STD_DEV = 1e-3 sits just under the std of the dequantisation noise, 1/(256 sqrt 12)
// = 1.13e-3, which is the best sigma a pixel can have even when the mean hits its bin: it never
// binds at an optimum, yet it caps the density, so a pixel cannot collapse to a spike, and
// bounds 1/sigma^2 by 1e6, safe in float32. Training starts at sigma = DEFAULT_INITIAL_STD_DEV =
// 0.1 in every pixel and for every z, the fixed-variance study's sigma^2 = 0.01 (Table 2): the
// last layer's raw-scale weights start at zero and its biases at softplus^-1(0.1 - floor).
import * as sg from '../../silentgrad.js';
import type { RandomStream, Tensor } from '../../silentgrad.js';
import type { LikelihoodModel } from './linear-gaussian.js';

/** The smallest standard deviation the decoder can output (see the top of this file). */
export const MIN_STD_DEV = 1e-3;
/** The standard deviation training starts from (see the top of this file). */
export const DEFAULT_INITIAL_STD_DEV = 0.1;

export interface ImageShape {
  channels: number;
  height: number;
  width: number;
}

export interface NonlinearDecoderOptions {
  latentDim: number;
  /** Width of the hidden layers (the paper does not give it; see each decoder). */
  channels: number;
  stream: RandomStream;
  backend?: sg.Backend;
  dtype?: sg.DType;
  /** Colour channels of the images (table6Decoder: 1, table8Decoder: 3, unless given). */
  imageChannels?: number;
  /** sigma at initialisation, up to the network's dependence on z (default 0.1). */
  initialStdDev?: number;
  /** The floor under sigma (default MIN_STD_DEV). */
  minStdDev?: number;
}

/** Where sigma starts and its floor. */
export interface ScaleOptions {
  initialStdDev?: number | undefined;
  minStdDev?: number | undefined;
}

/** softplus^-1(y) = log(e^y - 1), written so that small y loses no precision. */
const inverseSoftplus = (y: number): number => y + Math.log(-Math.expm1(-y));

/**
 * A network whose output [B, 2C, H, W] holds the C mean maps, then the C raw-scale maps, read as
 * a Gaussian per pixel. Images are [B, C*H*W], channel-major, as experiments/data gives them.
 * Its batch-norm layers (Table 8) use batch statistics under train() and running ones under
 * eval(): evaluate, and draw decode()/stdDev() for figures, in eval mode, since every forward in
 * training mode also updates the running statistics.
 */
export class NonlinearGaussianDecoder extends sg.nn.Module implements LikelihoodModel {
  readonly net: sg.nn.Sequential;
  readonly pixels: number;
  readonly minStdDev: number;

  constructor(net: sg.nn.Sequential, readonly image: ImageShape, options: ScaleOptions = {}) {
    super();
    this.net = this.registerModule('net', net);
    this.pixels = image.channels * image.height * image.width;
    this.minStdDev = options.minStdDev ?? MIN_STD_DEV;
    const initial = options.initialStdDev ?? DEFAULT_INITIAL_STD_DEV;
    if (!(this.minStdDev > 0)) throw new Error(`NonlinearGaussianDecoder: minStdDev must be positive, got ${this.minStdDev}`);
    if (!(initial > this.minStdDev)) throw new Error(`NonlinearGaussianDecoder: initialStdDev (${initial}) must exceed minStdDev (${this.minStdDev})`);
    const last = net.layers[net.layers.length - 1];
    if (!(last instanceof sg.nn.Conv2d || last instanceof sg.nn.ConvTranspose2d) || !last.bias || last.bias.shape[0] !== 2 * image.channels)
      throw new Error(`NonlinearGaussianDecoder: the network must end in a convolution with a bias and ${2 * image.channels} output channels`);
    // sigma starts at `initial` for every z and pixel: the raw-scale half of the last layer has
    // zero weights and the bias softplus^-1(initial - floor). With PyTorch's init instead, the
    // batch-normalised features of Table 8 spread sigma over 0.01-0.7 (std ~0.9 in the raw
    // scale), a start that is saturated in some pixels. Zero weights still learn: their
    // gradient is the features times the raw scale's error. The mean half keeps PyTorch's init.
    const c = image.channels;
    const { bias, weight } = last;
    const outputAxis = last instanceof sg.nn.ConvTranspose2d ? 1 : 0; // [in, out, k, k] against [out, in, k, k]
    const like = { dtype: bias.dtype, backend: bias.backend };
    sg.tidy(() => sg.noGrad(() => {
      const meanWeights = sg.slice(weight, outputAxis, 0, c);
      weight.assign(sg.concat([meanWeights, sg.zeros(meanWeights.shape, like)], outputAxis));
      bias.assign(sg.concat([sg.slice(bias, 0, 0, c), sg.full([c], inverseSoftplus(initial - this.minStdDev), like)], 0));
    }));
  }

  /** The network's output [B, 2C, H, W], checked against the image shape. */
  private head(z: Tensor): Tensor {
    if (z.rank !== 2) throw new Error(`NonlinearGaussianDecoder: z must be [B, latentDim], got [${z.shape}]`);
    const out = this.net.forward(z);
    const { channels: c, height: h, width: w } = this.image;
    if (out.rank !== 4 || out.shape[1] !== 2 * c || out.shape[2] !== h || out.shape[3] !== w)
      throw new Error(`NonlinearGaussianDecoder: the network gave [${out.shape}], expected [B, ${2 * c}, ${h}, ${w}]`);
    return out;
  }

  /** Channels [from, from + C) of the head as images [B, C*H*W]. */
  private maps(out: Tensor, from: number): Tensor {
    return sg.reshape(sg.slice(out, 1, from, from + this.image.channels), [out.shape[0]!, this.pixels]);
  }

  private stdDevOf(out: Tensor): Tensor {
    return sg.shift(sg.softplus(this.maps(out, this.image.channels)), this.minStdDev);
  }

  forward(z: Tensor): Tensor {
    return this.decode(z);
  }

  /** The mean, [B, C*H*W] (reconstructions, MSE). */
  decode(z: Tensor): Tensor {
    return this.maps(this.head(z), 0);
  }

  /** The per-pixel standard deviation sigma(z), [B, C*H*W]. */
  stdDev(z: Tensor): Tensor {
    return this.stdDevOf(this.head(z));
  }

  /** Mean and standard deviation from one forward pass. */
  gaussian(z: Tensor): { mean: Tensor; stdDev: Tensor } {
    const out = this.head(z);
    return { mean: this.maps(out, 0), stdDev: this.stdDevOf(out) };
  }

  /** log p(x|z) = sum_j -1/2 ((x_j - mean_j) / sigma_j)^2 - log sigma_j - 1/2 log 2 pi, [B]. */
  logLikelihood(z: Tensor, x: Tensor): Tensor {
    if (x.rank !== 2 || x.shape[0] !== z.shape[0] || x.shape[1] !== this.pixels)
      throw new Error(`NonlinearGaussianDecoder.logLikelihood: x must be [${z.shape[0]}, ${this.pixels}], got [${x.shape}]`);
    const { mean, stdDev } = this.gaussian(z);
    // Dividing first keeps the square of order 1 in float32 where the fit is good.
    const halfSquare = sg.scale(sg.square(sg.div(sg.sub(x, mean), stdDev)), 0.5);
    const negative = sg.sum(sg.add(halfSquare, sg.log(stdDev)), [1]);
    return sg.shift(sg.neg(negative), -0.5 * this.pixels * Math.log(2 * Math.PI));
  }
}

const layerSettings = (o: NonlinearDecoderOptions): sg.nn.LayerOptions => ({ stream: o.stream, backend: o.backend, dtype: o.dtype });
const scaleSettings = (o: NonlinearDecoderOptions): ScaleOptions => ({ initialStdDev: o.initialStdDev, minStdDev: o.minStdDev });

/**
 * MNIST (Table 6): Linear, Reshape, four 3x3 convolutions (stride 1, padding 1) with ReLU, and a
 * 1x1 convolution to the mean and raw-scale maps. Table 6 has no upsampling (every layer keeps
 * the spatial size), so the Linear maps z to a full `channels` x 28 x 28 grid, mirroring Table 5's
 * Flatten + Linear; `channels` is also the width of every convolution.
 */
export function table6Decoder(o: NonlinearDecoderOptions & { height?: number; width?: number }): NonlinearGaussianDecoder {
  const { channels: c } = o;
  const image = { channels: o.imageChannels ?? 1, height: o.height ?? 28, width: o.width ?? 28 };
  const layer = layerSettings(o);
  const conv3 = (): sg.nn.Module[] => [new sg.nn.Conv2d(c, c, 3, { ...layer, stride: 1, padding: 1 }), sg.nn.ReLU()];
  const net = new sg.nn.Sequential(
    new sg.nn.Linear(o.latentDim, c * image.height * image.width, layer),
    sg.nn.Unflatten([c, image.height, image.width]),
    ...conv3(), ...conv3(), ...conv3(), ...conv3(),
    new sg.nn.Conv2d(c, 2 * image.channels, 1, { ...layer, stride: 1, padding: 0 }),
  );
  return new NonlinearGaussianDecoder(net, image, scaleSettings(o));
}

/**
 * CIFAR-10 and ImageNet 32x32 (Table 8): Linear, Reshape to 8c x 1 x 1, then four 4x4 transposed
 * convolutions, 1 -> 4 (stride 1, padding 0) and 4 -> 8 -> 16 -> 32 (stride 2, padding 1), the
 * first three followed by ReLU and then BatchNorm2d in the table's order, the last giving the mean
 * and raw-scale maps. The widths mirror table7Encoder: 8c -> 4c -> 2c -> c.
 */
export function table8Decoder(o: NonlinearDecoderOptions): NonlinearGaussianDecoder {
  const { channels: c } = o;
  const image = { channels: o.imageChannels ?? 3, height: 32, width: 32 };
  const layer = layerSettings(o);
  const up = (inChannels: number, outChannels: number, stride: number, padding: number): sg.nn.ConvTranspose2d =>
    new sg.nn.ConvTranspose2d(inChannels, outChannels, 4, { ...layer, stride, padding });
  const norm = (channels: number): sg.nn.BatchNorm2d => new sg.nn.BatchNorm2d(channels, { backend: o.backend, dtype: o.dtype });
  const net = new sg.nn.Sequential(
    new sg.nn.Linear(o.latentDim, 8 * c, layer),
    sg.nn.Unflatten([8 * c, 1, 1]),
    up(8 * c, 4 * c, 1, 0), sg.nn.ReLU(), norm(4 * c),
    up(4 * c, 2 * c, 2, 1), sg.nn.ReLU(), norm(2 * c),
    up(2 * c, c, 2, 1), sg.nn.ReLU(), norm(c),
    up(c, 2 * image.channels, 2, 1),
  );
  return new NonlinearGaussianDecoder(net, image, scaleSettings(o));
}
