// Packing a GEMM operand block for macro.ts's kernel inside WebAssembly: the block's rows are
// copied into the kernel's memory with TypedArray.set (one call per source row: a memcpy, or an
// exact float32 -> float64 widening), then a generated loop reorders them into panels of w
// lanes, k-major, as ../pack.ts does in TypeScript: dst[(panel·kc + p)·w + l]. Element by element
// in TypeScript the packing cost about as much as the float32 multiply-adds it fed
// (docs/performance-log.md, "CPU Winograd in WebAssembly").
import type { FloatArray } from '../../../engine/dtype.js';
import { heapAddress, heapBytes } from '../heap.js';
import type { Precision } from './macro.js';
import { ModuleBuilder, type FunctionBuilder, type Local } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/** `l += bytes` for an i32 local and a constant step. */
const step = (f: FunctionBuilder, l: Local, bytes: number): void => { f.get(l).i32(bytes).op(Op.i32_add).set(l); };

/**
 * `packRows{w}(raw, rowBytes, panels, kc, dst)`: raw holds kc rows of panels·w lanes (row p at
 * raw + p·rowBytes). Lanes contiguous in a row: A transposed, B not.
 */
function addPackRows(m: ModuleBuilder, w: number, e: Precision): void {
  const f = m.addFunction(`packRows${w}`, new Array<ValType>(5).fill(ValType.i32), []);
  const [raw, rowBytes, panels, kc, dst] = f.paramTuple(5);
  const j = f.local(ValType.i32), p = f.local(ValType.i32), src = f.local(ValType.i32), out = f.local(ValType.i32);
  const align = Math.log2(e.bytes), width = w * e.bytes;
  f.get(dst).set(out);
  f.forLoop(j, panels, () => {
    f.get(raw).get(j).i32(width).op(Op.i32_mul).op(Op.i32_add).set(src);
    f.forLoop(p, kc, () => {
      for (let at = 0; at < width; at += 16) {
        if (at + 16 <= width) f.get(out).get(src).simdMemory(SimdOp.v128_load, align, at).simdMemory(SimdOp.v128_store, align, at);
        else for (let b = at; b < width; b += e.bytes) f.get(out).get(src).memory(e.load, align, b).memory(e.store, align, b);
      }
      f.advance(src, rowBytes);
      step(f, out, width);
    });
  });
}

/**
 * `packLanes{w}(raw, laneBytes, panels, kc, dst)`: raw holds panels·w lanes of kc steps (lane l
 * at raw + l·laneBytes). Lanes are rows of the source: A not transposed, B transposed.
 */
function addPackLanes(m: ModuleBuilder, w: number, e: Precision): void {
  const f = m.addFunction(`packLanes${w}`, new Array<ValType>(5).fill(ValType.i32), []);
  const [raw, laneBytes, panels, kc, dst] = f.paramTuple(5);
  const j = f.local(ValType.i32), p = f.local(ValType.i32), out = f.local(ValType.i32);
  const lanes = Array.from({ length: w }, () => f.local(ValType.i32));
  const align = Math.log2(e.bytes);
  f.get(dst).set(out);
  f.forLoop(j, panels, () => {
    lanes.forEach((lane, l) => {
      if (l === 0) f.get(raw).get(j).i32(w).op(Op.i32_mul).get(laneBytes).op(Op.i32_mul).op(Op.i32_add).set(lane);
      else f.get(lanes[l - 1]!).get(laneBytes).op(Op.i32_add).set(lane);
    });
    f.forLoop(p, kc, () => {
      lanes.forEach((lane, l) => {
        f.get(out).get(lane).memory(e.load, align, 0).memory(e.store, align, e.bytes * l);
        step(f, lane, e.bytes);
      });
      step(f, out, w * e.bytes);
    });
  });
}

/** Add both packers for each width in `widths` to `m`, for elements of precision `e`. */
export function addPackers(m: ModuleBuilder, widths: readonly number[], e: Precision): void {
  for (const w of new Set(widths)) { addPackRows(m, w, e); addPackLanes(m, w, e); }
}

type Packer = (raw: number, strideBytes: number, panels: number, kc: number, dst: number) => void;

/** The packers of one instance, by width. */
export interface Packers { rows: Map<number, Packer>; lanes: Map<number, Packer> }

export function packersOf(exports: WebAssembly.Exports, widths: readonly number[]): Packers {
  const rows = new Map<number, Packer>(), lanes = new Map<number, Packer>();
  for (const w of widths) { rows.set(w, exports[`packRows${w}`] as Packer); lanes.set(w, exports[`packLanes${w}`] as Packer); }
  return { rows, lanes };
}

/**
 * Pack `count` lanes × kc of `src` into panels of w at element offset `at` of `mem` (a view of
 * the kernel's memory), staging the rows at element offset `raw`. `lanesAreRows`: lane l, step p
 * at src[off + l·ld + p] (else at src[off + p·ld + l]). Missing lanes of the last panel are zero.
 */
export function pack(packers: Packers, mem: FloatArray, src: FloatArray, off: number, ld: number, count: number, kc: number,
  w: number, lanesAreRows: boolean, raw: number, at: number): void {
  const panels = Math.ceil(count / w), width = panels * w, bytes = mem.BYTES_PER_ELEMENT;
  // An operand in the kernel's own memory (the heap) is packed where it lies. Lanes past
  // `count` in the last panel then hold whatever follows the block, which only reaches the C
  // tiles' unused rows or columns; the read must stay inside the memory.
  const srcAt = heapAddress(src);
  if (srcAt !== null && src.BYTES_PER_ELEMENT === bytes && heapAddress(mem) !== null) {
    const first = srcAt + off * bytes;
    const last = first + (lanesAreRows ? (width - 1) * ld + kc : (kc - 1) * ld + width) * bytes;
    if (last <= heapBytes()) {
      (lanesAreRows ? packers.lanes : packers.rows).get(w)!(first, ld * bytes, panels, kc, at * bytes);
      return;
    }
  }
  // Where the block's rows are back to back in src, they are staged with one call, not one a row.
  if (lanesAreRows) {
    if (ld === kc) mem.set(src.subarray(off, off + count * kc), raw);
    else for (let l = 0; l < count; l++) mem.set(src.subarray(off + l * ld, off + l * ld + kc), raw + l * kc);
    mem.fill(0, raw + count * kc, raw + width * kc);
    packers.lanes.get(w)!(raw * bytes, kc * bytes, panels, kc, at * bytes);
    return;
  }
  if (ld === count && width === count) mem.set(src.subarray(off, off + kc * count), raw);
  else {
    for (let p = 0; p < kc; p++) {
      mem.set(src.subarray(off + p * ld, off + p * ld + count), raw + p * width);
      if (width > count) mem.fill(0, raw + p * width + count, raw + (p + 1) * width);
    }
  }
  packers.rows.get(w)!(raw * bytes, width * bytes, panels, kc, at * bytes);
}
