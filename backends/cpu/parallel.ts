// A tiny synchronous thread pool for the CPU backend's kernels.
//
// The backend API is synchronous, so a kernel call splits its range into shares: the calling
// thread runs share 0 and each persistent worker runs one of the others. Jobs are posted
// through a small control SharedArrayBuffer per worker and coordinated with Atomics.wait/notify,
// with no postMessage round trip per call (measured on the 2-core dev box: a no-op job costs
// ~1-2 µs this way against ~23-35 µs for postMessage to a worker that answers through Atomics;
// bench/kernels.ts prints both).
//
// Workers address the caller's arrays through their SharedArrayBuffers: the first time a
// buffer appears in a job it gets an id (WeakMap), and the buffer is posted to every worker
// once; a worker reads its messages whenever the control block says some are pending. When a
// buffer is garbage-collected on this side a FinalizationRegistry tells the workers to forget
// its id, so they never keep memory alive.
//
// Where the workers come from is the host's business: Node's worker_threads (parallel-node.ts,
// the default under Node) or a page's Web Workers (parallel-web.ts, which a page opts into).
// The worker side lives in parallel-worker.ts, what the two sides share in parallel-protocol.ts,
// and GEMM over the pool in parallel-gemm.ts.
//
// Kernels are plain functions registered by name with `defineKernel(name, import.meta.url, fn)`;
// a Node worker imports the defining module itself, so any module can make its kernels parallel
// (a page's worker is bundled with the CPU backend's kernels instead). Work that is small,
// arrays that are not shared, a busy or still-starting worker, or a nested call all fall back
// to running the whole range on the calling thread.
import type { FloatArray } from '../../engine/dtype.js';
import {
  CTRL_BYTES, DEAD, DONE, FAILED, IDLE, INT_SLOTS, JOB_DOUBLES, LOADING, MSG_SENT, PIECES, POSTED, readText, RUNNING,
  SKIPPED, SPIN, STARTING, STATE, writeJob, HEAP_BUFFER, type ToWorker, type WorkerInit,
} from './parallel-protocol.js';
import { heap, heapAddress } from './heap.js';

/** How a pool starts its workers and talks to them. */
export interface PoolHost {
  /** Threads a job may use, the calling thread included. */
  readonly threads: number;
  /** Start a worker running parallel-worker.ts's loop; `onExit` when it dies. */
  spawn(init: WorkerInit, onExit: () => void): { send(message: ToWorker): void };
}

// Under Node the pool's workers are worker_threads; elsewhere there is no pool until a page
// names its worker script (parallel-web.ts), and the import below is never evaluated.
let host: PoolHost | null = typeof process !== 'undefined' && process.versions?.node !== undefined
  ? (await import('./parallel-node.js')).nodePoolHost()
  : null;

/**
 * Make `next` the pool's host (a page's Web Workers). Only before the pool has started: it
 * throws once jobs have run on another host's workers.
 */
export function usePoolHost(next: PoolHost): void {
  if (pool) throw new Error('usePoolHost: the thread pool has already started; choose its host before the first kernel runs');
  host = next;
  poolDisabled = false;
}

/**
 * Runs the part [start, end) of a job's range. `share` is 0 on the calling thread and
 * 1..threads-1 on the workers (for kernels that write per-share partial results).
 */
export type RangeKernel = (
  arrays: readonly FloatArray[], args: ArrayLike<number>, start: number, end: number, share: number,
) => void;

export interface Kernel {
  readonly name: string;
  readonly url: string;
  readonly index: number;
  readonly run: RangeKernel;
}


/** Multiply-adds (or comparable inner-loop steps) below which a job stays on one thread. */
export const PARALLEL_MIN_WORK = 1 << 17;

let pool: Pool | null = null;
let poolDisabled = false;
let busy = false;
const kernels: Kernel[] = [];
/** Every kernel defined in this isolate, by name (workers look kernels up here). */
export const kernelsByName = new Map<string, Kernel>();

/**
 * Register a range kernel under a unique name. `url` is the defining module's
 * `import.meta.url`: workers import it to get the same function.
 */
export function defineKernel(name: string, url: string, run: RangeKernel): Kernel {
  const existing = kernelsByName.get(name);
  if (existing) return existing;
  const kernel: Kernel = { name, url, index: kernels.length, run };
  kernels.push(kernel);
  kernelsByName.set(name, kernel);
  if (pool) for (const w of pool.workers) w.send({ type: 'kernel', index: kernel.index, name, url });
  return kernel;
}

/**
 * A Float32Array or Float64Array on a fresh SharedArrayBuffer, so workers can address it; on a
 * plain ArrayBuffer where there is none (a web page without cross-origin isolation).
 */
export function allocShared(dtype: 'float32' | 'float64', length: number): FloatArray {
  const Buffer = typeof SharedArrayBuffer === 'undefined' ? ArrayBuffer : SharedArrayBuffer;
  if (dtype === 'float32') return new Float32Array(new Buffer(length * 4));
  return new Float64Array(new Buffer(length * 8));
}

export function isShared(a: FloatArray): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer;
}


// ---- calling-thread side ---------------------------------------------------------------------

class WorkerHandle {
  readonly ctrl: Int32Array;
  readonly job: Float64Array;
  private readonly link: { send(message: ToWorker): void };

  constructor(spawn: PoolHost['spawn'], kernelList: readonly Kernel[], next: SharedArrayBuffer) {
    const sab = new SharedArrayBuffer(CTRL_BYTES);
    this.ctrl = new Int32Array(sab, 0, INT_SLOTS);
    this.job = new Float64Array(sab, INT_SLOTS * 4, JOB_DOUBLES);
    const init: WorkerInit = {
      silentgradPool: true,
      heap: heap(),
      ctrl: sab,
      next,
      kernels: kernelList.map((k) => ({ index: k.index, name: k.name, url: k.url })),
    };
    this.link = spawn(init, () => {
      Atomics.store(this.ctrl, STATE, DEAD);
      Atomics.notify(this.ctrl, STATE);
    });
  }

  send(message: ToWorker): void {
    this.link.send(message);
    Atomics.add(this.ctrl, MSG_SENT, 1);
    Atomics.notify(this.ctrl, STATE);
  }
}

interface Pool {
  workers: WorkerHandle[];
  /** Next unclaimed index of the running job's range, shared by all threads. */
  next: Int32Array;
  nextBufferId: number;
  ids: WeakMap<SharedArrayBuffer, number>;
  finalizer: FinalizationRegistry<number>;
}


/**
 * Threads a job may use (calling thread included): the host's count (SILENTGRAD_THREADS or the
 * core count under Node), or 1 where there is no pool.
 */
export function threadCount(): number {
  return host?.threads ?? 1;
}

function getPool(): Pool | null {
  if (pool || poolDisabled) return pool;
  const n = threadCount() - 1;
  if (!host || n < 1) {
    poolDisabled = true;
    return null;
  }
  const next = new Int32Array(new SharedArrayBuffer(4));
  const workers: WorkerHandle[] = [];
  for (let i = 0; i < n; i++) workers.push(new WorkerHandle(host.spawn, kernels, next.buffer as SharedArrayBuffer));
  const p: Pool = {
    workers,
    next,
    nextBufferId: 1,
    ids: new WeakMap(),
    finalizer: new FinalizationRegistry((id: number) => {
      for (const w of workers) {
        if (Atomics.load(w.ctrl, STATE) !== DEAD) w.send({ type: 'free', id });
      }
    }),
  };
  pool = p;
  return p;
}

/** Workers that are up and idle (threads a job can use now, the calling thread included). */
function readyThreads(p: Pool): number {
  return 1 + p.workers.filter((w) => Atomics.load(w.ctrl, STATE) === IDLE).length;
}

const starting = (w: WorkerHandle): boolean => {
  const s = Atomics.load(w.ctrl, STATE);
  return s === STARTING || s === LOADING;
};

/**
 * Start the workers now and block until they are ready (or `timeoutMs` passes). Returns the
 * number of threads jobs will use. Optional: without it the pool starts on first use and jobs
 * run single-threaded until the workers are up.
 */
export function warmUp(timeoutMs = 10_000): number {
  const p = getPool();
  if (!p) return 1;
  const deadline = Date.now() + timeoutMs;
  for (const w of p.workers) {
    while (starting(w) && Date.now() < deadline) {
      Atomics.wait(w.ctrl, STATE, Atomics.load(w.ctrl, STATE), Math.min(deadline - Date.now(), 50));
    }
  }
  return readyThreads(p);
}

/**
 * warmUp for a thread that must not block while its workers start (a page's worker: a browser
 * may start a nested worker only when its parent's event loop runs).
 */
export async function warmUpAsync(timeoutMs = 10_000): Promise<number> {
  const p = getPool();
  if (!p) return 1;
  const deadline = Date.now() + timeoutMs;
  while (p.workers.some(starting) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return readyThreads(p);
}

/** Pieces of parallelFor jobs the workers (not the calling thread) have run so far. */
export function workerPieces(): number {
  let n = 0;
  if (pool) for (const w of pool.workers) n += Atomics.load(w.ctrl, PIECES);
  return n;
}

function bufferId(p: Pool, buffer: SharedArrayBuffer): number {
  let id = p.ids.get(buffer);
  if (id === undefined) {
    id = p.nextBufferId++;
    p.ids.set(buffer, id);
    p.finalizer.register(buffer, id);
    for (const w of p.workers) w.send({ type: 'buffer', id, buffer });
  }
  return id;
}

/**
 * Run `kernel` over [0, total) on the calling thread and the idle workers. The range is dealt
 * out dynamically in pieces of `chunk` (a multiple of `grain`; by default about a quarter of
 * an even share) from a shared atomic counter, so a worker that the OS has not scheduled yet
 * simply gets less: on a busy machine the call is never much slower than running alone, and
 * a worker that has not picked the job up when the caller finishes is cancelled rather than
 * waited for. `work` is the job's total cost in multiply-adds; below `minWork` everything runs
 * here. A thread may call the kernel several times, always with its own `share` number.
 * Returns the number of shares (threads) the job was offered to; shares that got no piece
 * never called the kernel.
 */
export function parallelFor(
  kernel: Kernel, arrays: readonly FloatArray[], args: readonly number[],
  total: number, grain: number, work: number,
  options: { minWork?: number; chunk?: number } = {},
): number {
  if (total <= 0) return 0;
  const g = Math.max(1, Math.floor(grain));
  const minWork = options.minWork ?? PARALLEL_MIN_WORK;
  if (busy || work < minWork || total < 2 * g || !arrays.every(isShared)) {
    kernel.run(arrays, args, 0, total, 0);
    return 1;
  }
  const p = getPool();
  if (!p) {
    kernel.run(arrays, args, 0, total, 0);
    return 1;
  }
  const maxShares = Math.floor(total / g);
  const avail: WorkerHandle[] = [];
  for (const w of p.workers) {
    if (avail.length + 1 >= maxShares) break;
    const st = Atomics.load(w.ctrl, STATE);
    if (st === IDLE || st === DONE) avail.push(w);
  }
  if (avail.length === 0) {
    kernel.run(arrays, args, 0, total, 0);
    return 1;
  }
  const shares = avail.length + 1;
  const chunk = Math.max(g, options.chunk !== undefined
    ? Math.ceil(options.chunk / g) * g
    : Math.ceil(total / (shares * 4 * g)) * g);
  const ids: number[] = [];
  for (const a of arrays) ids.push(heapAddress(a) !== null ? HEAP_BUFFER : bufferId(p, a.buffer as SharedArrayBuffer));

  Atomics.store(p.next, 0, 0);
  const posted: WorkerHandle[] = [];
  for (let s = 1; s < shares; s++) {
    const w = avail[s - 1]!;
    writeJob(w.job, kernel.index, total, chunk, s, arrays, ids, args);
    const st = Atomics.load(w.ctrl, STATE);
    if ((st === IDLE || st === DONE) && Atomics.compareExchange(w.ctrl, STATE, st, POSTED) === st) {
      Atomics.notify(w.ctrl, STATE);
      posted.push(w);
    }
  }
  busy = true;
  let failure: string | null = null;
  try {
    for (;;) {
      const start = Atomics.add(p.next, 0, chunk);
      if (start >= total) break;
      kernel.run(arrays, args, start, Math.min(total, start + chunk), 0);
    }
  } finally {
    for (const w of posted) {
      const f = finish(w);
      if (f && !failure) failure = f;
    }
    busy = false;
  }
  if (failure) throw new Error(`silentgrad worker failed in kernel ${kernel.name}: ${failure}`);
  return shares;
}

/**
 * Runs `fn` with every parallelFor inside it on the calling thread alone: a reference run of
 * this thread's kernels (setCpuKernels), which the pool's workers do not follow.
 */
export function onCallingThread<T>(fn: () => T): T {
  const was = busy;
  busy = true;
  try {
    return fn();
  } finally {
    busy = was;
  }
}

/**
 * After the caller has run out of pieces: cancel the job if the worker has not started it,
 * else wait for it (spinning briefly first: a futex wake-up costs tens of µs). Returns an
 * error message or null.
 */
function finish(w: WorkerHandle): string | null {
  const ctrl = w.ctrl;
  if (Atomics.compareExchange(ctrl, STATE, POSTED, IDLE) === POSTED) return null;
  for (let spin = 0; spin < SPIN && Atomics.load(ctrl, STATE) === RUNNING; spin++);
  for (;;) {
    const s = Atomics.load(ctrl, STATE);
    if (s === DONE) return null; // the next job may be posted over DONE
    if (s === FAILED) {
      const message = readText(w.job);
      Atomics.store(ctrl, STATE, IDLE);
      return message;
    }
    if (s === DEAD) return 'worker exited';
    if (s === SKIPPED) {
      Atomics.store(ctrl, STATE, IDLE);
      Atomics.notify(ctrl, STATE); // let it load the missing module
      return null;
    }
    Atomics.wait(ctrl, STATE, RUNNING, 1000);
  }
}

