// The data sets beyond MNIST (Fashion-MNIST, CIFAR-10, ImageNet 32x32) on small files written
// here in each release's real format: every byte read back, and every broken file reported by a
// message naming it and saying where to get the data.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync, gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cifar10FilePaths, loadCifar10 } from '../experiments/data/cifar10.js';
import { DEBIAN_FASHION_MNIST_DIR, fashionMnistFilePaths, loadFashionMnist } from '../experiments/data/fashion-mnist.js';
import { labelBatch, pixelBatch, selectRange } from '../experiments/data/images.js';
import { IMAGENET32_FOLDERS, imagenet32FilePaths, loadImagenet32 } from '../experiments/data/imagenet32.js';
import { crc32 } from '../experiments/data/npz.js';
import { errorMessage, withTempDir } from './temp-files.js';

const withDir = (body: (dir: string) => void): void => withTempDir('silentgrad-datasets-', body);

/** Asserts the message names the file and matches every pattern. */
function assertError(action: () => unknown, path: string, ...patterns: RegExp[]): void {
  const message = errorMessage(action);
  assert.ok(message.includes(path), `expected ${path} in: ${message}`);
  for (const pattern of patterns) assert.match(message, pattern);
}

/** Distinct-looking bytes: byte i of pattern `seed`. */
function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed * 101 + (i >> 8)) & 255);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// ---------------------------------------------------------------- Fashion-MNIST (gzipped IDX)

function idx(magic: number, dims: number[], payload: Uint8Array): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  const view = new DataView(header.buffer);
  view.setUint32(0, magic, false);
  dims.forEach((dim, i) => view.setUint32(4 + 4 * i, dim, false));
  return concat([header, payload]);
}

/** Writes a Fashion-MNIST split of `labels.length` images; returns the images' bytes. */
function writeFashion(dir: string, prefix: 'train' | 't10k', labels: number[], gzip = true): Uint8Array {
  const images = pattern(labels.length * 784, labels.length);
  const suffix = gzip ? '.gz' : '';
  const pack = (bytes: Uint8Array): Uint8Array => (gzip ? gzipSync(bytes) : bytes);
  writeFileSync(join(dir, `${prefix}-images-idx3-ubyte${suffix}`), pack(idx(0x803, [labels.length, 28, 28], images)));
  writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte${suffix}`), pack(idx(0x801, [labels.length], Uint8Array.from(labels))));
  return images;
}

test('Fashion-MNIST: gzipped IDX files read back exactly, in MNIST shape', () => {
  withDir((dir) => {
    const images = writeFashion(dir, 'train', [9, 0, 5]);
    const split = loadFashionMnist('train', { dataDir: dir, checkCounts: false });
    assert.is(split.count, 3);
    assert.equal([split.channels, split.height, split.width, split.rows, split.cols], [1, 28, 28, 28, 28]);
    assert.equal(Array.from(split.labels), [9, 0, 5]);
    assert.equal(split.images, images);
    const middle = loadFashionMnist('train', { dataDir: dir, checkCounts: false, from: 1, limit: 1 });
    assert.equal(Array.from(middle.labels), [0]);
    assert.equal(middle.images, images.slice(784, 2 * 784));
  });
});

test('Fashion-MNIST: uncompressed files are read when there is no .gz', () => {
  withDir((dir) => {
    const images = writeFashion(dir, 't10k', [1, 2], false);
    assert.is(fashionMnistFilePaths('test', dir).images, join(dir, 't10k-images-idx3-ubyte'));
    const split = loadFashionMnist('test', { dataDir: dir, checkCounts: false });
    assert.equal(split.images, images);
    assert.equal(Array.from(split.labels), [1, 2]);
  });
});

test('Fashion-MNIST: the official counts are checked unless turned off', () => {
  withDir((dir) => {
    writeFashion(dir, 'train', [9, 0, 5]);
    assertError(() => loadFashionMnist('train', { dataDir: dir }), join(dir, 'train-images-idx3-ubyte.gz'), /image count is 3, expected 60000/);
  });
});

test('Fashion-MNIST: a missing file says to install the Debian package or pass a folder', () => {
  withDir((dir) => {
    assertError(
      () => loadFashionMnist('test', { dataDir: dir }),
      join(dir, 't10k-images-idx3-ubyte.gz'),
      /file not found/, /apt-get install dataset-fashion-mnist/, /--data-dir/, /\/usr\/share\/datasets\/fashion-mnist/,
    );
  });
  assert.is(DEBIAN_FASHION_MNIST_DIR, '/usr/share/datasets/fashion-mnist');
  assert.is(fashionMnistFilePaths('train').images, '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz');
});

test('Fashion-MNIST: truncated gzip, truncated IDX, wrong magic, disagreeing label count', () => {
  withDir((dir) => {
    writeFashion(dir, 'train', [9, 0, 5]);
    const images = join(dir, 'train-images-idx3-ubyte.gz');
    const labels = join(dir, 'train-labels-idx1-ubyte.gz');
    const options = { dataDir: dir, checkCounts: false };
    const full = gzipSync(idx(0x803, [3, 28, 28], pattern(3 * 784, 3)));
    writeFileSync(images, full.subarray(0, full.length >> 1));
    assertError(() => loadFashionMnist('train', options), images, /cannot gunzip it/, /truncated, or not a gzip file/, /apt-get install/);

    writeFileSync(images, gzipSync(idx(0x803, [3, 28, 28], pattern(2 * 784, 3))));
    assertError(() => loadFashionMnist('train', options), images, /file truncated: header promises 3 items, so expected 2368 bytes, found 1584 \(after gunzip\)/);

    writeFileSync(images, gzipSync(idx(0x801, [3, 28, 28], pattern(3 * 784, 3))));
    assertError(() => loadFashionMnist('train', options), images, /magic number is 0x00000801, expected 0x00000803/);

    writeFileSync(images, gzipSync(idx(0x803, [3, 32, 32], pattern(3 * 1024, 3))));
    assertError(() => loadFashionMnist('train', options), images, /images are 32x32, expected 28x28/);

    writeFileSync(images, gzipSync(idx(0x803, [3, 28, 28], pattern(3 * 784, 3))));
    writeFileSync(labels, gzipSync(idx(0x801, [2], Uint8Array.from([1, 2]))));
    assertError(() => loadFashionMnist('train', options), labels, /label count is 2, expected 3/);

    writeFileSync(labels, gzipSync(idx(0x801, [3], Uint8Array.from([1, 10, 2]))));
    assertError(() => loadFashionMnist('train', options), labels, /label 1 is 10, expected 0\.\.9/);
  });
});

if (existsSync(join(DEBIAN_FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz'))) {
  test('Fashion-MNIST: the Debian package\'s files load (it is installed here)', () => {
    const split = loadFashionMnist('test');
    assert.is(split.count, 10000);
    assert.is(split.labels[0], 9); // an ankle boot
    assert.equal(Array.from(new Set(split.labels)).sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
}

// ---------------------------------------------------------------- CIFAR-10 (binary version)

/** Writes `labels.length` CIFAR-10 records to path; returns their pixels. */
function writeCifar(path: string, labels: number[], seed: number): Uint8Array {
  const pixels = pattern(labels.length * 3072, seed);
  const records = labels.map((label, r) => concat([Uint8Array.of(label), pixels.subarray(r * 3072, (r + 1) * 3072)]));
  writeFileSync(path, concat(records));
  return pixels;
}

/** A cifar-10-batches-bin folder inside dir, two records per training batch and three test records. */
function writeCifarFolder(dir: string): { folder: string; train: Uint8Array; trainLabels: number[]; test: Uint8Array } {
  const folder = join(dir, 'cifar-10-batches-bin');
  mkdirSync(folder);
  const trainLabels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const parts = cifar10FilePaths('train', folder).map((path, f) => writeCifar(path, trainLabels.slice(2 * f, 2 * f + 2), f));
  const test = writeCifar(cifar10FilePaths('test', folder)[0]!, [3, 9, 0], 7);
  return { folder, train: concat(parts), trainLabels, test };
}

test('CIFAR-10: the binary batches read back exactly, channel-major, five files in order', () => {
  withDir((dir) => {
    const { folder, train, trainLabels, test: testPixels } = writeCifarFolder(dir);
    const split = loadCifar10('train', { dataDir: folder, checkCounts: false });
    assert.equal([split.count, split.channels, split.height, split.width], [10, 3, 32, 32]);
    assert.equal(Array.from(split.labels), trainLabels);
    assert.equal(split.images, train);
    // The parent of cifar-10-batches-bin works too; a range may span files.
    const middle = loadCifar10('train', { dataDir: dir, checkCounts: false, from: 3, limit: 4 });
    assert.equal(Array.from(middle.labels), [3, 4, 5, 6]);
    assert.equal(middle.images, train.slice(3 * 3072, 7 * 3072));
    const testSplit = loadCifar10('test', { dataDir: dir, checkCounts: false });
    assert.equal(Array.from(testSplit.labels), [3, 9, 0]);
    assert.equal(testSplit.images, testPixels);
    // Image 1's green value at row 2, column 5 is byte 1024 + 2 * 32 + 5 of its record's pixels.
    const pixels = pixelBatch(testSplit, [1]);
    assert.is(pixels.length, 3072);
    assert.is(pixels[1024 + 2 * 32 + 5], testPixels[3072 + 1024 + 2 * 32 + 5]! / 256);
  });
});

test('CIFAR-10: the official count of 10,000 records a file is checked unless turned off', () => {
  withDir((dir) => {
    const { folder } = writeCifarFolder(dir);
    assertError(() => loadCifar10('test', { dataDir: dir }), join(folder, 'test_batch.bin'), /file holds 3 records, expected 10000/);
  });
});

test('CIFAR-10: missing, truncated, wrong record size, bad label, no folder', () => {
  withDir((dir) => {
    const options = { dataDir: dir, checkCounts: false };
    const path = join(dir, 'test_batch.bin');
    assertError(() => loadCifar10('test', options), path, /file not found/, /CIFAR-10 binary version from the CIFAR-10 page of Alex Krizhevsky/, /--data-dir/);
    writeFileSync(join(dir, 'test_batch'), new Uint8Array(10));
    assertError(() => loadCifar10('test', options), path, /that is the Python version/);

    const records = concat([Uint8Array.of(1), pattern(3072, 1), Uint8Array.of(2), pattern(3072, 2)]);
    writeFileSync(path, records.subarray(0, records.length - 5));
    assertError(() => loadCifar10('test', options), path, /file size 6141 bytes is not a whole number of 3073-byte records/, /truncated/);
    // CIFAR-100's binary records carry two label bytes.
    writeFileSync(path, new Uint8Array(3 * 3074));
    assertError(() => loadCifar10('test', options), path, /not a whole number of 3073-byte records/, /not the CIFAR-10 binary version/);
    writeFileSync(path, new Uint8Array(0));
    assertError(() => loadCifar10('test', options), path, /file size 0 bytes/);

    records[3073] = 10;
    writeFileSync(path, records);
    assertError(() => loadCifar10('test', options), path, /record 1 has label 10, expected 0\.\.9/);
  });
  assert.match(errorMessage(() => loadCifar10('train')), /no data folder given.*Alex Krizhevsky/);
});

// ---------------------------------------------------------------- ImageNet 32x32 (npz)

/** A version-1 .npy: the header dict padded with spaces to a multiple of 64 bytes, as NumPy writes it. */
function npy(descr: string, shape: number[], data: Uint8Array, options: { fortran?: boolean; version?: 1 | 2 } = {}): Uint8Array {
  const version = options.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': ${options.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const fixed = version === 1 ? 10 : 12;
  dict += ' '.repeat(63 - ((fixed + dict.length) % 64)) + '\n';
  const prefix = new Uint8Array(fixed);
  prefix.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  if (version === 1) new DataView(prefix.buffer).setUint16(8, dict.length, true);
  else new DataView(prefix.buffer).setUint32(8, dict.length, true);
  return concat([prefix, new TextEncoder().encode(dict), data]);
}

function int64s(values: number[]): Uint8Array {
  const out = new Uint8Array(8 * values.length);
  values.forEach((v, i) => new DataView(out.buffer).setBigInt64(8 * i, BigInt(v), true));
  return out;
}

interface ZipOptions {
  method?: number;
  /** Store sizes and offsets as zip64 fields in the central directory too. */
  zip64Central?: boolean;
}

/**
 * A zip archive as Python's zipfile writes NumPy's .npz: each local header with 0xffffffff sizes
 * and a zip64 extra field, the real sizes in the central directory.
 */
function zip(entries: Record<string, Uint8Array>, options: ZipOptions = {}): Uint8Array {
  const method = options.method ?? 0;
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(entries)) {
    const nameBytes = new TextEncoder().encode(name);
    const data = method === 8 ? deflateRawSync(content) : content;
    const crc = crc32(content);
    const local = new DataView(new ArrayBuffer(30 + nameBytes.length + 20));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 45, true);
    local.setUint16(8, method, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, 0xffffffff, true);
    local.setUint32(22, 0xffffffff, true);
    local.setUint16(26, nameBytes.length, true);
    local.setUint16(28, 20, true);
    new Uint8Array(local.buffer).set(nameBytes, 30);
    local.setUint16(30 + nameBytes.length, 1, true);
    local.setUint16(32 + nameBytes.length, 16, true);
    local.setBigUint64(34 + nameBytes.length, BigInt(content.length), true);
    local.setBigUint64(42 + nameBytes.length, BigInt(data.length), true);

    const wide = options.zip64Central === true;
    const extraBytes = wide ? 4 + 24 : 0;
    const central = new DataView(new ArrayBuffer(46 + nameBytes.length + extraBytes));
    central.setUint32(0, 0x02014b50, true);
    central.setUint16(4, 45, true);
    central.setUint16(6, 45, true);
    central.setUint16(10, method, true);
    central.setUint32(16, crc, true);
    central.setUint32(20, wide ? 0xffffffff : data.length, true);
    central.setUint32(24, wide ? 0xffffffff : content.length, true);
    central.setUint16(28, nameBytes.length, true);
    central.setUint16(30, extraBytes, true);
    central.setUint32(42, wide ? 0xffffffff : offset, true);
    new Uint8Array(central.buffer).set(nameBytes, 46);
    if (wide) {
      const at = 46 + nameBytes.length;
      central.setUint16(at, 1, true);
      central.setUint16(at + 2, 24, true);
      central.setBigUint64(at + 4, BigInt(content.length), true);
      central.setBigUint64(at + 12, BigInt(data.length), true);
      central.setBigUint64(at + 20, BigInt(offset), true);
    }
    locals.push(new Uint8Array(local.buffer), data);
    centrals.push(new Uint8Array(central.buffer));
    offset += local.byteLength + data.length;
  }
  const directory = concat(centrals);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, centrals.length, true);
  end.setUint16(10, centrals.length, true);
  end.setUint32(12, directory.length, true);
  end.setUint32(16, offset, true);
  return concat([...locals, directory, new Uint8Array(end.buffer)]);
}

/** An ImageNet 32x32 batch: `labels` (1..1000) and their images' pixels. */
function batch(labels: number[], seed: number, extra: Record<string, Uint8Array> = {}): { entries: Record<string, Uint8Array>; pixels: Uint8Array } {
  const pixels = pattern(labels.length * 3072, seed);
  return {
    pixels,
    entries: { 'data.npy': npy('|u1', [labels.length, 3072], pixels), 'labels.npy': npy('<i8', [labels.length], int64s(labels)), ...extra },
  };
}

test('ImageNet 32x32: stored and deflated .npz batches read back exactly, labels made 0-based', () => {
  withDir((dir) => {
    // val: stored, as np.savez writes.
    const val = batch([1, 1000, 42], 5);
    writeFileSync(join(dir, 'val_data.npz'), zip(val.entries));
    const split = loadImagenet32('val', { dataDir: dir, checkCounts: false });
    assert.equal([split.count, split.channels, split.height, split.width], [3, 3, 32, 32]);
    assert.instance(split.labels, Uint16Array);
    assert.equal(Array.from(split.labels), [0, 999, 41]);
    assert.equal(split.images, val.pixels);
    assert.instance(labelBatch(split, [2, 1]), Uint16Array);
    assert.equal(Array.from(labelBatch(split, [2, 1])), [41, 999]);

    // train: ten deflated batches (as np.savez_compressed writes) of two images, with 'mean', in the
    // Imagenet32_train_npz folder, found from its parent.
    const folder = join(dir, IMAGENET32_FOLDERS.train);
    mkdirSync(folder);
    const pixels: Uint8Array[] = [];
    imagenet32FilePaths('train', folder).forEach((path, f) => {
      const mean = npy('<f8', [3072], new Uint8Array(8 * 3072));
      const b = batch([2 * f + 1, 2 * f + 2], f, { 'mean.npy': mean });
      pixels.push(b.pixels);
      writeFileSync(path, zip(b.entries, { method: 8 }));
    });
    const train = loadImagenet32('train', { dataDir: dir, checkCounts: false });
    assert.is(train.count, 20);
    assert.equal(Array.from(train.labels), Array.from({ length: 20 }, (_, i) => i));
    assert.equal(train.images, concat(pixels));
    const middle = loadImagenet32('train', { dataDir: folder, checkCounts: false, from: 5, limit: 6 });
    assert.equal(Array.from(middle.labels), [5, 6, 7, 8, 9, 10]);
    assert.equal(middle.images, concat(pixels).slice(5 * 3072, 11 * 3072));
  });
});

test('ImageNet 32x32: (N, 3, 32, 32) data, version-2 headers and zip64 directory fields are read', () => {
  withDir((dir) => {
    const pixels = pattern(2 * 3072, 9);
    const entries = {
      'labels.npy': npy('<i4', [2], Uint8Array.from([7, 0, 0, 0, 8, 0, 0, 0]), { version: 2 }),
      'data.npy': npy('|u1', [2, 3, 32, 32], pixels),
    };
    writeFileSync(join(dir, 'val_data.npz'), zip(entries, { method: 8, zip64Central: true }));
    const split = loadImagenet32('val', { dataDir: dir, checkCounts: false });
    assert.equal(Array.from(split.labels), [6, 7]);
    assert.equal(split.images, pixels);
  });
});

test('ImageNet 32x32: the official counts are checked unless turned off', () => {
  withDir((dir) => {
    writeFileSync(join(dir, 'val_data.npz'), zip(batch([1, 2, 3], 1).entries));
    assertError(() => loadImagenet32('val', { dataDir: dir }), join(dir, 'val_data.npz'), /file holds 3 images, expected 50000/);
  });
});

test('ImageNet 32x32: missing file, pickle version, truncated archive, corrupt entry', () => {
  withDir((dir) => {
    const path = join(dir, 'val_data.npz');
    const options = { dataDir: dir, checkCounts: false };
    assertError(() => loadImagenet32('val', options), path, /file not found/, /downsampled ImageNet 32x32 from image-net\.org/, /--data-dir/);
    writeFileSync(join(dir, 'val_data'), new Uint8Array(10));
    assertError(() => loadImagenet32('val', options), path, /that is the pickle version/);

    const whole = zip(batch([1, 2], 1).entries);
    writeFileSync(path, whole.subarray(0, whole.length - 10));
    assertError(() => loadImagenet32('val', options), path, /no end-of-central-directory record/, /truncated/, /image-net\.org/);
    writeFileSync(path, new Uint8Array(5));
    assertError(() => loadImagenet32('val', options), path, /not a zip archive/);

    const corrupt = whole.slice();
    corrupt[200]! ^= 0xff; // inside data.npy's pixels (stored)
    writeFileSync(path, corrupt);
    assertError(() => loadImagenet32('val', options), path, /data\.npy is corrupt: its CRC-32 does not match/);

    writeFileSync(path, zip(batch([1, 2], 1).entries, { method: 12 }));
    assertError(() => loadImagenet32('val', options), path, /compression method 12; only stored \(0\) and deflate \(8\)/);
  });
});

test('ImageNet 32x32: unsupported or wrong arrays are refused by name', () => {
  withDir((dir) => {
    const path = join(dir, 'val_data.npz');
    const options = { dataDir: dir, checkCounts: false };
    const labels = npy('<i8', [2], int64s([1, 2]));
    const data = npy('|u1', [2, 3072], pattern(2 * 3072, 2));
    const refuses = (entries: Record<string, Uint8Array>, ...patterns: RegExp[]): void => {
      writeFileSync(path, zip(entries));
      assertError(() => loadImagenet32('val', options), path, ...patterns);
    };
    refuses({ 'data.npy': npy('<f2', [2, 3072], new Uint8Array(4 * 3072)), 'labels.npy': labels }, /data\.npy has dtype '<f2', which is not supported \(supported: \|u1/);
    refuses({ 'data.npy': npy('|O', [2, 3072], new Uint8Array(0)), 'labels.npy': labels }, /dtype '\|O', which is not supported/);
    refuses({ 'data.npy': data, 'labels.npy': npy('>i8', [2], int64s([1, 2])) }, /labels\.npy has dtype '>i8', which is not supported/);
    refuses({ 'data.npy': npy('<f4', [2, 3072], new Uint8Array(8 * 3072)), 'labels.npy': labels }, /data\.npy has dtype '<f4', expected '\|u1'/);
    refuses({ 'data.npy': data, 'labels.npy': npy('<f8', [2], new Uint8Array(16)) }, /labels\.npy has dtype '<f8', expected integers/);
    refuses({ 'data.npy': npy('|u1', [2, 3072], pattern(2 * 3072, 2), { fortran: true }), 'labels.npy': labels }, /data\.npy is not in C order/);
    refuses({ 'data.npy': npy('|u1', [2, 100], pattern(200, 2)), 'labels.npy': labels }, /data\.npy has shape \(2, 100\), expected \(N, 3072\)/);
    refuses({ 'data.npy': data, 'labels.npy': npy('<i8', [3], int64s([1, 2, 3])) }, /labels\.npy has shape \(3\), expected \(2,\)/);
    refuses({ 'data.npy': data }, /the archive has no labels\.npy entry \(it has: data\.npy\)/);
    refuses({ 'data.npy': npy('|u1', [3, 3072], pattern(2 * 3072, 2)), 'labels.npy': npy('<i8', [3], int64s([1, 2, 3])) }, /data\.npy truncated: shape \(3, 3072\) of \|u1 needs 9344 bytes, found 6272/);
    refuses({ 'data.npy': new TextEncoder().encode('not an array at all'), 'labels.npy': labels }, /data\.npy is not a \.npy array/);
    refuses({ 'data.npy': data, 'labels.npy': npy('<i8', [2], int64s([1, 0])) }, /label 1 is 0, expected 1\.\.1000/);
    refuses({ 'data.npy': data, 'labels.npy': npy('<i8', [2], int64s([1001, 1])) }, /label 0 is 1001, expected 1\.\.1000/);
  });
  assert.match(errorMessage(() => loadImagenet32('val')), /no data folder given.*image-net\.org/);
});

// ---------------------------------------------------------------- shared pieces

test('pixelBatch serves every set: x_int / 256, dequantized with the supplied uniforms', () => {
  const set = { images: Uint8Array.from([0, 255, 7, 128, 1, 2, 3, 4]), labels: Uint8Array.of(1, 2), count: 2, channels: 2, height: 1, width: 2 };
  assert.equal(Array.from(pixelBatch(set, [1])), [1 / 256, 2 / 256, 3 / 256, 4 / 256]);
  const noisy = pixelBatch(set, [0], { uniforms: (n) => new Float32Array(n).fill(0.5) });
  assert.equal(Array.from(noisy), [0.5 / 256, 255.5 / 256, 7.5 / 256, 128.5 / 256]);
  assert.throws(() => pixelBatch(set, [2]), /image index 2 out of range 0\.\.1/);
});

test('from and limit are checked the same way for every loader', () => {
  assert.equal(selectRange('load', 10, {}), { from: 0, count: 10, all: true });
  assert.equal(selectRange('load', 10, { from: 8, limit: 5 }), { from: 8, count: 2, all: false });
  assert.throws(() => selectRange('load', 10, { from: 11 }), /load: from must be an integer in 0\.\.10, got 11/);
  assert.throws(() => selectRange('load', 10, { limit: 1.5 }), /load: limit must be a non-negative integer, got 1\.5/);
});

test('CRC-32 is zip\'s', () => {
  assert.is(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.is(crc32(new Uint8Array(0)), 0);
});

test.run();
