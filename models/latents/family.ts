// A latent family is what the silent ELBO needs to know about q(z|x): per component its mean
// and central moments (c2, c3, the fourth cumulant k4), plus what the sampling estimators
// need (draws and log-probabilities) and the analytic KL to the prior. Any family that
// supplies the four moments plugs into the fused op (docs/silent-elbo.md, section 1).
import { slice, type LatentMoments, type RandomStream, type Tensor } from '../../silentgrad.js';

/** q(z|x) for a batch: B independent mean-field distributions over d components. */
export interface LatentDistribution {
  /** mean, c2 and (where non-zero) c3 and k4, each [B, d], differentiable in the encoder output. */
  moments(): LatentMoments;
  /** KL(q || prior) per example, [B], analytic. */
  kl(): Tensor;
  /** Draws z ~ q, [B, d], carrying no gradient (estimators add their own). */
  sample(stream: RandomStream): Tensor;
  /** log q(z|x) per example, [B]. */
  logProb(z: Tensor): Tensor;
}

export interface LatentFamily {
  readonly name: string;
  /** How many encoder outputs each latent component takes (Gaussian: mean and log-variance). */
  readonly parametersPerLatent: number;
  /** Interpret the encoder's output [B, parametersPerLatent * d] as q(z|x). */
  distribution(encoderOutput: Tensor): LatentDistribution;
}

/** The encoder output split into `parts` equal [B, d] blocks. */
export function splitParameters(family: string, encoderOutput: Tensor, parts: number): Tensor[] {
  const width = encoderOutput.shape[1]!;
  if (encoderOutput.rank !== 2 || width % parts !== 0)
    throw new Error(`${family}: the encoder output must be [batch, ${parts} x latent], got [${encoderOutput.shape}]`);
  const d = width / parts;
  return Array.from({ length: parts }, (_, i) => slice(encoderOutput, 1, i * d, (i + 1) * d));
}
