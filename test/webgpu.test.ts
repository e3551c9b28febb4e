// Backend conformance of WebGPU against the CPU backend: the shared table of
// test/conformance-cases.ts (every op's value and gradient, views, edge shapes, convolution,
// the matmul paths including split K and vec4, both silent-ELBO forms, AdamW, random streams,
// fills, training steps), once with the plain kernels and once with the tuned variants the
// adapter's profile picks (backends/webgpu/tuning.ts). Without an adapter this prints SKIPPED,
// or fails in CI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { selectBackend } from '../backends/select.js';
import { createWebGpuBackend, type WebGpuBackend } from '../backends/webgpu/index.js';
import { winogradServes } from '../backends/webgpu/tuned/winograd.js';
import { adapterTraits, defaultTuning, type TuningProfile, type WinogradPass } from '../backends/webgpu/tuning.js';
import type { Conv2dGeometry } from '../engine/backend.js';
import * as sg from '../silentgrad.js';
import { assertClose, runConformance } from './conformance-cases.js';
import { webGpuOrSkip } from './webgpu-setup.js';

const gpu = await webGpuOrSkip('webgpu conformance');

/** A backend on the test's device with the process's profile changed by `change`. */
async function withTuning(change: (t: TuningProfile) => Partial<TuningProfile>): Promise<WebGpuBackend> {
  return (await createWebGpuBackend({ tuning: { ...gpu!.tuning, ...change(gpu!.tuning) } }))!;
}

if (gpu) {
  // Winograd F(4x4, 3x3) pays on lavapipe from 24 channels each side (tuned/winograd.ts); the
  // conformance table's Winograd layers have 8-16, so the tuned run lowers the bar to the shared
  // rule's 8 to run the Winograd kernels on them.
  const tuned = await withTuning((t) => ({ kernels: 'tuned', winograd: { ...t.winograd, minChannels: 8 } }));
  runConformance('WebGPU tuned', tuned);
  // What a GPU adapter gets (tuning.ts, defaultTuning): the tuned variants without shared rows.
  // Its silent ELBO is checked on chunk edges below ('the other backward paths'); the table's
  // learnable cases would add minutes of cold LLVM compiles for kernels that test already runs.
  if (tuned.tuning.sharedRows) {
    runConformance('WebGPU tuned, no shared rows', await withTuning(() => ({ ...tuned.tuning, sharedRows: false })),
      { skip: ['expectedLogLikelihoodFixed', 'expectedLogLikelihoodLearnable'] });
  }
  runConformance('WebGPU plain', await withTuning(() => ({ kernels: 'plain' })));
  // The conformance table's conv2d cases go where they say: Winograd for 3x3 stride-1 layers
  // with 8+ channels each side (all three passes), the implicit GEMMs otherwise.
  test('conv2d: the Winograd cases take Winograd, the others the implicit GEMMs', () => {
    const geometry = (N: number, C: number, H: number, W: number, O: number, k: number, stride: number, padding: number): Conv2dGeometry => ({
      batch: N, inChannels: C, height: H, width: W, outChannels: O, kernelH: k, kernelW: k, stride, padding,
      outHeight: Math.floor((H + 2 * padding - k) / stride) + 1, outWidth: Math.floor((W + 2 * padding - k) / stride) + 1,
    });
    const passes: WinogradPass[] = ['forward', 'input', 'filter'];
    for (const g of [geometry(2, 9, 9, 11, 12, 3, 1, 1), geometry(1, 12, 9, 11, 9, 3, 1, 0), geometry(1, 8, 7, 9, 8, 3, 1, 2),
      geometry(3, 8, 8, 12, 10, 3, 1, 1), geometry(2, 16, 28, 28, 24, 3, 1, 1), geometry(2, 8, 12, 8, 9, 3, 1, 0),
      geometry(2, 8, 6, 10, 8, 3, 1, 0), geometry(1, 8, 7, 8, 8, 3, 1, 2), geometry(2, 8, 5, 4, 8, 3, 1, 1), geometry(1, 8, 5, 13, 8, 3, 1, 1)])
      for (const pass of passes) assert.ok(winogradServes(tuned.tuning.winograd, pass, g), `${JSON.stringify(g)} ${pass}`);
    for (const g of [geometry(4, 7, 20, 20, 12, 3, 1, 1), geometry(2, 3, 5, 4, 2, 3, 1, 1), geometry(3, 1, 28, 28, 5, 3, 1, 1), geometry(1, 8, 8, 8, 8, 3, 2, 1)])
      for (const pass of passes) assert.not.ok(winogradServes(tuned.tuning.winograd, pass, g), `${JSON.stringify(g)} ${pass}`);
    // By default: the Table-5 encoder's layers at 32 channels, not at 16 or at the study's 8.
    const byDefault = defaultTuning(adapterTraits(gpu.context)).winograd;
    for (const pass of passes) {
      assert.ok(winogradServes(byDefault, pass, geometry(64, 32, 28, 28, 32, 3, 1, 1)), `32 channels ${pass}`);
      assert.not.ok(winogradServes(byDefault, pass, geometry(64, 16, 28, 28, 32, 3, 1, 1)), `16 -> 32 channels ${pass}`);
      assert.not.ok(winogradServes(byDefault, pass, geometry(64, 8, 28, 28, 8, 3, 1, 1)), `8 channels ${pass}`);
    }
  });
  // The forward's Winograd input transform is kept for the same layer's filter gradient
  // (tuned/winograd.ts, KeptInputTransforms): the backward takes it, and it never outlives
  // its input's values: freeing the input drops it (its buffer may come back refilled), and so
  // does AdamW, the one kernel that writes a buffer in place.
  test('conv2d: the kept Winograd input transform is taken once and never stale', async () => {
    const g: Conv2dGeometry = { batch: 2, inChannels: 24, height: 8, width: 8, outChannels: 24, kernelH: 3, kernelW: 3, stride: 1, padding: 1, outHeight: 8, outWidth: 8 };
    assert.ok(winogradServes(tuned.tuning.winograd, 'filter', g));
    const stream = new sg.RandomStream(5);
    const host = (...shape: number[]): sg.Tensor => sg.normal(shape, stream);
    const onGpu = (t: sg.Tensor, requiresGrad = false): sg.Tensor => sg.tensor(t.dataSync(), t.shape, { backend: tuned, requiresGrad }).keep();
    const kept = (): number => tuned.stats().keptTransforms;
    const w = host(24, 24, 3, 3), dy = host(2, 24, 8, 8), wGpu = onGpu(w, true), dyGpu = onGpu(dy);
    /** The backend's filter gradient for input x (no forward first) against the CPU's. */
    const filterGradient = async (x: sg.Tensor, xHost: Float32Array, what: string): Promise<void> => {
      const dw = sg.zeros([24, 24, 3, 3], { backend: tuned }).keep(), expected = sg.zeros([24, 24, 3, 3]);
      tuned.conv2dBackwardFilter(x, dyGpu, g, dw.storage);
      sg.cpuBackend.conv2dBackwardFilter(sg.tensor(xHost, x.shape), dy, g, expected.storage);
      assertClose(what, expected.dataSync(), await dw.data(), 5e-4);
      dw.dispose();
    };
    const start = kept();
    // Forward then backward: kept, then taken.
    const x1 = onGpu(host(2, 24, 8, 8));
    const loss = sg.sum(sg.mul(sg.conv2d(x1, wGpu, 1, 1), dyGpu));
    assert.is(kept(), start + 1, 'the forward keeps V');
    sg.backward(loss);
    assert.is(kept(), start, 'the filter gradient takes V');
    wGpu.grad = null;
    // Freed input, buffer refilled: the filter gradient must not see the old V.
    const y = sg.noGrad(() => sg.conv2d(x1, wGpu, 1, 1));
    const buffer = (x1.storage as unknown as { buffer: GPUBuffer }).buffer;
    assert.is(kept(), start + 1);
    y.dispose();
    x1.dispose();
    assert.is(kept(), start, 'freeing the input drops V');
    const x2Host = host(2, 24, 8, 8), x2 = onGpu(x2Host);
    assert.ok((x2.storage as unknown as { buffer: GPUBuffer }).buffer === buffer, 'the pool hands the buffer back (else this case tests nothing)');
    await filterGradient(x2, x2Host.dataSync() as Float32Array, 'refilled buffer');
    // Updated in place by AdamW: dropped too.
    const p = onGpu(host(2, 24, 8, 8), true);
    sg.noGrad(() => sg.conv2d(p, wGpu, 1, 1)).dispose();
    assert.is(kept(), start + 1);
    p.grad = onGpu(host(2, 24, 8, 8));
    new sg.AdamW([p], { lr: 0.5 }).step();
    assert.is(kept(), start, 'AdamW drops the V of its parameter');
    await filterGradient(p, Float32Array.from(await p.data()), 'after AdamW');
    for (const t of [x2, p, wGpu, dyGpu]) t.dispose();
  });
  // bench/webgpu-profile.js's facility: the work runs as usual, then each dispatch it recorded
  // is replayed alone and timed, by the kernel's name.
  test('profile: one named, timed entry per dispatch, and the work done as usual', async () => {
    const a = sg.tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend: tuned }).keep(), b = sg.tensor([1, 0, 0, 1, 1, 1], [3, 2], { backend: tuned }).keep();
    let product: sg.Tensor | null = null;
    const times = await tuned.profile(async () => { product = sg.relu(sg.matmul(a, b)).keep(); });
    assert.equal(times.map((t) => t.kernel.split(' ').slice(0, 2).join(' ')), ['gemm: matmul', 'elementwise select(V(0.0),']);
    assert.ok(times.every((t) => t.ms > 0 && t.ms < 1000), JSON.stringify(times));
    assert.equal([...(await product!.data())], [4, 5, 10, 11]);
    sg.neg(a).dispose();
    assert.equal(await tuned.profile(async () => {}), [], 'only what the work records');
    // A buffer bound twice, and one freed (back in the pool) by the time of the replays.
    let squares: sg.Tensor | null = null;
    const more = await tuned.profile(async () => { squares = sg.tidy(() => sg.mul(sg.neg(a), sg.neg(a))).keep(); });
    assert.is(more.length, 3);
    assert.equal([...(await squares!.data())], [1, 4, 9, 16, 25, 36]);
    // Replays leave live tensors alone: profiling an AdamW step (in place) moves the
    // parameter once, as on the CPU.
    const start = [0.5, -1, 2, 3], grad = [1, -2, 0.5, 4];
    const stepOn = (backend: sg.Backend): sg.Tensor => {
      const p = sg.tensor(start, [4], { backend, requiresGrad: true }).keep();
      p.grad = sg.tensor(grad, [4], { backend }).keep();
      return p;
    };
    const [onCpu, onGpu] = [stepOn(sg.cpuBackend), stepOn(tuned)];
    new sg.AdamW([onCpu], { lr: 0.1 }).step();
    const optimizer = new sg.AdamW([onGpu], { lr: 0.1 });
    await tuned.profile(async () => optimizer.step());
    assertClose('parameter after a profiled AdamW step', onCpu.dataSync(), await onGpu.data(), 1e-6);
    for (const t of [a, b, product!, squares!, onCpu, onGpu]) t.dispose();
  });
  // Issue 5: the fused silent ELBO's backward recomputes its partials instead of saving [terms,
  // B, k]; the forward saves at most the moment pass's contraction, [moments, B, d]
  // (momentsInForward). With subgroups (lavapipe) the partials stay in registers and move lane to
  // lane by shuffles, the path the tuned table above runs. This runs the others (workgroup memory
  // and barriers, the moment pass in the backward, phase B's latent-group walk with subgroups) on
  // chunk edges: several chunks of pixels and of examples with ragged ends, and lanes walking
  // several groups of latents.
  test('silent ELBO: the other backward paths match the CPU on chunk edges', async () => {
    const stream = new sg.RandomStream(3);
    const check = async (variant: WebGpuBackend, form: 'fixed' | 'gaussian' | 'bernoulli', B: number, d: number, k: number): Promise<void> => {
      const host = [sg.uniform([B, d], stream), sg.scale(sg.normal([k, d], stream), 1 / Math.sqrt(d)), sg.normal([k], stream),
        sg.scale(sg.normal([k, d], stream), 0.1 / Math.sqrt(d)), sg.shift(sg.normal([k], stream), 3), sg.shift(sg.uniform([B, k], stream), 0.5), sg.normal([B], stream)];
      const run = async (backend: sg.Backend): Promise<Float32Array[]> => {
        const [p, wMu, bMu, wA, bA, x, weights] = host.map((t) => sg.tensor(t.dataSync(), t.shape, { backend, requiresGrad: true }));
        const q = sg.sub(sg.fullLike(p!, 1), p!), pq = sg.mul(p!, q);
        const out = form === 'fixed' ? sg.expectedLogLikelihoodFixed({ mean: p!, c2: pq }, wMu!, bMu!, x!, 0.5)
          : sg.expectedLogLikelihoodLearnable(form === 'gaussian' ? { mean: p!, c2: pq }
            : { mean: p!, c2: pq, c3: sg.mul(pq, sg.sub(q, p!)), k4: sg.mul(pq, sg.sub(sg.fullLike(p!, 1), sg.scale(pq, 6))) },
          { wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA! }, x!);
        sg.backward(sg.sum(sg.mul(out, weights!)));
        const grads = form === 'fixed' ? [p!, wMu!, bMu!, x!] : [p!, wMu!, bMu!, wA!, bA!, x!];
        return [Float32Array.from(await out.data()), ...(await Promise.all(grads.map(async (t) => Float32Array.from(await t.grad!.data()))))];
      };
      const [expected, actual] = [await run(sg.cpuBackend), await run(variant)];
      const path = `${variant.tuning.sharedRows ? 'subgroups' : 'workgroup memory'}, moment pass in the ${variant.tuning.silentElbo.momentsInForward ? 'forward' : 'backward'}`;
      expected.forEach((e, i) => assertClose(`${form} ${B}x${d}x${k} (${path}) ${i ? `gradient ${i}` : 'value'}`, e, actual[i]!, 5e-4));
    };
    const unshared = await withTuning(() => ({ kernels: 'tuned', sharedRows: false }));
    for (const [form, B, d, k] of [['fixed', 70, 12, 1100], ['bernoulli', 100, 101, 130], ['gaussian', 9, 260, 45]] as const) await check(unshared, form, B, d, k);
    const inBackward = (t: TuningProfile): TuningProfile['silentElbo'] => ({ ...t.silentElbo, momentsInForward: false });
    await check(await withTuning((t) => ({ kernels: 'tuned', sharedRows: false, silentElbo: inBackward(t) })), 'bernoulli', 100, 101, 130);
    await check(await withTuning((t) => ({ kernels: 'tuned', silentElbo: inBackward(t) })), 'bernoulli', 37, 5, 130);
    await check(await withTuning((t) => ({ kernels: 'tuned', silentElbo: { ...inBackward(t), latentWalk: !t.silentElbo.latentWalk } })), 'bernoulli', 70, 8, 40);
    // What the forward saves: the moment contraction, never the partials.
    const view = (shape: number[]) => ({ storage: { dtype: 'float32' as const, length: 0 }, shape, strides: [], offset: 0 });
    const operands = { form: 'learnable' as const, terms: sg.silentElboTerms, mean: view([64, 200]), c2: view([64, 200]), c3: view([64, 200]), k4: view([64, 200]),
      wMu: view([784, 200]), bMu: view([784]), wA: view([784, 200]), bA: view([784]), x: view([64, 784]), sigma2: 1 };
    assert.equal(tuned.silentElboSavedShape(operands), [4, 64, 200]);
  });
  // The silent ELBO's shaders are cached by what they read (kernels/wgsl.ts cachedSource), and
  // which gradients a backward writes changes its passes' code: asking for different ones in
  // turn, in one process, must never reuse another set's shader, plain or tuned.
  test('silent ELBO: backwards wanting different gradients in turn each match the CPU', async () => {
    const stream = new sg.RandomStream(5);
    const [B, d, k] = [6, 8, 20];
    const host = [sg.uniform([B, d], stream), sg.scale(sg.normal([k, d], stream), 0.3), sg.normal([k], stream),
      sg.scale(sg.normal([k, d], stream), 0.05), sg.shift(sg.normal([k], stream), 3), sg.uniform([B, k], stream)];
    const names = ['p', 'wMu', 'bMu', 'wA', 'bA', 'x'];
    const run = async (backend: sg.Backend, wanted: readonly string[]): Promise<Float32Array[]> => {
      const [p, wMu, bMu, wA, bA, x] = host.map((t, i) => sg.tensor(t.dataSync(), t.shape, { backend, requiresGrad: wanted.includes(names[i]!) }));
      const q = sg.sub(sg.fullLike(p!, 1), p!), pq = sg.mul(p!, q);
      const moments = { mean: p!, c2: pq, c3: sg.mul(pq, sg.sub(q, p!)), k4: sg.mul(pq, sg.sub(sg.fullLike(p!, 1), sg.scale(pq, 6))) };
      sg.backward(sg.sum(sg.expectedLogLikelihoodLearnable(moments, { wMu: wMu!, bMu: bMu!, wA: wA!, bA: bA! }, x!)));
      return Promise.all(wanted.map(async (name) => Float32Array.from(await [p, wMu, bMu, wA, bA, x][names.indexOf(name)]!.grad!.data())));
    };
    const plain = await withTuning(() => ({ kernels: 'plain' }));
    for (const backend of [tuned, plain]) for (const wanted of [names, ['wMu'], ['p'], ['wA', 'bMu'], ['x', 'bA'], names]) {
      const [expected, actual] = [await run(sg.cpuBackend, wanted), await run(backend, wanted)];
      wanted.forEach((name, i) => assertClose(`${backend.tuning.kernels}: gradient of ${name} when only ${wanted.join(', ')} want one`, expected[i]!, actual[i]!, 5e-4));
    }
  });
  // Issue 22: auto takes a GPU adapter without measuring; beside a software one it times a probe
  // step on each backend (or reads this machine's cached figures) and reports them.
  test('--backend auto takes a GPU adapter unprobed, and otherwise chooses by a probe it reports', async () => {
    const { backend, reason } = await selectBackend('auto');
    if (!gpu.context.software) {
      assert.is(backend.name, 'webgpu');
      assert.match(reason, /auto chose webgpu \(a GPU adapter/);
    } else {
      assert.match(reason, /a probe step took [\d.]+ ms on (webgpu|cpu) against [\d.]+ ms on (cpu|webgpu)/);
      assert.ok(['webgpu', 'cpu'].includes(backend.name));
    }
  });
  test.run();
}
