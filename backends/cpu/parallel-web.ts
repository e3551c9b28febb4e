// The thread pool's host in a web page: workers are module Web Workers running the page's
// bundle of parallel-worker-web.ts. A pool leads from a thread that may block in Atomics.wait,
// which a page allows in workers only, and shares memory only when cross-origin isolated
// (COOP/COEP headers); anywhere else the CPU backend stays on one thread.
import { usePoolHost, warmUpAsync } from './parallel.js';
import type { ToWorker } from './parallel-protocol.js';

/** Why this page cannot run a pool, or null if it can. */
export function webPoolUnavailable(): string | null {
  if (typeof Worker === 'undefined') return 'this context cannot start Web Workers';
  if (!('WorkerGlobalScope' in globalThis)) return 'Atomics.wait blocks only in a worker, not in a page\'s main thread';
  if (!globalThis.crossOriginIsolated) return 'the page is not cross-origin isolated (it needs the COOP and COEP headers), so it has no SharedArrayBuffer';
  return null;
}

/**
 * Run the CPU backend's kernels on `threads` threads (the calling worker and threads - 1 Web
 * Workers started from `workerUrl`, the bundle of parallel-worker-web.ts). Resolves with the
 * threads ready, or with 1 and the reason there is no pool.
 */
export async function startWebPool(workerUrl: URL, threads: number): Promise<{ threads: number; reason: string | null }> {
  if (threads <= 1) return { threads: 1, reason: 'no more were asked for' };
  const reason = webPoolUnavailable();
  if (reason) return { threads: 1, reason };
  usePoolHost({
    threads: Math.max(1, Math.min(Math.floor(threads), 16)),
    spawn(init, onExit) {
      const worker = new Worker(workerUrl, { type: 'module', name: 'silentgrad-cpu-pool' });
      worker.onerror = onExit;
      worker.postMessage(init);
      return { send: (message: ToWorker) => worker.postMessage(message) };
    },
  });
  const ready = await warmUpAsync();
  return { threads: ready, reason: ready > 1 ? null : 'its workers did not start within 10 s' };
}
