// The learnable-variance VAE of the paper's Section 4 and Appendix B: an encoder, a nonlinear
// decoder trained on sampled z (the model that is evaluated), and, for the "With SG" methods, a
// linear decoder whose closed-form expected log-likelihood (Eq. 7) guides the encoder
// (Algorithm 1, Eq. 8). One training epoch and the test metrics; learnable-variance.ts runs it.
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import {
  BernoulliLatent, GaussianLatent, GumbelSoftmax, LearnableVarianceLinearDecoder, Reinforce, Reparameterization,
  table5Encoder, table6Decoder, table7Encoder, table8Decoder,
  type Estimator, type ImageShape, type LatentDistribution, type LatentFamily, type NonlinearGaussianDecoder,
} from '../models/index.js';
import { fitLearnableDecoder, type PixelStatistics } from '../models/decoders/fitted-init.js';
import { pixelBatch, type ImageSet } from './data/images.js';
import { dequantized, trainEpoch } from './training.js';
import { withoutPrefix } from './vae.js';

/** Table 3's rows: a latent family, the estimator the nonlinear decoder trains with, and SG or not. */
export const methodNames = ['none-sg-gaussian', 'reparam', 'reparam-sg', 'none-sg-bernoulli', 'gumbel', 'gumbel-sg', 'reinforce', 'reinforce-sg'] as const;
export type MethodName = (typeof methodNames)[number];

interface Method {
  label: string;
  /** Table 3's row and column. */
  row: string;
  withSg: boolean;
  family: () => LatentFamily;
  /** The sampling estimator of the nonlinear decoder's loss. */
  estimator: (c: LearnableVaeConfig) => Estimator;
  /**
   * "None + SG": the encoder never gets the sampled gradient (w_lin stays 1); the nonlinear
   * decoder still trains on z drawn from q.
   */
  silentOnly: boolean;
}

// "None + SG" trains its nonlinear decoder on plain draws from q: reparameterized Gaussian z, or
// hard Bernoulli z (REINFORCE's, whose score term then gets weight 0), the z it is evaluated on.
export const methods: Record<MethodName, Method> = {
  'none-sg-gaussian': { label: 'Continuous None + SG', row: 'Continuous None', withSg: true, silentOnly: true, family: () => new GaussianLatent(), estimator: () => new Reparameterization() },
  reparam: { label: 'Reparameterization', row: 'Reparameterization', withSg: false, silentOnly: false, family: () => new GaussianLatent(), estimator: () => new Reparameterization() },
  'reparam-sg': { label: 'Reparameterization + SG', row: 'Reparameterization', withSg: true, silentOnly: false, family: () => new GaussianLatent(), estimator: () => new Reparameterization() },
  'none-sg-bernoulli': { label: 'Discrete None + SG', row: 'Discrete None', withSg: true, silentOnly: true, family: () => new BernoulliLatent(), estimator: (c) => new Reinforce(c.reinforceDecay) },
  gumbel: { label: 'Gumbel-Softmax', row: 'Gumbel-Softmax', withSg: false, silentOnly: false, family: () => new BernoulliLatent(), estimator: (c) => new GumbelSoftmax(c.gumbelTemperature) },
  'gumbel-sg': { label: 'Gumbel-Softmax + SG', row: 'Gumbel-Softmax', withSg: true, silentOnly: false, family: () => new BernoulliLatent(), estimator: (c) => new GumbelSoftmax(c.gumbelTemperature) },
  reinforce: { label: 'REINFORCE', row: 'REINFORCE', withSg: false, silentOnly: false, family: () => new BernoulliLatent(), estimator: (c) => new Reinforce(c.reinforceDecay) },
  'reinforce-sg': { label: 'REINFORCE + SG', row: 'REINFORCE', withSg: true, silentOnly: false, family: () => new BernoulliLatent(), estimator: (c) => new Reinforce(c.reinforceDecay) },
};

export interface LearnableVaeConfig {
  latentDim: number;
  channels: number;
  lr: number;
  weightDecay: number;
  batchSize: number;
  seed: number;
  /** lambda of Algorithm 1: w_lin = max(0, 1 - epoch lambda). */
  annealRate: number;
  /** The epoch from which the encoder (and the linear decoder) stop training. */
  cutoffEpoch: number;
  gumbelTemperature: number;
  reinforceDecay: number;
  /** The linear decoder's smallest starting standard deviation (models/decoders/fitted-init.ts). */
  sigmaFloor: number;
}

const STREAM = { init: 1, training: 2, evaluation: 3 } as const;

export class LearnableVae {
  readonly spec: Method;
  readonly family: LatentFamily;
  readonly estimator: Estimator;
  readonly encoder: sg.nn.Sequential;
  readonly decoder: NonlinearGaussianDecoder;
  /** The closed-form guide, only in the "With SG" methods. */
  readonly linear: LearnableVarianceLinearDecoder | null;
  readonly trainingStream: sg.RandomStream;
  readonly encoderOptimizer: sg.AdamW;
  readonly decoderOptimizer: sg.AdamW;
  /** Paper App. B.3: separate optimisers for the linear decoder's mu and alpha parts. */
  readonly linearOptimizers: readonly sg.AdamW[];

  constructor(readonly method: MethodName, readonly config: LearnableVaeConfig, readonly shape: ImageShape, pixels: PixelStatistics, readonly backend: sg.Backend) {
    this.spec = methods[method];
    this.family = this.spec.family();
    this.estimator = this.spec.estimator(config);
    const root = new sg.RandomStream(config.seed);
    const init = root.fork(STREAM.init);
    this.trainingStream = root.fork(STREAM.training);
    const { latentDim, channels } = config;
    const outputs = this.family.parametersPerLatent * latentDim;
    const mnistLike = shape.channels === 1 && shape.height === 28 && shape.width === 28;
    this.encoder = mnistLike ? table5Encoder({ channels, outputs, stream: init, backend }) : table7Encoder({ channels, outputs, stream: init, backend });
    this.decoder = mnistLike ? table6Decoder({ latentDim, channels, stream: init, backend }) : table8Decoder({ latentDim, channels, stream: init, backend });
    this.linear = this.spec.withSg ? new LearnableVarianceLinearDecoder({ latentDim, pixels: this.pixels, stream: init, backend }) : null;
    if (this.linear) fitLearnableDecoder(this.linear, pixels, config.sigmaFloor);
    const adamW = (params: Tensor[]) => new sg.AdamW(params, { lr: config.lr, betas: [0.9, 0.95], weightDecay: config.weightDecay });
    this.encoderOptimizer = adamW(this.encoder.parameters());
    this.decoderOptimizer = adamW(this.decoder.parameters());
    this.linearOptimizers = this.linear ? [adamW(this.linear.mean.parameters()), adamW(this.linear.precision.parameters())] : [];
  }

  get pixels(): number {
    return this.shape.channels * this.shape.height * this.shape.width;
  }

  get optimizers(): readonly sg.AdamW[] {
    return [this.encoderOptimizer, this.decoderOptimizer, ...this.linearOptimizers];
  }

  /** Every tensor a checkpoint holds, in PyTorch's state_dict naming. */
  namedState(): Map<string, Tensor> {
    return new Map([
      ...this.encoder.stateDict('encoder.'), ...this.decoder.stateDict('decoder.'), ...(this.linear?.stateDict('linear_decoder.') ?? []),
    ]);
  }

  loadNamedState(state: ReadonlyMap<string, Tensor>): void {
    this.encoder.loadStateDict(withoutPrefix(state, 'encoder.'));
    this.decoder.loadStateDict(withoutPrefix(state, 'decoder.'));
    this.linear?.loadStateDict(withoutPrefix(state, 'linear_decoder.'));
  }

  /** Algorithm 1, line 11: the silent gradient's weight in the encoder's gradient this epoch. */
  silentWeight(epoch: number): number {
    if (!this.spec.withSg) return 0;
    return this.spec.silentOnly ? 1 : Math.max(0, 1 - epoch * this.config.annealRate);
  }

  /** Algorithm 1, line 4: from the cut-off epoch on the encoder is frozen (SG methods only). */
  encoderFrozen(epoch: number): boolean {
    return this.spec.withSg && epoch >= this.config.cutoffEpoch;
  }

  /** The encoder's images: [B, D] pixels as [B, C, H, W]. */
  private images(x: Tensor): Tensor {
    return sg.reshape(x, [x.shape[0]!, this.shape.channels, this.shape.height, this.shape.width]);
  }

  /**
   * Algorithm 1's loss on a batch x [B, D]. Each decoder gets its own loss's whole gradient; the
   * encoder gets w_lin times the silent gradient plus (1 - w_lin) times the sampled one (Eq. 8),
   * and the KL's gradient once (w_lin + (1 - w_lin) = 1). `sampled` is the nonlinear model's
   * -ELBO estimate, the model that is evaluated.
   */
  loss(x: Tensor, epoch: number): { total: Tensor; sampled: Tensor; silent: Tensor | null } {
    const frozen = this.encoderFrozen(epoch);
    const w = this.silentWeight(epoch);
    const encoded = this.encoder.forward(this.images(x));
    const h = frozen ? sg.detach(encoded) : encoded;
    const sampled = this.estimator.loss(this.family.distribution(sg.scaleGradient(h, 1 - w)), x, this.decoder, this.trainingStream).loss;
    if (!this.linear || frozen) return { total: sampled, sampled, silent: null };
    const q = this.family.distribution(sg.scaleGradient(h, w));
    const silent = sg.mean(sg.sub(q.kl(), this.linear.expectedLogLikelihood(q.moments(), x)));
    return { total: sg.add(sampled, silent), sampled, silent };
  }

  /** One step of Algorithm 1; a frozen part takes no step, so its optimiser state stays put. */
  step(x: Tensor, epoch: number): Tensor {
    const { total, sampled } = this.loss(x, epoch);
    sg.backward(total);
    const frozen = this.encoderFrozen(epoch);
    for (const optimizer of this.optimizers) {
      if (!frozen || optimizer === this.decoderOptimizer) optimizer.step();
      optimizer.zeroGrad();
    }
    return sampled;
  }

  /** One epoch over `train`; returns the nonlinear model's mean loss. */
  async trainEpoch(train: ImageSet, epoch: number, onStep: (step: number, steps: number) => void): Promise<number> {
    this.encoder.train(!this.encoderFrozen(epoch)); // a frozen encoder's batch-norm statistics stay put too
    this.decoder.train();
    const settings = { ...this.config, backend: this.backend, label: this.method };
    return trainEpoch(train, epoch, settings, (indices) => this.step(this.dequantized(train, indices, this.trainingStream), epoch), onStep);
  }

  /** x = (x_int + u) / 256, u ~ U[0, 1) (paper App. B.1), [B, D]. */
  dequantized(set: ImageSet, indices: Uint32Array, stream: sg.RandomStream): Tensor {
    return dequantized(set, indices, stream, this.backend);
  }

  /**
   * Test metrics of the encoder and the nonlinear decoder alone (paper App. C): E_q log p(x|z)
   * estimated with `samples` draws of z per image, the KL in closed form. The standard error is
   * that of the BPD over the draws.
   */
  async evaluate(test: ImageSet, epoch: number, samples: number): Promise<LearnableMetrics> {
    const stream = new sg.RandomStream(this.config.seed).fork(STREAM.evaluation).fork(epoch);
    this.encoder.eval();
    this.decoder.eval();
    const batch = 250;
    // Per draw s: the sums over images of log p(x|z_s) and of ||x - mean(z_s)||^2; then the KL.
    let totals = sg.zeros([2 * samples + 1], { backend: this.backend }).keep();
    sg.noGrad(() => {
      for (let start = 0; start < test.count; start += batch) {
        const indices = Uint32Array.from({ length: Math.min(batch, test.count - start) }, (_, i) => start + i);
        const next = sg.tidy(() => {
          const y = this.dequantized(test, indices, stream);
          const q = this.posterior(y);
          const logLikelihoods: Tensor[] = [], squaredErrors: Tensor[] = [];
          for (let s = 0; s < samples; s++) {
            const z = q.sample(stream);
            logLikelihoods.push(sg.reshape(sg.sum(this.decoder.logLikelihood(z, y)), [1]));
            squaredErrors.push(sg.reshape(sg.sum(sg.square(sg.sub(y, this.decoder.decode(z)))), [1]));
          }
          return sg.add(totals, sg.concat([...logLikelihoods, ...squaredErrors, sg.reshape(sg.sum(q.kl()), [1])], 0));
        });
        totals.dispose();
        totals = next.keep();
      }
    });
    const sums = [...(await totals.data())].map((v) => v / test.count);
    totals.dispose();
    const logLikelihood = sums.slice(0, samples), squaredError = sums.slice(samples, 2 * samples), kl = sums[2 * samples]!;
    const toBpd = (elbo: number) => -elbo / this.pixels / Math.LN2 + 8; // docs/silent-elbo.md, section 6
    const perDraw = logLikelihood.map((ll) => toBpd(ll - kl));
    const bpd = perDraw.reduce((a, b) => a + b, 0) / samples;
    const variance = samples > 1 ? perDraw.reduce((a, b) => a + (b - bpd) ** 2, 0) / (samples - 1) : NaN;
    return {
      bpd,
      bpdStandardError: Math.sqrt(variance / samples),
      mse: squaredError.reduce((a, b) => a + b, 0) / samples,
      kl,
    };
  }

  posterior(x: Tensor): LatentDistribution {
    return this.family.distribution(this.encoder.forward(this.images(x)));
  }

  /**
   * Figures 3-5: the nonlinear decoder's mean and per-pixel standard deviation at the
   * posterior's most likely code (the Gaussian mean; each bit rounded), each [n * D].
   */
  async reconstruct(test: ImageSet, indices: Uint32Array): Promise<{ mean: Float32Array; std: Float32Array }> {
    this.encoder.eval();
    this.decoder.eval();
    const [mean, std] = sg.noGrad(() => sg.tidy(() => {
      const x = sg.tensor(pixelBatch(test, indices), [indices.length, this.pixels], { backend: this.backend });
      const moments = this.posterior(x).moments();
      const z = this.family instanceof BernoulliLatent ? sg.step(sg.shift(moments.mean, -0.5)) : moments.mean;
      const { mean, stdDev } = this.decoder.gaussian(z);
      return [mean, stdDev];
    }));
    const result = { mean: Float32Array.from(await mean!.data()), std: Float32Array.from(await std!.data()) };
    mean!.dispose();
    std!.dispose();
    return result;
  }
}

export interface LearnableMetrics {
  bpd: number;
  /** Of the BPD, over the evaluation draws of z. */
  bpdStandardError: number;
  /** E_q ||x - mean(z)||^2 summed over an image's values, averaged over images. */
  mse: number;
  kl: number;
}
