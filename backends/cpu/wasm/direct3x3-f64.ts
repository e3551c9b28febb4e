// ../direct3x3.ts's filter gradient (the first layer's 3x3 convolution) in WebAssembly SIMD, two
// float64 lanes at a time, giving the TypeScript loop's bits: the lanes are two output channels
// o, o+1, and each does the same multiplies and adds in the same order as the scalar loop (each
// tap's sum over the image's pixels in row order, added to that tap's sum over images), in
// float64, without fused multiply-add. The driver (../direct3x3.ts) pads each image into this
// thread's memory as float64 and unpicks the sums at the end.
import { kernelMemory, sharedMemories } from './memory.js';
import { ModuleBuilder } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/** The memory's limit in 64 KiB pages (64 MiB): a shared memory reserves its maximum up front. */
export const DIRECT_MAX_BYTES = 1024 * 65536;

const TAPS = 9 as const;

/**
 * filter(C, pairs, Hp, Wp, Ho, Wo, x, dy, acc): for every pair of output channels (o = 2q, 2q+1)
 * and input channel c, each tap's Σ over rows and pixels of dy[o][oh][ow] · x[c][oh + dy][ow + dx],
 * added to acc[q][c][tap] (two lanes: o, o+1). dy holds 2·pairs x Ho x Wo; all float64, in bytes.
 */
function addFilter(m: ModuleBuilder): void {
  const f = m.addFunction('filter', new Array<ValType>(9).fill(ValType.i32), []);
  const [C, pairs, Hp, Wp, Ho, Wo, x, dy, acc] = f.paramTuple(9);
  const [q, c, oh, ow, rowBytes, plane, dyRow, accAt, xAt] = f.locals(ValType.i32, 9);
  const rows = f.locals(ValType.i32, 3);
  const sums = f.locals(ValType.v128, TAPS);
  // window[r][k]: column k of the 3x3 window's row r, splat to both lanes.
  const window = [f.locals(ValType.v128, 3), f.locals(ValType.v128, 3), f.locals(ValType.v128, 3)] as const;
  const gy = f.local(ValType.v128);
  f.get(Wp).i32(8).op(Op.i32_mul).set(rowBytes);
  f.get(Ho).get(Wo).op(Op.i32_mul).i32(8).op(Op.i32_mul).set(plane); // one output channel's bytes in dy
  f.forLoop(q, pairs, () => f.forLoop(c, C, () => {
    for (const s of sums) f.v128Zero().set(s);
    f.forLoop(oh, Ho, () => {
      f.get(c).get(Hp).op(Op.i32_mul).get(oh).op(Op.i32_add).get(rowBytes).op(Op.i32_mul).get(x).op(Op.i32_add).set(rows[0]);
      f.get(rows[0]).get(rowBytes).op(Op.i32_add).set(rows[1]);
      f.get(rows[1]).get(rowBytes).op(Op.i32_add).set(rows[2]);
      // dyRow = dy + 2q·plane + oh·Wo·8
      f.get(q).i32(2).op(Op.i32_mul).get(plane).op(Op.i32_mul).get(oh).get(Wo).op(Op.i32_mul).i32(8).op(Op.i32_mul).op(Op.i32_add).get(dy).op(Op.i32_add).set(dyRow);
      rows.forEach((row, r) => {
        const [x0, x1] = window[r]!;
        f.get(row).simdMemory(SimdOp.v128_load64_splat, 3, 0).set(x0).get(row).simdMemory(SimdOp.v128_load64_splat, 3, 8).set(x1);
      });
      f.forLoop(ow, Wo, () => {
        f.get(ow).i32(8).op(Op.i32_mul).set(xAt);
        rows.forEach((row, r) => f.get(row).get(xAt).op(Op.i32_add).simdMemory(SimdOp.v128_load64_splat, 3, 16).set(window[r]![2]));
        // gy = (dy[o][oh][ow], dy[o + 1][oh][ow])
        f.get(dyRow).get(xAt).op(Op.i32_add).simdMemory(SimdOp.v128_load64_splat, 3, 0).set(gy);
        f.get(dyRow).get(xAt).op(Op.i32_add).get(plane).op(Op.i32_add).get(gy).laneMemory(SimdOp.v128_load64_lane, 3, 0, 1).set(gy);
        sums.forEach((s, k) => f.get(s).get(gy).get(window[Math.floor(k / 3)]![k % 3]!).simd(SimdOp.f64x2_mul).simd(SimdOp.f64x2_add).set(s));
        for (const [x0, x1, x2] of window) f.get(x1).set(x0).get(x2).set(x1);
      });
    });
    // accAt = acc + (q·C + c)·9·16
    f.get(q).get(C).op(Op.i32_mul).get(c).op(Op.i32_add).i32(TAPS * 16).op(Op.i32_mul).get(acc).op(Op.i32_add).set(accAt);
    sums.forEach((s, k) => f.get(accAt).get(accAt).simdMemory(SimdOp.v128_load, 3, k * 16).get(s).simd(SimdOp.f64x2_add).simdMemory(SimdOp.v128_store, 3, k * 16));
  }));
}

export function emitDirect3x3Module(shared: boolean): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder().importMemory('env', 'memory', 1, DIRECT_MAX_BYTES / 65536, shared);
  addFilter(m);
  return m.encode();
}

type Kernel = (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number, i: number) => void;

/** This thread's compiled loop and a float64 view of its memory, grown to at least `bytes`. */
export interface Direct3x3Wasm {
  readonly filter: Kernel;
  view(bytes: number): Float64Array;
}

let compiled: Direct3x3Wasm | undefined;
let available: boolean | undefined;

/** Whether this engine validates the module (SIMD with lane loads: not every engine that has SIMD GEMM). */
export function direct3x3WasmAvailable(): boolean {
  if (available === undefined) {
    try {
      available = typeof WebAssembly === 'object' && WebAssembly.validate(emitDirect3x3Module(sharedMemories()));
    } catch {
      available = false;
    }
  }
  return available;
}

export function direct3x3Wasm(): Direct3x3Wasm {
  if (compiled) return compiled;
  const memory = kernelMemory(1, DIRECT_MAX_BYTES / 65536);
  const e = new WebAssembly.Instance(new WebAssembly.Module(emitDirect3x3Module(sharedMemories())), { env: { memory } }).exports;
  let f64 = new Float64Array(memory.buffer);
  compiled = {
    filter: e.filter as Kernel,
    view(bytes: number) {
      const have = memory.buffer.byteLength;
      if (have < bytes) memory.grow(Math.ceil((bytes - have) / 65536));
      if (f64.buffer !== memory.buffer) f64 = new Float64Array(memory.buffer);
      return f64;
    },
  };
  return compiled;
}
