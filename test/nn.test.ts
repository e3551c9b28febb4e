import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../silentgrad.js';
import { threadCount, warmUp, workerPieces } from '../backends/cpu/parallel.js';

const f64 = { dtype: 'float64' as const };
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12): void => {
  assert.is(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `index ${i}: ${a[i]} vs ${b[i]}`);
};

test('Linear computes x Wᵀ + b with hand-set weights', () => {
  const layer = new sg.nn.Linear(3, 2, { stream: new sg.RandomStream(1), ...f64 });
  layer.loadStateDict(new Map([['weight', sg.tensor([1, 2, 3, -1, 0, 1], [2, 3], f64)], ['bias', sg.tensor([0.5, -0.5], [2], f64)]]));
  const y = layer.forward(sg.tensor([1, 1, 1, 2, 0, -1], [2, 3], f64));
  close(y.dataSync(), [6.5, -0.5, -0.5, -3.5]);
});

test('Conv2d and ConvTranspose2d match hand-computed outputs', () => {
  const conv = new sg.nn.Conv2d(1, 1, 2, { stream: new sg.RandomStream(1), ...f64 });
  conv.loadStateDict(new Map([['weight', sg.tensor([1, 0, 0, -1], [1, 1, 2, 2], f64)], ['bias', sg.tensor([10], [1], f64)]]));
  // x = [[1,2,3],[4,5,6],[7,8,9]]: each output is x[i][j] - x[i+1][j+1] + 10 = 6
  close(conv.forward(sg.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3], f64)).dataSync(), [6, 6, 6, 6]);
  const up = new sg.nn.ConvTranspose2d(1, 1, 2, { stream: new sg.RandomStream(1), stride: 2, ...f64 });
  up.loadStateDict(new Map([['weight', sg.tensor([1, 2, 3, 4], [1, 1, 2, 2], f64)], ['bias', sg.tensor([0], [1], f64)]]));
  // Stride 2 with a 2x2 kernel tiles a copy of the kernel scaled by each input value.
  close(up.forward(sg.tensor([1, 10], [1, 1, 1, 2], f64)).dataSync(), [1, 2, 10, 20, 3, 4, 30, 40]);
});

test('default initialisation follows PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in))', () => {
  const layer = new sg.nn.Conv2d(8, 16, 3, { stream: new sg.RandomStream(2) });
  const bound = 1 / Math.sqrt(8 * 9);
  const w = Array.from(layer.weight.dataSync());
  assert.ok(w.every((v) => Math.abs(v) <= bound));
  const variance = w.reduce((a, v) => a + v * v, 0) / w.length;
  assert.ok(Math.abs(variance / (bound * bound / 3) - 1) < 0.1, `variance ratio ${variance / (bound * bound / 3)}`);
  const t = new sg.nn.ConvTranspose2d(8, 4, 4, { stream: new sg.RandomStream(3) });
  assert.ok(t.weight.dataSync().every((v) => Math.abs(v) <= 1 / Math.sqrt(4 * 16)), 'transposed fan_in uses out channels');
});

test('BatchNorm2d: batch statistics in training, running statistics in eval', () => {
  const bn = new sg.nn.BatchNorm2d(2, f64);
  // channel 0 holds 1..4, channel 1 holds 10, 10, 20, 20 (N=2, H=1, W=2)
  const x = sg.tensor([1, 2, 10, 10, 3, 4, 20, 20], [2, 2, 1, 2], f64);
  const y = bn.forward(x).dataSync();
  const norm0 = [1, 2, 3, 4].map((v) => (v - 2.5) / Math.sqrt(1.25 + 1e-5));
  const norm1 = [10, 10, 20, 20].map((v) => (v - 15) / Math.sqrt(25 + 1e-5));
  close(y, [norm0[0]!, norm0[1]!, norm1[0]!, norm1[1]!, norm0[2]!, norm0[3]!, norm1[2]!, norm1[3]!], 1e-9);
  close(bn.runningMean.dataSync(), [0.25, 1.5]);
  close(bn.runningVar.dataSync(), [0.9 + 0.1 * (1.25 * 4 / 3), 0.9 + 0.1 * (25 * 4 / 3)]);
  bn.eval();
  const z = bn.forward(x).dataSync();
  assert.ok(Math.abs(z[0]! - (1 - 0.25) / Math.sqrt(bn.runningVar.dataSync()[0]! + 1e-5)) < 1e-12);
  assert.equal(bn.runningMean.dataSync().length, 2, 'eval leaves the statistics alone');
  close(bn.runningMean.dataSync(), [0.25, 1.5]);
});

test('Sequential names parameters like PyTorch and switches train/eval everywhere', () => {
  const s = new sg.RandomStream(4);
  const net = new sg.nn.Sequential(new sg.nn.Linear(4, 3, { stream: s }), sg.nn.ReLU(), new sg.nn.Sequential(new sg.nn.Linear(3, 2, { stream: s })));
  assert.equal(net.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '2.0.weight', '2.0.bias']);
  net.eval();
  assert.not.ok((net.layers[2] as sg.nn.Sequential).layers[0]!.training);
  assert.equal(net.forward(sg.zeros([5, 4])).shape, [5, 2]);
});

test('AdamW matches its update rule for several steps (PyTorch semantics), on one thread and on the pool', () => {
  // 3 parameters run on the calling thread; 60,000 are enough work for the CPU backend's
  // update to be split over the thread pool (backends/cpu/adamw.ts).
  warmUp();
  for (const n of [3, 60_000]) {
    const start = Array.from({ length: n }, (_, i) => [0.5, -1.5, 2][i % 3]! * (1 + i / n));
    const p = sg.tensor(start, [n], { ...f64, requiresGrad: true });
    const opt = new sg.AdamW([{ params: [p], options: { lr: 0.1 } }], { betas: [0.9, 0.95], weightDecay: 0.1, eps: 1e-8 });
    const ref = start.slice(), m = new Array<number>(n).fill(0), v = new Array<number>(n).fill(0);
    const piecesBefore = workerPieces();
    for (let t = 1; t <= 4; t++) {
      // loss = sum(p^3) -> grad 3 p^2
      sg.backward(sg.sum(sg.pow(p, 3)));
      opt.step();
      opt.zeroGrad();
      for (let i = 0; i < n; i++) {
        const g = 3 * ref[i]! ** 2;
        ref[i]! *= 1 - 0.1 * 0.1;
        m[i] = 0.9 * m[i]! + 0.1 * g;
        v[i] = 0.95 * v[i]! + 0.05 * g * g;
        ref[i]! -= (0.1 / (1 - 0.9 ** t)) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.95 ** t) + 1e-8);
      }
      close(p.dataSync(), ref, 1e-12);
    }
    assert.is(p.grad, null);
    // A busy machine can leave a worker out of a few calls (the caller then does its share),
    // so give it up to 50 more steps to show it takes part.
    if (n > 3 && threadCount() > 1) {
      for (let i = 0; i < 50 && workerPieces() === piecesBefore; i++) {
        sg.backward(sg.sum(p));
        opt.step();
        opt.zeroGrad();
      }
      assert.ok(workerPieces() > piecesBefore, 'a worker ran part of the big update');
    }
  }
});

test('matmul hands a transposed operand a contiguous gradient (a linear weight needs no copy)', () => {
  const layer = new sg.nn.Linear(5, 3, { stream: new sg.RandomStream(2), ...f64 });
  const x = sg.tensor(Array.from({ length: 10 }, (_, i) => i / 10 - 0.4), [2, 5], { ...f64, requiresGrad: true });
  sg.backward(sg.sum(sg.square(layer.forward(x))));
  const w = layer.parameters().find((t) => t.shape.length === 2)!;
  assert.ok(w.grad!.isContiguous && w.grad!.offset === 0, `weight gradient strides ${w.grad!.strides}`);
  // and it is the right gradient: d/dW sum((x Wᵀ + b)^2) = 2 (x Wᵀ + b)ᵀ x
  const y = sg.noGrad(() => layer.forward(x)).dataSync(), xs = x.dataSync(), expected: number[] = [];
  for (let o = 0; o < 3; o++) for (let i = 0; i < 5; i++) expected.push(2 * (y[o]! * xs[i]! + y[3 + o]! * xs[5 + i]!));
  close(w.grad!.dataSync(), expected);
  // x enters untransposed: its gradient is the ordinary g W.
  assert.ok(x.grad!.isContiguous);
});

test('SGD and parameter groups with their own learning rates', () => {
  const a = sg.tensor([1], [1], { ...f64, requiresGrad: true }), b = sg.tensor([1], [1], { ...f64, requiresGrad: true });
  const opt = new sg.SGD([{ params: [a] }, { params: [b], options: { lr: 0.5 } }], { lr: 0.1 });
  sg.backward(sg.sum(sg.add(a, b)));
  opt.step();
  close(a.dataSync(), [0.9]);
  close(b.dataSync(), [0.5]);
});

test('gradients accumulate over fan-out and across backward calls; tidy frees the rest', () => {
  const x = sg.tensor([2], [1], { ...f64, requiresGrad: true });
  sg.backward(sg.sum(sg.mul(x, x)));
  sg.backward(sg.sum(sg.add(x, x)));
  close(x.grad!.dataSync(), [6]);
  const kept = sg.tidy(() => {
    const t = sg.exp(x);
    const inner = sg.mul(t, t);
    return [inner, t] as const;
  });
  assert.not.ok(kept[0].isDisposed);
  let leaked: sg.Tensor | undefined;
  sg.tidy(() => { leaked = sg.exp(x); });
  assert.ok(leaked!.isDisposed);
  assert.throws(() => leaked!.dataSync(), /already disposed/);
});

test.run();
