// The Table-2 study end to end on a few hundred real MNIST images: the files it writes, that
// training improves on the untrained model, that a killed run resumes to identical numbers,
// and that bad flags get one-line errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAfterCheckpoint } from './kill-run.js';

const script = join(import.meta.dirname, '..', 'experiments', 'fixed-variance.js');
const tiny = ['--epochs', '2', '--train-size', '256', '--test-size', '100', '--channels', '4', '--latent-dim', '16', '--backend', 'cpu'];
const dir = mkdtempSync(join(tmpdir(), 'silentgrad-fv-'));

interface Metrics { bpd: number; msePosteriorMean: number; mseExpected: number; kl: number; activeLatents: number; deterministicShare: number }
interface Epoch extends Metrics { epoch: number; trainLoss: number | null; validation: Metrics | null; seconds: number }
interface Run { lr: number; seed: number; epochs: Epoch[]; diverged?: string }
type Results = {
  methods: Record<string, { chosenLr: number | null; runs: Run[] }>; config: Record<string, unknown>; commit: string; backend: string;
  decoderInit: { name: string; reason: string };
};
const read = (out: string): Results => JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
const run = (args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });

test('a short run writes results, tables, figures and checkpoints, and improves on the untrained model', () => {
  const out = join(dir, 'full');
  const r = run([...tiny, '--out', out]);
  assert.is(r.status, 0, r.stderr);
  for (const f of ['results.json', 'results.md', 'convergence.png', 'reconstructions.png'])
    assert.ok(existsSync(join(out, f)), `${f} written`);
  const results = read(out);
  assert.equal(Object.keys(results.methods), ['silent-gaussian', 'reparam', 'silent-bernoulli', 'gumbel', 'reinforce']);
  assert.match(results.backend, /cpu/);
  assert.is(results.decoderInit.name, 'scaled');
  assert.match(results.decoderInit.reason, /E\|\|W_i\|\|\^2 = sigma\^2/);
  for (const [name, m] of Object.entries(results.methods)) {
    assert.is(m.chosenLr, 5e-4);
    assert.is(m.runs.length, 1);
    assert.ok(existsSync(join(out, 'checkpoints', `${name}_lr0.0005_seed0.safetensors`)), `${name} checkpoint`);
    const { epochs } = m.runs[0]!;
    assert.equal(epochs.map((e) => e.epoch), [0, 1, 2]);
    for (const e of epochs)
      for (const v of [e.bpd, e.msePosteriorMean, e.mseExpected, e.kl]) assert.ok(Number.isFinite(v), `${name} epoch ${e.epoch}: ${JSON.stringify(e)}`);
    assert.ok(epochs[2]!.bpd < epochs[0]!.bpd, `${name}: BPD ${epochs[2]!.bpd} after training vs ${epochs[0]!.bpd} untrained`);
    // The expected squared error under q is the posterior-mean error plus the decoder-weighted variance.
    assert.ok(epochs[2]!.mseExpected >= epochs[2]!.msePosteriorMean);
    assert.is(epochs[2]!.validation, null, 'one rate: no validation split');
  }
  const table = readFileSync(join(out, 'results.md'), 'utf8');
  assert.match(table, /\| Continuous Silent Gradients \| 0.0005 \| \d+\.\d{3} \|/);
  assert.match(table, /paper BPD/);
  assert.match(table, /Decoder init: scaled/);
});

const metrics = (r: Results) => Object.fromEntries(Object.entries(r.methods).map(([n, m]) => [n, m.runs.map((run) => run.epochs.map(({ seconds: _s, ...rest }) => rest))]));

test('a run killed after its first checkpoint resumes to the same numbers', async () => {
  const methods = ['--methods', 'reparam,reinforce'];
  const reference = join(dir, 'reference');
  assert.is(run([...tiny, ...methods, '--out', reference]).status, 0);
  const out = join(dir, 'killed');
  await killAfterCheckpoint(script, [...tiny, ...methods, '--out', out], join(out, 'checkpoints', 'reparam_lr0.0005_seed0.safetensors'));
  const resumed = run([...tiny, ...methods, '--out', out, '--resume']);
  assert.is(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /reparam_lr0.0005_seed0: resumed after epoch 1/);
  assert.equal(metrics(read(out)), metrics(read(reference)));
});

test('the learning-rate search trains every rate and seed, skips a rate that diverges, and chooses by validation BPD', () => {
  const out = join(dir, 'search');
  const r = run([...tiny, '--methods', 'reparam', '--lr', '1e6,1e-7,3e-3', '--seeds', '2', '--validation-size', '100', '--out', out]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: reparam: the training loss became NaN in epoch 1/);
  const { runs, chosenLr } = read(out).methods.reparam!;
  assert.equal(runs.map((run) => [run.lr, run.seed]), [[1e6, 0], [1e6, 1], [1e-7, 0], [1e-7, 1], [3e-3, 0], [3e-3, 1]]);
  assert.ok(runs.slice(0, 2).every((run) => run.diverged && run.epochs.length === 1), 'lr 1e6 diverged in epoch 1');
  // The choice is the lowest mean validation BPD, whatever the test set says.
  const validation = (lr: number) => runs.filter((run) => run.lr === lr).reduce((a, run) => a + run.epochs[2]!.validation!.bpd, 0) / 2;
  assert.is(chosenLr, validation(1e-7) < validation(3e-3) ? 1e-7 : 3e-3);
  assert.is(chosenLr, 3e-3, 'a rate that barely moves the weights should lose');
  for (const run of runs.slice(2)) assert.ok(run.epochs.every((e) => Number.isFinite(e.validation!.bpd)));
  const table = readFileSync(join(out, 'results.md'), 'utf8');
  assert.match(table, /\| Reparameterization \| 0.003 \| \d+\.\d{3} \+- \d+\.\d{3} \|/);
  assert.match(table, /\| Reparameterization \| diverged \| \d+\.\d{3} \| \*\*\d+\.\d{3}\*\* \|/);
  assert.match(r.stdout, /reparam: chose lr 0.003 by validation BPD/);
});

test('bad flags and missing data give one-line errors and a non-zero exit', () => {
  const cases: [string[], RegExp][] = [
    [['--epochs', 'two'], /--epochs must be a positive integer, got 'two'/],
    [['--methods', 'silent,vq'], /--methods: 'silent' is not one of silent-gaussian, reparam/],
    [['--backend', 'tpu'], /--backend must be one of auto, cpu, webgpu, gpujs; got 'tpu'/],
    [['--frobnicate'], /Unknown option '--frobnicate'/],
    [['--decoder-init', 'xavier'], /--decoder-init must be one of scaled, pytorch; got 'xavier'/],
    [['--lr', '1e-4,fast'], /--lr must be a positive number, got 'fast'/],
    [['--lr', '1e-4,5e-4', '--validation-size', '0'], /--lr lists 2 rates, so a --validation-size above 0 is needed/],
    [['--train-size', '59500', '--lr', '1e-4,5e-4'], /--train-size 59500 plus --validation-size 1000 is more than the 60000 training images/],
    [['--seeds', '0'], /--seeds must be a positive integer, got '0'/],
    [['--data-dir', join(dir, 'nowhere'), '--out', join(dir, 'nodata')], /nowhere.*train-images-idx3-ubyte.*npm install/s],
    [['--resume', '--out', join(dir, 'never')], /--resume: .*results\.json does not exist/],
    [[...tiny, '--methods', 'reparam', '--epochs', '1', '--lr', '1e6', '--out', join(dir, 'diverged')], /reparam: the training loss became NaN in epoch 1; the run diverged/],
  ];
  for (const [args, message] of cases) {
    const r = run(args);
    assert.ok(r.status !== 0, `${args.join(' ')} should fail`);
    assert.match(r.stderr, message);
    assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.not.match(r.stderr, /at .*\.js:\d+/);
  }
  const help = run(['--help']);
  assert.is(help.status, 0);
  for (const flag of ['--methods', '--epochs', '--latent-dim', '--batch-size', '--lr', '--sigma2', '--train-size', '--seed', '--backend', '--out', '--resume', '--paper',
    '--decoder-init', '--validation-size', '--seeds'])
    assert.ok(help.stdout.includes(flag), `--help lists ${flag}`);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
