// Silent Gradients: the expected log-likelihood in closed form (the fused op), so nothing is
// sampled and the encoder's gradient has zero estimator variance (paper Sec. 3).
import * as sg from '../../silentgrad.js';
import type { RandomStream, Tensor } from '../../silentgrad.js';
import { hasExpectedLogLikelihood, type LikelihoodModel, type ReconstructionModel } from '../decoders/linear-gaussian.js';
import type { LatentDistribution, LatentFamily } from '../latents/family.js';
import type { Estimator, EstimatorOutput } from './estimator.js';

export class SilentGradients implements Estimator<ReconstructionModel> {
  readonly name = 'silent';
  constructor(readonly family: LatentFamily) {}

  /**
   * The decoder must have the closed form (a ReconstructionModel, a linear decoder). The types
   * say so; the check is for callers they do not reach (plain JavaScript, casts).
   */
  loss(q: LatentDistribution, x: Tensor, decoder: ReconstructionModel, _stream: RandomStream): EstimatorOutput {
    const given: LikelihoodModel = decoder;
    if (!hasExpectedLogLikelihood(given))
      throw new Error(`SilentGradients: the decoder (${given.constructor.name}) has no closed-form expectedLogLikelihood; `
        + 'Silent Gradients needs a linear decoder (a ReconstructionModel), and a nonlinear one takes a sampling estimator');
    const reconstruction = decoder.expectedLogLikelihood(q.moments(), x);
    const kl = q.kl();
    return { loss: sg.mean(sg.sub(kl, reconstruction)), reconstruction, kl };
  }
}
