// The Table-2 study end to end on a few hundred real MNIST images: the files it writes, that
// training improves on the untrained model, that a killed run resumes to identical numbers,
// and that bad flags get one-line errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const script = join(import.meta.dirname, '..', 'experiments', 'fixed-variance.js');
const tiny = ['--epochs', '2', '--train-size', '256', '--test-size', '100', '--channels', '4', '--latent-dim', '16', '--backend', 'cpu'];
const dir = mkdtempSync(join(tmpdir(), 'silentgrad-fv-'));

interface Epoch { epoch: number; bpd: number; msePosteriorMean: number; mseExpected: number; kl: number; trainLoss: number | null; seconds: number }
type Results = { methods: Record<string, { epochs: Epoch[] }>; config: Record<string, unknown>; commit: string; backend: string };
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
  for (const [name, m] of Object.entries(results.methods)) {
    assert.ok(existsSync(join(out, 'checkpoints', `${name}.safetensors`)), `${name} checkpoint`);
    assert.equal(m.epochs.map((e) => e.epoch), [0, 1, 2]);
    for (const e of m.epochs)
      for (const v of [e.bpd, e.msePosteriorMean, e.mseExpected, e.kl]) assert.ok(Number.isFinite(v), `${name} epoch ${e.epoch}: ${JSON.stringify(e)}`);
    assert.ok(m.epochs[2]!.bpd < m.epochs[0]!.bpd, `${name}: BPD ${m.epochs[2]!.bpd} after training vs ${m.epochs[0]!.bpd} untrained`);
    // The expected squared error under q is the posterior-mean error plus the decoder-weighted variance.
    assert.ok(m.epochs[2]!.mseExpected >= m.epochs[2]!.msePosteriorMean);
  }
  const table = readFileSync(join(out, 'results.md'), 'utf8');
  assert.match(table, /\| Continuous Silent Gradients \| \d+\.\d{3} \|/);
  assert.match(table, /paper BPD/);
});

const metrics = (r: Results) => Object.fromEntries(Object.entries(r.methods).map(([n, m]) => [n, m.epochs.map(({ seconds: _s, ...rest }) => rest)]));

test('a run killed after its first checkpoint resumes to the same numbers', async () => {
  const methods = ['--methods', 'reparam,reinforce'];
  const reference = join(dir, 'reference');
  assert.is(run([...tiny, ...methods, '--out', reference]).status, 0);
  const out = join(dir, 'killed');
  const child = spawn(process.execPath, [script, ...tiny, ...methods, '--out', out], { stdio: 'ignore' });
  const checkpoint = join(out, 'checkpoints', 'reparam.safetensors');
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(checkpoint)) { clearInterval(poll); child.kill('SIGKILL'); resolve(); }
    }, 5);
    child.on('exit', () => { clearInterval(poll); reject(new Error('the run finished before it could be killed')); });
  });
  await new Promise((resolve) => child.on('exit', resolve));
  const resumed = run([...tiny, ...methods, '--out', out, '--resume']);
  assert.is(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /reparam: resumed after epoch 1/);
  assert.equal(metrics(read(out)), metrics(read(reference)));
});

test('bad flags and missing data give one-line errors and a non-zero exit', () => {
  const cases: [string[], RegExp][] = [
    [['--epochs', 'two'], /--epochs must be a positive integer, got 'two'/],
    [['--methods', 'silent,vq'], /--methods: 'silent' is not one of silent-gaussian, reparam/],
    [['--backend', 'tpu'], /--backend must be one of auto, cpu, webgpu, gpujs; got 'tpu'/],
    [['--frobnicate'], /Unknown option '--frobnicate'/],
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
  for (const flag of ['--methods', '--epochs', '--latent-dim', '--batch-size', '--lr', '--sigma2', '--train-size', '--seed', '--backend', '--out', '--resume', '--paper'])
    assert.ok(help.stdout.includes(flag), `--help lists ${flag}`);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
