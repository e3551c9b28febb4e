// The byte-level encodings of the WebAssembly binary format (spec section 5.2): LEB128 integers,
// IEEE 754 floats, names and length-prefixed vectors. Everything is appended to a plain
// number[] of bytes; module.ts turns the finished list into a Uint8Array.

/**
 * Unsigned LEB128: 7 bits per byte, least significant first; the high bit of each byte says
 * "more follows". 0 is one byte (0x00), 127 is 0x7f, 128 is 0x80 0x01, 2^32-1 is five bytes.
 * Wasm's u32 immediates (indices, sizes, alignments, offsets, SIMD sub-opcodes) use this.
 */
export function unsignedLeb128(value: number): number[] {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`unsignedLeb128: ${value} is not a u32`);
  }
  const out: number[] = [];
  let v = value;
  do {
    let byte = v % 128; // not `& 0x7f`: v may exceed 2^31, where bit operators wrap
    v = Math.floor(v / 128);
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/**
 * Signed LEB128 of an i32 (two's complement, sign-extended from the last byte's bit 6): 63 is
 * 0x3f but 64 is 0xc0 0x00, because 0x40 alone would read back as -64; -1 is 0x7f. `i32.const`
 * takes its immediate in this form.
 */
export function signedLeb128(value: number): number[] {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
    throw new RangeError(`signedLeb128: ${value} is not an i32`);
  }
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7; // arithmetic shift keeps the sign
    const signBitClear = (byte & 0x40) === 0;
    if ((v === 0 && signBitClear) || (v === -1 && !signBitClear)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/** Decode an unsigned LEB128 at `at`; returns the value and the bytes it took (for tests). */
export function readUnsignedLeb128(bytes: ArrayLike<number>, at = 0): { value: number; length: number } {
  let value = 0, scale = 1, i = at;
  for (;;) {
    const byte = bytes[i++];
    if (byte === undefined) throw new RangeError('readUnsignedLeb128: ran off the end');
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return { value, length: i - at };
  }
}

/** Decode a signed LEB128 (up to 32 bits) at `at`. */
export function readSignedLeb128(bytes: ArrayLike<number>, at = 0): { value: number; length: number } {
  let value = 0, shift = 0, i = at, byte: number | undefined;
  do {
    byte = bytes[i++];
    if (byte === undefined) throw new RangeError('readSignedLeb128: ran off the end');
    value |= (byte & 0x7f) << shift;
    shift += 7;
  } while (byte & 0x80);
  if (shift < 32 && (byte & 0x40)) value |= -1 << shift;
  return { value, length: i - at };
}

/** A name: its UTF-8 length (u32) then the bytes. */
export function encodeName(name: string): number[] {
  const utf8 = new TextEncoder().encode(name);
  return [...unsignedLeb128(utf8.length), ...utf8];
}

/** A vector: the element count (u32) then the already-encoded elements. */
export function encodeVector(items: readonly (readonly number[])[]): number[] {
  const out = unsignedLeb128(items.length);
  for (const item of items) out.push(...item);
  return out;
}

/** An f32 as its four IEEE 754 bytes, little-endian (how `f32.const` and `v128.const` hold it). */
export function float32Bytes(value: number): number[] {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value, true);
  return [view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3)];
}

/** An f64 as its eight IEEE 754 bytes, little-endian (`f64.const`, f64x2 `v128.const`). */
export function float64Bytes(value: number): number[] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value, true);
  return Array.from({ length: 8 }, (_, i) => view.getUint8(i));
}
