// The learnable-variance study's networks (paper App. B.2, Tables 6-8): the Table-7 encoder and
// the two nonlinear Gaussian decoders. Shapes, PyTorch state names, the log-likelihood against a
// plain-JS Gaussian density, float64 gradchecks with respect to z and every parameter, the
// floor and the starting value of sigma, batch norm's train/eval modes, and which estimators
// the types let a nonlinear decoder meet.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import type { GradcheckOptions, GradcheckResult } from '../engine/gradcheck.js';
import {
  DEFAULT_INITIAL_STD_DEV, GaussianLatent, MIN_STD_DEV, NonlinearGaussianDecoder, Reparameterization, SilentGradients,
  table6Decoder, table7Encoder, table8Decoder, type ReconstructionModel, type SamplingEstimator,
} from '../models/index.js';

const f64 = { dtype: 'float64' as const };
const uniformPixels = (rows: number, pixels: number, seed: number, dtype: sg.DType = 'float32'): Tensor =>
  sg.uniform([rows, pixels], new sg.RandomStream(seed), { dtype }); // dequantised pixels lie in [0, 1)
const latents = (rows: number, d: number, seed: number, dtype: sg.DType = 'float32'): Tensor =>
  sg.normal([rows, d], new sg.RandomStream(seed), { dtype });

/** sum_j -1/2 ((x - m) / s)^2 - log s - 1/2 log 2 pi per row, in plain JavaScript. */
function plainLogLikelihood(x: ArrayLike<number>, mean: ArrayLike<number>, std: ArrayLike<number>, rows: number): number[] {
  const pixels = x.length / rows;
  return Array.from({ length: rows }, (_, b) => {
    let total = 0;
    for (let j = b * pixels; j < (b + 1) * pixels; j++) {
      const u = (x[j]! - mean[j]!) / std[j]!;
      total += -0.5 * u * u - Math.log(std[j]!) - 0.5 * Math.log(2 * Math.PI);
    }
    return total;
  });
}

/**
 * Random weights in the last layer: the decoders start its raw-scale half at zero, which would
 * leave that path's gradient into the network untested.
 */
function randomizeHead(decoder: NonlinearGaussianDecoder, seed: number): void {
  const head = decoder.net.layers[decoder.net.layers.length - 1] as sg.nn.Conv2d | sg.nn.ConvTranspose2d;
  head.weight.assign(sg.scale(sg.normal(head.weight.shape, new sg.RandomStream(seed), { dtype: head.weight.dtype }), 0.3));
}

/** The layers of the decoder's network that hold parameters, with their field names. */
function parameterFields(decoder: NonlinearGaussianDecoder): [object, 'weight' | 'bias'][] {
  return decoder.net.layers.flatMap((layer): [object, 'weight' | 'bias'][] =>
    layer instanceof sg.nn.Linear || layer instanceof sg.nn.Conv2d || layer instanceof sg.nn.ConvTranspose2d || layer instanceof sg.nn.BatchNorm2d
      ? [[layer, 'weight'], [layer, 'bias']] : []);
}

/**
 * gradcheck of log p(x|z) with respect to z and the parameters `include` keeps (all by default):
 * gradcheck's leaves stand in for the layers' own tensors while the function runs.
 */
function gradcheckDecoder(
  decoder: NonlinearGaussianDecoder, z: Tensor, x: Tensor, options: GradcheckOptions = {},
  include: (layer: object, field: 'weight' | 'bias') => boolean = () => true,
): GradcheckResult {
  const fields = parameterFields(decoder).filter(([layer, field]) => include(layer, field));
  const originals = fields.map(([layer, field]) => Reflect.get(layer, field) as Tensor);
  const f = (zLeaf: Tensor, ...leaves: Tensor[]): Tensor => {
    fields.forEach(([layer, field], i) => Reflect.set(layer, field, leaves[i]));
    try {
      return decoder.logLikelihood(zLeaf, x);
    } finally {
      fields.forEach(([layer, field], i) => Reflect.set(layer, field, originals[i]));
    }
  };
  return sg.gradcheck(f, [z, ...originals], options);
}

test('table7Encoder maps [B, 3, 32, 32] to [B, outputs], BatchNorm after each ReLU, PyTorch state names', () => {
  const encoder = table7Encoder({ channels: 2, outputs: 10, stream: new sg.RandomStream(1) });
  const out = encoder.forward(sg.reshape(uniformPixels(3, 3 * 32 * 32, 2), [3, 3, 32, 32]));
  assert.equal(out.shape, [3, 10]);
  const kinds = encoder.layers.map((m) => m.constructor.name);
  assert.equal(kinds, ['Conv2d', 'Lambda', 'BatchNorm2d', 'Conv2d', 'Lambda', 'BatchNorm2d', 'Conv2d', 'Lambda', 'BatchNorm2d', 'Conv2d', 'Lambda', 'BatchNorm2d', 'Lambda', 'Linear']);
  const convs = encoder.layers.filter((m): m is sg.nn.Conv2d => m instanceof sg.nn.Conv2d);
  assert.equal(convs.map((c) => c.weight.shape), [[2, 3, 4, 4], [4, 2, 4, 4], [8, 4, 4, 4], [16, 8, 4, 4]], 'c, 2c, 4c, 8c');
  assert.equal(convs.map((c) => [c.stride, c.padding]), [[2, 1], [2, 1], [2, 1], [1, 0]]);
  const names = [...encoder.stateDict().keys()];
  assert.equal(names.slice(0, 7), ['0.weight', '0.bias', '2.weight', '2.bias', '2.running_mean', '2.running_var', '2.num_batches_tracked']);
  assert.equal(names.slice(-2), ['13.weight', '13.bias']);
  assert.throws(() => table7Encoder({ channels: 2, outputs: 4, stream: new sg.RandomStream(1), height: 28, width: 28 }), /too small/);
});

test('table6Decoder: mean and sigma [B, 784] for MNIST, [B, C*H*W] channel-major for other shapes', () => {
  const decoder = table6Decoder({ latentDim: 5, channels: 3, stream: new sg.RandomStream(3) });
  const z = latents(2, 5, 4);
  assert.equal(decoder.decode(z).shape, [2, 784]);
  assert.equal(decoder.stdDev(z).shape, [2, 784]);
  assert.equal(decoder.logLikelihood(z, uniformPixels(2, 784, 5)).shape, [2]);
  const convs = decoder.net.layers.filter((m): m is sg.nn.Conv2d => m instanceof sg.nn.Conv2d);
  assert.equal(convs.map((c) => c.weight.shape), [[3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3], [2, 3, 1, 1]]);
  assert.equal((decoder.net.layers[0] as sg.nn.Linear).weight.shape, [3 * 28 * 28, 5]);
  // Channel-major: the mean is output channel 0 of every image channel's pair, in order.
  const colour = table6Decoder({ latentDim: 2, channels: 2, imageChannels: 3, height: 5, width: 4, stream: new sg.RandomStream(6) });
  const zc = latents(2, 2, 7);
  const head = colour.net.forward(zc).dataSync(); // [2, 6, 5, 4]
  const mean = colour.decode(zc).dataSync(); // [2, 60]
  for (let b = 0; b < 2; b++)
    for (let i = 0; i < 60; i++) assert.is(mean[b * 60 + i], head[b * 120 + i], `example ${b} pixel ${i}`);
  assert.throws(() => colour.logLikelihood(zc, uniformPixels(2, 59, 8)), /x must be \[2, 60\]/);
});

test('table8Decoder: 1 -> 4 -> 8 -> 16 -> 32 to [B, 3072], widths 8c -> 4c -> 2c -> c, batch norm names', () => {
  const decoder = table8Decoder({ latentDim: 4, channels: 2, stream: new sg.RandomStream(9) });
  const z = latents(3, 4, 10);
  assert.equal(decoder.decode(z).shape, [3, 3072]);
  assert.equal(decoder.stdDev(z).shape, [3, 3072]);
  assert.equal(decoder.logLikelihood(z, uniformPixels(3, 3072, 11)).shape, [3]);
  const ups = decoder.net.layers.filter((m): m is sg.nn.ConvTranspose2d => m instanceof sg.nn.ConvTranspose2d);
  assert.equal(ups.map((c) => c.weight.shape), [[16, 8, 4, 4], [8, 4, 4, 4], [4, 2, 4, 4], [2, 6, 4, 4]]);
  assert.equal(ups.map((c) => [c.stride, c.padding]), [[1, 0], [2, 1], [2, 1], [2, 1]]);
  const names = [...decoder.stateDict().keys()];
  assert.ok(names.includes('net.4.num_batches_tracked') && names.includes('net.11.bias'), names.join(' '));
  assert.equal(names.filter((n) => n.endsWith('num_batches_tracked')), ['net.4.num_batches_tracked', 'net.7.num_batches_tracked', 'net.10.num_batches_tracked']);
});

test('logLikelihood is the per-pixel Gaussian density of decode() and stdDev(), summed', () => {
  const six = table6Decoder({ latentDim: 3, channels: 2, height: 6, width: 5, stream: new sg.RandomStream(12), ...f64 });
  const eight = table8Decoder({ latentDim: 3, channels: 1, stream: new sg.RandomStream(13), ...f64 });
  for (const [decoder, pixels] of [[six, 30], [eight, 3072]] as const) {
    const z = latents(3, 3, 14, 'float64'), x = uniformPixels(3, pixels, 15, 'float64');
    decoder.eval(); // batch norm from running statistics, so the three calls see the same network
    const expected = plainLogLikelihood(x.dataSync(), decoder.decode(z).dataSync(), decoder.stdDev(z).dataSync(), 3);
    const got = decoder.logLikelihood(z, x).dataSync();
    for (let b = 0; b < 3; b++) assert.ok(Math.abs(got[b]! - expected[b]!) < 1e-9 * Math.abs(expected[b]!), `${got[b]} vs ${expected[b]}`);
    const { mean, stdDev } = decoder.gaussian(z);
    assert.equal([...mean.dataSync()], [...decoder.decode(z).dataSync()]);
    assert.equal([...stdDev.dataSync()], [...decoder.stdDev(z).dataSync()]);
  }
});

test('gradients of log p(x|z) with respect to z and every parameter pass gradcheck (Table 6, float64)', () => {
  const decoder = table6Decoder({ latentDim: 3, channels: 2, height: 4, width: 3, stream: new sg.RandomStream(16), initialStdDev: 0.3, ...f64 });
  randomizeHead(decoder, 161);
  const result = gradcheckDecoder(decoder, latents(2, 3, 17, 'float64'), uniformPixels(2, 12, 18, 'float64'));
  assert.ok(result.ok, JSON.stringify(result.worst));
});

test('gradients pass gradcheck through Table 8, batch norm in training and in eval mode (float64)', () => {
  const decoder = table8Decoder({ latentDim: 2, channels: 1, stream: new sg.RandomStream(19), initialStdDev: 0.5, ...f64 });
  randomizeHead(decoder, 191);
  const z = latents(3, 2, 20, 'float64'), x = uniformPixels(3, 3072, 21, 'float64');
  const options = { eps: 1e-6, atol: 1e-5, rtol: 1e-5 };
  // For time, the three inner transposed convolutions' weights (670 numbers) are left out: their
  // op is gradchecked in ops.test.ts; every bias, batch norm, the Linear and the head are in.
  const head = decoder.net.layers[decoder.net.layers.length - 1]!;
  const include = (layer: object, field: 'weight' | 'bias'): boolean => !(layer instanceof sg.nn.ConvTranspose2d && field === 'weight' && layer !== head);
  const training = gradcheckDecoder(decoder, z, x, options, include);
  assert.ok(training.ok, `train: ${JSON.stringify(training.worst)}`);
  decoder.eval();
  const evaluation = gradcheckDecoder(decoder, z, x, options, include);
  assert.ok(evaluation.ok, `eval: ${JSON.stringify(evaluation.worst)}`);
});

test('sigma starts at initialStdDev for every z and pixel, learns from there, never falls below the floor', () => {
  const z = latents(4, 6, 22);
  const x = uniformPixels(4, 3072, 25);
  for (const initialStdDev of [DEFAULT_INITIAL_STD_DEV, 0.3]) {
    const decoders = [
      table6Decoder({ latentDim: 6, channels: 4, stream: new sg.RandomStream(23), initialStdDev }),
      table8Decoder({ latentDim: 6, channels: 4, stream: new sg.RandomStream(23), initialStdDev }),
    ];
    for (const decoder of decoders) {
      const std = decoder.stdDev(z).dataSync();
      assert.ok(std.every((s) => Math.abs(s / initialStdDev - 1) < 1e-5), `sigma in [${Math.min(...std)}, ${Math.max(...std)}], not ${initialStdDev}`);
      const head = decoder.net.layers[decoder.net.layers.length - 1] as sg.nn.Conv2d | sg.nn.ConvTranspose2d;
      sg.backward(sg.sum(decoder.logLikelihood(z, decoder.pixels === 3072 ? x : sg.slice(x, 1, 0, decoder.pixels))));
      const grad = head.weight.grad!.dataSync(), weight = head.weight.dataSync();
      const rawScale = (i: number): boolean => weight[i] === 0;
      assert.ok(grad.some((g, i) => rawScale(i) && g !== 0), 'the zero raw-scale weights get a gradient');
    }
  }
  const decoder = table8Decoder({ latentDim: 6, channels: 2, stream: new sg.RandomStream(24) });
  const last = decoder.net.layers[decoder.net.layers.length - 1] as sg.nn.ConvTranspose2d;
  randomizeHead(decoder, 241);
  for (const raw of [-100, 100]) {
    last.bias!.assign(sg.tensor([0, 0, 0, raw, raw, raw], [6]));
    const std = decoder.stdDev(z).dataSync();
    assert.ok(std.every((s) => s >= MIN_STD_DEV * (1 - 1e-6)), 'the floor holds');
    if (raw < 0) assert.ok(std.every((s) => Math.abs(s - MIN_STD_DEV) < 1e-6), 'a very negative raw scale sits on the floor');
    const ll = decoder.logLikelihood(z, x).dataSync();
    assert.ok(ll.every(Number.isFinite), `raw ${raw}: log-likelihood ${ll[0]}`);
  }
  assert.throws(() => table6Decoder({ latentDim: 2, channels: 2, stream: new sg.RandomStream(1), initialStdDev: MIN_STD_DEV }), /must exceed minStdDev/);
});

test('batch norm: statistics move in training only, and eval reads them', () => {
  const decoder = table8Decoder({ latentDim: 3, channels: 1, stream: new sg.RandomStream(26) });
  const norm = decoder.net.layers[4] as sg.nn.BatchNorm2d;
  const z = latents(4, 3, 27);
  const trained = decoder.decode(z).dataSync();
  assert.equal([...norm.numBatchesTracked.dataSync()], [1]);
  const runningMean = [...norm.runningMean.dataSync()];
  assert.ok(runningMean.some((v) => v !== 0), 'training moved the running mean');
  decoder.eval();
  const evaluated = decoder.decode(z).dataSync();
  assert.equal([...norm.numBatchesTracked.dataSync()], [1], 'eval counts no batch');
  assert.equal([...norm.runningMean.dataSync()], runningMean, 'eval leaves the statistics alone');
  assert.ok(evaluated.some((v, i) => Math.abs(v - trained[i]!) > 1e-4), 'eval normalises with the running statistics, not the batch');
  decoder.train();
  decoder.decode(z);
  assert.equal([...norm.numBatchesTracked.dataSync()], [2]);
});

test('a sampling estimator trains a nonlinear decoder; Silent Gradients refuses one, in the types and at run time', () => {
  const decoder = table6Decoder({ latentDim: 3, channels: 2, height: 4, width: 4, stream: new sg.RandomStream(28) });
  const encoderOutput = sg.tensor(Array.from({ length: 2 * 6 }, (_, i) => Math.sin(i)), [2, 6], { requiresGrad: true });
  const x = uniformPixels(2, 16, 29);
  const estimator: SamplingEstimator = new Reparameterization();
  const optimizer = new sg.AdamW(decoder.parameters(), { lr: 1e-2 });
  const losses: number[] = [];
  for (let step = 0; step < 30; step++) {
    const { loss } = estimator.loss(new GaussianLatent().distribution(encoderOutput), x, decoder, new sg.RandomStream(30));
    losses.push(loss.dataSync()[0]!);
    sg.backward(loss);
    assert.ok(encoderOutput.grad && encoderOutput.grad.dataSync().every(Number.isFinite), 'the encoder gets a gradient');
    encoderOutput.grad = null;
    optimizer.step();
    optimizer.zeroGrad();
  }
  assert.ok(losses[29]! < losses[0]!, `loss ${losses[0]} -> ${losses[29]}`);

  const silent = new SilentGradients(new GaussianLatent());
  const holdsSampling = (e: SamplingEstimator): string => e.name;
  // @ts-expect-error Silent Gradients needs the closed-form expectation that a nonlinear decoder lacks
  assert.throws(() => holdsSampling(silent) && silent.loss(new GaussianLatent().distribution(encoderOutput), x, decoder as unknown as ReconstructionModel, new sg.RandomStream(1)),
    /SilentGradients: the decoder \(NonlinearGaussianDecoder\) has no closed-form expectedLogLikelihood/);
});

test.run();
