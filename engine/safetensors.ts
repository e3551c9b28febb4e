// State saved as safetensors (the format PyTorch users load with the `safetensors` package):
// an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
// byte range, then the raw little-endian data. Written atomically: a crash mid-save leaves
// the previous file intact.
//
// Tensors are F32 or F64. Integer state tagged with markInt64 (BatchNorm's num_batches_tracked)
// is written as I64, as PyTorch stores it; I64 entries load as float tensors holding the same
// whole numbers (float64 where the backend has it, else float32), tagged again.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { Backend } from './backend.js';
import type { DType, FloatArray } from './dtype.js';
import { isInt64, markInt64 } from './nn/int64.js';
import { getDefaultBackend, tensor } from './ops/core.js';
import type { Tensor } from './tensor.js';

const codes: Record<DType, string> = { float32: 'F32', float64: 'F64' };
const dtypes: Record<string, DType> = { F32: 'float32', F64: 'float64' };
const INT64 = 'I64';
/** The largest whole number each float type holds exactly (and every one below it). */
const exactIntegers: Record<DType, number> = { float32: 2 ** 24, float64: Number.MAX_SAFE_INTEGER };

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

/** The little-endian int64 bytes of whole-number values (integer state, markInt64). */
function int64Bytes(name: string, values: FloatArray): Uint8Array {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isSafeInteger(v)) throw new Error(`saveSafetensors: '${name}' is int64 state but holds ${v}, not a whole number`);
    out[i] = BigInt(v);
  }
  return new Uint8Array(out.buffer);
}

export async function saveSafetensors(path: string, state: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  const entries: { name: string; code: string; shape: number[]; bytes: Uint8Array; width: number }[] = [];
  for (const [name, t] of state) {
    const values: FloatArray = await t.data();
    const code = isInt64(t) ? INT64 : codes[t.dtype];
    const bytes = code === INT64 ? int64Bytes(name, values) : new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    entries.push({ name, code, shape: [...t.shape], bytes, width: code === 'F32' ? 4 : 8 });
  }
  // The data section starts 8-byte aligned; laying out the 8-byte types first keeps every
  // tensor aligned for its type, as the reference writer does (it sorts by alignment). The
  // header keeps the state's order: readers locate data by data_offsets alone.
  const layout = [...entries].sort((a, b) => b.width - a.width);
  const offsets = new Map<string, [number, number]>();
  let offset = 0;
  for (const e of layout) {
    offsets.set(e.name, [offset, offset + e.bytes.length]);
    offset += e.bytes.length;
  }
  const header: Record<string, HeaderEntry | Record<string, string>> = { __metadata__: metadata };
  for (const e of entries) header[e.name] = { dtype: e.code, shape: e.shape, data_offsets: offsets.get(e.name)! };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keep the data 8-byte aligned, as the reference writer does
  const jsonBytes = new TextEncoder().encode(json);
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  writeFileAtomic(path, [length, jsonBytes, ...layout.map((e) => e.bytes)]);
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
    const integer = entry.dtype === INT64;
    const fileDtype = Object.hasOwn(dtypes, entry.dtype) ? dtypes[entry.dtype] : undefined;
    if (!fileDtype && !integer) throw corrupt(`'${name}' has dtype ${entry.dtype}; silentgrad reads F32, F64 and I64`);
    const [begin, end] = entry.data_offsets;
    const count = entry.shape.reduce((n, d) => n * d, 1);
    const width = fileDtype === 'float32' ? 4 : 8;
    if (end > dataLength) throw corrupt(`'${name}' needs bytes ${begin}..${end} but the data section has ${dataLength}`);
    if (end - begin !== count * width) throw corrupt(`'${name}' has ${end - begin} bytes for shape [${entry.shape}] of ${entry.dtype}`);
    const bytes = file.subarray(dataStart + begin, dataStart + end);
    const aligned = new Uint8Array(bytes); // copy: typed arrays need aligned offsets
    if (!integer) {
      const values = fileDtype === 'float32' ? new Float32Array(aligned.buffer) : new Float64Array(aligned.buffer);
      tensors.set(name, tensor(values, entry.shape, backend ? { dtype: fileDtype, backend } : { dtype: fileDtype }));
      continue;
    }
    const target = backend ?? getDefaultBackend();
    const dtype: DType = target.supports('float64') ? 'float64' : 'float32';
    const values = Array.from(new BigInt64Array(aligned.buffer), (v) => {
      if (v > BigInt(exactIntegers[dtype]) || v < -BigInt(exactIntegers[dtype]))
        throw new Error(`safetensors: ${path}: '${name}' holds the integer ${v}, beyond what ${dtype} on ${target.name} represents exactly`);
      return Number(v);
    });
    tensors.set(name, markInt64(tensor(values, entry.shape, { dtype, backend: target })));
  }
  return { tensors, metadata };
}
