// GPU buffers are created once and reused: a freed buffer goes back to a list for its size
// class and the next allocation of that class takes it (last freed, first reused, so a
// training step reuses exactly last step's buffers). Size classes keep 3 bits below the
// leading one (waste under 12.5%), so slightly different lengths still share buffers.
// Reuse needs no fence: every dispatch, copy and upload reaches the queue in program order
// (uploads flush recorded work first, see queue.ts), so a new owner's writes come after the old
// owner's reads.

export type BufferKind = 'storage' | 'readback';

/** Bytes of the size class that holds `bytes` (at least 16, a multiple of 4). */
export function sizeClass(bytes: number): number {
  const n = Math.max(16, Math.ceil(bytes / 4) * 4);
  const top = 2 ** Math.floor(Math.log2(n));
  const step = Math.max(4, top / 8);
  return Math.ceil(n / step) * step;
}

export interface PoolStats {
  /** GPU buffers that exist (in use or waiting in the pool). */
  liveBuffers: number;
  liveBytes: number;
  /** Of those, the ones in use right now. */
  inUseBuffers: number;
  inUseBytes: number;
  /** Buffers ever created: flat after warm-up when reuse works. */
  created: number;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly stats: PoolStats = { liveBuffers: 0, liveBytes: 0, inUseBuffers: 0, inUseBytes: 0, created: 0 };

  constructor(private readonly device: GPUDevice) {}

  take(kind: BufferKind, bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(`${kind}:${size}`);
    let buffer = list?.pop();
    if (!buffer) {
      const usage = kind === 'storage'
        ? GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST
        : GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
      buffer = this.device.createBuffer({ size, usage, label: `silentgrad ${kind} ${size}` });
      this.stats.liveBuffers++;
      this.stats.liveBytes += size;
      this.stats.created++;
    }
    this.stats.inUseBuffers++;
    this.stats.inUseBytes += size;
    return buffer;
  }

  give(kind: BufferKind, buffer: GPUBuffer): void {
    const key = `${kind}:${buffer.size}`;
    const list = this.free.get(key) ?? [];
    list.push(buffer);
    this.free.set(key, list);
    this.stats.inUseBuffers--;
    this.stats.inUseBytes -= buffer.size;
  }

  snapshot(): PoolStats {
    return { ...this.stats };
  }
}
