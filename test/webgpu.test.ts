// Backend conformance: every primitive and every op (value and gradient, through the engine
// ops) on WebGPU against the CPU backend in float32, over random shapes with odd sizes,
// broadcasting, strided and transposed views, empty and single-element tensors, convolution
// strides and paddings, both silent-ELBO forms, AdamW and the random streams.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { webGpuOrSkip } from './webgpu-setup.js';

const gpu = await webGpuOrSkip('webgpu conformance');
const cpu = sg.cpuBackend;

// A seeded integer source for shapes, so every run tests the same random sizes.
let state = 12345;
const int = (lo: number, hi: number): number => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return lo + (state % (hi - lo + 1));
};
const stream = new sg.RandomStream(99);
const randn = (...shape: number[]): Tensor => sg.normal(shape, stream);
const positive = (...shape: number[]): Tensor => sg.shift(sg.uniform(shape, stream), 0.5);
const awayFromZero = (...shape: number[]): Tensor => {
  const u = sg.uniform(shape, stream);
  return sg.mul(sg.shift(u, 0.2), sg.shift(sg.scale(sg.greater(u, sg.full(shape, 0.5)), 2), -1));
};

const onGpu = (t: Tensor): Tensor => sg.tensor(t.dataSync(), t.shape, { backend: gpu! });

/** max |a - b| <= tol * (1 + max |a|): float32 against float32, different summation orders. */
function assertClose(what: string, expected: Float32Array | Float64Array, actual: Float32Array | Float64Array, tol = 2e-4): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let scale = 0, worst = 0, at = -1;
  expected.forEach((e, i) => {
    scale = Math.max(scale, Math.abs(e));
    const err = Math.abs(e - actual[i]!);
    if (!(err <= worst)) { worst = err; at = i; }
  });
  if (!(worst <= tol * (1 + scale))) assert.unreachable(`${what}: max error ${worst} at ${at} (expected ${expected[at]}, got ${actual[at]}, scale ${scale})`);
}

type Case = { inputs: () => Tensor[]; f: (...xs: Tensor[]) => Tensor; tol?: number };
const d = (): number => int(1, 9);
const unaryCase = (f: (x: Tensor) => Tensor, make = randn): Case[] => [
  { inputs: () => [make(d(), d())], f },
  { inputs: () => [make(d(), d(), d())], f: (x) => f(sg.permute(x!, [2, 0, 1])) },
];
const binaryCase = (f: (a: Tensor, b: Tensor) => Tensor, makeB = randn): Case[] => [
  { inputs: () => { const [m, n] = [d(), d()]; return [randn(2, m, n), makeB(m, 1)]; }, f },
  { inputs: () => { const [m, n] = [d(), d()]; return [randn(n, m), makeB(m, n)]; }, f: (a, b) => f(sg.transpose(a!), b!) },
];

const cases: Record<string, Case[]> = {
  contiguous: [{ inputs: () => [randn(d(), d())], f: (x) => sg.contiguous(sg.transpose(x!)) }],
  clone: [{ inputs: () => [randn(d(), 3)], f: (x) => sg.clone(x!) }],
  reshape: [{ inputs: () => [randn(2, 6)], f: (x) => sg.reshape(sg.transpose(x!), [3, -1]) }],
  permute: [{ inputs: () => [randn(2, 3, 4, 5)], f: (x) => sg.permute(x!, [3, 0, 2, 1]) }],
  expand: [{ inputs: () => [randn(3, 1)], f: (x) => sg.expand(x!, [2, 3, 4]) }],
  slice: [{ inputs: () => [randn(7, 5)], f: (x) => sg.slice(x!, 0, 2, 6) }],
  padSlice: [{ inputs: () => [randn(2, 3)], f: (x) => sg.padSlice(x!, [5, 3], 0, 2) }],
  concat: [{ inputs: () => [randn(2, 3), randn(2, 1), randn(2, 2)], f: (a, b, c) => sg.concat([a!, b!, c!], 1) }],
  neg: unaryCase(sg.neg), exp: unaryCase(sg.exp), log: unaryCase(sg.log, positive), sqrt: unaryCase(sg.sqrt, positive),
  abs: unaryCase(sg.abs, awayFromZero), sign: unaryCase(sg.sign, awayFromZero), square: unaryCase(sg.square),
  reciprocal: unaryCase(sg.reciprocal, positive), relu: unaryCase(sg.relu, awayFromZero), step: unaryCase(sg.step, awayFromZero),
  sigmoid: unaryCase((x) => sg.sigmoid(sg.scale(x, 8))), softplus: unaryCase((x) => sg.softplus(sg.scale(x, 8))),
  logSigmoid: unaryCase((x) => sg.logSigmoid(sg.scale(x, 8))), tanh: unaryCase((x) => sg.tanh(sg.scale(x, 3))),
  scale: unaryCase((x) => sg.scale(x, -2.5)), shift: unaryCase((x) => sg.shift(x, 0.7)),
  pow: [...unaryCase((x) => sg.pow(x, 2.5), positive), ...unaryCase((x) => sg.pow(x, 3)), ...unaryCase((x) => sg.pow(x, 0))],
  add: binaryCase(sg.add), sub: binaryCase(sg.sub), mul: binaryCase(sg.mul), div: binaryCase(sg.div, positive),
  maximum: binaryCase(sg.maximum), minimum: binaryCase(sg.minimum), greater: binaryCase(sg.greater),
  sum: [
    { inputs: () => [randn(d(), d(), d())], f: (x) => sg.sum(x!, [0, 2]) },
    { inputs: () => [randn(2, 3, 4)], f: (x) => sg.sum(sg.permute(x!, [1, 2, 0]), [2], true) },
    { inputs: () => [randn(37, 53)], f: (x) => sg.sum(x!) },
    { inputs: () => [randn(300, 5)], f: (x) => sg.sum(x!, [0]) },
  ],
  max: [
    { inputs: () => [randn(d(), d(), d())], f: (x) => sg.maxAxes(x!, [1]) },
    { inputs: () => [randn(41, 29)], f: (x) => sg.maxAxes(sg.transpose(x!)) },
  ],
  matmul: [
    { inputs: () => [randn(d(), 5), randn(5, d())], f: (a, b) => sg.matmul(a!, b!) },
    { inputs: () => [randn(19, 33), randn(70, 19)], f: (a, b) => sg.matmul(sg.transpose(a!), sg.transpose(b!)) },
    { inputs: () => [randn(37, 1500), randn(1500, 13)], f: (a, b) => sg.matmul(a!, b!) }, // split K
    { inputs: () => [randn(45, 64), randn(64, 72)], f: (a, b) => sg.matmul(a!, b!) }, // vec4 path
    { inputs: () => [randn(9, 20), randn(10, 24)], f: (a, b) => sg.matmul(sg.slice(a!, 1, 3, 13), sg.slice(b!, 0, 0, 10)) },
    { inputs: () => [randn(1, 7), randn(7, 1)], f: (a, b) => sg.matmul(a!, b!) },
  ],
  conv2d: [
    { inputs: () => [randn(2, 3, 5, 4), randn(2, 3, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
    { inputs: () => [randn(1, 2, 7, 6), randn(3, 2, 4, 4)], f: (x, w) => sg.conv2d(x!, w!, 2, 1) },
    { inputs: () => [randn(2, 1, 5, 5), randn(2, 1, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 2, 0) },
    { inputs: () => [randn(1, 2, 4, 4), randn(1, 2, 1, 1)], f: (x, w) => sg.conv2d(x!, w!, 1, 2) },
    { inputs: () => [randn(3, 1, 28, 28), randn(5, 1, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) }, // split-K filter gradient
  ],
  convTranspose2d: [
    { inputs: () => [randn(2, 3, 3, 2), randn(3, 2, 4, 4)], f: (x, w) => sg.convTranspose2d(x!, w!, 2, 1) },
    { inputs: () => [randn(2, 2, 1, 1), randn(2, 4, 4, 4)], f: (x, w) => sg.convTranspose2d(x!, w!, 1, 0) },
  ],
  conv2dFilterGradient: [], // exercised by every conv2d/convTranspose2d case's weight gradient
  expectedLogLikelihoodFixed: [{
    inputs: () => [randn(5, 7), positive(5, 7), randn(13, 7), randn(13), positive(5, 13)],
    f: (mean, c2, w, b, x) => sg.expectedLogLikelihoodFixed({ mean: mean!, c2: c2! }, w!, b!, x!, 0.5),
  }],
  expectedLogLikelihoodLearnable: [
    { // Gaussian moments: c3 = k4 = 0, five contractions
      inputs: () => [randn(6, 9), positive(6, 9), randn(11, 9), randn(11), sg.scale(randn(11, 9), 0.2), sg.shift(randn(11), 3), positive(6, 11)],
      f: (mean, c2, wMu, bMu, wA, bA, x) => sg.expectedLogLikelihoodLearnable({ mean: mean!, c2: c2! }, { wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA! }, x!),
    },
    { // Bernoulli moments from p: all ten contractions
      inputs: () => [sg.uniform([9, 37], stream), randn(50, 37), randn(50), sg.scale(randn(50, 37), 0.1), sg.shift(randn(50), 3), positive(9, 50)],
      f: (p, wMu, bMu, wA, bA, x) => {
        const q = sg.sub(sg.fullLike(p!, 1), p!), pq = sg.mul(p!, q);
        const moments = { mean: p!, c2: pq, c3: sg.mul(pq, sg.sub(q, p!)), k4: sg.mul(pq, sg.sub(sg.fullLike(p!, 1), sg.scale(pq, 6))) };
        return sg.expectedLogLikelihoodLearnable(moments, { wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA! }, x!);
      },
      tol: 5e-4,
    },
  ],
  uniform: [], normal: [], // compared draw for draw below
};

test('every registered op has a WebGPU case here', () => {
  const missing = [...sg.opRegistry.keys()].filter((name) => !(name in cases));
  assert.equal(missing, [], `ops without a WebGPU conformance case: ${missing.join(', ')}`);
});

for (const [name, list] of Object.entries(cases)) list.forEach((c, n) => test(`${name} #${n}: value and gradient match the CPU`, async () => {
  const inputs = c.inputs();
  const mirrored = inputs.map(onGpu);
  for (const t of [...inputs, ...mirrored]) t.requiresGrad = true;
  const outCpu = c.f(...inputs), outGpu = c.f(...mirrored);
  assertClose(`${name} value`, outCpu.dataSync(), await outGpu.data(), c.tol);
  if (!sg.opRegistry.get(name)?.differentiable) return;
  // A random cotangent, so every output element's gradient path is checked.
  const weights = randn(...outCpu.shape);
  sg.backward(sg.sum(sg.mul(outCpu, weights)));
  sg.backward(sg.sum(sg.mul(outGpu, onGpu(weights))));
  for (const [i, t] of inputs.entries())
    assertClose(`${name} gradient of input ${i}`, t.grad!.dataSync(), await mirrored[i]!.grad!.data(), c.tol);
}));

test('empty and single-element tensors', async () => {
  const e = sg.zeros([0, 3], { backend: gpu! });
  assert.is((await sg.exp(e).data()).length, 0);
  assert.equal([...(await sg.sum(e, [0]).data())], [0, 0, 0]);
  assert.equal([...(await sg.matmul(e, sg.ones([3, 2], { backend: gpu! })).data())], []);
  assert.equal([...(await sg.matmul(sg.ones([2, 0], { backend: gpu! }), sg.ones([0, 2], { backend: gpu! })).data())], [0, 0, 0, 0]);
  const one = sg.tensor([-2], [], { backend: gpu! });
  assert.is(await sg.square(one).item(), 4);
  assert.is(await sg.sum(sg.reshape(one, [1, 1, 1])).item(), -2);
});

test('fill writes a strided region only', async () => {
  const t = sg.zeros([4, 5], { backend: gpu! });
  const region = sg.slice(sg.transpose(t), 0, 1, 3); // columns 1..2, a strided view
  gpu!.fill(region, 7);
  const values = await t.data();
  assert.equal([...values].map((v, i) => (i % 5 === 1 || i % 5 === 2 ? v === 7 : v === 0)).every(Boolean), true);
});

test('random streams: the same numbers as the CPU reference', async () => {
  for (const kind of ['uniform', 'normal'] as const) for (const [length, start] of [[4097, 0], [13, 2 ** 32 - 3], [1, 77]] as const) {
    const [a, b] = [new sg.RandomStream(31337, start), new sg.RandomStream(31337, start)];
    const expected = sg[kind]([length], a, { backend: cpu }).dataSync();
    assertClose(`${kind} ${length} at ${start}`, expected, await sg[kind]([length], b, { backend: gpu! }).data(), 2e-6);
  }
});

test('AdamW: ten steps move parameters as on the CPU', async () => {
  const start = randn(33, 7);
  const run = async (backend: sg.Backend): Promise<Float32Array | Float64Array> => {
    const p = sg.tensor(start.dataSync(), start.shape, { backend, requiresGrad: true }).keep();
    const opt = new sg.AdamW([p], { lr: 0.05, weightDecay: 0.1 });
    for (let i = 0; i < 10; i++) sg.tidy(() => {
      sg.backward(sg.sum(sg.square(sg.shift(p, -i * 0.1))));
      opt.step();
      opt.zeroGrad();
    });
    return p.data();
  };
  assertClose('AdamW parameters', await run(cpu), await run(gpu!), 1e-5);
});

if (gpu) test.run();
