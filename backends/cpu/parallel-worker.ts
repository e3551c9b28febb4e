// The worker side of the CPU backend's thread pool (parallel.ts): waits on its control block,
// runs pieces of posted jobs with the kernels its isolate has, and keeps its table of the
// caller's SharedArrayBuffers in step with the messages the pool sends. Host-neutral: the
// entries parallel-worker-node.ts and parallel-worker-web.ts say how messages arrive.
import { kernelsByName } from './parallel.js';
import {
  DEAD, DONE, FAILED, IDLE, INT_SLOTS, JOB_DOUBLES, LOADING, MSG_SENT, PIECES, POSTED, readJob, RUNNING,
  SKIPPED, SPIN, STATE, writeText, HEAP_BUFFER, type ToWorker, type WorkerInit,
} from './parallel-protocol.js';
import { adoptHeap, heapBuffer } from './heap.js';

/** What the loop needs from its host. */
export interface WorkerSide {
  /** The next message the pool sent; the pool counts it in MSG_SENT only after sending it. */
  nextMessage(): ToWorker | Promise<ToWorker>;
  /** Make a module's kernels available here (Node imports it; a page's worker has them bundled). */
  load(url: string): Promise<void>;
  /** Release the memory of forgotten buffers now, where the host can. */
  collectGarbage(): void;
}

/** Bytes of forgotten buffers after which a worker asks for a full GC to release them. */
const FREED_BYTES_PER_GC = 64 << 20;

export async function runPoolWorker(init: WorkerInit, side: WorkerSide): Promise<void> {
  adoptHeap(init.heap);
  const ctrl = new Int32Array(init.ctrl, 0, INT_SLOTS);
  const job = new Float64Array(init.ctrl, INT_SLOTS * 4, JOB_DOUBLES);
  const next = new Int32Array(init.next);
  const buffers = new Map<number, SharedArrayBuffer>();
  const names = new Map<number, string>();
  const urls = new Set<string>();
  const pendingUrls = new Set<string>();
  let received = 0;
  let freedBytes = 0;

  const load = async (url: string): Promise<void> => {
    if (urls.has(url)) return;
    urls.add(url);
    await side.load(url);
  };
  for (const k of init.kernels) {
    names.set(k.index, k.name);
    await load(k.url);
  }

  // A page's worker receives messages only from its event loop, so reading them may wait.
  const drain = async (): Promise<void> => {
    while (received < Atomics.load(ctrl, MSG_SENT)) {
      const next = side.nextMessage();
      const msg = next instanceof Promise ? await next : next;
      received++;
      if (msg.type === 'buffer') buffers.set(msg.id, msg.buffer);
      else if (msg.type === 'free') {
        freedBytes += buffers.get(msg.id)?.byteLength ?? 0;
        buffers.delete(msg.id);
      } else {
        names.set(msg.index, msg.name);
        if (!urls.has(msg.url)) pendingUrls.add(msg.url);
      }
    }
  };

  /** Pull pieces until the range is exhausted; false if this worker lacks the kernel. */
  const runJob = (): boolean => {
    const name = names.get(job[0]!);
    const kernel = name === undefined ? undefined : kernelsByName.get(name);
    if (!kernel) return false;
    const { total, chunk, share, arrays, args } = readJob(job, (id) => {
      if (id === HEAP_BUFFER && init.heap) return heapBuffer(init.heap);
      const buffer = buffers.get(id);
      if (!buffer) throw new Error(`unknown buffer id ${id}`);
      return buffer;
    });
    for (;;) {
      const start = Atomics.add(next, 0, chunk);
      if (start >= total) break;
      kernel.run(arrays, args, start, Math.min(total, start + chunk), share);
      Atomics.add(ctrl, PIECES, 1);
    }
    return true;
  };

  Atomics.store(ctrl, STATE, IDLE);
  Atomics.notify(ctrl, STATE);
  try {
    for (;;) {
      if (freedBytes >= FREED_BYTES_PER_GC) {
        // This isolate allocates almost nothing, so it would hardly ever collect the
        // SharedArrayBuffer objects it has dropped, and their memory would stay mapped.
        freedBytes = 0;
        side.collectGarbage();
      }
      let s = Atomics.load(ctrl, STATE);
      if (s !== POSTED) {
        // Spin a little before sleeping: back-to-back kernels (a training step) then skip
        // the futex wake-up.
        for (let spin = 0; spin < SPIN && Atomics.load(ctrl, STATE) === s; spin++);
        Atomics.wait(ctrl, STATE, s);
        s = Atomics.load(ctrl, STATE);
      }
      if (s === POSTED) {
        // The job may name buffers announced in messages not read yet. Read them before
        // claiming it, since reading may wait (a page's worker) and the caller need not.
        if (received < Atomics.load(ctrl, MSG_SENT)) await drain();
        // The caller may cancel a job nobody has started; claim it first.
        if (Atomics.compareExchange(ctrl, STATE, POSTED, RUNNING) !== POSTED) continue;
        // And again: the job claimed may be a newer one, posted after the caller cancelled the
        // one seen above, with buffers of its own.
        if (received < Atomics.load(ctrl, MSG_SENT)) await drain();
        let outcome = DONE;
        try {
          if (!runJob()) outcome = SKIPPED;
        } catch (e) {
          writeText(job, e instanceof Error ? e.stack ?? e.message : String(e));
          outcome = FAILED;
        }
        Atomics.store(ctrl, STATE, outcome);
        Atomics.notify(ctrl, STATE);
        continue;
      }
      await drain(); // woken for a message (buffer freed, kernel defined)
      if (pendingUrls.size > 0 && (s === IDLE || s === DONE)
        && Atomics.compareExchange(ctrl, STATE, s, LOADING) === s) {
        for (const url of [...pendingUrls]) {
          pendingUrls.delete(url);
          await load(url);
        }
        Atomics.store(ctrl, STATE, IDLE);
        Atomics.notify(ctrl, STATE);
      }
    }
  } finally {
    Atomics.store(ctrl, STATE, DEAD);
    Atomics.notify(ctrl, STATE);
  }
}
