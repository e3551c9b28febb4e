// CIFAR-10 (Krizhevsky 2009), its official binary version: the folder cifar-10-batches-bin holds
// data_batch_1.bin ... data_batch_5.bin (training) and test_batch.bin, each 10,000 records of one
// label byte (0..9) and 3072 pixel bytes: the red 32x32 plane row by row, then green, then blue.
// That is already ImageSet's channel-major layout, so the pixels are copied as they are.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileError, plainBytes, selectRange, type ImageSet, type LoadImagesOptions } from './images.js';

export const CIFAR10_PIXELS = 3 * 32 * 32;
/** One label byte, then the pixels. */
export const CIFAR10_RECORD_BYTES = 1 + CIFAR10_PIXELS;
export const CIFAR10_RECORDS_PER_FILE = 10000;
export const CIFAR10_FOLDER = 'cifar-10-batches-bin';

/** Label i's name. */
export const CIFAR10_CLASSES = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
] as const;

export type Cifar10SplitName = 'train' | 'test';

export interface Cifar10Split extends ImageSet {
  labels: Uint8Array;
  channels: 3;
  height: 32;
  width: 32;
}

const HOW_TO_GET_DATA =
  'To get the data, download the CIFAR-10 binary version from the CIFAR-10 page of Alex Krizhevsky, ' +
  `unpack it, and pass --data-dir pointing at its ${CIFAR10_FOLDER} folder.`;

/** dataDir itself, or its cifar-10-batches-bin folder when it holds one (the unpacked archive's parent). */
export function cifar10Dir(dataDir: string | undefined): string {
  if (dataDir === undefined) throw new Error(`CIFAR-10: no data folder given. ${HOW_TO_GET_DATA}`);
  const inside = join(dataDir, CIFAR10_FOLDER);
  return existsSync(inside) ? inside : dataDir;
}

export function cifar10FilePaths(split: Cifar10SplitName, dataDir: string): string[] {
  const names = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  return names.map((name) => join(dataDir, name));
}

/** The number of records in the file, from its size, after checking it exists and is whole. */
function countRecords(path: string, checkCount: boolean): number {
  const fail = fileError('CIFAR-10', HOW_TO_GET_DATA, path);
  if (!existsSync(path)) {
    const python = path.replace(/\.bin$/, '');
    const hint = existsSync(python) ? ` (${python} exists, but that is the Python version; this reads the binary version)` : '';
    throw fail(`file not found${hint}`);
  }
  const bytes = statSync(path).size;
  if (bytes === 0 || bytes % CIFAR10_RECORD_BYTES !== 0) {
    throw fail(
      `file size ${bytes} bytes is not a whole number of ${CIFAR10_RECORD_BYTES}-byte records ` +
      `(1 label byte + ${CIFAR10_PIXELS} pixel bytes): truncated, or not the CIFAR-10 binary version`,
    );
  }
  const records = bytes / CIFAR10_RECORD_BYTES;
  if (checkCount && records !== CIFAR10_RECORDS_PER_FILE) {
    throw fail(`file holds ${records} records, expected ${CIFAR10_RECORDS_PER_FILE}`);
  }
  return records;
}

/**
 * Reads a CIFAR-10 split from options.dataDir (the cifar-10-batches-bin folder or its parent),
 * every file checked in full, and keeps the examples options.from / options.limit select; the
 * training split is the five data batches in order.
 */
export function loadCifar10(split: Cifar10SplitName, options: LoadImagesOptions = {}): Cifar10Split {
  const paths = cifar10FilePaths(split, cifar10Dir(options.dataDir));
  const counts = paths.map((path) => countRecords(path, options.checkCounts !== false));
  const total = counts.reduce((sum, n) => sum + n, 0);
  const { from, count } = selectRange('loadCifar10', total, options);
  const images = new Uint8Array(count * CIFAR10_PIXELS);
  const labels = new Uint8Array(count);
  let first = 0; // index of the file's first record in the split
  paths.forEach((path, f) => {
    const fail = fileError('CIFAR-10', HOW_TO_GET_DATA, path);
    const bytes = plainBytes(readFileSync(path));
    const records = counts[f]!; // one count per path
    if (bytes.length !== records * CIFAR10_RECORD_BYTES) {
      throw fail(`file changed while reading: expected ${records * CIFAR10_RECORD_BYTES} bytes, found ${bytes.length}`);
    }
    for (let r = 0; r < records; r++) {
      const record = r * CIFAR10_RECORD_BYTES;
      const label = bytes[record]!; // record < bytes.length, checked above
      if (label >= CIFAR10_CLASSES.length) throw fail(`corrupt data: record ${r} has label ${label}, expected 0..9`);
      const kept = first + r - from;
      if (kept < 0 || kept >= count) continue;
      labels[kept] = label;
      images.set(bytes.subarray(record + 1, record + CIFAR10_RECORD_BYTES), kept * CIFAR10_PIXELS);
    }
    first += records;
  });
  return { images, labels, count, channels: 3, height: 32, width: 32 };
}
