// The thread pool's protocol between the calling thread (parallel.ts) and its workers
// (parallel-worker.ts): what a worker starts with, the messages it reads, and each worker's
// control block (Int32 slots, then a Float64 job area) with the job's encoding, written and
// read here only.
import type { FloatArray } from '../../engine/dtype.js';

/** What a worker is started with. */
export interface WorkerInit {
  silentgradPool: true;
  /** The CPU backend's heap (heap.ts), which job arrays with buffer id HEAP_BUFFER lie in. */
  heap: WebAssembly.Memory | null;
  ctrl: SharedArrayBuffer;
  next: SharedArrayBuffer;
  kernels: { index: number; name: string; url: string }[];
}

export function isWorkerInit(d: unknown): d is WorkerInit {
  return typeof d === 'object' && d !== null && (d as { silentgradPool?: unknown }).silentgradPool === true;
}

/** Messages from the pool to a worker, counted in the control block's MSG_SENT once sent. */
export type ToWorker =
  | { type: 'buffer'; id: number; buffer: SharedArrayBuffer }
  | { type: 'free'; id: number }
  | { type: 'kernel'; index: number; name: string; url: string };

// The control block's Int32 slots: the worker's state, messages sent to it, pieces it has run.
export const STATE = 0;
export const MSG_SENT = 1;
export const PIECES = 2; // pieces this worker has run, for diagnostics
export const INT_SLOTS = 4;
export const JOB_DOUBLES = 512;
export const CTRL_BYTES = INT_SLOTS * 4 + JOB_DOUBLES * 8;

// A worker's states: the pool posts over IDLE or DONE, and the worker claims POSTED as RUNNING.
export const STARTING = 0;
export const IDLE = 1;
export const POSTED = 2;
export const DONE = 3;
export const FAILED = 4;
export const LOADING = 5;
export const DEAD = 6;
export const SKIPPED = 7; // the worker lacked the kernel's module (the caller did all the pieces)
export const RUNNING = 8;

/** Busy-wait iterations before a thread sleeps on the futex. */
export const SPIN = 4000;

/** The buffer id of arrays in the heap: they need no message. */
export const HEAP_BUFFER = 0;

export const DTYPE_F32 = 0;
export const DTYPE_F64 = 1;

/** A job as a worker reads it: the kernel's index in the caller's table, its range and operands. */
export interface Job {
  kernelIndex: number;
  total: number;
  chunk: number;
  share: number;
  arrays: FloatArray[];
  args: Float64Array;
}

// Job area: [kernel, total, chunk, share, nArrays, (bufferId, dtype, byteOffset, length)*, nArgs, args*]
export function writeJob(
  job: Float64Array, kernelIndex: number, total: number, chunk: number, share: number,
  arrays: readonly FloatArray[], ids: readonly number[], args: readonly number[],
): void {
  if (5 + arrays.length * 4 + 1 + args.length > JOB_DOUBLES) throw new Error('parallelFor: job too large');
  let o = 0;
  job[o++] = kernelIndex;
  job[o++] = total;
  job[o++] = chunk;
  job[o++] = share;
  job[o++] = arrays.length;
  for (let i = 0; i < arrays.length; i++) {
    const a = arrays[i]!;
    job[o++] = ids[i]!;
    job[o++] = a instanceof Float32Array ? DTYPE_F32 : DTYPE_F64;
    job[o++] = a.byteOffset;
    job[o++] = a.length;
  }
  job[o++] = args.length;
  for (let i = 0; i < args.length; i++) job[o++] = args[i]!;
}

/** writeJob's inverse; `buffer(id)` gives the SharedArrayBuffer the caller numbered id. */
export function readJob(job: Float64Array, buffer: (id: number) => SharedArrayBuffer): Job {
  let o = 0;
  const kernelIndex = job[o++]!, total = job[o++]!, chunk = job[o++]!, share = job[o++]!;
  const arrays: FloatArray[] = [];
  for (let i = job[o++]!; i > 0; i--) {
    const data = buffer(job[o++]!), dtype = job[o++]!, byteOffset = job[o++]!, length = job[o++]!;
    arrays.push(dtype === DTYPE_F32 ? new Float32Array(data, byteOffset, length) : new Float64Array(data, byteOffset, length));
  }
  const nArgs = job[o++]!;
  return { kernelIndex, total, chunk, share, arrays, args: job.slice(o, o + nArgs) };
}


/** A worker's error message goes back in its job area: [length, UTF-16 code units...]. */
export function writeText(job: Float64Array, text: string): void {
  const n = Math.min(text.length, job.length - 1);
  job[0] = n;
  for (let i = 0; i < n; i++) job[i + 1] = text.charCodeAt(i);
}

export function readText(job: Float64Array): string {
  const n = job[0]!;
  let text = '';
  for (let i = 0; i < n; i++) text += String.fromCharCode(job[i + 1]!);
  return text || 'unknown error';
}
