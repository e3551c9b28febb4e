// The fixed-variance VAE of the paper's Section 3.2 and Appendix B, shared by the experiments
// that study it (fixed-variance.ts trains it; gradient-variance.ts measures its gradients):
// the five methods, the model, one training epoch and the test-set metrics.
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import {
  BernoulliLatent, FixedVarianceLinearDecoder, GaussianLatent, GumbelSoftmax, Reinforce, Reparameterization,
  SilentGradients, table5Encoder, type DecoderInit, type Estimator, type LatentFamily,
} from '../models/index.js';
import { pixelBatch } from './data/images.js';
import { MNIST_PIXELS, type MnistSplit } from './data/mnist-split.js';
import { dequantized, trainEpoch } from './training.js';

export const methodNames = ['silent-gaussian', 'reparam', 'silent-bernoulli', 'gumbel', 'reinforce'] as const;
export type MethodName = (typeof methodNames)[number];

export interface VaeConfig {
  latentDim: number;
  channels: number;
  sigma2: number;
  lr: number;
  weightDecay: number;
  batchSize: number;
  seed: number;
  gumbelTemperature: number;
  reinforceDecay: number;
  /** The linear decoder's starting weights, the same for every method (docs/discrete-collapse.md). */
  decoderInit: DecoderInit;
}

/** The rows of Table 2, in its order, with the estimator each one trains with. */
export const methods: Record<MethodName, { label: string; make: (c: VaeConfig) => Estimator }> = {
  'silent-gaussian': { label: 'Continuous Silent Gradients', make: () => new SilentGradients(new GaussianLatent()) },
  reparam: { label: 'Reparameterization', make: () => new Reparameterization() },
  'silent-bernoulli': { label: 'Discrete Silent Gradients', make: () => new SilentGradients(new BernoulliLatent()) },
  gumbel: { label: 'Gumbel-Softmax', make: (c) => new GumbelSoftmax(c.gumbelTemperature) },
  reinforce: { label: 'REINFORCE', make: (c) => new Reinforce(c.reinforceDecay) },
};

/** Labels of the independent random streams, so each consumer draws its own numbers. */
const STREAM = { init: 1, training: 2, evaluation: 3 } as const;

export class FixedVarianceVae {
  readonly estimator: Estimator;
  readonly family: LatentFamily;
  readonly encoder: sg.nn.Sequential;
  readonly decoder: FixedVarianceLinearDecoder;
  readonly optimizer: sg.AdamW;
  /** Dequantization noise and latent samples during training; its offset is checkpointed. */
  readonly trainingStream: sg.RandomStream;

  constructor(readonly method: MethodName, readonly config: VaeConfig, readonly backend: sg.Backend) {
    this.estimator = methods[method].make(config);
    this.family = this.estimator.family;
    const root = new sg.RandomStream(config.seed);
    const init = root.fork(STREAM.init);
    this.trainingStream = root.fork(STREAM.training);
    this.encoder = table5Encoder({ channels: config.channels, outputs: this.family.parametersPerLatent * config.latentDim, stream: init, backend });
    this.decoder = new FixedVarianceLinearDecoder({ latentDim: config.latentDim, pixels: MNIST_PIXELS, stream: init, backend }, config.sigma2, config.decoderInit);
    // Paper App. B.3: AdamW with betas (0.9, 0.95); weight decay is not given, so PyTorch's default.
    this.optimizer = new sg.AdamW([...this.encoder.parameters(), ...this.decoder.parameters()], {
      lr: config.lr, betas: [0.9, 0.95], weightDecay: config.weightDecay,
    });
  }

  get optimizers(): readonly sg.AdamW[] {
    return [this.optimizer];
  }

  /** Every tensor a checkpoint must hold, by name. */
  namedState(): Map<string, Tensor> {
    return new Map([...this.encoder.stateDict('encoder.'), ...this.decoder.stateDict('decoder.')]);
  }

  loadNamedState(state: ReadonlyMap<string, Tensor>): void {
    this.encoder.loadStateDict(withoutPrefix(state, 'encoder.'));
    this.decoder.loadStateDict(withoutPrefix(state, 'decoder.'));
  }

  /** Frees the parameters and the optimiser's moments (the web demo resets models in place). */
  dispose(): void {
    for (const t of this.namedState().values()) t.dispose();
    this.optimizer.dispose();
  }

  /** The latent distribution for a batch of images x [B, 784]. */
  posterior(x: Tensor) {
    return this.family.distribution(this.encoder.forward(sg.reshape(x, [x.shape[0]!, 1, 28, 28])));
  }

  /**
   * One epoch over `train` in the order epochOrder(seed, epoch) gives; returns the mean training
   * loss (the estimator's negative ELBO estimate). `onStep` sees the step count as it goes.
   */
  async trainEpoch(train: MnistSplit, epoch: number, onStep: (step: number, steps: number) => void): Promise<number> {
    const settings = { ...this.config, backend: this.backend, label: this.method };
    return trainEpoch(train, epoch, settings, (indices) => this.trainStep(train, indices), onStep);
  }

  /**
   * One optimiser step on the images `indices` of `train`; returns the loss (call inside a
   * tidy). The web demo (demo/) steps with this one at a time, in the order trainEpoch uses.
   */
  trainStep(train: MnistSplit, indices: Uint32Array): Tensor {
    const x = dequantized(train, indices, this.trainingStream, this.backend);
    const { loss } = this.estimator.loss(this.posterior(x), x, this.decoder, this.trainingStream);
    sg.backward(loss);
    this.optimizer.step();
    this.optimizer.zeroGrad();
    return loss;
  }

  /**
   * Test metrics with the exact closed-form ELBO for every method (the fixed-variance linear
   * decoder makes it exact), so methods are compared on the same yardstick, and how much of the
   * latent space the encoder uses (a collapsed one shows in activeLatents).
   */
  async evaluate(test: MnistSplit, epoch: number): Promise<TestMetrics> {
    const stream = new sg.RandomStream(this.config.seed).fork(STREAM.evaluation).fork(epoch);
    const batch = 250, d = this.config.latentDim;
    let totals = sg.zeros([4], { backend: this.backend }).keep();
    let latentTotals = sg.zeros([3, d], { backend: this.backend }).keep();
    sg.noGrad(() => {
      for (let start = 0; start < test.count; start += batch) {
        const indices = Uint32Array.from({ length: Math.min(batch, test.count - start) }, (_, i) => start + i);
        const next = sg.tidy(() => {
          const x = sg.tensor(pixelBatch(test, indices), [indices.length, MNIST_PIXELS], { backend: this.backend });
          const y = sg.add(x, sg.scale(sg.uniform(x.shape, stream, { backend: this.backend }), 1 / 256));
          const q = this.posterior(y);
          const moments = q.moments();
          const elbo = sg.sub(this.decoder.expectedLogLikelihood(moments, y), q.kl());
          // E_q ||x - U||^2 = -2 sigma2 (E log p(x|z) + k/2 log(2 pi sigma2)), from the same closed form.
          const logNormalizer = 0.5 * MNIST_PIXELS * Math.log(2 * Math.PI * this.config.sigma2);
          const expectedSquaredError = sg.scale(sg.shift(this.decoder.expectedLogLikelihood(moments, x), logNormalizer), -2 * this.config.sigma2);
          const meanSquaredError = sg.sum(sg.square(sg.sub(x, this.decoder.decode(moments.mean))), [1]);
          const batchSums = sg.concat([elbo, expectedSquaredError, meanSquaredError, q.kl()].map((t) => sg.reshape(sg.sum(t), [1])), 0);
          // Per latent: sums of the posterior mean and its square over images, and how many
          // images hold it (nearly) fixed.
          const deterministic = sg.step(sg.shift(sg.neg(moments.c2), DETERMINISTIC_VARIANCE));
          const latentSums = sg.concat([moments.mean, sg.square(moments.mean), deterministic].map((t) => sg.sum(t, [0], true)), 0);
          return { totals: sg.add(totals, batchSums), latentTotals: sg.add(latentTotals, latentSums) };
        });
        totals.dispose();
        latentTotals.dispose();
        totals = next.totals.keep();
        latentTotals = next.latentTotals.keep();
      }
    });
    const [elbo, expectedSquaredError, meanSquaredError, kl] = [...(await totals.data())].map((v) => v / test.count) as [number, number, number, number];
    const latent = await latentTotals.data();
    totals.dispose();
    latentTotals.dispose();
    let activeLatents = 0, deterministic = 0;
    for (let i = 0; i < d; i++) {
      const mean = latent[i]! / test.count;
      if (latent[d + i]! / test.count - mean * mean > ACTIVE_VARIANCE) activeLatents++;
      deterministic += latent[2 * d + i]!;
    }
    return {
      // docs/silent-elbo.md, section 6: BPD = (-ELBO / D) / ln 2 + 8 for 256 levels per pixel.
      bpd: -elbo / MNIST_PIXELS / Math.LN2 + 8,
      negativeElbo: -elbo,
      msePosteriorMean: meanSquaredError,
      mseExpected: expectedSquaredError,
      kl,
      activeLatents,
      deterministicShare: deterministic / (d * test.count),
    };
  }

  /** Decoder means at the posterior means of the given test images, [n * 784] in [0, 1]. */
  async reconstruct(test: MnistSplit, indices: Uint32Array): Promise<Float32Array> {
    const out = sg.noGrad(() => sg.tidy(() => {
      const x = sg.tensor(pixelBatch(test, indices), [indices.length, MNIST_PIXELS], { backend: this.backend });
      return this.decoder.decode(this.posterior(x).moments().mean);
    }));
    const values = Float32Array.from(await out.data());
    out.dispose();
    return values;
  }
}

export interface TestMetrics {
  bpd: number;
  negativeElbo: number;
  /** Squared error summed over pixels of the decoder mean at the posterior mean, per image. */
  msePosteriorMean: number;
  /** E_q of the squared error summed over pixels, per image. */
  mseExpected: number;
  kl: number;
  /**
   * Latents whose posterior mean varies across the test images: Var_x E_q[z_i] > 0.01, the
   * "active units" of Burda et al. (2016). A collapsed encoder gives every image the same code.
   */
  activeLatents: number;
  /** Share of (image, latent) pairs whose posterior variance is below 1e-3 (a Bernoulli p within 0.001 of 0 or 1): a saturated q. */
  deterministicShare: number;
}

const ACTIVE_VARIANCE = 0.01;
const DETERMINISTIC_VARIANCE = 1e-3;

/** The entries whose name starts with `prefix`, named without it (one child module's state). */
export function withoutPrefix(state: ReadonlyMap<string, Tensor>, prefix: string): Map<string, Tensor> {
  return new Map([...state].filter(([name]) => name.startsWith(prefix)).map(([name, t]) => [name.slice(prefix.length), t]));
}

