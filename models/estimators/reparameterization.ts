// The reparameterization trick (Kingma & Welling): z = mu + s * eps, one sample per example.
import * as sg from '../../silentgrad.js';
import type { RandomStream, Tensor } from '../../silentgrad.js';
import type { LikelihoodModel } from '../decoders/linear-gaussian.js';
import type { LatentDistribution } from '../latents/family.js';
import { GaussianDistribution, GaussianLatent } from '../latents/gaussian.js';
import type { EstimatorOutput, SamplingEstimator } from './estimator.js';

export class Reparameterization implements SamplingEstimator {
  readonly name = 'reparam';
  readonly family = new GaussianLatent();

  loss(q: LatentDistribution, x: Tensor, decoder: LikelihoodModel, stream: RandomStream): EstimatorOutput {
    if (!(q instanceof GaussianDistribution)) throw new Error('Reparameterization: needs Gaussian latents');
    const reconstruction = decoder.logLikelihood(q.reparameterized(stream), x);
    const kl = q.kl();
    return { loss: sg.mean(sg.sub(kl, reconstruction)), reconstruction, kl };
  }
}
