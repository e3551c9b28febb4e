// Gumbel-Softmax for Bernoulli latents (the binary Concrete relaxation, Maddison et al. /
// Jang et al.): the decoder sees a relaxed z in (0, 1); biased, but low variance.
import * as sg from '../../silentgrad.js';
import type { RandomStream, Tensor } from '../../silentgrad.js';
import type { LikelihoodModel } from '../decoders/linear-gaussian.js';
import type { LatentDistribution } from '../latents/family.js';
import { BernoulliDistribution, BernoulliLatent } from '../latents/bernoulli.js';
import type { EstimatorOutput, SamplingEstimator } from './estimator.js';

export class GumbelSoftmax implements SamplingEstimator {
  readonly name = 'gumbel';
  readonly family = new BernoulliLatent();
  constructor(readonly temperature = 1) {
    if (!(temperature > 0)) throw new Error(`GumbelSoftmax: temperature must be positive, got ${temperature}`);
  }

  loss(q: LatentDistribution, x: Tensor, decoder: LikelihoodModel, stream: RandomStream): EstimatorOutput {
    if (!(q instanceof BernoulliDistribution)) throw new Error('GumbelSoftmax: needs Bernoulli latents');
    const reconstruction = decoder.logLikelihood(q.relaxed(stream, this.temperature), x);
    const kl = q.kl();
    return { loss: sg.mean(sg.sub(kl, reconstruction)), reconstruction, kl };
  }
}
