// The IDX format of LeCun's MNIST files, which Fashion-MNIST copies: a big-endian header
// (magic 0x0000 08 RR: unsigned bytes, RR dimensions, then each dimension as a uint32) and the
// bytes. Files whose name ends in .gz are gunzipped first. Every header field is checked against
// the file's length before it is trusted.
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { plainBytes, type Fail } from './images.js';

const UNSIGNED_BYTE = 0x08;

export interface IdxFile {
  /** One size per dimension, from the header. */
  dims: number[];
  /** The whole (gunzipped) file. */
  bytes: Uint8Array;
  headerBytes: number;
  gzipped: boolean;
}

/** `n bytes`, saying when n counts the gunzipped content. */
function sizeOf(file: { gzipped: boolean }, n: number): string {
  return file.gzipped ? `${n} (after gunzip)` : `${n}`;
}

/** Reads the file and checks its header is an IDX unsigned-byte array with `rank` dimensions. */
export function openIdx(path: string, rank: number, what: string, fail: Fail): IdxFile {
  if (!existsSync(path)) throw fail('file not found');
  const gzipped = path.endsWith('.gz');
  let bytes = plainBytes(readFileSync(path));
  if (gzipped) {
    try {
      bytes = plainBytes(gunzipSync(bytes));
    } catch (error) {
      throw fail(`cannot gunzip it (${(error as Error).message}): truncated, or not a gzip file`);
    }
  }
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw fail(`file too short for an IDX header: expected at least ${headerBytes} bytes, found ${sizeOf({ gzipped }, bytes.length)}`);
  }
  const header = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const magic = header.getUint32(0, false);
  const expected = (UNSIGNED_BYTE << 8) | rank;
  if (magic !== expected) {
    throw fail(`corrupt header: magic number is 0x${hex8(magic)}, expected 0x${hex8(expected)} (IDX unsigned-byte ${rank}-D array of ${what})`);
  }
  const dims = Array.from({ length: rank }, (_, i) => header.getUint32(4 + 4 * i, false));
  return { dims, bytes, headerBytes, gzipped };
}

/** The bytes after the header, once the file's length matches what the header promises. */
export function idxPayload(file: IdxFile, fail: Fail): Uint8Array {
  const count = file.dims[0];
  const payloadBytes = file.dims.reduce((product, dim) => product * dim, 1);
  const expectedBytes = file.headerBytes + payloadBytes;
  if (file.bytes.length !== expectedBytes) {
    const kind = file.bytes.length < expectedBytes ? 'truncated' : 'has trailing bytes';
    throw fail(`file ${kind}: header promises ${count} items, so expected ${expectedBytes} bytes, found ${sizeOf(file, file.bytes.length)}`);
  }
  return file.bytes.subarray(file.headerBytes);
}

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

export interface IdxPairSpec {
  /** Paths of the images (3-D) and labels (1-D) files. */
  images: string;
  labels: string;
  rows: number;
  cols: number;
  /** Labels must lie in 0..classes-1. */
  classes: number;
  /** When given, both files must hold exactly this many examples. */
  expectedCount?: number;
  /** Builds the error for a file (names the data set and where to get it). */
  fail: (path: string) => Fail;
}

/** Reads an images file and its labels file and checks that they agree. */
export function loadIdxPair(spec: IdxPairSpec): { images: Uint8Array; labels: Uint8Array; count: number } {
  const failImages = spec.fail(spec.images);
  const imageFile = openIdx(spec.images, 3, 'images', failImages);
  const [count, rows, cols] = imageFile.dims as [number, number, number]; // openIdx read rank 3
  if (rows !== spec.rows || cols !== spec.cols) {
    throw failImages(`corrupt header: images are ${rows}x${cols}, expected ${spec.rows}x${spec.cols}`);
  }
  if (spec.expectedCount !== undefined && count !== spec.expectedCount) {
    throw failImages(`corrupt header: image count is ${count}, expected ${spec.expectedCount}`);
  }
  const images = idxPayload(imageFile, failImages);

  const failLabels = spec.fail(spec.labels);
  const labelFile = openIdx(spec.labels, 1, 'labels', failLabels);
  const labelCount = labelFile.dims[0];
  if (spec.expectedCount !== undefined && labelCount !== spec.expectedCount) {
    throw failLabels(`corrupt header: label count is ${labelCount}, expected ${spec.expectedCount}`);
  }
  if (labelCount !== count) {
    throw failLabels(`corrupt header: label count is ${labelCount}, expected ${count} (the image count of ${spec.images})`);
  }
  const labels = idxPayload(labelFile, failLabels);
  const bad = labels.findIndex((label) => label >= spec.classes);
  if (bad >= 0) throw failLabels(`corrupt data: label ${bad} is ${labels[bad]}, expected 0..${spec.classes - 1}`);
  return { images, labels, count };
}
