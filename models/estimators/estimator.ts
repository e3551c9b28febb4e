// An estimator turns (q(z|x), decoder, data) into a loss whose gradient is that estimator's
// gradient of the negative ELBO; the training loop just calls backward() on it.
import type { RandomStream, Tensor } from '../../engine/index.js';
import type { ReconstructionModel } from '../decoders/linear-gaussian.js';
import type { LatentDistribution, LatentFamily } from '../latents/family.js';

export interface EstimatorOutput {
  /** Scalar to minimise: mean over the batch of -reconstruction + KL (plus any surrogate). */
  loss: Tensor;
  /** This estimator's estimate of E_q[log p(x|z)] per example, [B]. */
  reconstruction: Tensor;
  /** KL(q || prior) per example, [B]. */
  kl: Tensor;
}

export interface Estimator {
  readonly name: string;
  /** The latent family it works with. */
  readonly family: LatentFamily;
  loss(q: LatentDistribution, x: Tensor, decoder: ReconstructionModel, stream: RandomStream): EstimatorOutput;
}
