// The small model of the Taylor-bias study (experiments/taylor-bias.ts, paper Sec. 4.1): d
// Bernoulli latents from the Table-5 encoder, and the learnable-variance linear decoder
// p(x|z) = N(x; W_mu z + b_mu, 1/A^2) with A = W_a z + b_a (paper Eq. 7), started either as
// LearnableVarianceLinearDecoder starts itself ('pytorch') or fitted to the training images'
// per-pixel statistics ('fitted', the default: see TaylorBiasModel); its Silent-Gradient training;
// and what it looks like at a measured point (describeModel). On the CPU backend in float64.
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import { BernoulliDistribution, LearnableVarianceLinearDecoder, table5Encoder } from '../models/index.js';
import { fitLearnableDecoder, type PixelStatistics } from '../models/decoders/fitted-init.js';
import { readAndDispose } from '../models/gradient-deviation.js';
import { MNIST_PIXELS, epochOrder, pixelBatch, type MnistSplit } from './data/mnist.js';
export { pixelStatistics } from './data/images.js';

/** The study runs on the CPU backend in float64, so rounding is ~1e-16 of what it measures. */
export const dtype = 'float64' as const;
export const backend = sg.cpuBackend;

export const decoderInits = ['fitted', 'pytorch'] as const;
export type DecoderInit = (typeof decoderInits)[number];

/** What the model and its training read of the study's settings. */
export interface TaylorBiasModelConfig {
  latentDim: number;
  batchSize: number;
  trainSteps: number;
  channels: number;
  lr: number;
  weightDecay: number;
  decoderInit: DecoderInit;
  sigmaFloor: number;
  seed: number;
}

/** Labels of the model's random streams (experiments/taylor-bias.ts forks 3, 10 and 11). */
const STREAM = { init: 1, training: 2 } as const;


export class TaylorBiasModel {
  readonly encoder: sg.nn.Sequential;
  readonly decoder: LearnableVarianceLinearDecoder;
  readonly optimizer: sg.AdamW;

  /** `pixels` (the training images' statistics) is needed by the 'fitted' decoder init. */
  constructor(readonly config: TaylorBiasModelConfig, pixels?: PixelStatistics) {
    const init = new sg.RandomStream(config.seed).fork(STREAM.init);
    const d = config.latentDim;
    this.encoder = table5Encoder({ channels: config.channels, outputs: d, stream: init, dtype, backend });
    this.decoder = new LearnableVarianceLinearDecoder({ latentDim: d, pixels: MNIST_PIXELS, stream: init, dtype, backend });
    // The decoder's own init saturates every posterior within ~20 steps, leaving nothing to
    // compare; 'fitted' starts it at the best decoder that ignores z (docs/learnable-variance.md,
    // "How the linear decoder starts").
    if (config.decoderInit === 'fitted') {
      if (!pixels) throw new Error('TaylorBiasModel: the fitted decoder init needs the training images\' pixel statistics');
      fitLearnableDecoder(this.decoder, pixels, config.sigmaFloor);
    }
    // As experiments/vae.ts (paper App. B.3): AdamW with betas (0.9, 0.95).
    this.optimizer = new sg.AdamW([...this.encoder.parameters(), ...this.decoder.parameters()], {
      lr: config.lr, betas: [0.9, 0.95], weightDecay: config.weightDecay,
    });
  }

  posterior(x: Tensor): BernoulliDistribution {
    return new BernoulliDistribution(this.encoder.forward(imagesOf(x)));
  }
}

/** [B, 784] pixels as the encoder's [B, 1, 28, 28] images. */
export const imagesOf = (x: Tensor): Tensor => sg.reshape(x, [x.shape[0]!, 1, 28, 28]);

/** x = (x_int + u) / 256, u ~ U[0, 1) from the stream, as experiments/vae.ts's dequantized(), in float64. */
export function dequantized64(split: MnistSplit, indices: Uint32Array, stream: sg.RandomStream): Tensor {
  const x = sg.tensor(pixelBatch(split, indices), [indices.length, MNIST_PIXELS], { dtype, backend });
  return sg.add(x, sg.scale(sg.uniform(x.shape, stream, { dtype, backend }), 1 / 256));
}

/**
 * Trains encoder and decoder with the Silent-Gradient loss, -ELBO = KL - E_q[log p(x|z)] in
 * closed form, batch mean. Returns the mean loss over the last (up to) 50 steps.
 */
export function trainModel(model: TaylorBiasModel, split: MnistSplit, onStep: (step: number) => void): number {
  const { trainSteps, batchSize, seed } = model.config;
  const stream = new sg.RandomStream(seed).fork(STREAM.training);
  const perEpoch = Math.floor(split.count / batchSize);
  const recent: number[] = [];
  let order = epochOrder(split.count, seed, 1);
  for (let step = 0; step < trainSteps; step++) {
    const epoch = Math.floor(step / perEpoch) + 1, at = step % perEpoch;
    if (at === 0 && step > 0) order = epochOrder(split.count, seed, epoch);
    const loss = sg.tidy(() => {
      const x = dequantized64(split, order.subarray(at * batchSize, (at + 1) * batchSize), stream);
      const q = model.posterior(x);
      const loss = sg.mean(sg.sub(q.kl(), model.decoder.expectedLogLikelihood(q.moments(), x)));
      sg.backward(loss);
      model.optimizer.step();
      model.optimizer.zeroGrad();
      return loss.dataSync()[0]!;
    });
    if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step + 1} (loss ${loss}); try a lower --lr than ${model.config.lr}`);
    recent.push(loss);
    if (recent.length > 50) recent.shift();
    onStep(step + 1);
  }
  return recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : Number.NaN;
}

/** What the model looks like on the measured batch. */
export interface ModelDescription {
  /** How spread q is on the measured batch (a collapsed model has every p near 0 or 1). */
  posterior: { meanVariance: number; uncertainShare: number; entropyBits: number; activeLatents: number };
  /** Mean over the batch's pixels of 1 / |E_q[A]|: the decoder's typical sigma. */
  decoderSigma: number;
  /**
   * sqrt(Var_q[A]) / |E_q[A]| over the batch's images and pixels (mean and max): how far A strays
   * from its mean under q, the quantity the Taylor term's error grows with (zero: exact).
   */
  precisionSpread: { mean: number; max: number };
}

/** Posterior spread and the decoder's typical sigma on the measured batch. */
export function describeModel(model: TaylorBiasModel, x: Tensor): ModelDescription {
  return sg.noGrad(() => {
    const [pt, sigmaT, spreadT] = sg.tidy(() => {
      const { mean, c2 } = model.posterior(x).moments();
      const a = model.decoder.precision;
      const meanA = a.forward(mean); // E_q[A] = W_a E[z] + b_a
      const varianceA = sg.matmul(c2, sg.transpose(sg.square(a.weight))); // Var_q[A] = sum_i W_a[j,i]^2 c2_i
      return [mean, sg.mean(sg.reciprocal(sg.abs(meanA))), sg.div(sg.sqrt(varianceA), sg.abs(meanA))];
    });
    const p = readAndDispose(pt), sigma = readAndDispose(sigmaT)[0]!, spread = readAndDispose(spreadT);
    let spreadSum = 0, spreadMax = 0;
    for (const v of spread) { spreadSum += v; spreadMax = Math.max(spreadMax, v); }
    let variance = 0, uncertain = 0, entropy = 0;
    for (const v of p) {
      variance += v * (1 - v);
      if (v >= 0.01 && v <= 0.99) uncertain++;
      for (const u of [v, 1 - v]) if (u > 0) entropy -= u * Math.log2(u);
    }
    // Active latents (Burda et al. 2016): those whose mean E_q[z_i] varies across the images,
    // Var_x p_i > 0.01. A collapsed encoder gives every image the same code: 0 active.
    const batch = x.shape[0]!, d = p.length / batch;
    let activeLatents = 0;
    for (let i = 0; i < d; i++) {
      let sum = 0, squares = 0;
      for (let b = 0; b < batch; b++) { sum += p[b * d + i]!; squares += p[b * d + i]! ** 2; }
      if (squares / batch - (sum / batch) ** 2 > 0.01) activeLatents++;
    }
    const posterior = { meanVariance: variance / p.length, uncertainShare: uncertain / p.length, entropyBits: entropy / p.length, activeLatents };
    return { posterior, decoderSigma: sigma, precisionSpread: { mean: spreadSum / spread.length, max: spreadMax } };
  });
}
