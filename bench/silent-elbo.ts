// The fused silent-ELBO op against the same expectation composed from generic engine ops
// (models/composite-elbo.ts), forward + backward, learnable variance, Bernoulli moments, B = 64;
// then the fused op's cost across latent dimension d and pixel count k (it should grow linearly
// in each). Run: node bench/silent-elbo.js [--backend cpu] [--quick]
import Benchmark from 'benchmark';
import { parseArgs } from 'node:util';
import * as sg from '../engine/index.js';
import { backendNames, selectBackend, type BackendName } from '../backends/select.js';
import { compositeExpectedLogLikelihoodLearnable } from '../models/composite-elbo.js';
import type { LatentMoments, LearnableDecoderWeights, Tensor } from '../engine/index.js';

const { values } = parseArgs({ options: { backend: { type: 'string', default: 'cpu' }, quick: { type: 'boolean', default: false } } });
if (!backendNames.includes(values.backend as BackendName)) throw new Error(`--backend must be one of ${backendNames.join(', ')}`);
const { backend, reason } = await selectBackend(values.backend as BackendName);
sg.setDefaultBackend(backend);
console.log(reason);

type Elbo = (m: LatentMoments, w: LearnableDecoderWeights, x: Tensor) => Tensor;

/** A Bernoulli posterior from leaf logits, a learnable decoder, data: one forward+backward. */
function problem(batch: number, d: number, k: number): (elbo: Elbo) => Promise<void> {
  const stream = new sg.RandomStream(1);
  const logits = sg.normal([batch, d], stream);
  logits.requiresGrad = true;
  const leaf = (t: Tensor): Tensor => { t.requiresGrad = true; return t.keep(); };
  const decoder = {
    wMu: leaf(sg.scale(sg.normal([k, d], stream), 0.05)), bMu: leaf(sg.uniform([k], stream)),
    wA: leaf(sg.scale(sg.normal([k, d], stream), 0.01)), bA: leaf(sg.shift(sg.uniform([k], stream), 3)),
  };
  const x = sg.uniform([batch, k], stream).keep();
  return async (elbo) => {
    const loss = sg.tidy(() => {
      const p = sg.sigmoid(logits), c2 = sg.mul(p, sg.sigmoid(sg.neg(logits)));
      const moments = { mean: p, c2, c3: sg.mul(c2, sg.shift(sg.scale(p, -2), 1)), k4: sg.mul(c2, sg.shift(sg.scale(c2, -6), 1)) };
      const value = sg.neg(sg.sum(elbo(moments, decoder, x)));
      sg.backward(value);
      return sg.detach(value);
    });
    await loss.data(); // waits for the device, so asynchronous backends are timed honestly
    loss.dispose();
    for (const t of [logits, ...Object.values(decoder)]) { t.grad?.dispose(); t.grad = null; }
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

const base = problem(64, 200, 784);
const fused = await run('fused     B=64 d=200 k=784 fwd+bwd', () => base(sg.expectedLogLikelihoodLearnable));
const composite = await run('composite B=64 d=200 k=784 fwd+bwd', () => base(compositeExpectedLogLikelihoodLearnable));
results.push(`fused / composite = ${(fused / composite).toFixed(2)}`);
for (const d of [50, 100, 200, 400]) await run(`fused d=${d} k=784`, () => problem(64, d, 784)(sg.expectedLogLikelihoodLearnable));
for (const k of [196, 784, 3072]) await run(`fused d=200 k=${k}`, () => problem(64, 200, k)(sg.expectedLogLikelihoodLearnable));
console.log(results.join('\n'));
