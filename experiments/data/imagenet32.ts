// ImageNet 32x32 (Chrabaszcz, Loshchilov and Hutter 2017, "A Downsampled Variant of ImageNet as
// an Alternative to the CIFAR datasets"), the npz version of the official release:
// Imagenet32_train_npz/train_data_batch_1.npz ... train_data_batch_10.npz and
// Imagenet32_val_npz/val_data.npz. Each .npz holds 'data', uint8 [N, 3072] with each row the red
// 32x32 plane, then green, then blue (CIFAR's layout, and ImageSet's), 'labels', integers 1..1000,
// and in the training batches 'mean', the per-pixel mean of the whole training set (not read).
// The release is also distributed as Python pickles (the same names without .npz), not read here.
import { existsSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { join } from 'node:path';
import { fileError, selectRange, type Fail, type ImageSet, type LoadImagesOptions } from './images.js';
import { npyData, npyNumbers, readNpyHeader, ZipReader, type NpyHeader, type ZipEntry } from './npz.js';

export const IMAGENET32_PIXELS = 3 * 32 * 32;
export const IMAGENET32_CLASSES = 1000;

export type Imagenet32SplitName = 'train' | 'val';

export interface Imagenet32Split extends ImageSet {
  /** count labels 0..999: the files' 1..1000 less one, like every other set here. */
  labels: Uint16Array;
  channels: 3;
  height: 32;
  width: 32;
}

/** The folder each split unpacks into. */
export const IMAGENET32_FOLDERS: Record<Imagenet32SplitName, string> = { train: 'Imagenet32_train_npz', val: 'Imagenet32_val_npz' };

/**
 * Images per file in the release: its script splits the 1,281,167 training images into nine
 * batches of floor(1281167 / 10) and puts the rest in the tenth.
 */
export const IMAGENET32_FILE_COUNTS: Record<Imagenet32SplitName, readonly number[]> = {
  train: [...Array<number>(9).fill(128116), 128123],
  val: [50000],
};

const HOW_TO_GET_DATA =
  'To get the data, download the downsampled ImageNet 32x32 from image-net.org in its npz version ' +
  `(${IMAGENET32_FOLDERS.train}, ${IMAGENET32_FOLDERS.val}), unpack it, and pass --data-dir pointing at the folder ` +
  'with the .npz files (or at its parent).';

/** dataDir itself, or the split's Imagenet32_*_npz folder when it holds one. */
export function imagenet32Dir(split: Imagenet32SplitName, dataDir: string | undefined): string {
  if (dataDir === undefined) throw new Error(`ImageNet 32x32: no data folder given. ${HOW_TO_GET_DATA}`);
  const inside = join(dataDir, IMAGENET32_FOLDERS[split]);
  return existsSync(inside) ? inside : dataDir;
}

export function imagenet32FilePaths(split: Imagenet32SplitName, dataDir: string): string[] {
  const names = split === 'train' ? Array.from({ length: 10 }, (_, i) => `train_data_batch_${i + 1}.npz`) : ['val_data.npz'];
  return names.map((name) => join(dataDir, name));
}

interface BatchFile {
  zip: ZipReader;
  fail: Fail;
  data: ZipEntry;
  labels: ZipEntry;
  dataHeader: NpyHeader;
  labelsHeader: NpyHeader;
  count: number;
}

/** Opens one .npz and checks both arrays' headers, without reading the arrays. */
function openBatch(path: string, expectedCount: number | undefined): BatchFile {
  const fail = fileError('ImageNet 32x32', HOW_TO_GET_DATA, path);
  if (!existsSync(path)) {
    const pickle = path.replace(/\.npz$/, '');
    const hint = existsSync(pickle) ? ` (${pickle} exists, but that is the pickle version; this reads the npz version)` : '';
    throw fail(`file not found${hint}`);
  }
  const zip = new ZipReader(path, fail);
  try {
    const data = zip.entry('data.npy');
    const labels = zip.entry('labels.npy');
    const dataHeader = readNpyHeader(zip, data, fail);
    const labelsHeader = readNpyHeader(zip, labels, fail);
    const [count, ...row] = dataHeader.shape;
    const rowPixels = row.reduce((product, dim) => product * dim, 1);
    if (count === undefined || row.length === 0 || rowPixels !== IMAGENET32_PIXELS) {
      throw fail(`data.npy has shape (${dataHeader.shape.join(', ')}), expected (N, ${IMAGENET32_PIXELS}) or (N, 3, 32, 32)`);
    }
    if (dataHeader.dtype !== '|u1') throw fail(`data.npy has dtype '${dataHeader.dtype}', expected '|u1' (pixel bytes 0..255)`);
    if (labelsHeader.shape.length !== 1 || labelsHeader.shape[0] !== count) {
      throw fail(`labels.npy has shape (${labelsHeader.shape.join(', ')}), expected (${count},) to match data.npy`);
    }
    if (labelsHeader.dtype.includes('f')) throw fail(`labels.npy has dtype '${labelsHeader.dtype}', expected integers`);
    if (expectedCount !== undefined && count !== expectedCount) throw fail(`file holds ${count} images, expected ${expectedCount}`);
    return { zip, fail, data, labels, dataHeader, labelsHeader, count };
  } catch (error) {
    zip.close();
    throw error;
  }
}

/**
 * Reads an ImageNet 32x32 split from options.dataDir (the folder with the .npz files, or its
 * parent) and keeps the examples options.from / options.limit select; the training split is the
 * ten batches in order. Every file's zip directory and array headers are checked; the arrays are
 * read (inflated, CRC-checked, labels range-checked) only from files that hold kept examples, so a
 * small subset of the 3.9 GB training set costs one batch file.
 */
export function loadImagenet32(split: Imagenet32SplitName, options: LoadImagesOptions = {}): Imagenet32Split {
  const paths = imagenet32FilePaths(split, imagenet32Dir(split, options.dataDir));
  const expected = options.checkCounts === false ? undefined : IMAGENET32_FILE_COUNTS[split];
  const batches: BatchFile[] = [];
  try {
    paths.forEach((path, f) => batches.push(openBatch(path, expected?.[f])));
    const total = batches.reduce((sum, batch) => sum + batch.count, 0);
    const { from, count } = selectRange('loadImagenet32', total, options);
    if (count * IMAGENET32_PIXELS > bufferConstants.MAX_LENGTH) {
      throw new Error(`loadImagenet32: ${count} images need ${count * IMAGENET32_PIXELS} bytes, more than one array can hold here; pass a smaller limit`);
    }
    const images = new Uint8Array(count * IMAGENET32_PIXELS);
    const labels = new Uint16Array(count);
    let first = 0; // index of the batch's first image in the split
    for (const batch of batches) {
      const start = Math.max(from, first);
      const end = Math.min(from + count, first + batch.count);
      if (start < end) {
        const fileLabels = npyNumbers(npyData(batch.zip.read(batch.labels), batch.labelsHeader, 'labels.npy', batch.fail), batch.labelsHeader.dtype, 'labels.npy', batch.fail);
        const bad = fileLabels.findIndex((label) => !(label >= 1 && label <= IMAGENET32_CLASSES));
        if (bad >= 0) throw batch.fail(`corrupt data: label ${bad} is ${fileLabels[bad]}, expected 1..${IMAGENET32_CLASSES}`);
        const pixels = npyData(batch.zip.read(batch.data), batch.dataHeader, 'data.npy', batch.fail);
        for (let i = start; i < end; i++) labels[i - from] = fileLabels[i - first]! - 1;
        images.set(pixels.subarray((start - first) * IMAGENET32_PIXELS, (end - first) * IMAGENET32_PIXELS), (start - from) * IMAGENET32_PIXELS);
      }
      first += batch.count;
    }
    return { images, labels, count, channels: 3, height: 32, width: 32 };
  } finally {
    for (const batch of batches) batch.zip.close();
  }
}
