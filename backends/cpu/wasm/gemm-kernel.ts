// One thread's compiled GEMM module for a tile shape and element type (macro.ts and the packers
// of packing.ts), with its scratch laid out as staging and packed areas for one A block (MC×KC)
// and one B block (KC×NC), and a C block. gemm-f32.ts and gemm-f64.ts drive it. The module
// imports the CPU backend's heap (../heap.ts), where the backend's tensors lie, and takes its
// scratch there, so packing reads operands in place (packing.ts); where there is no heap each
// thread's instance has a memory of its own and operands are staged into it.
import type { FloatArray } from '../../../engine/dtype.js';
import { addMacro, relaxedMaddChosen, type Macro, type Precision, type TileShape } from './macro.js';
import { kernelPlace } from '../heap.js';
import { ModuleBuilder } from './module.js';
import { addPackers, packersOf, type Packers } from './packing.js';

/** Depth of a K block: the same as gemm.ts's, which gemm-f64.ts needs for the same sums. */
export const KC = 256;
/** Width of a B block, a multiple of every NR used. */
export const NC = 1024;
const MC_TARGET = 128;

/**
 * The module for one tile shape and precision: imports `env.memory` (`pages` pages, `shared` or
 * not: memory.ts) and exports `macro` (macro.ts) and the packers of packing.ts.
 */
export function emitGemmModule(tile: TileShape, pages: number, precision: Precision, fused: boolean, shared: boolean,
  maxPages = pages): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder().importMemory('env', 'memory', pages, maxPages, shared);
  addMacro(m, tile, precision, fused);
  addPackers(m, [tile.mr, tile.nr], precision);
  return m.encode();
}

/** A compiled kernel, a view of its memory, and the element offsets of its areas. */
export interface GemmKernel {
  readonly tile: TileShape;
  /** Rows of an A block: a multiple of MR. */
  readonly mc: number;
  readonly macro: Macro;
  readonly packers: Packers;
  readonly mem: FloatArray;
  /** Staged and packed A block, staged and packed B block, C block (`cRows` × NC). */
  readonly aRaw: number;
  readonly aAt: number;
  readonly bRaw: number;
  readonly bAt: number;
  readonly cAt: number;
}

const kernels = new Map<string, GemmKernel>();

/** Compile (once per thread, tile shape and precision) and return the kernel; C holds `cRows` rows. */
export function gemmKernel(tile: TileShape, precision: Precision, cRows: number): GemmKernel {
  const key = `${tile.mr}x${tile.nr} ${precision.name} ${cRows}`;
  const cached = kernels.get(key);
  if (cached) return cached;
  const mc = tile.mr * Math.max(1, Math.floor(MC_TARGET / tile.mr));
  const elements = 2 * mc * KC + 2 * KC * NC + cRows * NC;
  const fused = precision.name === 'f32' && relaxedMaddChosen();
  const place = kernelPlace(elements * precision.bytes);
  const bytes = emitGemmModule(tile, place.pages, precision, fused, place.shared, place.maxPages);
  const aRaw = place.scratch / precision.bytes, aAt = aRaw + mc * KC, bRaw = aAt + mc * KC, bAt = bRaw + KC * NC, cAt = bAt + KC * NC;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: place.memory } });
  const mem = precision.name === 'f32' ? new Float32Array(place.buffer) : new Float64Array(place.buffer);
  const kernel: GemmKernel = {
    tile, mc, macro: instance.exports.macro as Macro, packers: packersOf(instance.exports, [tile.mr, tile.nr]),
    mem, aRaw, aAt, bRaw, bAt, cAt,
  };
  kernels.set(key, kernel);
  return kernel;
}
