// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 28x28 grey pictures of ten kinds of clothing,
// in MNIST's IDX format and split sizes. Debian's `dataset-fashion-mnist` package installs the four
// gzipped files in /usr/share/datasets/fashion-mnist; a --data-dir folder may hold them gzipped
// or not. The result has MNIST's shape, so everything that takes an MnistSplit takes it too.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadIdxPair } from './idx.js';
import { fileError, type LoadImagesOptions } from './images.js';
import { MNIST_COLS, MNIST_ROWS, mnistShapedSplit, type MnistSplit, type MnistSplitName } from './mnist.js';

export type FashionMnistSplit = MnistSplit;

/** Where Debian's `dataset-fashion-mnist` package installs the files. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Label i's name. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

const EXPECTED_COUNT: Record<MnistSplitName, number> = { train: 60000, test: 10000 };
const FILE_PREFIX: Record<MnistSplitName, string> = { train: 'train', test: 't10k' };

const HOW_TO_GET_DATA =
  'To get the data, run `apt-get install dataset-fashion-mnist` (Debian installs the four files in ' +
  `${DEBIAN_FASHION_MNIST_DIR}) or pass --data-dir pointing at a folder with them (gzipped or not).`;

/** The file's path in dataDir: NAME.gz where it exists, else NAME where that exists, else NAME.gz. */
function findFile(dataDir: string, name: string): string {
  const gzipped = join(dataDir, `${name}.gz`);
  if (!existsSync(gzipped) && existsSync(join(dataDir, name))) return join(dataDir, name);
  return gzipped;
}

export function fashionMnistFilePaths(split: MnistSplitName, dataDir: string = DEBIAN_FASHION_MNIST_DIR): { images: string; labels: string } {
  const prefix = FILE_PREFIX[split];
  return {
    images: findFile(dataDir, `${prefix}-images-idx3-ubyte`),
    labels: findFile(dataDir, `${prefix}-labels-idx1-ubyte`),
  };
}

/**
 * Reads a Fashion-MNIST split, every file checked in full, and keeps the examples
 * options.from / options.limit select. Labels 0..9 name FASHION_MNIST_CLASSES.
 */
export function loadFashionMnist(split: MnistSplitName, options: LoadImagesOptions = {}): FashionMnistSplit {
  const paths = fashionMnistFilePaths(split, options.dataDir ?? DEBIAN_FASHION_MNIST_DIR);
  const data = loadIdxPair({
    ...paths,
    rows: MNIST_ROWS,
    cols: MNIST_COLS,
    classes: FASHION_MNIST_CLASSES.length,
    expectedCount: options.checkCounts === false ? undefined : EXPECTED_COUNT[split],
    fail: (path) => fileError('Fashion-MNIST', HOW_TO_GET_DATA, path),
  });
  return mnistShapedSplit('loadFashionMnist', data, options);
}
