// A pool worker under Node (started by parallel-node.ts): messages come over a MessagePort read
// synchronously, kernel modules are imported by URL, and a full GC can be asked for.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { isWorkerInit, type ToWorker, type WorkerInit } from './parallel-protocol.js';
import { runPoolWorker } from './parallel-worker.js';

let gcFunction: (() => void) | null | undefined;

function collectGarbage(): void {
  if (gcFunction === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const f: unknown = runInNewContext('gc');
      gcFunction = typeof f === 'function' ? (f as () => void) : null;
    } catch {
      gcFunction = null;
    }
  }
  gcFunction?.();
}

if (!isMainThread && isWorkerInit(workerData)) {
  const port = (workerData as WorkerInit & { port: MessagePort }).port;
  void runPoolWorker(workerData, {
    nextMessage(): ToWorker {
      for (;;) {
        // The pool posts before it counts, so a counted message is at most a moment away.
        const m = receiveMessageOnPort(port) as { message: ToWorker } | undefined;
        if (m) return m.message;
      }
    },
    load: async (url) => { await import(url); },
    collectGarbage,
  });
}
