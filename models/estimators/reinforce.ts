// REINFORCE with a baseline (Williams 1992) for Bernoulli latents: the encoder gets the score
// function gradient (log p(x|z) - b) grad log q(z|x), b a running average of the reconstruction
// term (paper App. B.3); the decoder gets the ordinary gradient of log p(x|z).
import * as sg from '../../silentgrad.js';
import type { RandomStream, Tensor } from '../../silentgrad.js';
import type { LikelihoodModel } from '../decoders/linear-gaussian.js';
import type { LatentDistribution } from '../latents/family.js';
import { BernoulliDistribution, BernoulliLatent } from '../latents/bernoulli.js';
import type { EstimatorOutput, SamplingEstimator } from './estimator.js';

export class Reinforce implements SamplingEstimator {
  readonly name = 'reinforce';
  readonly family = new BernoulliLatent();
  /** The running baseline, kept on the device so no step waits for a read-back. */
  private baseline: Tensor | null = null;

  constructor(readonly decay = 0.99) {
    if (!(decay >= 0 && decay < 1)) throw new Error(`Reinforce: decay must be in [0, 1), got ${decay}`);
  }

  loss(q: LatentDistribution, x: Tensor, decoder: LikelihoodModel, stream: RandomStream): EstimatorOutput {
    if (!(q instanceof BernoulliDistribution)) throw new Error('Reinforce: needs Bernoulli latents');
    const z = q.sample(stream);
    const reconstruction = decoder.logLikelihood(z, x); // gradient reaches the decoder only
    const reward = sg.detach(reconstruction);
    const batchMean = sg.mean(reward);
    // The baseline must not depend on this example's own sample, or the score-function term is
    // biased (the current batch mean scales it by 1 - 1/B, and to zero at B = 1). Before a running
    // average exists, use the mean over the batch's other examples (independent draws), or 0.
    const batch = reward.shape[0]!;
    const baseline = this.baseline ?? (batch > 1 ? sg.scale(sg.sub(sg.sum(reward), reward), 1 / (batch - 1)) : sg.fullLike(reward, 0));
    const advantage = sg.sub(reward, baseline);
    // d/d(encoder) of -mean(advantage * log q(z|x)) is the score-function estimate of -d E[log p].
    // Its value is taken back out (s - detach(s)), so the loss reads as the -ELBO estimate that
    // the other estimators report, with the same gradient.
    const score = sg.neg(sg.mean(sg.mul(advantage, q.logProb(z))));
    const surrogate = sg.sub(score, sg.detach(score));
    const kl = q.kl();
    const loss = sg.add(sg.mean(sg.sub(kl, reconstruction)), surrogate);
    this.updateBaseline(batchMean);
    return { loss, reconstruction, kl };
  }

  private updateBaseline(batchMean: Tensor): void {
    const next = this.baseline ? sg.add(sg.scale(this.baseline, this.decay), sg.scale(batchMean, 1 - this.decay)) : sg.clone(batchMean);
    this.baseline?.dispose();
    this.baseline = next.keep();
  }

  /** The baseline's current value (for checkpoints), or null before the first step. */
  get baselineValue(): Tensor | null {
    return this.baseline;
  }

  restoreBaseline(value: Tensor | null): void {
    this.baseline?.dispose();
    this.baseline = value ? sg.clone(value).keep() : null;
  }
}
