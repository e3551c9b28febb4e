// Table 2 and Figure 2 of "Zero-Variance Gradients for Variational Autoencoders" (Sec. 3.2,
// "Do Analytic Gradients help?"; setting in App. B): a VAE with the Table-5 convolutional
// encoder and a linear decoder with fixed output variance sigma^2 = 0.01, trained on real
// MNIST with five gradient estimators, compared by test BPD, MSE and KL after every epoch.
//
//   node experiments/fixed-variance.js            a short run that fits 15 minutes on 2 cores
//   node experiments/fixed-variance.js --paper    the paper's configuration (500 epochs, full data)
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as sg from '../engine/index.js';
import { selectBackend } from '../backends/select.js';
import { UsageError, helpText, parseFlags, positiveInteger, runMain, type FlagTable } from './cli.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { gitCommit, prepareRunFolder, progressBar } from './run-helpers.js';
import { loadMnist, pixelBatch } from './data/mnist.js';
import { writeImageGrid, writeLineChart } from './pictures.js';
import { flagOr, readVaeConfig, vaeFlags, type FlagValues, type VaeRunConfig } from './vae-flags.js';
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

/** The paper's configuration (--paper). It does not state the encoder's channel count. */
const PAPER = { epochs: 500, trainSize: 60000, testSize: 10000, channels: 32 };
/** The default: every method on real MNIST within about 15 minutes on 2 cores, no GPU. */
const QUICK = { epochs: 3, trainSize: 4096, testSize: 1000, channels: 8 };

const flags: FlagTable = {
  epochs: { type: 'string', help: 'training epochs per method', default: `${QUICK.epochs} (--paper: ${PAPER.epochs})` },
  'test-size': { type: 'string', help: 'test images evaluated after every epoch', default: `${QUICK.testSize} (--paper: ${PAPER.testSize})` },
  ...vaeFlags(QUICK, PAPER, 'fixed-variance', '500 epochs, all 60000 training images'),
};

interface RunConfig extends VaeRunConfig {
  epochs: number;
  testSize: number;
}

function readConfig(values: FlagValues): RunConfig {
  const base = values.paper ? PAPER : QUICK;
  const config: RunConfig = {
    ...readVaeConfig(values, base),
    epochs: positiveInteger('epochs', flagOr(values, 'epochs', base.epochs)),
    testSize: positiveInteger('test-size', flagOr(values, 'test-size', base.testSize)),
  };
  if (config.testSize > 10000) throw new UsageError(`--test-size must be at most 10000, got ${config.testSize}`);
  return config;
}

// ---- The run: train every method, evaluate after every epoch, checkpoint, report ------------

interface EpochRecord extends TestMetrics {
  /** 0 is the untrained model, the reference every method must improve on. */
  epoch: number;
  /** Mean training loss over the epoch (null for epoch 0). */
  trainLoss: number | null;
  seconds: number;
}

interface Results {
  config: RunConfig;
  backend: string;
  commit: string;
  methods: Partial<Record<MethodName, { label: string; epochs: EpochRecord[] }>>;
}

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
  const test = loadMnist('test', { dataDir, limit: config.testSize });
  const out = prepareRunFolder('fixed-variance', values.out as string | undefined, values.resume === true, config);
  const { backend, reason } = await selectBackend(config.backend);
  sg.setDefaultBackend(backend);
  console.log(`silentgrad fixed-variance study: ${reason}`);
  console.log(`${config.methods.length} methods x ${config.epochs} epochs on ${train.count} training images, ` +
    `tested on ${test.count}; encoder ${config.channels} channels, d = ${config.latentDim}, sigma^2 = ${config.sigma2}, ` +
    `batch ${config.batchSize}, lr ${config.lr}${values.paper ? ' (--paper)' : ' (pass --paper for the full configuration)'}`);
  console.log(`writing to ${out}`);

  const results: Results = { config, backend: backend.describe(), commit: gitCommit(), methods: {} };
  if (!values.resume) writeResults(out, results); // the configuration first: --resume checks against it
  for (const method of config.methods) {
    const vae = new FixedVarianceVae(method, config, backend);
    const checkpoint = join(out, 'checkpoints', `${method}.safetensors`);
    let history: EpochRecord[] = [];
    if (values.resume && existsSync(checkpoint)) {
      history = loadCheckpoint<EpochRecord[]>(checkpoint, vae).history;
      console.log(`${method}: resumed after epoch ${history.length - 1}`);
    }
    results.methods[method] = { label: methods[method].label, epochs: history };
    if (history.length === 0) history.push({ epoch: 0, trainLoss: null, ...(await vae.evaluate(test, 0)), seconds: 0 });
    for (let epoch = history.length; epoch <= config.epochs; epoch++) {
      const started = performance.now();
      const bar = progressBar(`${method.padEnd(16)} epoch ${epoch}/${config.epochs}`);
      const trainLoss = await vae.trainEpoch(train, epoch, (step, steps) => (step === 1 ? bar.start(steps, 1) : bar.update(step)));
      bar.stop();
      const metrics = await vae.evaluate(test, epoch);
      const record: EpochRecord = { epoch, trainLoss, ...metrics, seconds: (performance.now() - started) / 1000 };
      history.push(record);
      await saveCheckpoint(checkpoint, vae, epoch, history);
      writeResults(out, results);
      console.log(`${method.padEnd(16)} epoch ${epoch}: test BPD ${metrics.bpd.toFixed(3)}, MSE ${metrics.msePosteriorMean.toFixed(3)} ` +
        `(expected ${metrics.mseExpected.toFixed(3)}), KL ${metrics.kl.toFixed(2)}, ${record.seconds.toFixed(1)} s`);
    }
  }
  await writeFigures(out, results, config, test);
  console.log(`\n${table2(results)}\nresults in ${out}: results.json, results.md, convergence.png, reconstructions.png`);
}

function writeResults(out: string, results: Results): void {
  sg.writeFileAtomic(join(out, 'results.json'), [new TextEncoder().encode(JSON.stringify(results, null, 2))]);
  sg.writeFileAtomic(join(out, 'results.md'), [new TextEncoder().encode(table2(results))]);
}

/** Table 2's layout, with both MSE readings and the paper's numbers beside ours. */
function table2(results: Results): string {
  const rows = Object.entries(results.methods).map(([name, m]) => {
    const last = m!.epochs[m!.epochs.length - 1];
    const paper = PAPER_TABLE_2[name as MethodName];
    if (!last) return `| ${m!.label} | - | - | - | - | - | ${paper.bpd} | ${paper.mse} |`;
    const trained = m!.epochs.filter((e) => e.epoch > 0);
    const perEpoch = trained.reduce((a, e) => a + e.seconds, 0) / Math.max(trained.length, 1);
    return `| ${m!.label} | ${last.bpd.toFixed(3)} | ${last.msePosteriorMean.toFixed(3)} | ${last.mseExpected.toFixed(3)} | ${last.kl.toFixed(2)} | ${perEpoch.toFixed(1)} | ${paper.bpd} | ${paper.mse} |`;
  });
  const c = results.config;
  return [
    `Fixed-variance VAE on MNIST (paper Table 2): after epoch ${c.epochs} on ${c.trainSize} training images, tested on ${c.testSize};`,
    `d = ${c.latentDim}, sigma^2 = ${c.sigma2}, encoder ${c.channels} channels, batch ${c.batchSize}, lr ${c.lr}, seed ${c.seed}; ${results.backend}.`,
    '',
    '| Method | BPD | MSE (decoder mean at posterior mean) | MSE (expected under q) | KL (nats) | s / epoch | paper BPD | paper MSE |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'The paper reports after 500 epochs on all 60000 images; it does not say at which z its MSE is taken.',
    '',
  ].join('\n');
}

async function writeFigures(out: string, results: Results, config: RunConfig, test: ReturnType<typeof loadMnist>): Promise<void> {
  writeLineChart(join(out, 'convergence.png'), {
    title: 'Test BPD by epoch (fixed-variance VAE, MNIST)',
    xLabel: 'epoch',
    yLabel: 'bits per dimension',
    series: Object.values(results.methods).map((m) => {
      const trained = m!.epochs.filter((e) => e.epoch > 0); // epoch 0 (untrained) would flatten the scale
      return { name: m!.label, x: trained.map((e) => e.epoch), y: trained.map((e) => e.bpd) };
    }),
  });
  // Figure 2: originals on top, then each method's reconstruction at the posterior mean.
  const shown = Uint32Array.from({ length: Math.min(10, test.count) }, (_, i) => i);
  const rows = [{ label: 'Original', images: pixelBatch(test, shown) }];
  for (const method of config.methods) {
    const vae = new FixedVarianceVae(method, config, sg.getDefaultBackend());
    loadCheckpoint(join(out, 'checkpoints', `${method}.safetensors`), vae);
    const images = await vae.reconstruct(test, shown);
    rows.push({ label: methods[method].label, images: images.map((v) => Math.min(Math.max(v, 0), 255 / 256)) });
  }
  writeImageGrid(join(out, 'reconstructions.png'), rows, 28, 28, { scale: 2 });
}

runMain(main);
