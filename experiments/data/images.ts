// What every data set loader here returns, and what the experiments do with it: batches of
// pixels on the paper's scale (x = x_int / 256, optionally dequantized), labels, and a seeded
// shuffle per epoch. MNIST, Fashion-MNIST, CIFAR-10 and ImageNet 32x32 all come as ImageSet.

/**
 * count images of channels x height x width unsigned bytes, one after another, each image
 * channel-major (all of its first channel row by row, then the second, ...), and their labels.
 */
export interface ImageSet {
  /** count * channels * height * width raw pixel bytes 0..255. */
  images: Uint8Array;
  /** count class labels, 0-based. */
  labels: Uint8Array | Uint16Array;
  count: number;
  channels: number;
  height: number;
  width: number;
}

/** Options every loader takes. */
export interface LoadImagesOptions {
  /** The folder holding the data set's files (each loader says where it looks without one). */
  dataDir?: string;
  /** Keep only `limit` examples, from index `from`. */
  limit?: number;
  /** The first example kept (default 0): a validation split can be taken from the end. */
  from?: number;
  /**
   * Check that each file holds the official release's number of examples (default true), so a
   * file cut at a record boundary is not taken for the real thing. Hand-made subsets turn it off.
   */
  checkCounts?: boolean;
}

/** Builds the error for one problem with one file; each loader binds it to a path. */
export type Fail = (problem: string) => Error;

/** `${dataset} file ${path}: ${problem}. ${howToGetData}`: one line naming the file, the problem and the fix. */
export function fileError(dataset: string, howToGetData: string, path: string): Fail {
  return (problem) => new Error(`${dataset} file ${path}: ${problem}. ${howToGetData}`);
}

/** A plain Uint8Array view of a Buffer: Buffer's slice() would share memory rather than copy. */
export function plainBytes(buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/**
 * The examples [from, from + count) that options.from / options.limit select out of total;
 * `all` when that is every example (so a loader can skip copying).
 */
export function selectRange(who: string, total: number, options: { from?: number; limit?: number }): { from: number; count: number; all: boolean } {
  const from = options.from ?? 0;
  if (!Number.isInteger(from) || from < 0 || from > total) throw new Error(`${who}: from must be an integer in 0..${total}, got ${from}`);
  const count = Math.min(options.limit ?? total, total - from);
  if (from === 0 && count === total) return { from, count, all: true };
  if (!Number.isInteger(count) || count < 0) throw new Error(`${who}: limit must be a non-negative integer, got ${count}`);
  return { from, count, all: false };
}

/** Draws n independent uniforms in [0, 1); the engine's seeded stream supplies this. */
export type UniformSource = (n: number) => Float32Array;

function checkIndex(set: ImageSet, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= set.count) {
    throw new RangeError(`image index ${index} out of range 0..${set.count - 1}`);
  }
}

/**
 * Pixels of the given images as count * channels * height * width floats (each image
 * channel-major, as stored) on the paper's scale x = x_int / 256, so every value lies in
 * [0, 255/256]. With `uniforms`, adds dequantization noise u ~ U[0, 1/256), giving
 * y = (x_int + U[0,1)) / 256 in [0, 1): the continuous density the ELBO bound is stated for.
 */
export function pixelBatch(
  set: ImageSet,
  indices: ArrayLike<number>,
  options: { uniforms?: UniformSource; out?: Float32Array } = {},
): Float32Array {
  const pixels = set.channels * set.height * set.width;
  const size = indices.length * pixels;
  const out = options.out ?? new Float32Array(size);
  if (out.length !== size) throw new RangeError(`pixelBatch: out has ${out.length} floats, expected ${size}`);
  const noise = options.uniforms ? options.uniforms(size) : undefined;
  if (noise && noise.length < size) {
    throw new RangeError(`pixelBatch: uniform source returned ${noise.length} values, expected ${size}`);
  }
  for (let b = 0; b < indices.length; b++) {
    const index = indices[b]!;
    checkIndex(set, index);
    const source = index * pixels;
    const target = b * pixels;
    for (let p = 0; p < pixels; p++) {
      const jitter = noise ? noise[target + p]! : 0; // noise.length >= size, checked above
      out[target + p] = (set.images[source + p]! + jitter) / 256;
    }
  }
  return out;
}

/** Labels of the given images, in batch order (Uint16Array where the set's labels are). */
export function labelBatch(set: ImageSet & { labels: Uint8Array }, indices: ArrayLike<number>): Uint8Array;
export function labelBatch(set: ImageSet, indices: ArrayLike<number>): Uint8Array | Uint16Array;
export function labelBatch(set: ImageSet, indices: ArrayLike<number>): Uint8Array | Uint16Array {
  const out = set.labels instanceof Uint8Array ? new Uint8Array(indices.length) : new Uint16Array(indices.length);
  for (let b = 0; b < indices.length; b++) {
    const index = indices[b]!;
    checkIndex(set, index);
    out[b] = set.labels[index]!;
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
    const held = order[i]!;
    order[i] = order[j]!;
    order[j] = held;
  }
  return order;
}

/**
 * Per-value mean and standard deviation over a set's images, on the dequantized scale
 * y = (x_int + u) / 256: u ~ U[0, 1) adds 1/512 to each mean and 1 / (12 * 256^2) to each variance.
 */
export function pixelStatistics(set: ImageSet): { mean: Float64Array; std: Float64Array } {
  const size = set.channels * set.height * set.width;
  const sum = new Float64Array(size), squares = new Float64Array(size);
  for (let n = 0; n < set.count; n++)
    for (let j = 0; j < size; j++) {
      const v = set.images[n * size + j]! / 256;
      sum[j]! += v;
      squares[j]! += v * v;
    }
  const mean = sum.map((s) => s / set.count + 1 / 512);
  const std = squares.map((q, j) => Math.sqrt(Math.max(0, q / set.count - (sum[j]! / set.count) ** 2) + 1 / (12 * 256 * 256)));
  return { mean, std };
}
