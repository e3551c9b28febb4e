// NumPy's .npz files, read without NumPy: an .npz is a zip archive of .npy files, one per array.
//
// Zip: the end-of-central-directory record at the end of the file points at the central
// directory, which lists each entry's name, compression method, CRC-32, sizes and the offset of
// its local header (whose own name and extra field come before the data). Entries are stored
// (method 0) or deflated (method 8, zlib's raw inflate). NumPy writes zip64 extra fields in the
// local headers; sizes and offsets are taken from the central directory, zip64 fields included.
// Encrypted entries and other methods are refused.
//
// .npy: "\x93NUMPY", a version byte pair, the header's length (uint16 in version 1, uint32 in 2
// and 3), then a Python dict literal such as {'descr': '<i8', 'fortran_order': False, 'shape':
// (128116,), } and the array's bytes in C order. Little-endian numeric dtypes are supported.
//
// Files are read through a file descriptor, so a header can be looked at without reading (or
// inflating) a whole entry of several hundred megabytes.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { plainBytes, type Fail } from './images.js';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** Reads exactly `length` bytes at `offset`, or fails with `truncated`. */
function readAt(fd: number, offset: number, length: number, fail: Fail, what: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, offset + done);
    if (n === 0) throw fail(`file truncated: ${what} runs past the end of the file`);
    done += n;
  }
  return out;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function safeNumber(value: bigint, fail: Fail): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`zip field ${value} is too large`);
  return Number(value);
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

/** An open zip archive: its entries, and reads of their contents. Close it when done. */
export class ZipReader {
  readonly entries: ZipEntry[];
  private readonly fd: number;
  private readonly fileBytes: number;

  constructor(path: string, private readonly fail: Fail) {
    this.fd = openSync(path, 'r');
    try {
      this.fileBytes = fstatSync(this.fd).size;
      this.entries = this.readDirectory();
    } catch (error) {
      closeSync(this.fd);
      throw error;
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  entry(name: string): ZipEntry {
    const found = this.entries.find((e) => e.name === name);
    if (!found) {
      const names = this.entries.map((e) => e.name).join(', ') || 'none';
      throw this.fail(`the archive has no ${name} entry (it has: ${names})`);
    }
    return found;
  }

  private readDirectory(): ZipEntry[] {
    const fail = this.fail;
    const notZip = 'not a zip archive (no end-of-central-directory record): truncated, or not an .npz file';
    // The record is 22 bytes plus a comment of at most 65535.
    const tailBytes = Math.min(this.fileBytes, 22 + 65535);
    if (tailBytes < 22) throw fail(notZip);
    const tailStart = this.fileBytes - tailBytes;
    const tail = readAt(this.fd, tailStart, tailBytes, fail, 'the end record');
    const tailView = view(tail);
    let eocd = -1;
    for (let i = tailBytes - 22; i >= 0; i--) {
      if (tailView.getUint32(i, true) === EOCD_SIGNATURE) { eocd = i; break; }
    }
    if (eocd < 0) throw fail(notZip);
    let entryCount = tailView.getUint16(eocd + 10, true);
    let directoryBytes = tailView.getUint32(eocd + 12, true);
    let directoryOffset = tailView.getUint32(eocd + 16, true);
    if (entryCount === 0xffff || directoryBytes === 0xffffffff || directoryOffset === 0xffffffff) {
      // Zip64: a locator just before the record points at the zip64 end record.
      const locator = eocd - 20;
      if (locator < 0 || tailView.getUint32(locator, true) !== ZIP64_LOCATOR_SIGNATURE) throw fail('corrupt zip64 end record');
      const recordOffset = safeNumber(tailView.getBigUint64(locator + 8, true), fail);
      const record = view(readAt(this.fd, recordOffset, 56, fail, 'the zip64 end record'));
      if (record.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) throw fail('corrupt zip64 end record');
      entryCount = safeNumber(record.getBigUint64(32, true), fail);
      directoryBytes = safeNumber(record.getBigUint64(40, true), fail);
      directoryOffset = safeNumber(record.getBigUint64(48, true), fail);
    }
    const directory = readAt(this.fd, directoryOffset, directoryBytes, fail, 'the central directory');
    const dir = view(directory);
    const entries: ZipEntry[] = [];
    let at = 0;
    for (let i = 0; i < entryCount; i++) {
      if (at + 46 > directory.length || dir.getUint32(at, true) !== CENTRAL_SIGNATURE) throw fail(`corrupt zip central directory at entry ${i}`);
      const flags = dir.getUint16(at + 8, true);
      const nameBytes = dir.getUint16(at + 28, true);
      const extraBytes = dir.getUint16(at + 30, true);
      const commentBytes = dir.getUint16(at + 32, true);
      const name = new TextDecoder().decode(directory.subarray(at + 46, at + 46 + nameBytes));
      const entry: ZipEntry = {
        name,
        method: dir.getUint16(at + 10, true),
        crc32: dir.getUint32(at + 16, true),
        compressedSize: dir.getUint32(at + 20, true),
        size: dir.getUint32(at + 24, true),
        localHeaderOffset: dir.getUint32(at + 42, true),
      };
      if (flags & 1) throw fail(`zip entry ${name} is encrypted, which is not supported`);
      // Fields too large for 32 bits are 0xffffffff here, and follow in order in the zip64 extra field (id 1).
      const wide = (['size', 'compressedSize', 'localHeaderOffset'] as const).filter((key) => entry[key] === 0xffffffff);
      if (wide.length > 0) {
        const extra = view(directory.subarray(at + 46 + nameBytes, at + 46 + nameBytes + extraBytes));
        let field = 0;
        while (field + 4 <= extra.byteLength && extra.getUint16(field, true) !== 1) field += 4 + extra.getUint16(field + 2, true);
        if (field + 4 + 8 * wide.length > extra.byteLength) throw fail(`zip entry ${name} lacks its zip64 sizes`);
        wide.forEach((key, k) => { entry[key] = safeNumber(extra.getBigUint64(field + 4 + 8 * k, true), fail); });
      }
      entries.push(entry);
      at += 46 + nameBytes + extraBytes + commentBytes;
    }
    return entries;
  }

  /** Offset of the entry's (compressed) data: after its local header's name and extra field. */
  private dataOffset(entry: ZipEntry): number {
    const local = view(readAt(this.fd, entry.localHeaderOffset, 30, this.fail, `zip entry ${entry.name}`));
    if (local.getUint32(0, true) !== LOCAL_SIGNATURE) throw this.fail(`corrupt zip: no local header for ${entry.name}`);
    return entry.localHeaderOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
  }

  private checkMethod(entry: ZipEntry): void {
    if (entry.method !== 0 && entry.method !== 8) {
      throw this.fail(`zip entry ${entry.name} uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`);
    }
  }

  /** The entry's whole content, its size and CRC-32 checked. */
  read(entry: ZipEntry): Uint8Array {
    this.checkMethod(entry);
    const raw = readAt(this.fd, this.dataOffset(entry), entry.compressedSize, this.fail, `zip entry ${entry.name}`);
    let data = raw;
    if (entry.method === 8) {
      try {
        data = plainBytes(zlib.inflateRawSync(raw));
      } catch (error) {
        throw this.fail(`zip entry ${entry.name} does not inflate (${(error as Error).message})`);
      }
    }
    if (data.length !== entry.size) throw this.fail(`zip entry ${entry.name} holds ${data.length} bytes, its directory says ${entry.size}`);
    if (crc32(data) !== entry.crc32) throw this.fail(`zip entry ${entry.name} is corrupt: its CRC-32 does not match`);
    return data;
  }

  /** The first `length` bytes of the entry's content (fewer if it is shorter), unchecked. */
  readPrefix(entry: ZipEntry, length: number): Uint8Array {
    this.checkMethod(entry);
    const wanted = Math.min(length, entry.size);
    const offset = this.dataOffset(entry);
    if (entry.method === 0) return readAt(this.fd, offset, Math.min(wanted, entry.compressedSize), this.fail, `zip entry ${entry.name}`);
    // A deflated byte never costs more than 15 bits, so twice the length plus room for a block header is plenty.
    const raw = readAt(this.fd, offset, Math.min(entry.compressedSize, 2 * wanted + 1024), this.fail, `zip entry ${entry.name}`);
    try {
      return plainBytes(zlib.inflateRawSync(raw, { finishFlush: zlib.constants.Z_SYNC_FLUSH })).subarray(0, wanted);
    } catch (error) {
      throw this.fail(`zip entry ${entry.name} does not inflate (${(error as Error).message})`);
    }
  }
}

let crcTable: Uint32Array | undefined;

/** CRC-32 as zip uses it: node:zlib's where it has one (Node 20.15+), else a table-driven loop. */
export function crc32(data: Uint8Array): number {
  if (typeof zlib.crc32 === 'function') return zlib.crc32(data) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The dtypes read here: unsigned/signed integers and floats, little-endian ('|' for one byte). */
const NPY_DTYPES = ['|u1', '|i1', '<u2', '<i2', '<u4', '<i4', '<u8', '<i8', '<f4', '<f8'] as const;
export type NpyDtype = (typeof NPY_DTYPES)[number];

export interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  /** Bytes before the array's data. */
  headerBytes: number;
  /** Bytes of the array's data: the shape's product times the item size. */
  dataBytes: number;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** How many bytes parseNpyHeader needs: the fixed part, then (given those) the whole header. */
export function npyHeaderLength(prefix: Uint8Array): number {
  if (prefix.length < 12) return 12;
  return prefix[6] === 1 ? 10 + view(prefix).getUint16(8, true) : 12 + view(prefix).getUint32(8, true);
}

/** Parses the header at the start of `bytes`; `fail` gets a problem naming `name`. */
export function parseNpyHeader(bytes: Uint8Array, name: string, fail: Fail): NpyHeader {
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b)) throw fail(`${name} is not a .npy array (no \\x93NUMPY magic)`);
  const major = bytes[6]!; // bytes.length >= 10, checked above
  if (major < 1 || major > 3) throw fail(`${name} is .npy version ${major}.${bytes[7]}, which is not supported (1, 2 or 3 are)`);
  const headerBytes = npyHeaderLength(bytes);
  if (bytes.length < headerBytes) throw fail(`${name} is truncated inside its .npy header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(major === 1 ? 10 : 12, headerBytes));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  if (descr === undefined) throw fail(`${name} has an unsupported dtype: only plain numeric dtypes are read (header ${header.trim()})`);
  const dtype = NPY_DTYPES.find((d) => d === descr);
  if (!dtype) throw fail(`${name} has dtype '${descr}', which is not supported (supported: ${NPY_DTYPES.join(' ')})`);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  if (fortran !== 'False') throw fail(`${name} is not in C order (fortran_order ${fortran ?? 'missing'}), which is not supported`);
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (shapeText === undefined) throw fail(`${name} has no shape in its .npy header`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const dim = /^(\d+)L?$/.exec(s);
    if (!dim) throw fail(`${name} has a bad shape (${shapeText})`);
    return Number(dim[1]);
  });
  const itemBytes = Number(dtype.slice(2));
  const dataBytes = shape.reduce((product, dim) => product * dim, itemBytes);
  return { dtype, shape, headerBytes, dataBytes };
}

/** Checks that a .npy of `found` bytes is exactly as long as its header says. */
export function checkNpySize(header: NpyHeader, found: number, name: string, fail: Fail): void {
  const expected = header.headerBytes + header.dataBytes;
  if (found !== expected) {
    const kind = found < expected ? 'truncated' : 'has trailing bytes';
    throw fail(`${name} ${kind}: shape (${header.shape.join(', ')}) of ${header.dtype} needs ${expected} bytes, found ${found}`);
  }
}

/** The array's data bytes, once the entry's length matches its header. */
export function npyData(bytes: Uint8Array, header: NpyHeader, name: string, fail: Fail): Uint8Array {
  checkNpySize(header, bytes.length, name, fail);
  return bytes.subarray(header.headerBytes);
}

/** The header of a .npy zip entry, read without reading the whole entry; its size is checked. */
export function readNpyHeader(zip: ZipReader, entry: ZipEntry, fail: Fail): NpyHeader {
  let prefix = zip.readPrefix(entry, 12);
  const needed = npyHeaderLength(prefix);
  if (needed > prefix.length) prefix = zip.readPrefix(entry, needed);
  const header = parseNpyHeader(prefix, entry.name, fail);
  checkNpySize(header, entry.size, entry.name, fail);
  return header;
}

/** The array's values as numbers (C order). 64-bit integers must be exact in a double. */
export function npyNumbers(data: Uint8Array, dtype: NpyDtype, name: string, fail: Fail): Float64Array {
  const v = view(data);
  const itemBytes = Number(dtype.slice(2));
  const out = new Float64Array(data.length / itemBytes);
  for (let i = 0; i < out.length; i++) {
    const at = i * itemBytes;
    switch (dtype) {
      case '|u1': out[i] = v.getUint8(at); break;
      case '|i1': out[i] = v.getInt8(at); break;
      case '<u2': out[i] = v.getUint16(at, true); break;
      case '<i2': out[i] = v.getInt16(at, true); break;
      case '<u4': out[i] = v.getUint32(at, true); break;
      case '<i4': out[i] = v.getInt32(at, true); break;
      case '<f4': out[i] = v.getFloat32(at, true); break;
      case '<f8': out[i] = v.getFloat64(at, true); break;
      case '<u8':
      case '<i8': {
        const big = dtype === '<u8' ? v.getBigUint64(at, true) : v.getBigInt64(at, true);
        out[i] = Number(big);
        if (!Number.isSafeInteger(out[i])) throw fail(`${name}[${i}] = ${big} is too large to read exactly`);
        break;
      }
    }
  }
  return out;
}
