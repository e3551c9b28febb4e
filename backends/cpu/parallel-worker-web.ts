// A pool worker in a web page (started by parallel-web.ts). Its first message is the pool's
// WorkerInit; the rest arrive through the event loop, which the loop reaches whenever it awaits
// one. Every kernel of the CPU backend is bundled in (a page cannot import modules by the URLs
// a Node pool sends), so a kernel defined elsewhere is skipped and run by the calling thread.
import './index.js';
import { isWorkerInit, type ToWorker } from './parallel-protocol.js';
import { runPoolWorker } from './parallel-worker.js';

const inbox: ToWorker[] = [];
let wake: (() => void) | null = null;
let started = false;

onmessage = (event: MessageEvent<unknown>) => {
  if (!started) {
    if (!isWorkerInit(event.data)) throw new Error('silentgrad pool worker: the first message must be the pool\'s WorkerInit');
    started = true;
    void runPoolWorker(event.data, {
      nextMessage: () => inbox.shift() ?? new Promise<ToWorker>((resolve) => {
        wake = () => resolve(inbox.shift()!);
      }),
      load: async () => {},
      collectGarbage: () => {},
    });
    return;
  }
  inbox.push(event.data as ToWorker);
  const w = wake;
  wake = null;
  w?.();
};
