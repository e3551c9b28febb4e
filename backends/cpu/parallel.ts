// A tiny synchronous thread pool for the CPU backend's kernels.
//
// The backend API is synchronous, so a kernel call splits its range into shares: the calling
// thread runs share 0 and each persistent worker (worker_threads) runs one of the others. Jobs
// are posted through a small control SharedArrayBuffer per worker and coordinated with
// Atomics.wait/notify, with no postMessage round trip per call (measured on the 2-core dev
// box: a no-op job costs ~1-2 µs this way against ~23-35 µs for postMessage to a worker that
// answers through Atomics; bench/kernels.ts prints both).
//
// Workers address the caller's arrays through their SharedArrayBuffers: the first time a
// buffer appears in a job it gets an id (WeakMap), and the buffer is sent once over a
// MessageChannel; a worker drains its port synchronously (receiveMessageOnPort) whenever the
// control block says messages are pending. When a buffer is garbage-collected on this side a
// FinalizationRegistry tells the workers to forget its id, so they never keep memory alive.
//
// The worker side lives in parallel-worker.ts; GEMM over the pool in parallel-gemm.ts.
//
// Kernels are plain functions registered by name with `defineKernel(name, import.meta.url, fn)`;
// a worker imports the defining module itself, so any module can make its kernels parallel.
// Work that is small, arrays that are not shared, a busy or still-starting worker, or a nested
// call all fall back to running the whole range on the calling thread.
import type { MessagePort, Worker } from 'node:worker_threads';
import type { FloatArray } from '../../engine/dtype.js';

// worker_threads exists only in Node. In a browser (demo/) there is no pool: every job runs on
// the calling thread, and the import below is never evaluated.
const node = typeof process !== 'undefined' && process.versions?.node !== undefined
  ? { threads: await import('node:worker_threads'), os: await import('node:os') }
  : null;

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


// ---- control block layout (Int32 slots, then a Float64 job area) --------------------------
export const STATE = 0;
export const MSG_SENT = 1;
export const PIECES = 2; // pieces this worker has run, for diagnostics
export const INT_SLOTS = 4;
export const JOB_DOUBLES = 512;
export const CTRL_BYTES = INT_SLOTS * 4 + JOB_DOUBLES * 8;

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

export const DTYPE_F32 = 0;
export const DTYPE_F64 = 1;

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


// ---- main-thread side -----------------------------------------------------------------------

export type ToWorker =
  | { type: 'buffer'; id: number; buffer: SharedArrayBuffer }
  | { type: 'free'; id: number }
  | { type: 'kernel'; index: number; name: string; url: string };

type NodeThreads = typeof import('node:worker_threads');

class WorkerHandle {
  readonly ctrl: Int32Array;
  readonly job: Float64Array;
  private readonly port: MessagePort;
  readonly worker: Worker;

  constructor(private readonly threads: NodeThreads, url: URL, kernelList: readonly Kernel[], next: SharedArrayBuffer) {
    const sab = new SharedArrayBuffer(CTRL_BYTES);
    this.ctrl = new Int32Array(sab, 0, INT_SLOTS);
    this.job = new Float64Array(sab, INT_SLOTS * 4, JOB_DOUBLES);
    const { port1, port2 } = new threads.MessageChannel();
    this.port = port1;
    this.worker = new threads.Worker(url, {
      workerData: {
        silentgradPool: true,
        ctrl: sab,
        next,
        port: port2,
        kernels: kernelList.map((k) => ({ index: k.index, name: k.name, url: k.url })),
      },
      transferList: [port2],
    });
    this.worker.unref();
    this.port.unref();
    this.worker.on('error', () => { Atomics.store(this.ctrl, STATE, DEAD); });
    this.worker.on('exit', () => { Atomics.store(this.ctrl, STATE, DEAD); });
  }

  send(message: ToWorker): void {
    this.port.postMessage(message);
    Atomics.add(this.ctrl, MSG_SENT, 1);
    Atomics.notify(this.ctrl, STATE);
  }

  /** Error text a failed worker left on the channel, if any. */
  error(): string {
    const m = this.threads.receiveMessageOnPort(this.port) as { message: { error?: string } } | undefined;
    return m?.message.error ?? 'unknown error';
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


let threads = 0;
/**
 * Threads a job may use (calling thread included): SILENTGRAD_THREADS or the core count, read
 * once (the pool is sized by it, and parallelGemm asks on every call: process.env is slow).
 */
export function threadCount(): number {
  if (threads === 0) {
    if (!node) return (threads = 1);
    const env = Number(process.env.SILENTGRAD_THREADS);
    const n = Number.isFinite(env) && env >= 1 ? Math.floor(env) : node.os.availableParallelism();
    threads = Math.max(1, Math.min(n, 16));
  }
  return threads;
}

function getPool(): Pool | null {
  if (pool || poolDisabled) return pool;
  const n = threadCount() - 1;
  if (!node || n < 1 || !node.threads.isMainThread) {
    poolDisabled = true;
    return null;
  }
  const url = new URL('./parallel-worker.js', import.meta.url);
  const next = new Int32Array(new SharedArrayBuffer(4));
  const workers: WorkerHandle[] = [];
  for (let i = 0; i < n; i++) workers.push(new WorkerHandle(node.threads, url, kernels, next.buffer as SharedArrayBuffer));
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

/**
 * Start the workers now and block until they are ready (or `timeoutMs` passes). Returns the
 * number of threads jobs will use. Optional: without it the pool starts on first use and jobs
 * run single-threaded until the workers are up.
 */
export function warmUp(timeoutMs = 10_000): number {
  const p = getPool();
  if (!p) return 1;
  const deadline = Date.now() + timeoutMs;
  let ready = 1;
  for (const w of p.workers) {
    for (;;) {
      const s = Atomics.load(w.ctrl, STATE);
      if (s !== STARTING && s !== LOADING) break;
      const left = deadline - Date.now();
      if (left <= 0) break;
      Atomics.wait(w.ctrl, STATE, s, Math.min(left, 50));
    }
    if (Atomics.load(w.ctrl, STATE) === IDLE) ready++;
  }
  return ready;
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
  for (const a of arrays) ids.push(bufferId(p, a.buffer as SharedArrayBuffer));

  Atomics.store(p.next, 0, 0);
  const posted: WorkerHandle[] = [];
  for (let s = 1; s < shares; s++) {
    const w = avail[s - 1]!;
    writeJob(w.job, kernel, total, chunk, s, arrays, ids, args);
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

// Job area: [kernel, total, chunk, share, nArrays, (bufferId, dtype, byteOffset, length)*, nArgs, args*]
function writeJob(
  job: Float64Array, kernel: Kernel, total: number, chunk: number, share: number,
  arrays: readonly FloatArray[], ids: readonly number[], args: readonly number[],
): void {
  if (5 + arrays.length * 4 + 1 + args.length > JOB_DOUBLES) throw new Error('parallelFor: job too large');
  let o = 0;
  job[o++] = kernel.index;
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
      const message = w.error();
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


export interface WorkerInit {
  silentgradPool: true;
  ctrl: SharedArrayBuffer;
  next: SharedArrayBuffer;
  port: MessagePort;
  kernels: { index: number; name: string; url: string }[];
}

export function isWorkerInit(d: unknown): d is WorkerInit {
  return typeof d === 'object' && d !== null && (d as { silentgradPool?: unknown }).silentgradPool === true;
}
