// Table 2 and Figure 2 of "Zero-Variance Gradients for Variational Autoencoders" (Sec. 3.2,
// "Do Analytic Gradients help?"; setting in App. B): a VAE with the Table-5 convolutional
// encoder and a linear decoder with fixed output variance sigma^2 = 0.01, trained on real
// MNIST with five gradient estimators, compared by test BPD, MSE and KL after every epoch.
//
//   node experiments/fixed-variance.js            a short run that fits 15 minutes on 2 cores
//   node experiments/fixed-variance.js --paper    the paper's configuration (500 epochs, full data)
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as sg from '../silentgrad.js';
import { selectBackend } from '../backends/select.js';
import type { DecoderInit } from '../models/index.js';
import { UsageError, helpText, nonNegativeInteger, parseFlags, positiveInteger, runMain, type FlagTable } from './cli.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { gitCommit, prepareRunFolder, progressBar, writeResults } from './run-helpers.js';
import { loadMnist, pixelBatch, type MnistSplit } from './data/mnist.js';
import { chooseLearningRate, meanAndStd } from './lr-search.js';
import { writeImageGrid, writeLineChart } from './pictures.js';
import { flagOr, readVaeConfig, vaeFlags, type FlagValues, type VaeRunConfig } from './vae-flags.js';
import { DivergedError } from './training.js';
import { FixedVarianceVae, methods, type MethodName, type TestMetrics } from './vae.js';

// ---- Settings: the paper's (App. B.3) and this machine's default ----------------------------

/** What the paper reports in Table 2 (epoch 500, full MNIST), for side-by-side reading. */
const PAPER_TABLE_2: Record<MethodName, { bpd: number; mse: number }> = {
  'silent-gaussian': { bpd: 6.718, mse: 3.011 },
  reparam: { bpd: 6.722, mse: 3.059 },
  'silent-bernoulli': { bpd: 6.9, mse: 6.103 },
  gumbel: { bpd: 6.99, mse: 7.67 },
  reinforce: { bpd: 7.208, mse: 9.289 },
};

/**
 * The paper's configuration (--paper): 500 epochs, a search over four learning rates chosen on
 * validation images held out from the 60000 training images (the paper does not say how many;
 * 5000 is the customary split). It does not state the encoder's channel count.
 */
const PAPER = { epochs: 500, trainSize: 55000, validationSize: 5000, testSize: 10000, channels: 32, lr: '1e-4,5e-4,1e-5,5e-5' };
/** The default: every method on real MNIST within about 15 minutes on 2 cores, no GPU. */
const QUICK = { epochs: 3, trainSize: 4096, validationSize: 1000, testSize: 1000, channels: 8, lr: '5e-4' };

/** Why the decoder starts where it does; written beside the results. */
const DECODER_INIT_REASON: Record<DecoderInit, string> = {
  scaled: 'PyTorch\'s U(+-1/sqrt(d)) draw scaled so that E||W_i||^2 = sigma^2, a quarter of the 4 sigma^2 above which the image-independent part of the Bernoulli logits\' gradient saturates every posterior (docs/discrete-collapse.md)',
  pytorch: 'nn.Linear\'s U(+-1/sqrt(d)): ||W_i||^2 is about k/(3d) = 1.31 for MNIST, 33 times the 4 sigma^2 threshold, and the Bernoulli latents collapse (docs/discrete-collapse.md)',
};

const flags: FlagTable = {
  epochs: { type: 'string', help: 'training epochs per method', default: `${QUICK.epochs} (--paper: ${PAPER.epochs})` },
  'test-size': { type: 'string', help: 'test images evaluated after every epoch', default: `${QUICK.testSize} (--paper: ${PAPER.testSize})` },
  'validation-size': {
    type: 'string', help: 'images held out from the end of the 60000 training images to choose among several --lr (never the test set)',
    default: `${QUICK.validationSize} when --lr lists several rates, else none (--paper: ${PAPER.validationSize})`,
  },
  seeds: { type: 'string', help: 'seeds per method and rate (--seed, --seed + 1, ...); tables give mean +- std', default: '1' },
  ...vaeFlags(QUICK, PAPER, 'fixed-variance', '500 epochs, 55000 training and 5000 validation images, the four-rate search'),
};

interface RunConfig extends VaeRunConfig {
  epochs: number;
  testSize: number;
  validationSize: number;
  seeds: number;
}

function readConfig(values: FlagValues): RunConfig {
  const base = values.paper ? PAPER : QUICK;
  const vae = readVaeConfig(values, base);
  const searching = vae.learningRates.length > 1;
  const config: RunConfig = {
    ...vae,
    epochs: positiveInteger('epochs', flagOr(values, 'epochs', base.epochs)),
    testSize: positiveInteger('test-size', flagOr(values, 'test-size', base.testSize)),
    validationSize: nonNegativeInteger('validation-size', flagOr(values, 'validation-size', searching ? base.validationSize : 0)),
    seeds: positiveInteger('seeds', flagOr(values, 'seeds', 1)),
  };
  if (config.testSize > 10000) throw new UsageError(`--test-size must be at most 10000, got ${config.testSize}`);
  if (searching && config.validationSize === 0) throw new UsageError(`--lr lists ${vae.learningRates.length} rates, so a --validation-size above 0 is needed to choose among them`);
  if (config.trainSize + config.validationSize > 60000)
    throw new UsageError(`--train-size ${config.trainSize} plus --validation-size ${config.validationSize} is more than the 60000 training images; lower --train-size`);
  return config;
}

// ---- The run: every method, rate and seed trained, evaluated every epoch, checkpointed --------

interface EpochRecord extends TestMetrics {
  /** 0 is the untrained model, the reference every method must improve on. */
  epoch: number;
  /** Mean training loss over the epoch (null for epoch 0). */
  trainLoss: number | null;
  /** The same metrics on the validation images, when there are any. */
  validation: TestMetrics | null;
  seconds: number;
}

/** One training run: a method at one learning rate and one seed. */
interface RunRecord {
  lr: number;
  seed: number;
  epochs: EpochRecord[];
  /** Why the run stopped early (a rate that diverged), if it did. */
  diverged?: string;
}

interface MethodResults {
  label: string;
  /** The rate the tables report: the only one, or the search's choice by validation BPD. */
  chosenLr: number | null;
  runs: RunRecord[];
}

interface Results {
  config: RunConfig;
  decoderInit: { name: DecoderInit; reason: string };
  backend: string;
  commit: string;
  methods: Partial<Record<MethodName, MethodResults>>;
}

const seedsOf = (config: RunConfig): number[] => Array.from({ length: config.seeds }, (_, i) => config.seed + i);
const runName = (method: MethodName, lr: number, seed: number): string => `${method}_lr${lr}_seed${seed}`;
const checkpointOf = (out: string, method: MethodName, lr: number, seed: number): string =>
  join(out, 'checkpoints', `${runName(method, lr, seed)}.safetensors`);

async function main(): Promise<void> {
  const values = parseFlags(process.argv.slice(2), flags);
  if (values.help) {
    process.stdout.write(helpText('experiments/fixed-variance.js', 'Trains the paper\'s fixed-variance VAE (Table 2, Figure 2) with each method on real MNIST.', flags));
    return;
  }
  const config = readConfig(values);
  // Bad input fails first, before a run folder is made or a device is opened.
  const dataDir = values['data-dir'] as string | undefined;
  const train = loadMnist('train', { dataDir, limit: config.trainSize });
  const validation = config.validationSize > 0 ? loadMnist('train', { dataDir, from: 60000 - config.validationSize }) : null;
  const test = loadMnist('test', { dataDir, limit: config.testSize });
  const out = prepareRunFolder('fixed-variance', values.out as string | undefined, values.resume === true, config);
  const { backend, reason } = await selectBackend(config.backend);
  sg.setDefaultBackend(backend);
  console.log(`silentgrad fixed-variance study: ${reason}`);
  console.log(`${config.methods.length} methods x ${config.epochs} epochs on ${train.count} training images, ` +
    `tested on ${test.count}; encoder ${config.channels} channels, d = ${config.latentDim}, sigma^2 = ${config.sigma2}, ` +
    `batch ${config.batchSize}, lr ${config.learningRates.join(', ')}` +
    `${validation ? ` chosen on ${validation.count} held-out training images` : ''}, ${config.seeds} seed(s)` +
    `${values.paper ? ' (--paper)' : ' (pass --paper for the full configuration)'}`);
  console.log(`decoder init: ${config.decoderInit}, ${DECODER_INIT_REASON[config.decoderInit]}`);
  console.log(`writing to ${out}`);

  const results: Results = {
    config, decoderInit: { name: config.decoderInit, reason: DECODER_INIT_REASON[config.decoderInit] },
    backend: backend.describe(), commit: gitCommit(), methods: {},
  };
  if (!values.resume) writeResults(out, results, table2); // the configuration first: --resume checks against it
  for (const method of config.methods) {
    const entry: MethodResults = { label: methods[method].label, chosenLr: null, runs: [] };
    results.methods[method] = entry;
    for (const lr of config.learningRates)
      for (const seed of seedsOf(config)) {
        const run: RunRecord = { lr, seed, epochs: [] };
        entry.runs.push(run);
        await trainRun(method, run, config, { train, validation, test }, out, values.resume === true, () => writeResults(out, results, table2));
      }
    entry.chosenLr = chosenRate(entry, config);
    writeResults(out, results, table2);
    if (config.learningRates.length > 1) console.log(`${method}: chose lr ${entry.chosenLr} by validation BPD`);
  }
  await writeFigures(out, results, config, test);
  console.log(`\n${table2(results)}\nresults in ${out}: results.json, results.md, convergence.png, reconstructions.png`);
}

interface Splits { train: MnistSplit; validation: MnistSplit | null; test: MnistSplit }

/** Trains one (method, rate, seed) run to the last epoch, resuming from its checkpoint. */
async function trainRun(method: MethodName, run: RunRecord, config: RunConfig, data: Splits, out: string, resume: boolean, save: () => void): Promise<void> {
  const vae = new FixedVarianceVae(method, { ...config, lr: run.lr, seed: run.seed }, sg.getDefaultBackend());
  const name = runName(method, run.lr, run.seed);
  const checkpoint = checkpointOf(out, method, run.lr, run.seed);
  if (resume && existsSync(checkpoint)) {
    run.epochs = loadCheckpoint<EpochRecord[]>(checkpoint, vae).history;
    console.log(`${name}: resumed after epoch ${run.epochs.length - 1}`);
  }
  const evaluate = async (epoch: number) => ({
    ...(await vae.evaluate(data.test, epoch)),
    validation: data.validation ? await vae.evaluate(data.validation, epoch) : null,
  });
  if (run.epochs.length === 0) run.epochs.push({ epoch: 0, trainLoss: null, ...(await evaluate(0)), seconds: 0 });
  for (let epoch = run.epochs.length; epoch <= config.epochs; epoch++) {
    const started = performance.now();
    const bar = progressBar(`${name} epoch ${epoch}/${config.epochs}`);
    let trainLoss: number;
    try {
      trainLoss = await vae.trainEpoch(data.train, epoch, (step, steps) => (step === 1 ? bar.start(steps, 1) : bar.update(step)));
    } catch (e) {
      bar.stop();
      // In a search a rate that diverges is a finding, not a failure; a single rate must work.
      if (!(e instanceof DivergedError) || config.learningRates.length === 1) throw e;
      run.diverged = e.message;
      console.warn(`warning: ${e.message}`);
      save();
      return;
    }
    bar.stop();
    const record: EpochRecord = { epoch, trainLoss, ...(await evaluate(epoch)), seconds: (performance.now() - started) / 1000 };
    run.epochs.push(record);
    await saveCheckpoint(checkpoint, vae, epoch, run.epochs);
    save();
    console.log(`${name} epoch ${epoch}: test BPD ${record.bpd.toFixed(3)}${record.validation ? ` (validation ${record.validation.bpd.toFixed(3)})` : ''}, ` +
      `MSE ${record.msePosteriorMean.toFixed(3)} (expected ${record.mseExpected.toFixed(3)}), KL ${record.kl.toFixed(2)}, ` +
      `${record.activeLatents}/${config.latentDim} latents active, ${record.seconds.toFixed(1)} s`);
    const collapse = collapseWarning(record, config.latentDim);
    if (collapse) console.warn(`warning: ${name}: ${collapse}`);
  }
}

/**
 * One line when the posteriors have saturated into one code: nearly every latent deterministic
 * and nearly none varying across the test images, the collapse docs/discrete-collapse.md
 * explains (KL then sits at d ln 2 for Bernoulli latents). Few active latents alone is also
 * how training starts, so the count is printed every epoch but not warned about.
 */
function collapseWarning(metrics: TestMetrics, latentDim: number): string | null {
  if (metrics.deterministicShare < SATURATED_SHARE || metrics.activeLatents > COLLAPSED_ACTIVE_SHARE * latentDim) return null;
  return `the posteriors have saturated into one code: ${(100 * metrics.deterministicShare).toFixed(0)}% are deterministic and ` +
    `${metrics.activeLatents} of ${latentDim} latents vary across the test images (KL ${metrics.kl.toFixed(1)} nats); see docs/discrete-collapse.md and --decoder-init`;
}
const SATURATED_SHARE = 0.9;
const COLLAPSED_ACTIVE_SHARE = 0.05;

function chosenRate(entry: MethodResults, config: RunConfig): number | null {
  if (config.learningRates.length === 1) return entry.runs.some((r) => !r.diverged) ? config.learningRates[0]! : null;
  const choice = chooseLearningRate(entry.runs.map((r) => ({
    lr: r.lr, seed: r.seed, validationBpd: r.diverged ? null : r.epochs[config.epochs]?.validation?.bpd ?? null,
  })));
  return choice?.lr ?? null;
}

/** The chosen rate's finished runs, one per seed. */
const chosenRuns = (m: MethodResults, epochs: number): RunRecord[] =>
  m.runs.filter((r) => r.lr === m.chosenLr && !r.diverged && r.epochs.length === epochs + 1);

/** Table 2's layout, with both MSE readings and the paper's numbers beside ours. */
function table2(results: Results): string {
  const c = results.config;
  const cell = (runs: RunRecord[], pick: (e: EpochRecord) => number, digits: number): string => {
    const { mean, std } = meanAndStd(runs.map((r) => pick(r.epochs[c.epochs]!)));
    return runs.length > 1 ? `${mean.toFixed(digits)} +- ${std.toFixed(digits)}` : mean.toFixed(digits);
  };
  const rows = Object.entries(results.methods).map(([name, m]) => {
    const paper = PAPER_TABLE_2[name as MethodName];
    const runs = chosenRuns(m!, c.epochs);
    if (runs.length === 0) return `| ${m!.label} | - | - | - | - | - | - | - | ${paper.bpd} | ${paper.mse} |`;
    const trained = runs.flatMap((r) => r.epochs.filter((e) => e.epoch > 0));
    const perEpoch = trained.reduce((a, e) => a + e.seconds, 0) / trained.length;
    return `| ${m!.label} | ${m!.chosenLr} | ${cell(runs, (e) => e.bpd, 3)} | ${cell(runs, (e) => e.msePosteriorMean, 3)} | ` +
      `${cell(runs, (e) => e.mseExpected, 3)} | ${cell(runs, (e) => e.kl, 2)} | ${cell(runs, (e) => e.activeLatents, 0)} | ${perEpoch.toFixed(1)} | ${paper.bpd} | ${paper.mse} |`;
  });
  const lines = [
    `Fixed-variance VAE on MNIST (paper Table 2): after epoch ${c.epochs} on ${c.trainSize} training images, tested on ${c.testSize}` +
    `${c.seeds > 1 ? `; mean +- std over ${c.seeds} seeds` : `; seed ${c.seed}`};`,
    `d = ${c.latentDim}, sigma^2 = ${c.sigma2}, encoder ${c.channels} channels, batch ${c.batchSize}; ${results.backend}.`,
    `Decoder init: ${results.decoderInit.name}, ${results.decoderInit.reason}.`,
    '',
    `| Method | lr | BPD | MSE (decoder mean at posterior mean) | MSE (expected under q) | KL (nats) | active latents (of ${c.latentDim}) | s / epoch | paper BPD | paper MSE |`,
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'The paper reports after 500 epochs on all 60000 images; it does not say at which z its MSE is taken.',
    'A latent is active when its posterior mean varies across the test images (variance above 0.01).',
    '',
  ];
  if (c.learningRates.length > 1) lines.push(...searchTable(results), '');
  return lines.join('\n');
}

/** Every candidate rate's final validation BPD (mean over seeds), the chosen one marked. */
function searchTable(results: Results): string[] {
  const rates = results.config.learningRates;
  const rows = Object.values(results.methods).map((m) => {
    const cells = rates.map((lr) => {
      const runs = m!.runs.filter((r) => r.lr === lr);
      const bpds = runs.map((r) => (r.diverged ? NaN : r.epochs[results.config.epochs]?.validation?.bpd ?? NaN));
      const text = runs.some((r) => r.diverged) ? 'diverged' : bpds.length === 0 || bpds.some(Number.isNaN) ? '-' : meanAndStd(bpds).mean.toFixed(3);
      return lr === m!.chosenLr ? `**${text}**` : text;
    });
    return `| ${m!.label} | ${cells.join(' | ')} |`;
  });
  return [
    `Learning-rate search (paper App. B.3): final validation BPD on ${results.config.validationSize} held-out training images; the chosen rate in bold.`,
    '',
    `| Method | ${rates.map((lr) => `lr ${lr}`).join(' | ')} |`,
    `|---|${rates.map(() => '---|').join('')}`,
    ...rows,
  ];
}

async function writeFigures(out: string, results: Results, config: RunConfig, test: MnistSplit): Promise<void> {
  const reported = Object.entries(results.methods).filter(([, m]) => chosenRuns(m!, config.epochs).length > 0) as [MethodName, MethodResults][];
  writeLineChart(join(out, 'convergence.png'), {
    title: 'Test BPD by epoch (fixed-variance VAE, MNIST)',
    xLabel: 'epoch',
    yLabel: 'bits per dimension',
    series: reported.map(([, m]) => {
      const runs = chosenRuns(m, config.epochs);
      const epochs = Array.from({ length: config.epochs }, (_, i) => i + 1); // epoch 0 (untrained) would flatten the scale
      return { name: m.label, x: epochs, y: epochs.map((e) => meanAndStd(runs.map((r) => r.epochs[e]!.bpd)).mean) };
    }),
  });
  // Figure 2: originals on top, then each method's reconstruction at the posterior mean.
  const shown = Uint32Array.from({ length: Math.min(10, test.count) }, (_, i) => i);
  const rows = [{ label: 'Original', images: pixelBatch(test, shown) }];
  for (const [method, m] of reported) {
    const run = chosenRuns(m, config.epochs)[0]!;
    const vae = new FixedVarianceVae(method, { ...config, lr: run.lr, seed: run.seed }, sg.getDefaultBackend());
    loadCheckpoint(checkpointOf(out, method, run.lr, run.seed), vae);
    const images = await vae.reconstruct(test, shown);
    rows.push({ label: m.label, images: images.map((v) => Math.min(Math.max(v, 0), 255 / 256)) });
  }
  writeImageGrid(join(out, 'reconstructions.png'), rows, 28, 28, { scale: 2 });
}

runMain(main);
