// The shape of an MNIST split and how to cut one from arrays, apart from the file reading in
// mnist.ts so that a web page (demo/) can train on MNIST shipped to it without Node's fs.
import { selectRange } from './images.js';

export const MNIST_ROWS = 28;
export const MNIST_COLS = 28;
export const MNIST_PIXELS = MNIST_ROWS * MNIST_COLS;

/** An ImageSet of 28x28 grey images (Fashion-MNIST loads into the same shape). */
export interface MnistSplit {
  /** count * 784 raw pixel bytes 0..255, row-major, one image after another. */
  images: Uint8Array;
  /** count class labels 0..9. */
  labels: Uint8Array;
  count: number;
  rows: 28;
  cols: 28;
  channels: 1;
  height: 28;
  width: 28;
}

/**
 * A 28x28 split from `images` and `labels` arrays of `count` examples (views or copies): the
 * examples options.from / options.limit select, copied unless that is all of them, so a large
 * file buffer can be garbage-collected when only a subset is wanted.
 */
export function mnistShapedSplit(
  who: string,
  data: { images: Uint8Array; labels: Uint8Array; count: number },
  options: { from?: number; limit?: number },
): MnistSplit {
  const shape = { rows: 28, cols: 28, channels: 1, height: 28, width: 28 } as const;
  const { from, count, all } = selectRange(who, data.count, options);
  if (all) return { images: data.images, labels: data.labels, count, ...shape };
  return {
    images: data.images.slice(from * MNIST_PIXELS, (from + count) * MNIST_PIXELS),
    labels: data.labels.slice(from, from + count),
    count,
    ...shape,
  };
}
