// How far is an estimator's gradient from the exact one? The measurement of the paper's Sec. 4.1
// ("we brute-force enumerated the discrete latent distribution to obtain the exact gradient as
// ground truth"), for any encoder to Bernoulli logits and any decoder. For one fixed batch, the
// gradient of the reconstruction term J = mean over images of E_q[log p(x|z)] (the KL is analytic
// for every method, so it is left out) w.r.t. the encoder's parameters and the logits:
//
//   exact             autograd through the enumeration of all 2^d states (models/exact-expectation.ts);
//   Silent Gradients  autograd through the closed form (its only error: the Taylor log term);
//   Gumbel-Softmax    the binary-Concrete pathwise gradient, averaged over the draws (biased);
//   REINFORCE         log p(x|z) grad log q(z|x), averaged over the draws: plain Monte Carlo, no
//                     baseline, and with the leave-one-out baseline (unbiased too).
//
// Each sampled estimate comes with its own standard error, from NOISE_GROUPS groups of its draws,
// so a deviation can be told apart from noise. experiments/taylor-bias.ts reports l2(g, g_exact).
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import type { ReconstructionModel } from './decoders/linear-gaussian.js';
import { enumerateStates, expectationOverStates, stateIndex, tileRows } from './exact-expectation.js';
import { BernoulliDistribution } from './latents/bernoulli.js';

/** Sampled estimates are split into this many groups of draws to estimate their own noise. */
export const NOISE_GROUPS = 10;

/** Labels of the streams forked from MeasureOptions.stream. */
const STREAM = { gumbel: 4, reinforce: 5 } as const;

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
        const p = readAndDispose(sg.noGrad(() => sg.tidy(() => q().probability)));
        const perChunk = Math.max(1, Math.floor(2 ** 20 / (batch * d)));
        let done = 0;
        const plain: GroupGradient[] = [], leaveOneOut: GroupGradient[] = [];
        for (const n of splitDraws(options.samples, 2)) {
          // Per image b and latent i: sum_s f_s (z_si - p_i), sum_s (z_si - p_i); per image sum_s f_s.
          const fScore = new Float64Array(batch * d), score = new Float64Array(batch * d), fSum = new Float64Array(batch);
          for (let start = 0; start < n; start += perChunk) {
            const count = Math.min(perChunk, n - start);
            const z = readAndDispose(sg.tidy(() => new BernoulliDistribution(tileRows(logits, count)).sample(stream)));
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
export function readAndDispose(t: Tensor): sg.FloatArray {
  const values = t.dataSync();
  t.dispose();
  return values;
}

/** The L2 norm of a, or of a - b. */
export function l2(a: Float64Array, b?: Float64Array): number {
  let total = 0;
  for (let i = 0; i < a.length; i++) total += (a[i]! - (b ? b[i]! : 0)) ** 2;
  return Math.sqrt(total);
}
