// The gradient-variance decomposition of the paper's Table 1 (App. B, "Gradient Variance
// Calculation"; docs/silent-elbo.md, section 9), for any estimator and model:
//
//   estimator variance: fix a batch and the encoder's output, draw S latent samples, take the
//     reconstruction-loss gradient w.r.t. every encoder parameter for each draw, compute each
//     parameter's variance over the S draws and sum over parameters (averaged over batches);
//   batch variance: the same sum of per-parameter variances, over M mini-batches, of the
//     gradient averaged over the S draws;
//   estimator share (Table 1's "Est %") = est / (est + batch) * 100 (3.26e5 / (6.97e4 + 3.26e5)
//     = 82.4%, the paper's 82.36 for reparameterization at epoch 1).
//
// The encoder runs once per batch (so the dequantization noise and q(z|x) are fixed, as in the
// paper); its output becomes a leaf, and each draw is a vector-Jacobian product: d(loss)/d(output)
// from the estimator's loss, then pushed back through the encoder's retained graph with
// backward(output, seed). Draws accumulate on the device, shifted by the first draw (sums of the
// shifted gradients and their squares), and are read once per batch and reduced in float64; a
// draw identical to the first contributes exactly 0, which is what Silent Gradients must give
// (it samples nothing). Across batches, Welford in float64 on the host.
import * as sg from '../silentgrad.js';
import type { RandomStream, Tensor } from '../silentgrad.js';
import type { ReconstructionModel } from './decoders/linear-gaussian.js';
import type { Estimator } from './estimators/estimator.js';
import { Reinforce } from './estimators/reinforce.js';
import { SilentGradients } from './estimators/silent-gradients.js';

/** What the measurement needs of a model: the estimator, the decoder and the encoder. */
export interface GradientVarianceProbe {
  estimator: Estimator;
  decoder: ReconstructionModel;
  /** The tensors whose gradient variance is measured (the encoder's parameters). */
  encoderParameters: readonly Tensor[];
  /** The encoder: a batch x to q's parameters, [B, parametersPerLatent * d], differentiable. */
  encode(x: Tensor): Tensor;
}

export interface GradientVarianceOptions {
  /** Latent draws per batch, S (the paper uses 100 to 200); at least 2. */
  samples: number;
  /** Where the latent draws come from. */
  stream: RandomStream;
  /**
   * Skip the encoder pass of a draw whose d(loss)/d(encoder output) equals the first draw's bit
   * for bit (its shifted gradient is exactly 0 either way). Default true; tests turn it off.
   */
  skipIdenticalDraws?: boolean;
  /** Called after every draw with the draws done so far in this call and the total. */
  onDraw?: (done: number, total: number) => void;
}

export interface GradientVarianceResult {
  /** Sum over parameters of the variance over latent draws, averaged over the batches. */
  estimatorVariance: number;
  /** Sum over parameters of the variance over batches of the draw-averaged gradient. */
  batchVariance: number;
  /** est / (est + batch) * 100, Table 1's "Est %" (0 when both are 0). */
  estimatorShare: number;
  /** The estimator variance of each batch. */
  perBatchEstimatorVariance: number[];
  parameterCount: number;
  samples: number;
  batches: number;
}

/** Table 1's "Est %": the estimator's percentage of the total gradient variance. */
export function estimatorShare(estimatorVariance: number, batchVariance: number): number {
  const total = estimatorVariance + batchVariance;
  return total === 0 ? 0 : (estimatorVariance / total) * 100;
}

/** Running per-coordinate mean and sum of squared deviations (Welford), in float64. */
export class Welford {
  count = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;
  constructor(readonly length: number) {
    this.mean = new Float64Array(length);
    this.m2 = new Float64Array(length);
  }

  /** Add one observation given as consecutive chunks (e.g. one per parameter tensor). */
  add(chunks: readonly ArrayLike<number>[]): void {
    const n = ++this.count;
    const { mean, m2 } = this;
    let at = 0;
    for (const chunk of chunks) {
      for (let i = 0; i < chunk.length; i++, at++) {
        const x = chunk[i]!;
        const delta = x - mean[at]!;
        mean[at]! += delta / n;
        m2[at]! += delta * (x - mean[at]!);
      }
    }
    if (at !== this.length) throw new Error(`Welford: an observation had ${at} values, expected ${this.length}`);
  }

  /** Sum over coordinates of the unbiased (n - 1) variance. */
  varianceSum(): number {
    if (this.count < 2) throw new Error(`Welford: a variance needs at least 2 observations, got ${this.count}`);
    let total = 0;
    for (let i = 0; i < this.length; i++) total += this.m2[i]!;
    return total / (this.count - 1);
  }
}

/**
 * The estimator's gradient of the reconstruction term alone: its loss minus the mean KL. For
 * the pathwise estimators this is -mean(reconstruction); for REINFORCE it keeps the
 * score-function surrogate, the only way its reconstruction gradient reaches the encoder.
 */
function reconstructionLoss(probe: GradientVarianceProbe, encoderOutput: Tensor, x: Tensor, stream: RandomStream): Tensor {
  const { loss, kl } = probe.estimator.loss(probe.estimator.family.distribution(encoderOutput), x, probe.decoder, stream);
  return sg.sub(loss, sg.mean(kl));
}

/** Whether every element is exactly 0 (a synchronous read: CPU backend). */
function isAllZero(t: Tensor): boolean {
  const values = t.dataSync();
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) return false;
  return true;
}

/**
 * The gradient of the reconstruction loss w.r.t. the encoder parameters for S latent draws on
 * one fixed batch x: the sum of per-parameter variances over the draws, and the mean gradient.
 * The draws accumulate on the device (in the parameters' dtype) and are read once.
 */
export async function estimatorGradientVariance(
  probe: GradientVarianceProbe, x: Tensor, options: GradientVarianceOptions,
): Promise<{ variance: number; meanGradient: Float64Array }> {
  const { samples, stream } = options;
  const skipIdentical = options.skipIdenticalDraws ?? true;
  if (!Number.isInteger(samples) || samples < 2) throw new Error(`estimatorGradientVariance: samples must be an integer >= 2, got ${samples}`);
  const parameters = probe.encoderParameters;
  // The decoder is held fixed: it needs no gradient here, and must not accumulate one.
  const decoderParameters = probe.decoder.parameters().filter((p) => p.requiresGrad);
  const previousGrads = parameters.map((p) => p.grad);
  const estimator = probe.estimator;
  const reinforceBaseline = estimator instanceof Reinforce && estimator.baselineValue ? sg.clone(estimator.baselineValue).keep() : null;
  for (const p of decoderParameters) p.requiresGrad = false;
  for (const p of parameters) p.grad = null;
  let moments: Tensor[];
  try {
    moments = sg.tidy(() => {
      const output = probe.encode(x);
      if (!output.requiresGrad) throw new Error('estimatorGradientVariance: the encoder output does not depend on encoderParameters');
      const leaf = sg.detach(output);
      leaf.requiresGrad = true;
      /** One latent draw's d(loss)/d(encoder output). */
      const drawSeed = (): Tensor => {
        // REINFORCE updates its running baseline on every call: hold it at the trained value.
        if (estimator instanceof Reinforce) estimator.restoreBaseline(reinforceBaseline);
        sg.backward(reconstructionLoss(probe, leaf, x, stream));
        const seed = leaf.grad!;
        leaf.grad = null;
        return seed;
      };
      /** The vector-Jacobian product: seed pushed back through the encoder to its parameters. */
      const vjp = (seed: Tensor): Tensor[] => {
        sg.backward(output, seed, { retainGraph: true }); // one encoder pass serves every draw
        return parameters.map((p) => {
          if (!p.grad) throw new Error(`estimatorGradientVariance: no gradient reached an encoder parameter [${p.shape}]`);
          const g = p.grad;
          p.grad = null;
          return g;
        });
      };
      // The first draw is the reference; later draws push back (seed - reference seed), which by
      // linearity is their gradient minus the reference gradient. Variance ignores the shift, and
      // it keeps the measurement free of the CPU kernels' thread-order rounding: a draw whose seed
      // equals the reference bit for bit (every Silent Gradients draw) contributes exactly 0.
      const referenceSeed = drawSeed();
      const reference = vjp(referenceSeed);
      options.onDraw?.(1, samples);
      // Sums of the shifted gradients and of their squares: the shift by a draw of the same
      // distribution keeps sum-of-squares free of cancellation (the shifted mean is small).
      let sum = parameters.map((p) => sg.zeros(p.shape, { dtype: p.dtype, backend: p.backend }));
      let squares = parameters.map((p) => sg.zeros(p.shape, { dtype: p.dtype, backend: p.backend }));
      for (let s = 2; s <= samples; s++) {
        const next = sg.tidy(() => {
          const seedShift = sg.sub(drawSeed(), referenceSeed);
          // A seed equal to the reference bit for bit gives exactly zero shifted gradients: skip
          // its encoder pass where the backend can tell synchronously (Silent Gradients, always).
          if (skipIdentical && seedShift.backend.readSync && isAllZero(seedShift)) return null;
          const shifted = vjp(seedShift);
          return {
            sum: shifted.map((g, i) => sg.add(sum[i]!, g)),
            squares: shifted.map((g, i) => sg.add(squares[i]!, sg.square(g))),
          };
        });
        if (next) {
          for (const t of [...sum, ...squares]) t.dispose();
          ({ sum, squares } = next);
        }
        options.onDraw?.(s, samples);
      }
      return [...reference, ...sum, ...squares];
    });
  } finally {
    for (const p of decoderParameters) p.requiresGrad = true;
    parameters.forEach((p, i) => {
      p.grad?.dispose();
      p.grad = previousGrads[i]!;
    });
    if (estimator instanceof Reinforce) estimator.restoreBaseline(reinforceBaseline);
    reinforceBaseline?.dispose();
  }
  const count = parameters.reduce((n, p) => n + p.size, 0);
  const meanGradient = new Float64Array(count);
  const n = parameters.length;
  // Per coordinate sum_s (d_s - mean d)^2 = squares - sum^2 / S, in float64 (d_1 = 0).
  let m2Sum = 0;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const [reference, sum, squares] = await Promise.all([moments[i]!.data(), moments[n + i]!.data(), moments[2 * n + i]!.data()]);
    for (let j = 0; j < sum.length; j++) {
      const total = sum[j]!;
      meanGradient[at + j] = reference[j]! + total / samples;
      m2Sum += Math.max(0, squares[j]! - (total * total) / samples);
    }
    at += sum.length;
  }
  for (const t of moments) t.dispose();
  const variance = m2Sum / (samples - 1);
  // Silent Gradients samples nothing: every draw's gradient is bit-identical, so exactly 0.
  if (estimator instanceof SilentGradients && variance !== 0)
    throw new Error(`estimatorGradientVariance: Silent Gradients gave estimator variance ${variance}, not exactly 0 (its loss must not sample)`);
  return { variance, meanGradient };
}

/**
 * Table 1's decomposition over `batches` mini-batches: `nextBatch(m)` gives the m-th fixed
 * batch (already dequantized); each gets S draws.
 */
export async function gradientVariance(
  probe: GradientVarianceProbe, batches: number, nextBatch: (m: number) => Tensor, options: GradientVarianceOptions,
): Promise<GradientVarianceResult> {
  if (!Number.isInteger(batches) || batches < 2) throw new Error(`gradientVariance: batches must be an integer >= 2, got ${batches}`);
  const count = probe.encoderParameters.reduce((n, p) => n + p.size, 0);
  const acrossBatches = new Welford(count);
  const perBatchEstimatorVariance: number[] = [];
  for (let m = 0; m < batches; m++) {
    const x = nextBatch(m);
    const onDraw = options.onDraw && ((s: number) => options.onDraw!(m * options.samples + s, batches * options.samples));
    const { variance, meanGradient } = await estimatorGradientVariance(probe, x, { ...options, onDraw });
    x.dispose();
    perBatchEstimatorVariance.push(variance);
    acrossBatches.add([meanGradient]);
  }
  const estimatorVariance = perBatchEstimatorVariance.reduce((a, v) => a + v, 0) / batches;
  const batchVariance = acrossBatches.varianceSum();
  return {
    estimatorVariance, batchVariance, estimatorShare: estimatorShare(estimatorVariance, batchVariance),
    perBatchEstimatorVariance, parameterCount: count, samples: options.samples, batches,
  };
}
