// Laplace latents Lap(mu, b), encoder giving location and log-scale; prior Lap(0, 1). A third
// family proving the silent op takes any four moments: c2 = 2b^2, c3 = 0, c4 = 24 b^4, so
// k4 = 24 b^4 - 3 (2b^2)^2 = 12 b^4 (non-zero, unlike the Gaussian's).
import * as sg from '../../silentgrad.js';
import type { RandomStream, Tensor } from '../../silentgrad.js';
import { splitParameters, type LatentDistribution, type LatentFamily } from './family.js';

export class LaplaceLatent implements LatentFamily {
  readonly name = 'laplace';
  readonly parametersPerLatent = 2;

  distribution(encoderOutput: Tensor): LaplaceDistribution {
    const [location, logScale] = splitParameters('LaplaceLatent', encoderOutput, 2) as [Tensor, Tensor];
    return new LaplaceDistribution(location, logScale);
  }
}

export class LaplaceDistribution implements LatentDistribution {
  constructor(readonly location: Tensor, readonly logScale: Tensor) {}

  moments() {
    const b2 = sg.exp(sg.scale(this.logScale, 2));
    return { mean: this.location, c2: sg.scale(b2, 2), k4: sg.scale(sg.square(b2), 12) };
  }

  /** KL(Lap(mu, b) || Lap(0, 1)) = -log b + |mu| + b exp(-|mu| / b) - 1, summed. */
  kl(): Tensor {
    const b = sg.exp(this.logScale);
    const absMu = sg.abs(this.location);
    const perComponent = sg.shift(sg.add(sg.sub(absMu, this.logScale), sg.mul(b, sg.exp(sg.neg(sg.div(absMu, b))))), -1);
    return sg.sum(perComponent, [1]);
  }

  sample(stream: RandomStream): Tensor {
    return sg.noGrad(() => {
      // Inverse CDF: mu - b sign(v) log(1 - 2|v|), v = u - 1/2.
      const v = sg.shift(sg.uniform(this.location.shape, stream, { dtype: this.location.dtype, backend: this.location.backend }), -0.5);
      const magnitude = sg.neg(sg.log(sg.shift(sg.scale(sg.abs(v), -2), 1)));
      return sg.sub(this.location, sg.mul(sg.mul(sg.exp(this.logScale), sg.sign(v)), sg.neg(magnitude)));
    });
  }

  /** sum_i -log(2b) - |z - mu| / b. */
  logProb(z: Tensor): Tensor {
    const b = sg.exp(this.logScale);
    const perComponent = sg.shift(sg.neg(sg.add(this.logScale, sg.div(sg.abs(sg.sub(z, this.location)), b))), -Math.LN2);
    return sg.sum(perComponent, [1]);
  }
}
