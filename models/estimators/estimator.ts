// An estimator turns (q(z|x), decoder, data) into a loss whose gradient is that estimator's
// gradient of the negative ELBO; the training loop just calls backward() on it.
import type { RandomStream, Tensor } from '../../silentgrad.js';
import type { LikelihoodModel } from '../decoders/linear-gaussian.js';
import type { LatentDistribution, LatentFamily } from '../latents/family.js';

export interface EstimatorOutput {
  /** Scalar to minimise: mean over the batch of -reconstruction + KL (plus any surrogate). */
  loss: Tensor;
  /** This estimator's estimate of E_q[log p(x|z)] per example, [B]. */
  reconstruction: Tensor;
  /** KL(q || prior) per example, [B]. */
  kl: Tensor;
}

/**
 * M is the decoder an estimator works with. The sampling estimators only score sampled z, so
 * they take any LikelihoodModel, the nonlinear decoders too; SilentGradients needs the
 * closed-form expectation of a ReconstructionModel (decoders/linear-gaussian.ts) and implements
 * Estimator<ReconstructionModel>. `loss` is a method, and TypeScript compares method parameters
 * both ways, so a SilentGradients still fits where a plain Estimator is held (the Table-2 code
 * keeps all five in one table); handed a decoder without the closed form, its loss throws.
 * For a compile-time guarantee, hold a SamplingEstimator.
 */
export interface Estimator<M extends LikelihoodModel = LikelihoodModel> {
  readonly name: string;
  /** The latent family it works with. */
  readonly family: LatentFamily;
  loss(q: LatentDistribution, x: Tensor, decoder: M, stream: RandomStream): EstimatorOutput;
}

/**
 * An estimator that works with any decoder, by scoring sampled z. Its loss is a property, which
 * TypeScript checks strictly: a SilentGradients is not a SamplingEstimator.
 */
export interface SamplingEstimator extends Estimator {
  readonly loss: (q: LatentDistribution, x: Tensor, decoder: LikelihoodModel, stream: RandomStream) => EstimatorOutput;
}
