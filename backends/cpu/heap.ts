// The CPU backend's heap: one shared WebAssembly.Memory for the whole process, holding the
// backend's tensors and every thread's Wasm kernel scratch, so a kernel reads its operands where
// they lie (no copy into a private Wasm memory) and the pool's workers address them by offset
// (no SharedArrayBuffer to post per tensor). The calling thread creates it; parallel.ts hands it
// to each worker, which adopts it before running jobs.
//
// Allocation bumps an atomic top (any thread: scratch is taken once per thread and kept); only
// the thread that created the heap frees, into lists by size that later allocations of that size
// reuse. Where shared memories are unavailable (a page without cross-origin isolation), under
// SILENTGRAD_CPU_KERNELS=js, or when the heap is full, there is no heap block and callers
// allocate as before.
import type { FloatArray } from '../../engine/dtype.js';
import { kernelMemory, sharedMemories } from './wasm/memory.js';

/** The heap's limit: a shared memory reserves its maximum up front, so 1 GiB, not 4. */
export const HEAP_MAX_PAGES = 16384;
const PAGE = 65536;
/** Blocks start on cache lines (and so on any element's alignment). */
const ALIGN = 64;
/** The header's first Int32: the next free byte. */
const TOP = 0;

let memory: WebAssembly.Memory | null | undefined;
let owner = false;
const free = new Map<number, number[]>();
/** Every buffer this thread has taken from the memory: arrays on them are heap arrays. */
const buffers = new WeakSet<ArrayBufferLike>();

/** This process's heap, created on first use by the calling thread; null where there is none. */
export function heap(): WebAssembly.Memory | null {
  if (memory === undefined) {
    memory = null;
    // SILENTGRAD_CPU_KERNELS=js runs the backend without WebAssembly, its memory included.
    const jsOnly = typeof process !== 'undefined' && process.env?.SILENTGRAD_CPU_KERNELS === 'js';
    if (!jsOnly && sharedMemories()) {
      try {
        memory = new WebAssembly.Memory({ initial: 16, maximum: HEAP_MAX_PAGES, shared: true });
        owner = true;
        Atomics.store(new Int32Array(memory.buffer), TOP, ALIGN);
      } catch {
        memory = null; // could not reserve the address space
      }
    }
  }
  return memory;
}

/** A worker takes the heap its pool's caller created (null: none), before its first job. */
export function adoptHeap(shared: WebAssembly.Memory | null): void {
  memory = shared;
  owner = false;
}

/** The memory's current buffer (after any growth, from any thread). */
export function heapBuffer(m: WebAssembly.Memory): SharedArrayBuffer {
  const b = m.buffer as unknown as SharedArrayBuffer;
  buffers.add(b);
  return b;
}

/** The heap's size in bytes now (0 where there is none). */
export function heapBytes(): number {
  return memory ? memory.buffer.byteLength : 0;
}

/** The byte address of `a` in the heap, or null if `a` does not lie in it. */
export function heapAddress(a: { buffer: ArrayBufferLike; byteOffset: number }): number | null {
  return buffers.has(a.buffer) ? a.byteOffset : null;
}

/** The byte address of element `offset` of `a` in the heap, or null if `a` does not lie in it. */
export function heapElementAddress(a: FloatArray, offset: number): number | null {
  const at = heapAddress(a);
  return at === null ? null : at + offset * a.BYTES_PER_ELEMENT;
}

/** `bytes` bytes of the heap, aligned, from the atomic top; null if the heap is full or absent. */
export function heapAllocate(bytes: number): number | null {
  const m = heap();
  if (!m) return null;
  const size = Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
  const reused = owner ? free.get(size)?.pop() : undefined;
  if (reused !== undefined) return reused;
  const top = new Int32Array(m.buffer, 0, 1);
  for (;;) {
    const at = Atomics.load(top, TOP);
    const end = at + size;
    if (end > HEAP_MAX_PAGES * PAGE) return null;
    const have = m.buffer.byteLength;
    try {
      if (end > have) m.grow(Math.ceil((end - have) / PAGE));
    } catch {
      return null; // another thread grew it to the limit first, or the system refused
    }
    if (Atomics.compareExchange(top, TOP, at, end) === at) return at;
  }
}

/** Whether this thread created the heap (and so may give blocks back). */
export function heapOwner(): boolean {
  return owner;
}

/** Give a block back (the creating thread only); later allocations of its size reuse it. */
export function heapRelease(at: number, bytes: number): void {
  if (!owner) throw new Error('heapRelease: only the thread that created the heap frees its blocks');
  const size = Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
  const list = free.get(size) ?? [];
  list.push(at);
  free.set(size, list);
}

/** A Float32Array or Float64Array of `length` elements in the heap, or null (see heapAllocate). */
export function heapArray(dtype: 'float32' | 'float64', length: number): Float32Array | Float64Array | null {
  const bytes = length * (dtype === 'float32' ? 4 : 8);
  const at = heapAllocate(bytes);
  if (at === null) return null;
  const b = heapBuffer(memory!);
  return dtype === 'float32' ? new Float32Array(b, at, length) : new Float64Array(b, at, length);
}

/** Where a kernel module's memory and its scratch are: the heap, or a memory of its own. */
export interface KernelPlace {
  memory: WebAssembly.Memory;
  /** The byte address of the scratch in it. */
  scratch: number;
  /** What the module's memory import must say (ModuleBuilder.importMemory). */
  shared: boolean; pages: number; maxPages: number;
  /** The memory's buffer when placed (it holds the scratch; heap arrays are views of it). */
  buffer: ArrayBufferLike;
}

/**
 * `scratchBytes` of scratch for this thread's instance of a kernel module: a block of the heap,
 * never given back, where there is one (the module then reads heap tensors in place); else a
 * memory of its own just that big, into which operands are staged.
 */
export function kernelPlace(scratchBytes: number): KernelPlace {
  const m = heap();
  const at = m ? heapAllocate(scratchBytes) : null;
  if (m && at !== null) return { memory: m, scratch: at, shared: true, pages: 1, maxPages: HEAP_MAX_PAGES, buffer: heapBuffer(m) };
  const pages = Math.ceil(scratchBytes / 65536);
  const memory = kernelMemory(pages, pages);
  return { memory, scratch: 0, shared: sharedMemories(), pages, maxPages: pages, buffer: memory.buffer };
}
