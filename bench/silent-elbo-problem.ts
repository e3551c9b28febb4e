// The silent-ELBO benchmark's problem: a Bernoulli posterior, a learnable decoder and data
// (RandomStream(1), so every run and every engine sees the same numbers), and one
// forward+backward of the expected log-likelihood per call.
import * as sg from '../silentgrad.js';
import type { LatentMoments, LearnableDecoderWeights, Tensor } from '../silentgrad.js';

export type Elbo = (m: LatentMoments, w: LearnableDecoderWeights, x: Tensor) => Tensor;

/** Names of the inputs, as bench/pytorch/silent_elbo.py's `load` request names them. */
export const inputNames = ['logits', 'wMu', 'bMu', 'wA', 'bA', 'x'] as const;
export type InputName = typeof inputNames[number];

export interface Problem {
  /** One forward+backward of `elbo`; gradients are dropped after. */
  run(elbo: Elbo): Promise<void>;
  /** The loss (minus the batch's sum) and the gradients of the leaves, moments from logits. */
  valueAndGrads(elbo: Elbo): Promise<{ loss: number; grads: Record<Exclude<InputName, 'x'>, Float32Array> }>;
  inputs: Record<InputName, Tensor>;
}

/**
 * `fromLogits` also times the moments' computation from leaf logits and its backward (as in
 * training); otherwise the moments are leaves, so only the op is timed.
 */
export function problem(batch: number, d: number, k: number, fromLogits: boolean): Problem {
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
  const lossOf = (elbo: Elbo, moments: LatentMoments): Tensor => sg.tidy(() => {
    const value = sg.neg(sg.sum(elbo(moments, decoder, x)));
    sg.backward(value);
    return sg.detach(value);
  });
  const dropGrads = (): void => { for (const t of leaves) { t.grad?.dispose(); t.grad = null; } };
  return {
    async run(elbo) {
      const loss = lossOf(elbo, fixed ?? bernoulliMoments());
      await loss.data(); // waits for the device, so asynchronous backends are timed honestly
      loss.dispose();
      dropGrads();
    },
    async valueAndGrads(elbo) {
      dropGrads();
      const loss = lossOf(elbo, bernoulliMoments());
      const value = (await loss.data())[0]!;
      loss.dispose();
      const read = async (t: Tensor): Promise<Float32Array> => Float32Array.from(await t.grad!.data());
      const grads = { logits: await read(logits), wMu: await read(decoder.wMu), bMu: await read(decoder.bMu), wA: await read(decoder.wA), bA: await read(decoder.bA) };
      dropGrads();
      return { loss: value, grads };
    },
    inputs: { logits, ...decoder, x },
  };
}
