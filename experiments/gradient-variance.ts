// Table 1 of "Zero-Variance Gradients for Variational Autoencoders" (Sec. 3, App. B "Gradient
// Variance Calculation"): the encoder-gradient variance of the fixed-variance VAE of Table 2,
// split into mini-batch variance and estimator (latent-sampling) variance, for each method at
// chosen training epochs. The measurement is models/gradient-variance.ts; the model, methods and
// training are experiments/vae.ts, shared with the Table-2 study.
//
//   node experiments/gradient-variance.js           a short run that fits ~10 minutes on 2 cores
//   node experiments/gradient-variance.js --paper   epochs 1, 50, 250, S = 200, M = 50, full MNIST
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as sg from '../silentgrad.js';
import { selectBackend } from '../backends/select.js';
import { gradientVariance, type GradientVarianceProbe } from '../models/gradient-variance.js';
import { UsageError, helpText, parseFlags, positiveInteger, runMain, type FlagTable } from './cli.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { epochOrder, loadMnist, type MnistSplit } from './data/mnist.js';
import { writeBarChart } from './pictures.js';
import { gitCommit, prepareRunFolder, progressBar, writeResults } from './run-helpers.js';
import { flagOr, readVaeConfig, vaeFlags, type FlagValues, type VaeRunConfig } from './vae-flags.js';
import { dequantized } from './training.js';
import { FixedVarianceVae, methods, type MethodName } from './vae.js';

// ---- Settings: the paper's and this machine's default ----------------------------------------

interface Cell { batch: number; est: number; share: number }
/** Table 1 as printed (MNIST, 50 mini-batches, 200 latent samples per example). */
const PAPER_TABLE_1: Record<MethodName, Record<number, Cell>> = {
  'silent-gaussian': { 1: { batch: 1.49e4, est: 0, share: 0 }, 50: { batch: 5.28e2, est: 0, share: 0 }, 250: { batch: 4.53e1, est: 0, share: 0 } },
  reparam: { 1: { batch: 6.97e4, est: 3.26e5, share: 82.36 }, 50: { batch: 2.96e3, est: 3.28e4, share: 91.72 }, 250: { batch: 6.52e2, est: 1.58e4, share: 96.04 } },
  'silent-bernoulli': { 1: { batch: 2.18e5, est: 0, share: 0 }, 50: { batch: 4.53e6, est: 0, share: 0 }, 250: { batch: 1.12e5, est: 0, share: 0 } },
  gumbel: { 1: { batch: 6.29e4, est: 1.85e5, share: 74.64 }, 50: { batch: 2.12e4, est: 2.32e5, share: 91.63 }, 250: { batch: 1.2e4, est: 2.0e5, share: 94.34 } },
  reinforce: { 1: { batch: 8.22e4, est: 2.07e7, share: 99.6 }, 50: { batch: 4.86e5, est: 8.3e7, share: 99.42 }, 250: { batch: 2.33e5, est: 3.29e7, share: 99.3 } },
};

/** The paper's configuration (--paper); its encoder channel count is not stated. */
const PAPER = { atEpochs: [1, 50, 250], samples: 200, batches: 50, trainSize: 60000, channels: 32, lr: '5e-4' };
/** The default: every method, two measured epochs, within about 10 minutes on 2 cores. */
const QUICK = { atEpochs: [1, 3], samples: 10, batches: 8, trainSize: 2048, channels: 8, lr: '5e-4' };

const flags: FlagTable = {
  'at-epochs': { type: 'string', help: 'comma list of epochs after which to measure', default: `${QUICK.atEpochs} (--paper: ${PAPER.atEpochs})` },
  samples: { type: 'string', help: 'latent draws per batch, S (at least 2)', default: `${QUICK.samples} (--paper: ${PAPER.samples})` },
  batches: { type: 'string', help: 'fixed mini-batches measured, M (at least 2)', default: `${QUICK.batches} (--paper: ${PAPER.batches})` },
  ...vaeFlags(QUICK, PAPER, 'gradient-variance', 'epochs 1, 50, 250; S = 200; M = 50; all 60000 images'),
};

interface RunConfig extends VaeRunConfig {
  atEpochs: number[];
  samples: number;
  batches: number;
}

function epochList(raw: string): number[] {
  const epochs = raw.split(',').map((s) => s.trim()).filter(Boolean).map((s) => positiveInteger('at-epochs', s));
  if (epochs.length === 0) throw new UsageError('--at-epochs needs a comma-separated list of positive integers');
  return [...new Set(epochs)].sort((a, b) => a - b);
}

function readConfig(values: FlagValues): RunConfig {
  const base = values.paper ? PAPER : QUICK;
  const config: RunConfig = {
    ...readVaeConfig(values, base),
    atEpochs: epochList(flagOr(values, 'at-epochs', base.atEpochs.join(','))),
    samples: positiveInteger('samples', flagOr(values, 'samples', base.samples)),
    batches: positiveInteger('batches', flagOr(values, 'batches', base.batches)),
  };
  if (config.learningRates.length > 1) throw new UsageError(`--lr takes one rate in this study (it measures gradients, it does not search), got ${config.learningRates.join(',')}`);
  if (config.samples < 2) throw new UsageError(`--samples must be at least 2 (a variance needs two draws), got ${config.samples}`);
  if (config.batches < 2) throw new UsageError(`--batches must be at least 2 (a variance needs two batches), got ${config.batches}`);
  if (config.batches * config.batchSize > config.trainSize)
    throw new UsageError(`--batches ${config.batches} x --batch-size ${config.batchSize} needs ${config.batches * config.batchSize} distinct images, more than --train-size ${config.trainSize}`);
  return config;
}

// ---- The run: train each method, measure after the chosen epochs, checkpoint, report ---------

interface Measurement {
  epoch: number;
  trainLoss: number;
  batchVariance: number;
  estimatorVariance: number;
  /** est / (est + batch) * 100: Table 1's "Est %". */
  estimatorShare: number;
  parameterCount: number;
  trainSeconds: number;
  measureSeconds: number;
}

interface Results {
  config: RunConfig;
  backend: string;
  commit: string;
  methods: Partial<Record<MethodName, { label: string; measurements: Measurement[] }>>;
}

/** Labels of this experiment's random streams, apart from vae.ts's (1, 2, 3). */
const MEASUREMENT_STREAM = 10;

async function main(): Promise<void> {
  const values = parseFlags(process.argv.slice(2), flags);
  if (values.help) {
    process.stdout.write(helpText('experiments/gradient-variance.js', 'Measures the paper\'s Table 1: batch vs estimator variance of the encoder gradient, per method, during training on MNIST.', flags));
    return;
  }
  const config = readConfig(values);
  // Bad input fails first, before a run folder is made or a device is opened.
  const train = loadMnist('train', { dataDir: values['data-dir'] as string | undefined, limit: config.trainSize });
  const out = prepareRunFolder('gradient-variance', values.out as string | undefined, values.resume === true, config);
  const { backend, reason } = await selectBackend(config.backend);
  sg.setDefaultBackend(backend);
  const lastEpoch = config.atEpochs[config.atEpochs.length - 1]!;
  console.log(`silentgrad gradient-variance study (Table 1): ${reason}`);
  console.log(`${config.methods.length} methods trained to epoch ${lastEpoch} on ${train.count} images, measured after epochs ${config.atEpochs.join(', ')} ` +
    `with S = ${config.samples} latent draws on each of M = ${config.batches} fixed batches of ${config.batchSize}; encoder ${config.channels} channels, ` +
    `d = ${config.latentDim}, sigma^2 = ${config.sigma2}, lr ${config.lr}${values.paper ? ' (--paper)' : ' (pass --paper for the paper\'s configuration)'}`);
  console.log(`writing to ${out}`);

  const results: Results = { config, backend: backend.describe(), commit: gitCommit(), methods: {} };
  if (!values.resume) writeResults(out, results, table1); // so a run killed before its first checkpoint can still --resume
  for (const method of config.methods) {
    const vae = new FixedVarianceVae(method, config, backend);
    const checkpoint = join(out, 'checkpoints', `${method}.safetensors`);
    let measurements: Measurement[] = [];
    let epoch = 0;
    if (values.resume && existsSync(checkpoint)) {
      ({ epoch, history: measurements } = loadCheckpoint<Measurement[]>(checkpoint, vae));
      console.log(`${method}: resumed after epoch ${epoch}`);
    }
    results.methods[method] = { label: methods[method].label, measurements };
    let trainSeconds = 0;
    while (epoch < lastEpoch) {
      epoch++;
      const started = performance.now();
      const bar = progressBar(`${method.padEnd(16)} train epoch ${epoch}/${lastEpoch}`);
      const trainLoss = await vae.trainEpoch(train, epoch, (step, steps) => (step === 1 ? bar.start(steps, 1) : bar.update(step)));
      bar.stop();
      trainSeconds += (performance.now() - started) / 1000;
      if (config.atEpochs.includes(epoch)) {
        const measured = performance.now();
        const r = await measure(vae, train, epoch, config);
        measurements.push({
          epoch, trainLoss, batchVariance: r.batchVariance, estimatorVariance: r.estimatorVariance, estimatorShare: r.estimatorShare,
          parameterCount: r.parameterCount, trainSeconds, measureSeconds: (performance.now() - measured) / 1000,
        });
        trainSeconds = 0;
        console.log(`${method.padEnd(16)} epoch ${epoch}: batch var ${fmt(r.batchVariance)}, est var ${fmt(r.estimatorVariance)}, ` +
          `est ${r.estimatorShare.toFixed(2)}% (train loss ${trainLoss.toFixed(1)}; measured in ${((performance.now() - measured) / 1000).toFixed(1)} s)`);
      }
      await saveCheckpoint(checkpoint, vae, epoch, measurements);
      writeResults(out, results, table1);
    }
  }
  writeResults(out, results, table1);
  writeShareChart(join(out, 'estimator-share.png'), results);
  console.log(`\n${table1(results)}\nresults in ${out}: results.json, results.md, estimator-share.png`);
}

/** Table 1's measurement of one model: M fixed batches, each dequantized once, S draws each. */
async function measure(vae: FixedVarianceVae, train: MnistSplit, epoch: number, config: RunConfig) {
  const probe: GradientVarianceProbe = {
    estimator: vae.estimator,
    decoder: vae.decoder,
    encoderParameters: vae.encoder.parameters(),
    encode: (x) => vae.encoder.forward(sg.reshape(x, [x.shape[0]!, 1, 28, 28])),
  };
  // The same batches for every method and epoch (a permutation no training epoch uses); the
  // dequantization noise and latent draws come from a stream of their own, so measuring never
  // changes the training trajectory.
  const order = epochOrder(train.count, config.seed, 0);
  const stream = new sg.RandomStream(config.seed).fork(MEASUREMENT_STREAM).fork(epoch);
  const bar = progressBar(`${vae.method.padEnd(16)} measure epoch ${epoch}`, 'draws');
  bar.start(config.batches * config.samples, 0);
  const batch = (m: number) => dequantized(train, order.subarray(m * config.batchSize, (m + 1) * config.batchSize), stream, vae.backend);
  const result = await gradientVariance(probe, config.batches, batch, { samples: config.samples, stream, onDraw: (done) => bar.update(done) });
  bar.stop();
  return result;
}

const fmt = (v: number): string => (v === 0 ? '0' : v.toExponential(2));

/** Table 1's layout, one block of columns per measured epoch, the paper's numbers beside ours. */
function table1(results: Results): string {
  const c = results.config;
  const header = ['Method', ...c.atEpochs.flatMap((e) => [`Batch Var (ep ${e})`, `Est Var (ep ${e})`, `Est % (ep ${e})`])];
  const rows = Object.values(results.methods).map((m) => [m!.label, ...c.atEpochs.flatMap((e) => {
    const r = m!.measurements.find((x) => x.epoch === e);
    return r ? [fmt(r.batchVariance), fmt(r.estimatorVariance), r.estimatorShare.toFixed(2)] : ['-', '-', '-'];
  })]);
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const paperEpochs = [1, 50, 250];
  const paperRows = Object.keys(results.methods).map((name) => [methods[name as MethodName].label, ...paperEpochs.flatMap((e) => {
    const p = PAPER_TABLE_1[name as MethodName][e]!;
    return [fmt(p.batch), fmt(p.est), p.share.toFixed(2)];
  })]);
  return [
    `Gradient-variance decomposition (paper Table 1): ${c.trainSize} training images, S = ${c.samples} latent draws on each of M = ${c.batches} batches of ${c.batchSize};`,
    `d = ${c.latentDim}, sigma^2 = ${c.sigma2}, encoder ${c.channels} channels, lr ${c.lr}, seed ${c.seed}; ${results.backend}.`,
    'Variances are sums over every encoder parameter of the per-parameter variance of the reconstruction-loss gradient',
    '(batch mean); Est % = Est Var / (Est Var + Batch Var) x 100.',
    '',
    '### This run',
    '',
    line(header),
    line(header.map(() => '---')),
    ...rows.map(line),
    '',
    '### Paper (Table 1: full MNIST, 200 latent samples, 50 mini-batches, epochs 1, 50, 250)',
    '',
    line(['Method', ...paperEpochs.flatMap((e) => [`Batch Var (ep ${e})`, `Est Var (ep ${e})`, `Est % (ep ${e})`])]),
    line(['---', ...paperEpochs.flatMap(() => ['---', '---', '---'])]),
    ...paperRows.map(line),
    '',
  ].join('\n');
}

function writeShareChart(path: string, results: Results): void {
  const short: Record<MethodName, string> = { 'silent-gaussian': 'SG-cont', reparam: 'Reparam', 'silent-bernoulli': 'SG-disc', gumbel: 'Gumbel', reinforce: 'REINFORCE' };
  const bars = Object.entries(results.methods).flatMap(([name, m]) =>
    m!.measurements.map((r) => ({ label: `${short[name as MethodName]} e${r.epoch}`, value: r.estimatorShare })));
  writeBarChart(path, {
    title: 'Estimator share of encoder-gradient variance (Table 1 Est %)',
    yLabel: 'Est Var / (Est Var + Batch Var), %',
    bars,
  });
}

runMain(main);
