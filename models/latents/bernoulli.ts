// Bernoulli latents with the encoder giving logits; prior Bern(1/2). Moments of Bern(p)
// (docs/silent-elbo.md, section 1): c2 = p(1-p), c3 = p(1-p)(1-2p),
// k4 = c4 - 3 c2^2 = p(1-p)(1 - 6p(1-p)).
import * as sg from '../../silentgrad.js';
import type { RandomStream, Tensor } from '../../silentgrad.js';
import type { LatentDistribution, LatentFamily } from './family.js';

export class BernoulliLatent implements LatentFamily {
  readonly name = 'bernoulli';
  readonly parametersPerLatent = 1;

  distribution(encoderOutput: Tensor): BernoulliDistribution {
    if (encoderOutput.rank !== 2) throw new Error(`BernoulliLatent: logits must be [batch, latent], got [${encoderOutput.shape}]`);
    return new BernoulliDistribution(encoderOutput);
  }
}

export class BernoulliDistribution implements LatentDistribution {
  constructor(readonly logits: Tensor) {}

  get probability(): Tensor {
    return sg.sigmoid(this.logits);
  }

  moments() {
    const p = this.probability;
    const c2 = sg.mul(p, sg.sigmoid(sg.neg(this.logits))); // p(1-p) without cancellation
    return {
      mean: p,
      c2,
      c3: sg.mul(c2, sg.shift(sg.scale(p, -2), 1)),
      k4: sg.mul(c2, sg.shift(sg.scale(c2, -6), 1)),
    };
  }

  /** sum_i p log(2p) + (1-p) log(2(1-p)), with log p = logsigmoid(logit) for stability. */
  kl(): Tensor {
    const p = this.probability;
    const logP = sg.logSigmoid(this.logits), logQ = sg.logSigmoid(sg.neg(this.logits));
    const perComponent = sg.shift(sg.add(sg.mul(p, logP), sg.mul(sg.sub(sg.fullLike(p, 1), p), logQ)), Math.LN2);
    return sg.sum(perComponent, [1]);
  }

  sample(stream: RandomStream): Tensor {
    return sg.noGrad(() => sg.bernoulli(this.probability, stream));
  }

  /** sum_i z log p + (1 - z) log(1 - p). */
  logProb(z: Tensor): Tensor {
    const logP = sg.logSigmoid(this.logits), logQ = sg.logSigmoid(sg.neg(this.logits));
    return sg.sum(sg.add(sg.mul(z, logP), sg.mul(sg.sub(sg.fullLike(z, 1), z), logQ)), [1]);
  }

  /** Binary Concrete (Gumbel-Softmax) relaxation: sigmoid((logit + log u - log(1-u)) / tau). */
  relaxed(stream: RandomStream, temperature: number): Tensor {
    const u = sg.uniform(this.logits.shape, stream, { dtype: this.logits.dtype, backend: this.logits.backend });
    const logistic = sg.sub(sg.log(u), sg.log(sg.sub(sg.fullLike(u, 1), u)));
    return sg.sigmoid(sg.scale(sg.add(this.logits, logistic), 1 / temperature));
  }
}
