import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../engine/index.js';

const f64 = { dtype: 'float64' as const };
test('add/mul/sum backward', () => {
  const a = sg.tensor([1, 2, 3, 4, 5, 6], [2, 3], { ...f64, requiresGrad: true });
  const b = sg.tensor([1, 2, 3], [3], { ...f64, requiresGrad: true });
  const y = sg.sum(sg.mul(sg.add(a, b), a));
  sg.backward(y);
  assert.equal([...a.grad!.dataSync()], [3, 6, 9, 9, 12, 15]);
  assert.equal([...b.grad!.dataSync()], [5, 7, 9]);
});
test('gradcheck matmul conv', () => {
  const r = new sg.RandomStream(1);
  const x = sg.normal([2, 3, 5, 4], r, f64), w = sg.normal([2, 3, 3, 3], r, f64);
  const res = sg.gradcheck((x, w) => sg.conv2d(x!, w!, 2, 1), [x, w]);
  assert.ok(res.ok, JSON.stringify(res));
  const ct = sg.gradcheck((x, w) => sg.convTranspose2d(x!, w!, 2, 1), [sg.normal([2, 3, 3, 2], r, f64), sg.normal([3, 2, 4, 4], r, f64)]);
  assert.ok(ct.ok, JSON.stringify(ct));
  const mm = sg.gradcheck((a, b) => sg.matmul(sg.transpose(a!), b!), [sg.normal([4, 3], r, f64), sg.normal([4, 5], r, f64)]);
  assert.ok(mm.ok, JSON.stringify(mm));
});
test.run();
