// Per-kernel times of recorded work (WebGpuBackend.profile, bench/webgpu-profile.js): the work
// runs once as usual, then each of its dispatches is replayed alone `reps` times, the device
// idle before and after, and timed. A replay runs on copies of its dispatch's buffers: by then
// those may belong to live tensors (AdamW's parameters, or anything the pool has handed out
// since). A replay has no neighbour to overlap with, so the times add up to about what the work
// took, not exactly; on a software adapter each replay's wait also sleeps up to 1 ms
// (Queue.settle), so a kernel's figure may read up to 1/reps ms high. A kernel repeated alone
// can also gain what the call does not: a change that cut the silent ELBO's moment pass
// 15.3 -> 12.1 ms here left the whole call unchanged (docs/performance-log.md, "Silent-ELBO
// backward: an 8-wide shared side"), so time whole calls before keeping one.
import type { BufferPool } from './pool.js';
import type { Dispatch, Queue } from './queue.js';

/** One dispatch's time in a profile: its kernel's name and grid. */
export interface KernelTime { kernel: string; groups: string; ms: number }

export async function replayTimes(queue: Queue, pool: BufferPool, run: () => Promise<void>, reps: number): Promise<KernelTime[]> {
  await queue.idle();
  const captured: Dispatch[] = [];
  queue.capture = captured;
  try {
    await run();
  } finally {
    queue.capture = null;
  }
  const times: KernelTime[] = [];
  for (const d of captured) {
    // One copy per distinct buffer; the pool may offer one of the dispatch's own buffers
    // (returned since), which is set aside until the replay is done.
    const copyOf = new Map<GPUBuffer, GPUBuffer>(), setAside: GPUBuffer[] = [];
    for (const buffer of d.buffers) {
      if (copyOf.has(buffer)) continue;
      let copy = pool.take('storage', buffer.size);
      while (d.buffers.includes(copy)) {
        setAside.push(copy);
        copy = pool.take('storage', buffer.size);
      }
      queue.copy(buffer, 0, copy, 0, buffer.size);
      copyOf.set(buffer, copy);
    }
    await queue.idle();
    const replay = { ...d, buffers: d.buffers.map((buffer) => copyOf.get(buffer)!) };
    const start = performance.now();
    for (let r = 0; r < reps; r++) queue.dispatch(replay);
    await queue.idle();
    times.push({ kernel: d.label ?? /^\/\/ (.*)$/m.exec(d.source)?.[1] ?? 'unnamed', groups: JSON.stringify(d.groups), ms: (performance.now() - start) / reps });
    for (const buffer of [...copyOf.values(), ...setAside]) pool.give('storage', buffer);
  }
  return times;
}
