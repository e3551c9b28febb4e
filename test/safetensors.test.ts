import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sg from '../silentgrad.js';
import { loadSafetensors, saveSafetensors } from '../engine/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'silentgrad-st-'));

test('a safetensors round trip is exact, metadata included', async () => {
  const stream = new sg.RandomStream(3);
  const state = new Map([
    ['encoder.0.weight', sg.normal([4, 1, 3, 3], stream)],
    ['decoder.bias', sg.normal([7], stream, { dtype: 'float64' })],
    ['scalar', sg.tensor([Math.PI], [])],
  ]);
  const path = join(dir, 'model.safetensors');
  await saveSafetensors(path, state, { epoch: '3' });
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  assert.is((8 + headerLength) % 8, 0, 'data section is 8-byte aligned');
  const loaded = loadSafetensors(path);
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
  await saveSafetensors(path, new Map([['w', sg.ones([100])]]));
  const full = readFileSync(path);
  const truncated = join(dir, 'truncated.safetensors');
  writeFileSync(truncated, full.subarray(0, full.length - 10));
  assert.throws(() => loadSafetensors(truncated), /truncated\.safetensors is truncated or corrupt: 'w' needs bytes 0\.\.400 but the data section has 390/);
  const tiny = join(dir, 'tiny.safetensors');
  writeFileSync(tiny, full.subarray(0, 5));
  assert.throws(() => loadSafetensors(tiny), /tiny\.safetensors is truncated or corrupt: 5 bytes/);
  const garbled = join(dir, 'garbled.safetensors');
  const copy = Buffer.from(full);
  copy[9] = 0x7b; copy[10] = 0x7b;
  writeFileSync(garbled, copy);
  assert.throws(() => loadSafetensors(garbled), /not valid JSON/);
  assert.throws(() => loadSafetensors(join(dir, 'missing.safetensors')), /cannot read .*missing\.safetensors/);
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
  await saveSafetensors(path, a.stateDict());
  b.loadStateDict(loadSafetensors(path).tensors);
  a.eval(); b.eval();
  assert.equal([...b.forward(x).dataSync()], [...a.forward(x).dataSync()]);
  assert.equal([...a.stateDict().keys()], ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked', '3.weight', '3.bias']);
});

/** The header of a safetensors file and the byte offset its data starts at. */
function readHeader(path: string): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; dataStart: number; bytes: Buffer } {
  const bytes = readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')), dataStart: 8 + length, bytes };
}

test('num_batches_tracked is written as I64 [] and batch norm round-trips through a checkpoint, train and eval', async () => {
  const make = (momentum: number | null): sg.nn.Sequential => new sg.nn.Sequential(
    new sg.nn.Conv2d(1, 3, 3, { stream: new sg.RandomStream(7), padding: 1 }), // 3 channels: 12-byte F32 entries
    new sg.nn.BatchNorm2d(3, { momentum }),
  );
  const batch = (seed: number): sg.Tensor => sg.normal([2, 1, 4, 4], new sg.RandomStream(seed));
  for (const momentum of [0.1, null]) {
    const a = make(momentum);
    for (let step = 0; step < 5; step++) a.forward(batch(step));
    const path = join(dir, `bn-${momentum}.safetensors`);
    await saveSafetensors(path, a.stateDict());
    const { header, dataStart, bytes } = readHeader(path);
    assert.equal(header['1.num_batches_tracked'], { dtype: 'I64', shape: [], data_offsets: header['1.num_batches_tracked']!.data_offsets });
    assert.is(bytes.readBigInt64LE(dataStart + header['1.num_batches_tracked']!.data_offsets[0]), 5n);
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      assert.is(entry.data_offsets[0] % (entry.dtype === 'F32' ? 4 : 8), 0, `${name} is aligned for ${entry.dtype}`);
    }
    const loaded = loadSafetensors(path);
    const counter = loaded.tensors.get('1.num_batches_tracked')!;
    assert.ok(sg.nn.isInt64(counter), 'an I64 entry loads tagged, so saving it again writes I64');
    assert.equal([...counter.dataSync()], [5]);
    const b = make(momentum);
    b.loadStateDict(loaded.tensors);
    const norm = b.layers[1] as sg.nn.BatchNorm2d;
    assert.equal([...norm.numBatchesTracked.dataSync()], [5]);
    assert.is(norm.numBatchesTracked.dtype, 'float32', 'converted to the model\'s dtype');
    a.eval(); b.eval();
    assert.equal([...b.forward(batch(9)).dataSync()], [...a.forward(batch(9)).dataSync()], 'eval: the running statistics came back');
    a.train(); b.train();
    assert.equal([...b.forward(batch(10)).dataSync()], [...a.forward(batch(10)).dataSync()], 'train: batch statistics');
    const runningMean = (m: sg.nn.Sequential): number[] => [...(m.layers[1] as sg.nn.BatchNorm2d).runningMean.dataSync()];
    assert.equal(runningMean(b), runningMean(a), 'the next update agrees, the count included');
    assert.equal([...norm.numBatchesTracked.dataSync()], [6]);
    if (momentum === null) {
      // momentum=None averages all batches: the count decides the weight of the next one.
      const fresh = make(null);
      fresh.loadStateDict(new Map([...loadSafetensors(path).tensors].map(([n, t]) => [n, n.endsWith('num_batches_tracked') ? sg.nn.markInt64(sg.zeros([])) : t])));
      fresh.forward(batch(10));
      assert.not.equal(runningMean(fresh), runningMean(a));
    }
  }
});

test('I64 entries: exact whole numbers in and out, clear errors for what floats cannot hold', async () => {
  const counts = sg.nn.markInt64(sg.tensor([0, 1, -2, 2 ** 40, 9], [5], { dtype: 'float64' }));
  const path = join(dir, 'ints.safetensors');
  await saveSafetensors(path, new Map([['counts', counts], ['w', sg.ones([3])]]));
  const { header, dataStart, bytes } = readHeader(path);
  assert.equal(header.counts, { dtype: 'I64', shape: [5], data_offsets: [0, 40] }, '8-byte entries come first');
  assert.equal(header.w, { dtype: 'F32', shape: [3], data_offsets: [40, 52] });
  assert.equal(Array.from({ length: 5 }, (_, i) => bytes.readBigInt64LE(dataStart + 8 * i)), [0n, 1n, -2n, 2n ** 40n, 9n]);
  const back = loadSafetensors(path).tensors.get('counts')!;
  assert.equal([...back.dataSync()], [0, 1, -2, 2 ** 40, 9]);
  assert.is(back.dtype, 'float64', 'the CPU backend holds int64 state in float64, exact to 2^53');
  try {
    await saveSafetensors(join(dir, 'bad.safetensors'), new Map([['n', sg.nn.markInt64(sg.tensor([2.5], [1]))]]));
    assert.unreachable('a fraction is not int64 state');
  } catch (e) {
    assert.match((e as Error).message, /'n' is int64 state but holds 2\.5/);
  }
  // 2^60 is beyond float64's exact integers.
  const huge = Buffer.from(bytes);
  huge.writeBigInt64LE(2n ** 60n, dataStart);
  const hugePath = join(dir, 'huge.safetensors');
  writeFileSync(hugePath, huge);
  assert.throws(() => loadSafetensors(hugePath), /'counts' holds the integer 1152921504606846976, beyond what float64/);
  const unsupported = Buffer.from(bytes.toString('latin1').replace('"I64"', '"I32"'), 'latin1');
  const unsupportedPath = join(dir, 'i32.safetensors');
  writeFileSync(unsupportedPath, unsupported);
  assert.throws(() => loadSafetensors(unsupportedPath), /'counts' has dtype I32; silentgrad reads F32, F64 and I64/);
});

/**
 * A file as PyTorch writes it for nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)) with
 * safetensors.torch.save_file(model.state_dict(), path, metadata={'format': 'pt'}): F32
 * weights, an int64 scalar num_batches_tracked, entries laid out by descending dtype and then
 * by name, a compact JSON header padded with spaces to 8 bytes.
 */
function pytorchStyleFile(values: Record<string, number[]>, numBatchesTracked: bigint): Buffer {
  const shapes: Record<string, number[]> = {
    '0.weight': [2, 1, 1, 1], '0.bias': [2], '1.weight': [2], '1.bias': [2], '1.running_mean': [2], '1.running_var': [2],
  };
  const entries: [string, string, number[], Buffer][] = [['1.num_batches_tracked', 'I64', [], Buffer.alloc(8)]];
  entries[0]![3].writeBigInt64LE(numBatchesTracked);
  for (const name of Object.keys(shapes).sort()) {
    const data = Buffer.alloc(4 * values[name]!.length);
    values[name]!.forEach((v, i) => data.writeFloatLE(v, 4 * i));
    entries.push([name, 'F32', shapes[name]!, data]);
  }
  let json = '{"__metadata__":{"format":"pt"}';
  let offset = 0;
  for (const [name, dtype, shape, data] of entries) {
    json += `,"${name}":{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${offset},${offset + data.length}]}`;
    offset += data.length;
  }
  json += '}';
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, Buffer.from(json, 'utf8'), ...entries.map((e) => e[3])]);
}

test('a file written by PyTorch (F32 weights, I64 num_batches_tracked) loads into the same modules', () => {
  const values = {
    '0.weight': [1.5, -2], '0.bias': [0.25, 1], '1.weight': [2, 0.5], '1.bias': [-1, 3], '1.running_mean': [0.5, -1], '1.running_var': [4, 0.25],
  };
  const path = join(dir, 'pytorch.safetensors');
  writeFileSync(path, pytorchStyleFile(values, 1234n));
  const loaded = loadSafetensors(path);
  assert.equal(loaded.metadata, { format: 'pt' });
  for (const dtype of ['float32', 'float64'] as const) {
    const model = new sg.nn.Sequential(
      new sg.nn.Conv2d(1, 2, 1, { stream: new sg.RandomStream(1), dtype }),
      new sg.nn.BatchNorm2d(2, { dtype }),
    );
    model.loadStateDict(loaded.tensors);
    const norm = model.layers[1] as sg.nn.BatchNorm2d;
    assert.equal([...norm.numBatchesTracked.dataSync()], [1234]);
    assert.equal([...norm.runningVar.dataSync()], values['1.running_var']);
    assert.is(norm.runningVar.dtype, dtype);
    model.eval();
    const x = [0.5, -1, 2];
    const y = model.forward(sg.tensor(x, [1, 1, 1, 3], { dtype })).dataSync();
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < 3; i++) {
        const conv = values['0.weight'][c]! * x[i]! + values['0.bias'][c]!;
        const expected = (conv - values['1.running_mean'][c]!) / Math.sqrt(values['1.running_var'][c]! + 1e-5) * values['1.weight'][c]! + values['1.bias'][c]!;
        assert.ok(Math.abs(y[c * 3 + i]! - expected) < 1e-5, `channel ${c} pixel ${i}: ${y[c * 3 + i]} vs ${expected}`);
      }
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
