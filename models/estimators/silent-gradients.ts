// Silent Gradients: the expected log-likelihood in closed form (the fused op), so nothing is
// sampled and the encoder's gradient has zero estimator variance (paper Sec. 3).
import * as sg from '../../engine/index.js';
import type { RandomStream, Tensor } from '../../engine/index.js';
import type { ReconstructionModel } from '../decoders/linear-gaussian.js';
import type { LatentDistribution, LatentFamily } from '../latents/family.js';
import type { Estimator, EstimatorOutput } from './estimator.js';

export class SilentGradients implements Estimator {
  readonly name = 'silent';
  constructor(readonly family: LatentFamily) {}

  loss(q: LatentDistribution, x: Tensor, decoder: ReconstructionModel, _stream: RandomStream): EstimatorOutput {
    const reconstruction = decoder.expectedLogLikelihood(q.moments(), x);
    const kl = q.kl();
    return { loss: sg.mean(sg.sub(kl, reconstruction)), reconstruction, kl };
  }
}
