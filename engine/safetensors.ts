// State saved as safetensors (the format PyTorch users load with the `safetensors` package):
// an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
// byte range, then the raw little-endian data. Written atomically: a crash mid-save leaves
// the previous file intact.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { Backend } from './backend.js';
import type { DType, FloatArray } from './dtype.js';
import { tensor } from './ops/core.js';
import type { Tensor } from './tensor.js';

const codes: Record<DType, string> = { float32: 'F32', float64: 'F64' };
const dtypes: Record<string, DType> = { F32: 'float32', F64: 'float64' };

interface HeaderEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

/** Write bytes to path via a temporary file, fsync and rename (atomic on POSIX). */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w');
  try {
    for (const chunk of chunks) {
      let written = 0;
      while (written < chunk.length) written += writeSync(fd, chunk, written, chunk.length - written);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

export async function saveSafetensors(path: string, state: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  const header: Record<string, HeaderEntry | Record<string, string>> = { __metadata__: metadata };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of state) {
    const values: FloatArray = await t.data();
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    header[name] = { dtype: codes[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keep the data 8-byte aligned, as the reference writer does
  const jsonBytes = new TextEncoder().encode(json);
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  writeFileAtomic(path, [length, jsonBytes, ...blobs]);
}

export interface LoadedSafetensors {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

export function loadSafetensors(path: string, backend?: Backend): LoadedSafetensors {
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch (e) {
    throw new Error(`safetensors: cannot read ${path}: ${(e as Error).message}`);
  }
  const corrupt = (why: string): Error => new Error(`safetensors: ${path} is truncated or corrupt: ${why}`);
  if (file.length < 8) throw corrupt(`${file.length} bytes, shorter than the 8-byte header length`);
  const headerLength = Number(file.readBigUInt64LE(0));
  if (headerLength > file.length - 8) throw corrupt(`header claims ${headerLength} bytes but only ${file.length - 8} follow`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw corrupt('the header is not valid JSON');
  }
  const dataStart = 8 + headerLength;
  const dataLength = file.length - dataStart;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = raw as Record<string, string>;
      continue;
    }
    const entry = raw as HeaderEntry;
    const dtype = dtypes[entry.dtype];
    if (!dtype) throw corrupt(`'${name}' has dtype ${entry.dtype}; silentgrad reads F32 and F64`);
    const [begin, end] = entry.data_offsets;
    const count = entry.shape.reduce((n, d) => n * d, 1);
    const width = dtype === 'float32' ? 4 : 8;
    if (end > dataLength) throw corrupt(`'${name}' needs bytes ${begin}..${end} but the data section has ${dataLength}`);
    if (end - begin !== count * width) throw corrupt(`'${name}' has ${end - begin} bytes for shape [${entry.shape}] of ${dtype}`);
    const bytes = file.subarray(dataStart + begin, dataStart + end);
    const aligned = new Uint8Array(bytes); // copy: typed arrays need aligned offsets
    const values = dtype === 'float32' ? new Float32Array(aligned.buffer) : new Float64Array(aligned.buffer);
    tensors.set(name, tensor(values, entry.shape, backend ? { dtype, backend } : { dtype }));
  }
  return { tensors, metadata };
}
