// Every differentiable op in the registry passes float64 gradcheck on random shapes
// (broadcasting, strided views, convolution strides and paddings); every other op says it
// has no gradient. A new op without an entry here fails the first test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';

const stream = new sg.RandomStream(2024);
const f64 = { dtype: 'float64' as const };
const randn = (...shape: number[]): Tensor => sg.normal(shape, stream, f64);
const positive = (...shape: number[]): Tensor => sg.shift(sg.uniform(shape, stream, f64), 0.5);
/** Values away from the kinks of relu/abs/step so finite differences are smooth. */
const awayFromZero = (...shape: number[]): Tensor => {
  const u = sg.uniform(shape, stream, f64);
  return sg.mul(sg.shift(u, 0.2), sg.shift(sg.scale(sg.greater(u, sg.full(shape, 0.5, f64)), 2), -1));
};

type Case = { inputs: () => Tensor[]; f: (...xs: Tensor[]) => Tensor };
const cases: Record<string, Case[]> = {
  contiguous: [{ inputs: () => [randn(3, 4)], f: (x) => sg.contiguous(sg.transpose(x!)) }],
  clone: [{ inputs: () => [randn(2, 3)], f: (x) => sg.clone(x!) }],
  reshape: [{ inputs: () => [randn(2, 6)], f: (x) => sg.reshape(sg.transpose(x!), [3, -1]) }],
  permute: [{ inputs: () => [randn(2, 3, 4)], f: (x) => sg.permute(x!, [2, 0, 1]) }],
  expand: [{ inputs: () => [randn(3, 1)], f: (x) => sg.expand(x!, [2, 3, 4]) }],
  slice: [{ inputs: () => [randn(4, 5)], f: (x) => sg.slice(x!, 1, 1, 4) }],
  padSlice: [{ inputs: () => [randn(2, 3)], f: (x) => sg.padSlice(x!, [5, 3], 0, 2) }],
  concat: [{ inputs: () => [randn(2, 3), randn(2, 1), randn(2, 2)], f: (a, b, c) => sg.concat([a!, b!, c!], 1) }],
  neg: [{ inputs: () => [randn(3, 2)], f: (x) => sg.neg(x!) }],
  exp: [{ inputs: () => [randn(3, 2)], f: (x) => sg.exp(x!) }],
  log: [{ inputs: () => [positive(3, 2)], f: (x) => sg.log(x!) }],
  sqrt: [{ inputs: () => [positive(3, 2)], f: (x) => sg.sqrt(x!) }],
  abs: [{ inputs: () => [awayFromZero(3, 2)], f: (x) => sg.abs(x!) }],
  square: [{ inputs: () => [randn(3, 2)], f: (x) => sg.square(x!) }],
  reciprocal: [{ inputs: () => [positive(3, 2)], f: (x) => sg.reciprocal(x!) }],
  relu: [{ inputs: () => [awayFromZero(4, 3)], f: (x) => sg.relu(x!) }],
  sigmoid: [{ inputs: () => [sg.scale(randn(4, 3), 4)], f: (x) => sg.sigmoid(x!) }],
  softplus: [{ inputs: () => [sg.scale(randn(4, 3), 4)], f: (x) => sg.softplus(x!) }],
  logSigmoid: [{ inputs: () => [sg.scale(randn(4, 3), 4)], f: (x) => sg.logSigmoid(x!) }],
  tanh: [{ inputs: () => [randn(4, 3)], f: (x) => sg.tanh(x!) }],
  scale: [{ inputs: () => [randn(4)], f: (x) => sg.scale(x!, -2.5) }],
  shift: [{ inputs: () => [randn(4)], f: (x) => sg.shift(x!, 0.7) }],
  pow: [{ inputs: () => [positive(4)], f: (x) => sg.pow(x!, 2.5) }],
  // Finite differences see the identity forward; the factor itself is checked below.
  scaleGradient: [{ inputs: () => [randn(3, 2)], f: (x) => sg.scaleGradient(sg.transpose(x!), 1) }],
  add: [{ inputs: () => [randn(2, 3, 4), randn(3, 1)], f: (a, b) => sg.add(a!, b!) }],
  sub: [{ inputs: () => [randn(4), randn(3, 1)], f: (a, b) => sg.sub(a!, b!) }],
  mul: [{ inputs: () => [randn(2, 1, 4), randn(3, 4)], f: (a, b) => sg.mul(a!, b!) }],
  div: [{ inputs: () => [randn(3, 4), positive(4)], f: (a, b) => sg.div(a!, b!) }],
  keepWherePositive: [{ inputs: () => [randn(3, 4), awayFromZero(3, 4)], f: (a, b) => sg.keepWherePositive(a!, b!) }],
  maximum: [{ inputs: () => [randn(3, 4), sg.shift(randn(3, 4), 0.05)], f: (a, b) => sg.maximum(a!, b!) }],
  minimum: [{ inputs: () => [randn(3, 4), sg.shift(randn(3, 4), 0.05)], f: (a, b) => sg.minimum(a!, b!) }],
  sum: [
    { inputs: () => [randn(2, 3, 4)], f: (x) => sg.sum(x!, [0, 2]) },
    { inputs: () => [randn(2, 3, 4)], f: (x) => sg.sum(sg.permute(x!, [1, 2, 0]), [2], true) },
  ],
  matmul: [
    { inputs: () => [randn(3, 5), randn(5, 4)], f: (a, b) => sg.matmul(a!, b!) },
    { inputs: () => [randn(5, 3), randn(4, 5)], f: (a, b) => sg.matmul(sg.transpose(a!), sg.transpose(b!)) },
    { inputs: () => [randn(1, 7), randn(7, 1)], f: (a, b) => sg.matmul(a!, b!) },
  ],
  conv2d: [
    { inputs: () => [randn(2, 3, 5, 4), randn(2, 3, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
    { inputs: () => [randn(1, 2, 7, 6), randn(3, 2, 4, 4)], f: (x, w) => sg.conv2d(x!, w!, 2, 1) },
    { inputs: () => [randn(2, 1, 5, 5), randn(2, 1, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 2, 0) },
    { inputs: () => [randn(1, 2, 4, 4), randn(1, 2, 1, 1)], f: (x, w) => sg.conv2d(x!, w!, 1, 2) },
  ],
  convTranspose2d: [
    { inputs: () => [randn(2, 3, 3, 2), randn(3, 2, 4, 4)], f: (x, w) => sg.convTranspose2d(x!, w!, 2, 1) },
    { inputs: () => [randn(1, 2, 3, 3), randn(2, 3, 3, 3)], f: (x, w) => sg.convTranspose2d(x!, w!, 1, 0) },
    { inputs: () => [randn(2, 2, 1, 1), randn(2, 4, 4, 4)], f: (x, w) => sg.convTranspose2d(x!, w!, 1, 0) },
  ],
  expectedLogLikelihoodFixed: [{
    inputs: () => [randn(3, 4), positive(3, 4), randn(5, 4), randn(5), positive(3, 5)],
    f: (mean, c2, w, b, x) => sg.expectedLogLikelihoodFixed({ mean: mean!, c2: c2! }, w!, b!, x!, 0.5),
  }],
  expectedLogLikelihoodLearnable: [{
    inputs: () => [randn(2, 3), positive(2, 3), randn(2, 3), positive(2, 3), randn(4, 3), randn(4), sg.scale(randn(4, 3), 0.2), sg.shift(randn(4), 3), positive(2, 4)],
    f: (mean, c2, c3, k4, wMu, bMu, wA, bA, x) => sg.expectedLogLikelihoodLearnable({ mean: mean!, c2: c2!, c3: c3!, k4: k4! }, { wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA! }, x!),
  }],
};

test('every op has a gradcheck case here or is marked non-differentiable', () => {
  for (const op of sg.opRegistry.values()) {
    if (op.differentiable) assert.ok(cases[op.name], `differentiable op '${op.name}' has no gradcheck case`);
    else assert.not.ok(cases[op.name], `'${op.name}' is marked non-differentiable but has a gradcheck case`);
  }
});

for (const [name, list] of Object.entries(cases)) {
  test(`gradcheck ${name}`, () => {
    assert.ok(sg.opRegistry.get(name)?.differentiable, `'${name}' is not a registered differentiable op`);
    for (const [i, c] of list.entries()) {
      const result = sg.gradcheck(c.f, c.inputs());
      assert.ok(result.ok, `case ${i}: ${JSON.stringify(result.worst)}`);
    }
  });
}

test('scaleGradient passes values through and scales the gradient by its factor, 0 included', () => {
  for (const factor of [0.25, 0, -2]) {
    const x = sg.tensor([1, -2, 3], [3], { ...f64, requiresGrad: true });
    const y = sg.scaleGradient(x, factor);
    assert.equal([...y.dataSync()], [1, -2, 3]);
    sg.backward(sg.sum(sg.mul(y, sg.tensor([2, 5, -1], [3], f64))));
    assert.equal([...x.grad!.dataSync()], [2 * factor, 5 * factor, -1 * factor]);
  }
});

test('errors name the op, the argument and the shapes', () => {
  const a = sg.zeros([2, 3]), b = sg.zeros([4]);
  assert.throws(() => sg.add(a, b), /add: cannot broadcast shapes \[2,3\] and \[4\]/);
  assert.throws(() => sg.matmul(a, sg.zeros([2, 2])), /matmul: inner dimensions differ: a is \[2, 3\], b is \[2, 2\]/);
  assert.throws(() => sg.mul(a, sg.zeros([2, 3], f64)), /mul: mixed dtypes: a is float32 \[2, 3\] but b is float64 \[2, 3\]/);
  assert.throws(() => sg.conv2d(sg.zeros([1, 3, 5, 5]), sg.zeros([2, 2, 3, 3])), /conv2d: input has 3 channels but the weight \[2,2,3,3\] expects 2/);
  assert.throws(() => sg.reshape(a, [4, 2]), /reshape: cannot reshape \[2, 3\] \(6 elements\) into \[4,2\]/);
});

test('sum and max over every set of axes equal naive loops; a NaN propagates through max', () => {
  // The CPU backend folds a reduction over the innermost axis in a register and walks the
  // others through memory (backends/cpu/elementwise.ts): every axis set below takes one or both.
  const shape = [3, 4, 5];
  const values = randn(...shape).dataSync();
  values[1 * 20 + 2 * 5 + 3] = NaN;
  const x = sg.tensor(Array.from(values), shape, f64);
  for (const axes of [[2], [1], [0], [0, 2], [1, 2], [0, 1], [0, 1, 2]]) {
    for (const op of ['sum', 'max'] as const) {
      const expected = new Map<string, number>();
      for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 5; k++) {
        const key = [i, j, k].filter((_, a) => !axes.includes(a)).join(',');
        const v = values[i * 20 + j * 5 + k]!, prev = expected.get(key);
        expected.set(key, prev === undefined ? v : op === 'sum' ? prev + v : v > prev || v !== v || prev !== prev ? (prev !== prev ? prev : v) : prev);
      }
      const got = (op === 'sum' ? sg.sum(x, axes) : sg.maxAxes(x, axes)).dataSync();
      const want = [...expected.values()];
      assert.is(got.length, want.length, `${op} over [${axes}]: length`);
      want.forEach((w, n) => assert.ok(Number.isNaN(w) ? Number.isNaN(got[n]!) : Math.abs(got[n]! - w) <= 1e-12, `${op} over [${axes}] at ${n}: ${got[n]} vs ${w}`));
    }
  }
});

test('anomaly mode names the first op that makes a NaN', () => {
  sg.setAnomalyMode(true);
  try {
    assert.throws(() => sg.log(sg.tensor([1, -1], [2])), /anomaly: log\(\[2\]\) produced NaN at flat index 1/);
  } finally {
    sg.setAnomalyMode(false);
  }
  assert.ok(Number.isNaN(sg.log(sg.tensor([-1], [1])).dataSync()[0]!), 'off by default');
});

test.run();
