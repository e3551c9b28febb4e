// The one backend conformance suite (docs/engine-design.md, "House rules"): a table of cases run on
// every backend against the CPU backend in float32. Every registered op, value and gradient
// (through the engine ops), over random shapes with odd sizes, broadcasting, strided and
// transposed views; empty and single-element tensors; convolution strides and paddings, the
// split-K filter gradient and the Winograd layers (3x3, stride 1, 8+ channels); the matmul
// paths (transposed, split K, vec4, strided, 1x1); both silent-ELBO forms with Gaussian and Bernoulli moments; AdamW; the random streams draw for draw;
// strided and whole fills; a few training steps of the fixed-variance study on real MNIST; and
// a check that the suite dispatched every kernel of the backend interface.
//
// A backend's test file obtains its backend, calls runConformance, adds its own extras and
// calls test.run(). Not a test file itself (no `.test.` in the name).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../silentgrad.js';
import type { Backend, Tensor } from '../silentgrad.js';
import { binaryOps, reduceOps, unaryOps, type RandomKind } from '../engine/backend.js';
import { epochOrder, loadMnist } from '../experiments/data/mnist.js';
import { dequantized } from '../experiments/training.js';
import { FixedVarianceVae, type MethodName } from '../experiments/vae.js';

type Floats = Float32Array | Float64Array;

/** max |a - b| <= tol * (1 + max |a|): float32 against float32, different summation orders. */
export function assertClose(what: string, expected: Floats, actual: Floats, tol = 2e-4): void {
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

/** Seeded sources of shapes and values, fresh per backend so each sees the same draws. */
function sources() {
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
  return { d: (): number => int(1, 9), stream, randn, positive, awayFromZero };
}

/** The table: op name -> cases; every key of sg.opRegistry must appear. */
function opCases({ d, stream, randn, positive, awayFromZero }: ReturnType<typeof sources>): Record<string, Case[]> {
  const unaryCase = (f: (x: Tensor) => Tensor, make = randn): Case[] => [
    { inputs: () => [make(d(), d())], f },
    { inputs: () => [make(d(), d(), d())], f: (x) => f(sg.permute(x!, [2, 0, 1])) },
    // Innermost axis a multiple of 4: the WebGPU kernels' vector form.
    { inputs: () => [make(3, 8)], f },
  ];
  const binaryCase = (f: (a: Tensor, b: Tensor) => Tensor, makeB = randn): Case[] => [
    { inputs: () => { const [m, n] = [d(), d()]; return [randn(2, m, n), makeB(m, 1)]; }, f },
    { inputs: () => { const [m, n] = [d(), d()]; return [randn(n, m), makeB(m, n)]; }, f: (a, b) => f(sg.transpose(a!), b!) },
    // The vector form with b splatted along the innermost axis, then b a broadcast row; then
    // an innermost axis of 8 at offset 1, which must take the scalar form.
    { inputs: () => [randn(2, 3, 8), makeB(3, 1)], f },
    { inputs: () => [randn(5, 12), makeB(12)], f },
    { inputs: () => [randn(4, 9), makeB(4, 8)], f: (a, b) => f(sg.slice(a!, 1, 1, 9), b!) },
  ];
  /** Learnable variance with Bernoulli moments from p: all ten contractions. */
  const bernoulliCase = (batch: number, latent: number, pixels: number): Case => ({
    inputs: () => [sg.uniform([batch, latent], stream), sg.scale(randn(pixels, latent), 1 / Math.sqrt(latent)), randn(pixels),
      sg.scale(randn(pixels, latent), 0.1 / Math.sqrt(latent)), sg.shift(randn(pixels), 3), positive(batch, pixels)],
    f: (p, wMu, bMu, wA, bA, x) => {
      const q = sg.sub(sg.fullLike(p!, 1), p!), pq = sg.mul(p!, q);
      const moments = { mean: p!, c2: pq, c3: sg.mul(pq, sg.sub(q, p!)), k4: sg.mul(pq, sg.sub(sg.fullLike(p!, 1), sg.scale(pq, 6))) };
      return sg.expectedLogLikelihoodLearnable(moments, { wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA! }, x!);
    },
    tol: 5e-4,
  });
  return {
    contiguous: [{ inputs: () => [randn(d(), d())], f: (x) => sg.contiguous(sg.transpose(x!)) }],
    clone: [{ inputs: () => [randn(d(), 3)], f: (x) => sg.clone(x!) }],
    reshape: [{ inputs: () => [randn(2, 6)], f: (x) => sg.reshape(sg.transpose(x!), [3, -1]) }],
    permute: [{ inputs: () => [randn(2, 3, 4, 5)], f: (x) => sg.permute(x!, [3, 0, 2, 1]) }],
    expand: [{ inputs: () => [randn(3, 1)], f: (x) => sg.expand(x!, [2, 3, 4]) }],
    slice: [{ inputs: () => [randn(7, 5)], f: (x) => sg.slice(x!, 0, 2, 6) }],
    padSlice: [{ inputs: () => [randn(2, 3)], f: (x) => sg.padSlice(x!, [5, 3], 0, 2) }],
    concat: [{ inputs: () => [randn(2, 3), randn(2, 1), randn(2, 2)], f: (a, b, c) => sg.concat([a!, b!, c!], 1) }],
    // >= 4096 elements: the WebGPU kernels take several elements per invocation, with a ragged tail
    neg: unaryCase(sg.neg), exp: [...unaryCase(sg.exp), { inputs: () => [randn(70, 150)], f: (x) => sg.exp(sg.transpose(x!)) }], log: unaryCase(sg.log, positive), sqrt: unaryCase(sg.sqrt, positive),
    abs: unaryCase(sg.abs, awayFromZero), sign: unaryCase(sg.sign, awayFromZero), square: unaryCase(sg.square),
    reciprocal: unaryCase(sg.reciprocal, positive), relu: unaryCase(sg.relu, awayFromZero), step: unaryCase(sg.step, awayFromZero),
    sigmoid: unaryCase((x) => sg.sigmoid(sg.scale(x, 8))), softplus: unaryCase((x) => sg.softplus(sg.scale(x, 8))),
    logSigmoid: unaryCase((x) => sg.logSigmoid(sg.scale(x, 8))), tanh: unaryCase((x) => sg.tanh(sg.scale(x, 3))),
    scale: unaryCase((x) => sg.scale(x, -2.5)), shift: unaryCase((x) => sg.shift(x, 0.7)), scaleGradient: unaryCase((x) => sg.scaleGradient(x, -0.5)),
    pow: [...unaryCase((x) => sg.pow(x, 2.5), positive), ...unaryCase((x) => sg.pow(x, 3)), ...unaryCase((x) => sg.pow(x, 0))],
    add: binaryCase(sg.add), sub: binaryCase(sg.sub), mul: [...binaryCase(sg.mul), { inputs: () => [randn(3, 70, 50), randn(70, 1)], f: (a, b) => sg.mul(a!, b!) }], div: binaryCase(sg.div, positive),
    maximum: binaryCase(sg.maximum), minimum: binaryCase(sg.minimum), greater: binaryCase(sg.greater), keepWherePositive: binaryCase(sg.keepWherePositive),
    sum: [
      { inputs: () => [randn(d(), d(), d())], f: (x) => sg.sum(x!, [0, 2]) },
      { inputs: () => [randn(2, 3, 4)], f: (x) => sg.sum(sg.permute(x!, [1, 2, 0]), [2], true) },
      { inputs: () => [randn(37, 53)], f: (x) => sg.sum(x!) },
      { inputs: () => [randn(300, 5)], f: (x) => sg.sum(x!, [0]) },
      // A bias gradient's shape: the WebGPU vector form, then with its sizes baked (>= 2^16
      // elements), then at offset 1 (scalar form).
      { inputs: () => [randn(6, 5, 8, 12)], f: (x) => sg.sum(x!, [0, 2, 3]) },
      { inputs: () => [randn(16, 8, 24, 24)], f: (x) => sg.sum(x!, [0, 2, 3]) },
      { inputs: () => [randn(6, 5, 97)], f: (x) => sg.sum(sg.slice(x!, 2, 1, 97), [0, 2]) },
    ],
    max: [
      { inputs: () => [randn(d(), d(), d())], f: (x) => sg.maxAxes(x!, [1]) },
      { inputs: () => [randn(41, 29)], f: (x) => sg.maxAxes(sg.transpose(x!)) },
      { inputs: () => [randn(4, 3, 64)], f: (x) => sg.maxAxes(x!, [0, 2]) },
    ],
    matmul: [
      { inputs: () => [randn(d(), 5), randn(5, d())], f: (a, b) => sg.matmul(a!, b!) },
      { inputs: () => [randn(19, 33), randn(70, 19)], f: (a, b) => sg.matmul(sg.transpose(a!), sg.transpose(b!)) },
      { inputs: () => [randn(37, 1500), randn(1500, 13)], f: (a, b) => sg.matmul(a!, b!) }, // split K
      { inputs: () => [randn(45, 64), randn(64, 72)], f: (a, b) => sg.matmul(a!, b!) }, // vec4 path
      { inputs: () => [randn(9, 20), randn(10, 24)], f: (a, b) => sg.matmul(sg.slice(a!, 1, 3, 13), sg.slice(b!, 0, 0, 10)) },
      { inputs: () => [randn(1, 7), randn(7, 1)], f: (a, b) => sg.matmul(a!, b!) },
      // >= 2^20 multiply-adds: sizes baked into the shader, the big tilings (ragged M and N)
      { inputs: () => [randn(70, 300), randn(300, 100)], f: (a, b) => sg.matmul(a!, b!) },
      // A transposed B split over K (a linear layer's x Wᵀ): on WebGPU computed as its transpose,
      // aᵀ copied k-major; already k-major (transposed a); a ragged, offset a (scalar B reads).
      { inputs: () => [randn(12, 2048), randn(20, 2048)], f: (a, b) => sg.matmul(a!, sg.transpose(b!)) },
      { inputs: () => [randn(2048, 8), randn(20, 2048)], f: (a, b) => sg.matmul(sg.transpose(a!), sg.transpose(b!)) },
      { inputs: () => [randn(14, 2049), randn(21, 2048)], f: (a, b) => sg.matmul(sg.slice(sg.slice(a!, 0, 1, 14), 1, 1, 2049), sg.transpose(b!)) },
    ],
    conv2d: [
      { inputs: () => [randn(2, 3, 5, 4), randn(2, 3, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
      { inputs: () => [randn(1, 2, 7, 6), randn(3, 2, 4, 4)], f: (x, w) => sg.conv2d(x!, w!, 2, 1) },
      { inputs: () => [randn(2, 1, 5, 5), randn(2, 1, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 2, 0) },
      { inputs: () => [randn(1, 2, 4, 4), randn(1, 2, 1, 1)], f: (x, w) => sg.conv2d(x!, w!, 1, 2) },
      { inputs: () => [randn(3, 1, 28, 28), randn(5, 1, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) }, // split-K filter gradient
      // 7 input channels, just below Winograd's 8: the implicit GEMMs, all three baked
      { inputs: () => [randn(4, 7, 20, 20), randn(12, 7, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
      // Winograd F(4x4, 3x3) (3x3, stride 1, 8+ channels each side; WebGPU's test lowers its
      // default of 24 to reach these): outputs not a multiple of 4 (edge blocks, tiles padded
      // to a multiple of 4), paddings 0-2, channels 8, 9, 12, batch 1; widths a multiple of 4
      // take WebGPU's vec4-row transforms, and the last case's are baked
      { inputs: () => [randn(2, 9, 9, 11), randn(12, 9, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
      { inputs: () => [randn(1, 12, 9, 11), randn(9, 12, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 0) },
      { inputs: () => [randn(1, 8, 7, 9), randn(8, 8, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 2) },
      { inputs: () => [randn(3, 8, 8, 12), randn(10, 8, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
      { inputs: () => [randn(2, 16, 28, 28), randn(24, 16, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
      // WebGPU's input transform reads rows as vec4s when the width is a multiple of 4, 2-3 a
      // tile row by the padding: padding 0 (the forward's x, 8 wide), 2 (the input gradient's
      // dy, 8 wide, of a padding-0 layer), 2 in the forward, one vec4 a row (4 wide); and
      // scalar loads at widths 13 and 5
      { inputs: () => [randn(2, 8, 12, 8), randn(9, 8, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 0) },
      { inputs: () => [randn(2, 8, 6, 10), randn(8, 8, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 0) },
      { inputs: () => [randn(1, 8, 7, 8), randn(8, 8, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 2) },
      { inputs: () => [randn(2, 8, 5, 4), randn(8, 8, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
      { inputs: () => [randn(1, 8, 5, 13), randn(8, 8, 3, 3)], f: (x, w) => sg.conv2d(x!, w!, 1, 1) },
    ],
    convTranspose2d: [
      { inputs: () => [randn(2, 3, 3, 2), randn(3, 2, 4, 4)], f: (x, w) => sg.convTranspose2d(x!, w!, 2, 1) },
      { inputs: () => [randn(2, 2, 1, 1), randn(2, 4, 4, 4)], f: (x, w) => sg.convTranspose2d(x!, w!, 1, 0) },
    ],
    conv2dFilterGradient: [], // exercised by every conv2d/convTranspose2d case's weight gradient
    expectedLogLikelihoodFixed: [
      {
        inputs: () => [randn(5, 7), positive(5, 7), randn(13, 7), randn(13), positive(5, 13)],
        f: (mean, c2, w, b, x) => sg.expectedLogLikelihoodFixed({ mean: mean!, c2: c2! }, w!, b!, x!, 0.5),
      },
      { // WebGPU's backward walks pixels and examples in chunks: several, the last ragged, both ways
        inputs: () => [randn(70, 12), positive(70, 12), sg.scale(randn(1100, 12), 0.3), randn(1100), positive(70, 1100)],
        f: (mean, c2, w, b, x) => sg.expectedLogLikelihoodFixed({ mean: mean!, c2: c2! }, w!, b!, x!, 0.5),
      },
    ],
    expectedLogLikelihoodLearnable: [
      { // Gaussian moments: c3 = k4 = 0, five contractions
        inputs: () => [randn(6, 9), positive(6, 9), randn(11, 9), randn(11), sg.scale(randn(11, 9), 0.2), sg.shift(randn(11), 3), positive(6, 11)],
        f: (mean, c2, wMu, bMu, wA, bA, x) => sg.expectedLogLikelihoodLearnable({ mean: mean!, c2: c2! }, { wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA! }, x!),
      },
      // Bernoulli moments from p: all ten contractions; then d a multiple of 4, where WebGPU's
      // backward reads the [*, d] operands as vec4 rows.
      bernoulliCase(9, 37, 50), bernoulliCase(9, 36, 50),
      // WebGPU's backward: one latent (d = 1); more examples than a chunk of the weight pass and
      // pixels than one of the moment pass, neither a multiple of 4 nor of the chunk.
      bernoulliCase(37, 1, 130), bernoulliCase(100, 3, 9),
      { // Gaussian, vec4 rows, more latents than 64 lanes x 4 (each lane walks several groups)
        inputs: () => [randn(3, 260), positive(3, 260), sg.scale(randn(45, 260), 0.06), randn(45), sg.scale(randn(45, 260), 0.01), sg.shift(randn(45), 3), positive(3, 45)],
        f: (mean, c2, wMu, bMu, wA, bA, x) => sg.expectedLogLikelihoodLearnable({ mean: mean!, c2: c2! }, { wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA! }, x!),
        tol: 5e-4,
      },
    ],
    uniform: [], normal: [], // compared draw for draw in 'random streams'
  };
}

/** The kernels of engine/backend.ts's Backend; the type below fails to compile if one is missing. */
const kernelMethods = [
  'alloc', 'free', 'upload', 'read', 'fill', 'unary', 'binary', 'reduce', 'matmul', 'conv2d',
  'conv2dBackwardInput', 'conv2dBackwardFilter', 'adamw', 'silentElbo', 'silentElboBackward', 'random',
] as const satisfies readonly (keyof Backend)[];
type Unlisted = Exclude<keyof Backend, (typeof kernelMethods)[number] | 'name' | 'describe' | 'supports' | 'readSync' | 'silentElboSavedShape'>;
const everyKernelListed: [Unlisted] extends [never] ? true : never = true;
const randomKinds: readonly RandomKind[] = ['uniform', 'normal'];

/**
 * Counts, on this backend object, every kernel it is asked to run (the op for unary, binary,
 * reduce and random), so the suite can check that it reached each one.
 */
function recordKernels(backend: Backend): Set<string> {
  const seen = new Set<string>();
  const target = backend as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const method of kernelMethods) {
    const original = target[method]!;
    target[method] = function (this: unknown, ...args: unknown[]) {
      seen.add(['unary', 'binary', 'reduce', 'random'].includes(method) ? `${method}:${String(args[0])}` : method);
      return original.apply(this, args);
    };
  }
  return seen;
}

/** Per-step training losses of the fixed-variance study, tiny settings, on one backend. */
async function stepLosses(method: MethodName, backend: Backend, steps: number): Promise<number[]> {
  const train = loadMnist('train', { limit: 16 * steps });
  const config = { latentDim: 8, channels: 2, sigma2: 0.01, lr: 1e-3, weightDecay: 0.01, batchSize: 16, seed: 7, gumbelTemperature: 1, reinforceDecay: 0.99, decoderInit: 'scaled' as const };
  const vae = new FixedVarianceVae(method, config, backend);
  const order = epochOrder(train.count, config.seed, 1);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const indices = order.subarray(step * config.batchSize, (step + 1) * config.batchSize);
    const loss = sg.tidy(() => {
      const x = dequantized(train, indices, vae.trainingStream, backend);
      const { loss } = vae.estimator.loss(vae.posterior(x), x, vae.decoder, vae.trainingStream);
      sg.backward(loss);
      vae.optimizer.step();
      vae.optimizer.zeroGrad();
      return sg.detach(loss);
    });
    losses.push(await loss.item());
    loss.dispose();
  }
  return losses;
}

/**
 * Registers the conformance tests of `backend` (named `name` in messages) on uvu's default
 * suite; the caller runs them with test.run(). `tolerance` multiplies every comparison's
 * tolerance (1: float32 against float32 with different summation orders); the op cases of
 * `skip` are left out (another test of the file covers them).
 */
export function runConformance(name: string, backend: Backend, { tolerance = 1, skip = [] }: { tolerance?: number; skip?: readonly string[] } = {}): void {
  assert.ok(everyKernelListed);
  const cpu = sg.cpuBackend;
  const src = sources();
  const cases = opCases(src);
  const seen = recordKernels(backend);
  const on = (t: Tensor): Tensor => sg.tensor(t.dataSync(), t.shape, { backend });
  const close = (what: string, expected: Floats, actual: Floats, tol = 2e-4): void => assertClose(what, expected, actual, tol * tolerance);
  // Titles name the backend: a file may run the table on several (WebGPU's plain and tuned kernels).
  const it = (title: string, fn: () => void | Promise<void>): void => test(`${name}: ${title}`, fn);

  it('every registered op has a case here', () => {
    const missing = [...sg.opRegistry.keys()].filter((op) => !(op in cases));
    assert.equal(missing, [], `ops without a ${name} conformance case: ${missing.join(', ')}`);
  });

  for (const [op, list] of Object.entries(cases)) if (!skip.includes(op)) list.forEach((c, n) => it(`${op} #${n}: value and gradient match the CPU`, async () => {
    const t0 = performance.now();
    try {
      const inputs = c.inputs();
      const mirrored = inputs.map(on);
      for (const t of [...inputs, ...mirrored]) t.requiresGrad = true;
      const outCpu = c.f(...inputs), outBackend = c.f(...mirrored);
      close(`${op} value`, outCpu.dataSync(), await outBackend.data(), c.tol);
      if (!sg.opRegistry.get(op)?.differentiable) return;
      // A random cotangent, so every output element's gradient path is checked.
      const weights = src.randn(...outCpu.shape);
      sg.backward(sg.sum(sg.mul(outCpu, weights)));
      sg.backward(sg.sum(sg.mul(outBackend, on(weights))));
      for (const [i, t] of inputs.entries())
        close(`${op} gradient of input ${i}`, t.grad!.dataSync(), await mirrored[i]!.grad!.data(), c.tol);
    } finally {
      if (process.env.SG_TIME) console.log(`TEST ${name} ${op} ${n} ${(performance.now() - t0).toFixed(0)} ms`);
    }
  }));

  it('empty and single-element tensors', async () => {
    const e = sg.zeros([0, 3], { backend });
    assert.is((await sg.exp(e).data()).length, 0);
    assert.equal([...(await sg.sum(e, [0]).data())], [0, 0, 0]);
    assert.equal([...(await sg.matmul(e, sg.ones([3, 2], { backend })).data())], []);
    assert.equal([...(await sg.matmul(sg.ones([2, 0], { backend }), sg.ones([0, 2], { backend })).data())], [0, 0, 0, 0]);
    const one = sg.tensor([-2], [], { backend });
    assert.is(await sg.square(one).item(), 4);
    assert.is(await sg.sum(sg.reshape(one, [1, 1, 1])).item(), -2);
  });

  it('fill writes a strided region only', async () => {
    const t = sg.zeros([4, 5], { backend });
    const region = sg.slice(sg.transpose(t), 0, 1, 3); // columns 1..2, a strided view
    backend.fill(region, 7);
    const values = await t.data();
    assert.equal([...values].map((v, i) => (i % 5 === 1 || i % 5 === 2 ? v === 7 : v === 0)).every(Boolean), true);
  });

  it('fill writes a constant over a whole storage', async () => {
    assert.equal([...(await sg.full([2, 3], 1.5, { backend }).data())], [1.5, 1.5, 1.5, 1.5, 1.5, 1.5]);
  });

  it('random streams: the same numbers as the CPU reference', async () => {
    for (const kind of randomKinds) for (const [length, start] of [[4097, 0], [13, 2 ** 32 - 3], [1, 77]] as const) {
      const [a, b] = [new sg.RandomStream(31337, start), new sg.RandomStream(31337, start)];
      const expected = sg[kind]([length], a, { backend: cpu }).dataSync();
      close(`${kind} ${length} at ${start}`, expected, await sg[kind]([length], b, { backend }).data(), 2e-6);
    }
  });

  for (const shape of [[33, 7], [70, 150]]) it(`AdamW: ten steps move ${shape.join('x')} parameters as on the CPU`, async () => {
    const start = src.randn(...shape);
    const run = async (on: Backend): Promise<Floats> => {
      const p = sg.tensor(start.dataSync(), start.shape, { backend: on, requiresGrad: true }).keep();
      const opt = new sg.AdamW([p], { lr: 0.05, weightDecay: 0.1 });
      for (let i = 0; i < 10; i++) sg.tidy(() => {
        sg.backward(sg.sum(sg.square(sg.shift(p, -i * 0.1))));
        opt.step();
        opt.zeroGrad();
      });
      return p.data();
    };
    close('AdamW parameters', await run(cpu), await run(backend), 1e-5);
  });

  for (const method of ['silent-gaussian', 'silent-bernoulli'] as const) it(`fixed-variance study (${method}): per-step losses match the CPU`, async () => {
    const steps = 3, t0 = performance.now();
    const [onCpu, onBackend] = [await stepLosses(method, cpu, steps), await stepLosses(method, backend, steps)];
    console.log(`  ${method} losses cpu ${onCpu.map((v) => v.toFixed(4)).join(' ')} | ${name} ${onBackend.map((v) => v.toFixed(4)).join(' ')}`);
    if (process.env.SG_TIME) console.log(`TEST ${name} ${method} ${(performance.now() - t0).toFixed(0)} ms`);
    close(`${method} losses`, Float64Array.from(onCpu), Float64Array.from(onBackend), 1e-4);
  });

  it('every kernel exists, and the cases above ran each one', () => {
    const missing = kernelMethods.filter((k) => typeof backend[k] !== 'function');
    assert.equal(missing, [], `${name} lacks kernels: ${missing.join(', ')}`);
    const expected = [
      ...kernelMethods.filter((k) => !['unary', 'binary', 'reduce', 'random'].includes(k)),
      ...unaryOps.map((op) => `unary:${op}`), ...binaryOps.map((op) => `binary:${op}`),
      ...reduceOps.map((op) => `reduce:${op}`), ...randomKinds.map((kind) => `random:${kind}`),
    ];
    const unreached = expected.filter((k) => !seen.has(k));
    assert.equal(unreached, [], `kernels the ${name} conformance cases never ran: ${unreached.join(', ')}`);
  });
}
