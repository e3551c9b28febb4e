// The fused silent-ELBO op against the same expectation composed from generic engine ops
// (models/composite-elbo.ts), forward + backward, learnable variance, Bernoulli moments, B = 64,
// timed alone and with the moments' computation from logits, the two alternating;
// then the fused op's cost across latent dimension d and pixel count k (it should grow linearly
// in each). Run: node bench/silent-elbo.js [--backend cpu] [--quick]
import Benchmark from 'benchmark';
import * as sg from '../engine/index.js';
import { backendNames, selectBackend } from '../backends/select.js';
import { oneOf, scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';
import { compositeExpectedLogLikelihoodLearnable } from '../models/composite-elbo.js';
import type { LatentMoments, LearnableDecoderWeights, Tensor } from '../engine/index.js';

const values = scriptFlags('bench/silent-elbo.js', 'The fused silent-ELBO op against its composite, and its cost across d and k.', {
  backend: { type: 'string', help: `one of ${backendNames.join(', ')}`, default: 'cpu' },
  quick: { type: 'boolean', help: 'fewer samples per case' },
}, (v) => ({ backend: oneOf('backend', v.backend as string, backendNames), quick: v.quick === true }));
const { backend, reason } = await selectBackend(values.backend);
sg.setDefaultBackend(backend);
console.log(reason);

type Elbo = (m: LatentMoments, w: LearnableDecoderWeights, x: Tensor) => Tensor;

/**
 * A Bernoulli posterior, a learnable decoder and data: one forward+backward of the expected
 * log-likelihood. `fromLogits` also times the moments' computation from leaf logits and its
 * backward (as in training); otherwise the moments are the leaves, so only the op is timed.
 */
function problem(batch: number, d: number, k: number, fromLogits: boolean): (elbo: Elbo) => Promise<void> {
  const stream = new sg.RandomStream(1);
  const logits = sg.normal([batch, d], stream).keep();
  logits.requiresGrad = true;
  const leaf = (t: Tensor): Tensor => { t.requiresGrad = true; return t.keep(); };
  const decoder = {
    wMu: leaf(sg.scale(sg.normal([k, d], stream), 0.05)), bMu: leaf(sg.uniform([k], stream)),
    wA: leaf(sg.scale(sg.normal([k, d], stream), 0.01)), bA: leaf(sg.shift(sg.uniform([k], stream), 3)),
  };
  const x = sg.uniform([batch, k], stream).keep();
  const bernoulliMoments = (): LatentMoments => {
    const p = sg.sigmoid(logits), c2 = sg.mul(p, sg.sigmoid(sg.neg(logits)));
    return { mean: p, c2, c3: sg.mul(c2, sg.shift(sg.scale(p, -2), 1)), k4: sg.mul(c2, sg.shift(sg.scale(c2, -6), 1)) };
  };
  const fixed = fromLogits ? null : sg.noGrad(() => {
    const m = bernoulliMoments();
    return { mean: leaf(m.mean), c2: leaf(m.c2), c3: leaf(m.c3!), k4: leaf(m.k4!) };
  });
  const leaves = [logits, ...Object.values(decoder), ...(fixed ? Object.values(fixed) : [])];
  return async (elbo) => {
    const loss = sg.tidy(() => {
      const value = sg.neg(sg.sum(elbo(fixed ?? bernoulliMoments(), decoder, x)));
      sg.backward(value);
      return sg.detach(value);
    });
    await loss.data(); // waits for the device, so asynchronous backends are timed honestly
    loss.dispose();
    for (const t of leaves) { t.grad?.dispose(); t.grad = null; }
  };
}

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
