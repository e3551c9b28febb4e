// Gaussian latents N(mu, s^2) with the encoder giving mean and log-variance; prior N(0, I).
// Moments: c2 = s^2, c3 = k4 = 0, so the silent ELBO needs only the mean and c2 terms.
import * as sg from '../../silentgrad.js';
import type { RandomStream, Tensor } from '../../silentgrad.js';
import { splitParameters, type LatentDistribution, type LatentFamily } from './family.js';

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

export class GaussianLatent implements LatentFamily {
  readonly name = 'gaussian';
  readonly parametersPerLatent = 2;

  distribution(encoderOutput: Tensor): GaussianDistribution {
    const [mean, logVariance] = splitParameters('GaussianLatent', encoderOutput, 2) as [Tensor, Tensor];
    return new GaussianDistribution(mean, logVariance);
  }
}

export class GaussianDistribution implements LatentDistribution {
  constructor(readonly mean: Tensor, readonly logVariance: Tensor) {}

  get variance(): Tensor {
    return sg.exp(this.logVariance);
  }

  moments() {
    return { mean: this.mean, c2: this.variance };
  }

  /** sum_i 1/2 (mu_i^2 + s_i^2 - 1 - log s_i^2) (docs/silent-elbo.md, section 5). */
  kl(): Tensor {
    const perComponent = sg.sub(sg.add(sg.square(this.mean), this.variance), sg.shift(this.logVariance, 1));
    return sg.scale(sg.sum(perComponent, [1]), 0.5);
  }

  sample(stream: RandomStream): Tensor {
    return sg.noGrad(() => this.reparameterized(stream));
  }

  /** z = mu + s * eps: differentiable in mu and log s^2 (the reparameterization trick). */
  reparameterized(stream: RandomStream): Tensor {
    const eps = sg.normal(this.mean.shape, stream, { dtype: this.mean.dtype, backend: this.mean.backend });
    return sg.add(this.mean, sg.mul(sg.exp(sg.scale(this.logVariance, 0.5)), eps));
  }

  logProb(z: Tensor): Tensor {
    const standardized = sg.div(sg.square(sg.sub(z, this.mean)), this.variance);
    const perComponent = sg.shift(sg.scale(sg.add(standardized, this.logVariance), -0.5), -HALF_LOG_2PI);
    return sg.sum(perComponent, [1]);
  }
}
