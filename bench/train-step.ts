// The Table-2 training step (Table-5 encoder, 32 channels, linear decoder, d = 200, batch 64,
// silent ELBO loss, AdamW) in milliseconds, for Gaussian and Bernoulli latents: the figure
// compared with bench/pytorch/train_step.py measured in the same session.
//   node bench/train-step.js [--backend cpu] [--channels 32]
//   node bench/train-step.js --pytorch [--rounds 5] [--steps 8]
// With --pytorch, PyTorch's step (bench/pytorch/train_step.py --serve, a process kept warm) and
// ours are timed in alternation, round after round, and each round's ratio is printed: on a
// shared machine whose speed drifts by tens of percent within minutes, only ratios of
// neighbouring samples mean anything, and two runs a minute apart do not give them.
import Benchmark from 'benchmark';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as sg from '../silentgrad.js';
import { backendNames, selectBackend } from '../backends/select.js';
import { loadMnist } from '../experiments/data/mnist.js';
import { FixedVarianceVae, methodNames, type MethodName } from '../experiments/vae.js';
import { listOf, oneOf, positiveInteger, scriptFlags, UsageError } from '../experiments/cli.js';
import { median } from './stats.js';

/** The PyTorch script's latent type for each of our methods it reproduces. */
const pytorchLatent: Partial<Record<MethodName, string>> = { 'silent-gaussian': 'gaussian', 'silent-bernoulli': 'bernoulli' };

const flags = scriptFlags('bench/train-step.js', 'Milliseconds per training step of the Table-2 model (batch 64, d = 200), per method.', {
  backend: { type: 'string', help: `one of ${backendNames.join(', ')}`, default: 'cpu' },
  channels: { type: 'string', help: 'encoder channels', default: '32' },
  methods: { type: 'string', help: `comma list of ${methodNames.join(', ')}`, default: 'silent-gaussian,silent-bernoulli' },
  pytorch: { type: 'boolean', help: 'alternate with PyTorch\'s step (bench/pytorch/train_step.py --serve) and print the ratios' },
  python: { type: 'string', help: 'the interpreter that has torch (with --pytorch)', default: '/usr/bin/python3' },
  rounds: { type: 'string', help: 'alternations per method (with --pytorch)', default: '5' },
  steps: { type: 'string', help: 'timed steps per sample, median taken (with --pytorch)', default: '8' },
}, (v) => {
  const parsed = {
    backend: oneOf('backend', v.backend as string, backendNames),
    channels: positiveInteger('channels', v.channels as string),
    methods: listOf('methods', v.methods as string, methodNames),
    pytorch: v.pytorch === true,
    python: v.python as string,
    rounds: positiveInteger('rounds', v.rounds as string),
    steps: positiveInteger('steps', v.steps as string),
  };
  const unmatched = parsed.methods.filter((m) => !(m in pytorchLatent));
  if (parsed.pytorch && unmatched.length > 0) throw new UsageError(`--pytorch: the PyTorch script has no counterpart of ${unmatched.join(', ')} (only ${Object.keys(pytorchLatent).join(', ')})`);
  if (parsed.pytorch && parsed.channels !== 32) throw new UsageError('--pytorch: the PyTorch script runs 32 channels only');
  return parsed;
});

const { backend, reason } = await selectBackend(flags.backend);
sg.setDefaultBackend(backend);
console.log(reason);

const batchSize = 64;
const train = loadMnist('train', { limit: batchSize });
const config = {
  latentDim: 200, channels: flags.channels, sigma2: 0.01, lr: 1e-4, weightDecay: 0.01,
  batchSize, seed: 0, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled' as const,
};

/** One training step of `method` per call (the split holds exactly one batch). */
function stepper(method: MethodName): () => Promise<void> {
  const vae = new FixedVarianceVae(method, config, backend);
  let epoch = 0;
  return async () => { await vae.trainEpoch(train, ++epoch, () => {}); };
}

if (flags.pytorch) await alternateWithPytorch();
else benchmarkSuite();

function benchmarkSuite(): void {
  const suite = new Benchmark.Suite();
  for (const method of flags.methods) {
    const step = stepper(method);
    suite.add(`train step ${method} (C=${config.channels}, d=200, B=64)`, {
      defer: true,
      minSamples: 10,
      fn: (deferred: { resolve(): void }) => { void step().then(() => deferred.resolve()); },
    });
  }
  suite
    .on('cycle', (event: { target: Benchmark.Target }) => {
      const t = event.target;
      // The median too: on a shared machine a few slow samples move the mean (and PyTorch's
      // script reports medians).
      const sample = t.stats!.sample;
      console.log(`${t.name}: ${(t.stats!.mean * 1000).toFixed(1)} ms ± ${t.stats!.rme.toFixed(1)}%, median ${(median(sample) * 1000).toFixed(1)} ms (${sample.length} samples)`);
    })
    .run({ async: true });
}

/** bench/pytorch/train_step.py --serve: one request line, one JSON answer line. */
async function pytorchServer(): Promise<{ ask(latent: string, steps: number): Promise<Record<string, unknown>>; close(): void }> {
  const script = fileURLToPath(new URL('./pytorch/train_step.py', import.meta.url));
  const child = spawn(flags.python, [script, '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<never>((_, reject) => {
    child.on('error', (e) => reject(new Error(`--pytorch: could not start ${flags.python}: ${e.message}`)));
    child.on('exit', (code) => reject(new Error(`--pytorch: ${flags.python} ${script} --serve exited (${code}); is torch installed? (apt-get install python3-torch)`)));
  });
  const next = async (): Promise<Record<string, unknown>> => {
    const line = await Promise.race([lines.next(), exited]);
    if (line.done) return exited;
    const answer = JSON.parse(line.value) as Record<string, unknown>;
    if (typeof answer.error === 'string') throw new Error(`--pytorch: ${answer.error}`);
    return answer;
  };
  const hello = await next();
  console.log(`PyTorch ${String(hello.torch)}, ${String(hello.threads)} threads, allocator ${JSON.stringify(hello.malloc_env)}; oneDNN dense layers (1x1 convolutions)`);
  return {
    ask: async (latent, steps) => { child.stdin.write(`${latent} ${steps}\n`); return next(); },
    close: () => { exited.catch(() => {}); child.stdin.end(); },
  };
}

async function alternateWithPytorch(): Promise<void> {
  const torch = await pytorchServer();
  const ratios = new Map<MethodName, number[]>();
  const ours = new Map<MethodName, number[]>(), theirs = new Map<MethodName, number[]>();
  const steps = new Map(flags.methods.map((m) => [m, stepper(m)] as const));
  // Page faults per step too: on this VM a process that sat idle while the other ran can find
  // its memory reclaimed and fault it back in, which is time the step's own work did not cost.
  console.log(`round  method            silentgrad ms  PyTorch ms  ratio  page faults/step (ours, PyTorch's)  others' CPU in PyTorch's timing  (medians of ${flags.steps} steps each, after 2 warm-up steps)`);
  for (let round = 1; round <= flags.rounds; round++) {
    for (const method of flags.methods) {
      const step = steps.get(method)!;
      for (let i = 0; i < 2; i++) await step();
      const times: number[] = [], faults = process.resourceUsage().minorPageFault;
      for (let i = 0; i < flags.steps; i++) {
        const t0 = performance.now();
        await step();
        times.push(performance.now() - t0);
      }
      const us = median(times), ourFaults = (process.resourceUsage().minorPageFault - faults) / flags.steps;
      const answer = await torch.ask(pytorchLatent[method]!, flags.steps);
      const them = answer.median_ms as number, theirFaults = answer.page_faults_per_step as number, others = answer.others_cpu as number | null;
      for (const [table, value] of [[ours, us], [theirs, them], [ratios, us / them]] as const) table.set(method, [...(table.get(method) ?? []), value]);
      console.log(`${String(round).padStart(5)}  ${method.padEnd(16)}  ${us.toFixed(1).padStart(13)}  ${them.toFixed(1).padStart(10)}  ${(us / them).toFixed(2).padStart(5)}  ${ourFaults.toFixed(0).padStart(8)} ${theirFaults.toFixed(0).padStart(8)}  ${others === null ? '?' : `${(100 * others).toFixed(0)}%`}`);
    }
  }
  torch.close();
  for (const method of flags.methods) {
    const r = ratios.get(method)!;
    console.log(`${method}: median ratio ${median(r).toFixed(2)} (rounds: ${r.map((x) => x.toFixed(2)).join(', ')}); silentgrad median ${median(ours.get(method)!).toFixed(1)} ms, PyTorch ${median(theirs.get(method)!).toFixed(1)} ms`);
  }
  process.exit(0);
}
