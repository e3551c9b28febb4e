// Where a learnable-variance linear decoder starts: at the best decoder that ignores z, so the
// part of the gradient that every image shares is zero at the first step
// (docs/learnable-variance.md, "How the linear decoder starts").
import * as sg from '../../silentgrad.js';
import type { LearnableVarianceLinearDecoder } from './linear-gaussian.js';

/** Per-pixel mean and standard deviation of the (dequantized) training images. */
export interface PixelStatistics { mean: Float64Array; std: Float64Array }

/**
 * b_mu = the pixels' mean and b_a = 1 / max(std, sigmaFloor), the z-independent optimum; the
 * weights are PyTorch's draws in each pixel's units: W_mu[j,:] times sigma_j sqrt(3d / k), so
 * each latent's column costs E sum_j b_a_j^2 W_mu[j,i]^2 = 1 (the per-pixel form of the
 * 'scaled' rule, docs/discrete-collapse.md), and W_a[j,:] times b_a_j / (2 sqrt(d)), so
 * A = W_a z + b_a stays within 50% of b_a_j for every Bernoulli z in [0, 1]^d (for Gaussian z,
 * unbounded, only typically): positive, yet varying.
 * The floor keeps the background (whose only spread is dequantization noise, std 0.0011) from
 * starting at a precision where Adam's fixed-size steps on W_mu cost (lr b_a)^2 a pixel.
 */
export function fitLearnableDecoder(decoder: LearnableVarianceLinearDecoder, pixels: PixelStatistics, sigmaFloor: number): void {
  const { mean: u, precision: a } = decoder;
  const [k, d] = u.weight.shape as [number, number];
  if (pixels.mean.length !== k || pixels.std.length !== k)
    throw new Error(`fitLearnableDecoder: pixel statistics for ${pixels.mean.length} pixels, but the decoder has ${k}`);
  const options = { dtype: u.weight.dtype, backend: u.weight.backend };
  const perPixel = (values: Float64Array, shape: number[]) => sg.tensor(values, shape, options);
  const sigma = pixels.std.map((s) => Math.max(s, sigmaFloor));
  sg.noGrad(() => {
    u.bias!.assign(perPixel(pixels.mean, [k]));
    a.bias!.assign(perPixel(sigma.map((s) => 1 / s), [k]));
    u.weight.assign(sg.mul(u.weight, perPixel(sigma.map((s) => s * Math.sqrt((3 * d) / k)), [k, 1])));
    a.weight.assign(sg.mul(a.weight, perPixel(sigma.map((s) => 1 / s / (2 * Math.sqrt(d))), [k, 1])));
  });
}
