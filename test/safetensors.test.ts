import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sg from '../engine/index.js';

const dir = mkdtempSync(join(tmpdir(), 'silentgrad-st-'));

test('a safetensors round trip is exact, metadata included', async () => {
  const stream = new sg.RandomStream(3);
  const state = new Map([
    ['encoder.0.weight', sg.normal([4, 1, 3, 3], stream)],
    ['decoder.bias', sg.normal([7], stream, { dtype: 'float64' })],
    ['scalar', sg.tensor([Math.PI], [])],
  ]);
  const path = join(dir, 'model.safetensors');
  await sg.saveSafetensors(path, state, { epoch: '3' });
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  assert.is((8 + headerLength) % 8, 0, 'data section is 8-byte aligned');
  const loaded = sg.loadSafetensors(path);
  assert.equal(loaded.metadata, { epoch: '3' });
  for (const [name, t] of state) {
    const back = loaded.tensors.get(name)!;
    assert.equal(back.shape, t.shape, name);
    assert.is(back.dtype, t.dtype, name);
    assert.equal([...back.dataSync()], [...t.dataSync()], name);
  }
});

test('truncated and corrupt files give errors that say what is wrong', async () => {
  const path = join(dir, 'good.safetensors');
  await sg.saveSafetensors(path, new Map([['w', sg.ones([100])]]));
  const full = readFileSync(path);
  const truncated = join(dir, 'truncated.safetensors');
  writeFileSync(truncated, full.subarray(0, full.length - 10));
  assert.throws(() => sg.loadSafetensors(truncated), /truncated\.safetensors is truncated or corrupt: 'w' needs bytes 0\.\.400 but the data section has 390/);
  const tiny = join(dir, 'tiny.safetensors');
  writeFileSync(tiny, full.subarray(0, 5));
  assert.throws(() => sg.loadSafetensors(tiny), /tiny\.safetensors is truncated or corrupt: 5 bytes/);
  const garbled = join(dir, 'garbled.safetensors');
  const copy = Buffer.from(full);
  copy[9] = 0x7b; copy[10] = 0x7b;
  writeFileSync(garbled, copy);
  assert.throws(() => sg.loadSafetensors(garbled), /not valid JSON/);
  assert.throws(() => sg.loadSafetensors(join(dir, 'missing.safetensors')), /cannot read .*missing\.safetensors/);
});

test('a module state survives save and load', async () => {
  const make = (seed: number): sg.nn.Module => new sg.nn.Sequential(
    new sg.nn.Conv2d(1, 2, 3, { stream: new sg.RandomStream(seed), padding: 1 }),
    new sg.nn.BatchNorm2d(2),
    sg.nn.Flatten(),
    new sg.nn.Linear(2 * 16, 3, { stream: new sg.RandomStream(seed + 1) }),
  );
  const a = make(1), b = make(100);
  const x = sg.normal([2, 1, 4, 4], new sg.RandomStream(5));
  a.forward(x); // moves the batch-norm running statistics away from their initial values
  const path = join(dir, 'module.safetensors');
  await sg.saveSafetensors(path, a.stateDict());
  b.loadStateDict(sg.loadSafetensors(path).tensors);
  a.eval(); b.eval();
  assert.equal([...b.forward(x).dataSync()], [...a.forward(x).dataSync()]);
  assert.equal([...a.stateDict().keys()], ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '3.weight', '3.bias']);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
