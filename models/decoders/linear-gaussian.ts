// The paper's linear decoders with a Gaussian likelihood. Each can score a sampled z (what the
// sampling estimators use) and compute the expected log-likelihood under q in closed form
// (the fused silent-ELBO op): the same decoder object serves every estimator.
import * as sg from '../../silentgrad.js';
import type { LatentMoments, RandomStream, Tensor } from '../../silentgrad.js';

/** A decoder that scores sampled z: all the sampling estimators need (linear or nonlinear). */
export interface LikelihoodModel extends sg.nn.Module {
  /** log p(x | z) per example, [B]. */
  logLikelihood(z: Tensor, x: Tensor): Tensor;
  /** The decoder mean for given z, [B, k] (reconstructions, MSE). */
  decode(z: Tensor): Tensor;
}

/** A decoder whose expected log-likelihood under q has a closed form: what Silent Gradients needs. */
export interface ReconstructionModel extends LikelihoodModel {
  /** E_q[log p(x | z)] per example, [B], in closed form from q's moments. */
  expectedLogLikelihood(moments: LatentMoments, x: Tensor): Tensor;
}

/** Whether a decoder has the closed-form expectation (the linear decoders here do). */
export function hasExpectedLogLikelihood(decoder: LikelihoodModel): decoder is ReconstructionModel {
  return 'expectedLogLikelihood' in decoder && typeof decoder.expectedLogLikelihood === 'function';
}

export interface DecoderOptions {
  latentDim: number;
  pixels: number;
  stream: RandomStream;
  dtype?: sg.DType;
  backend?: sg.Backend;
}

/**
 * How a linear decoder's weights start. 'pytorch' is nn.Linear's U(+-1/sqrt(d)), which gives
 * each latent's column of W a squared norm of about k / (3 d) (1.31 for MNIST with d = 200).
 * 'scaled' is the same draw shrunk so that E||W_i||^2 = sigma2: above 4 sigma2 the shared part
 * of the Bernoulli logits' gradient drives every image's posterior to one saturated code
 * (docs/discrete-collapse.md).
 */
export const decoderInits = ['scaled', 'pytorch'] as const;
export type DecoderInit = (typeof decoderInits)[number];

/** Rescales a freshly drawn [k, d] weight as `init` says, for output variance sigma2. */
export function initializeDecoderWeight(weight: Tensor, init: DecoderInit, sigma2: number): void {
  if (init === 'pytorch') return;
  const [pixels, latents] = weight.shape as [number, number];
  const expectedColumnNorm = pixels / (3 * latents); // k columns entries of variance 1/(3d)
  weight.assign(sg.scale(weight, Math.sqrt(sigma2 / expectedColumnNorm)));
}

/** p(x|z) = N(x; W z + b, sigma2 I) with fixed sigma2 (paper Eq. 2; Table 2 uses 0.01). */
export class FixedVarianceLinearDecoder extends sg.nn.Module implements ReconstructionModel {
  readonly linear: sg.nn.Linear;
  constructor(options: DecoderOptions, readonly sigma2: number, init: DecoderInit = 'pytorch') {
    super();
    if (!(sigma2 > 0)) throw new Error(`FixedVarianceLinearDecoder: sigma2 must be positive, got ${sigma2}`);
    this.linear = this.registerModule('linear', new sg.nn.Linear(options.latentDim, options.pixels, options));
    initializeDecoderWeight(this.linear.weight, init, sigma2);
  }

  forward(z: Tensor): Tensor {
    return this.decode(z);
  }

  decode(z: Tensor): Tensor {
    return this.linear.forward(z);
  }

  logLikelihood(z: Tensor, x: Tensor): Tensor {
    const squaredError = sg.sum(sg.square(sg.sub(x, this.decode(z))), [1]);
    const k = x.shape[1]!;
    return sg.shift(sg.scale(squaredError, -0.5 / this.sigma2), -0.5 * k * Math.log(2 * Math.PI * this.sigma2));
  }

  expectedLogLikelihood(moments: LatentMoments, x: Tensor): Tensor {
    return sg.expectedLogLikelihoodFixed(moments, this.linear.weight, this.linear.bias!, x, this.sigma2);
  }
}

/**
 * p(x|z) = N(x; U, 1/A^2) with U = W_mu z + b_mu and the precision root A = W_a z + b_a both
 * linear in z (paper Sec. 4.1). `initialPrecision` sets b_a, so training starts at sigma = 1/b_a.
 */
export class LearnableVarianceLinearDecoder extends sg.nn.Module implements ReconstructionModel {
  readonly mean: sg.nn.Linear;
  readonly precision: sg.nn.Linear;
  constructor(options: DecoderOptions, initialPrecision = 1) {
    super();
    this.mean = this.registerModule('mean', new sg.nn.Linear(options.latentDim, options.pixels, options));
    this.precision = this.registerModule('precision', new sg.nn.Linear(options.latentDim, options.pixels, options));
    this.precision.bias!.assign(sg.full([options.pixels], initialPrecision, { dtype: options.dtype ?? 'float32', backend: options.backend ?? sg.getDefaultBackend() }));
  }

  forward(z: Tensor): Tensor {
    return this.decode(z);
  }

  decode(z: Tensor): Tensor {
    return this.mean.forward(z);
  }

  /** sum_j -1/2 (x_j - U_j)^2 A_j^2 + 1/2 log A_j^2 - 1/2 log 2 pi. */
  logLikelihood(z: Tensor, x: Tensor): Tensor {
    const a2 = sg.square(this.precision.forward(z));
    const perPixel = sg.sub(sg.scale(sg.log(a2), 0.5), sg.scale(sg.mul(sg.square(sg.sub(x, this.decode(z))), a2), 0.5));
    return sg.shift(sg.sum(perPixel, [1]), -0.5 * x.shape[1]! * Math.log(2 * Math.PI));
  }

  expectedLogLikelihood(moments: LatentMoments, x: Tensor): Tensor {
    return sg.expectedLogLikelihoodLearnable(moments, {
      wMu: this.mean.weight, bMu: this.mean.bias!, wA: this.precision.weight, bA: this.precision.bias!,
    }, x);
  }
}
