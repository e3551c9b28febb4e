// The thread pool's host in Node: workers are worker_threads running parallel-worker-node.ts,
// and messages travel over a MessageChannel the worker drains synchronously. Only the main
// thread leads a pool (a worker thread's kernels run on the thread itself).
import { availableParallelism } from 'node:os';
import { isMainThread, MessageChannel, Worker } from 'node:worker_threads';
import type { PoolHost } from './parallel.js';
import type { WorkerInit } from './parallel-protocol.js';

/** SILENTGRAD_THREADS or the core count, at most 16; read once (process.env is slow). */
function threadsWanted(): number {
  const env = Number(process.env.SILENTGRAD_THREADS);
  const n = Number.isFinite(env) && env >= 1 ? Math.floor(env) : availableParallelism();
  return Math.max(1, Math.min(n, 16));
}

export function nodePoolHost(): PoolHost | null {
  if (!isMainThread) return null;
  const url = new URL('./parallel-worker-node.js', import.meta.url);
  return {
    threads: threadsWanted(),
    spawn(init: WorkerInit, onExit: () => void) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(url, { workerData: { ...init, port: port2 }, transferList: [port2] });
      // The pool must never keep a finished program alive.
      worker.unref();
      port1.unref();
      worker.on('error', onExit);
      worker.on('exit', onExit);
      return { send: (message) => port1.postMessage(message) };
    },
  };
}
