// The fused silent-ELBO op against the same expectation composed from generic engine ops
// (models/composite-elbo.ts), forward + backward, learnable variance, Bernoulli moments, B = 64,
// timed alone and with the moments' computation from logits, the two alternating;
// then the fused op's cost across latent dimension d and pixel count k (it should grow linearly
// in each). Run: node bench/silent-elbo.js [--backend cpu] [--quick]
//   node bench/silent-elbo.js --pytorch [--rounds 5] [--calls 10] [--dense conv1x1|linear]
// instead alternates three versions round by round, fused, our composite and PyTorch's composite
// (bench/pytorch/silent_elbo.py --serve, after checking that it computes our loss and gradients
// on our inputs), and prints each round's ratios and their medians (bench/silent-elbo-pytorch.ts).
import Benchmark from 'benchmark';
import * as sg from '../silentgrad.js';
import { backendNames, selectBackend } from '../backends/select.js';
import { oneOf, positiveInteger, scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';
import { compositeExpectedLogLikelihoodLearnable } from '../models/composite-elbo.js';
import { problem as makeProblem, type Problem } from './silent-elbo-problem.js';
import { compareWithPytorch } from './silent-elbo-pytorch.js';

const values = scriptFlags('bench/silent-elbo.js', 'The fused silent-ELBO op against its composite (and PyTorch\'s), and its cost across d and k.', {
  backend: { type: 'string', help: `one of ${backendNames.join(', ')}`, default: 'cpu' },
  quick: { type: 'boolean', help: 'fewer samples per case' },
  pytorch: { type: 'boolean', help: 'alternate fused, composite and PyTorch\'s composite (bench/pytorch/silent_elbo.py --serve) and print the ratios' },
  python: { type: 'string', help: 'the interpreter that has torch (with --pytorch)', default: '/usr/bin/python3' },
  dense: { type: 'string', help: 'PyTorch\'s contractions: conv1x1 (oneDNN) or linear (torch.mm, Debian\'s reference BLAS) (with --pytorch)', default: 'conv1x1' },
  rounds: { type: 'string', help: 'alternations per case (with --pytorch)', default: '5' },
  calls: { type: 'string', help: 'timed calls per sample, median taken (with --pytorch)', default: '10' },
}, (v) => ({
  backend: oneOf('backend', v.backend as string, backendNames), quick: v.quick === true,
  pytorch: v.pytorch === true, python: v.python as string, dense: oneOf('dense', v.dense as string, ['conv1x1', 'linear'] as const),
  rounds: positiveInteger('rounds', v.rounds as string), calls: positiveInteger('calls', v.calls as string),
}));
const { backend, reason } = await selectBackend(values.backend);
sg.setDefaultBackend(backend);
console.log(reason);

if (values.pytorch) {
  await compareWithPytorch(values);
  process.exit(0);
}

/** The benchmark's problem, as a function of the op (bench/silent-elbo-problem.ts). */
const problem = (batch: number, d: number, k: number, fromLogits: boolean): Problem['run'] => makeProblem(batch, d, k, fromLogits).run;

const results: string[] = [];
function run(name: string, fn: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    new Benchmark(name, { defer: true, minSamples: values.quick ? 3 : 10, maxTime: values.quick ? 1 : 4, fn: (d: { resolve(): void }) => void fn().then(() => d.resolve()) })
      .on('complete', (e: { target: Benchmark.Target }) => {
        const ms = e.target.stats!.mean * 1000;
        results.push(`${name.padEnd(44)} ${ms.toFixed(2).padStart(9)} ms ± ${e.target.stats!.rme.toFixed(1)}%`);
        resolve(ms);
      })
      .run({ async: true });
  });
}

/** Milliseconds per call of `fn`: the mean of `calls` calls in a row. */
async function timeCalls(fn: () => Promise<void>, calls: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await fn();
  return (performance.now() - t0) / calls;
}

// The issue's figure: the op alone (moments given), then with the moments' own computation
// from logits, which both versions share, in the timed region as in a training step. Fused and
// composite alternate, round by round, after a warm-up that compiles every kernel: on a shared
// machine whose speed drifts, only neighbouring samples compare.
for (const fromLogits of [false, true]) {
  const base = problem(64, 200, 784, fromLogits);
  const what = fromLogits ? 'with moments from logits' : 'op alone';
  const versions = { fused: () => base(sg.expectedLogLikelihoodLearnable), composite: () => base(compositeExpectedLogLikelihoodLearnable) };
  for (const fn of Object.values(versions)) await timeCalls(fn, 3);
  const times = { fused: [] as number[], composite: [] as number[] }, ratios: number[] = [];
  for (let round = 0; round < (values.quick ? 4 : 12); round++) {
    const fused = await timeCalls(versions.fused, 3), composite = await timeCalls(versions.composite, 3);
    times.fused.push(fused); times.composite.push(composite); ratios.push(fused / composite);
  }
  results.push(`${`fused     d=200 k=784 fwd+bwd, ${what}`.padEnd(44)} ${median(times.fused).toFixed(2).padStart(9)} ms (median of ${ratios.length} rounds of 3 calls)`);
  results.push(`${`composite d=200 k=784 fwd+bwd, ${what}`.padEnd(44)} ${median(times.composite).toFixed(2).padStart(9)} ms`);
  results.push(`fused / composite, ${what} = ${median(ratios).toFixed(2)} (median of the rounds' ratios; ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`);
}
for (const d of [50, 100, 200, 400]) {
  const timed = problem(64, d, 784, false);
  await run(`fused d=${d} k=784, op alone`, () => timed(sg.expectedLogLikelihoodLearnable));
}
for (const k of [196, 784, 3072]) {
  const timed = problem(64, 200, k, false);
  await run(`fused d=200 k=${k}, op alone`, () => timed(sg.expectedLogLikelihoodLearnable));
}
console.log(results.join('\n'));
