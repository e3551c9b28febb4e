// Recording work for the GPU. Dispatches are recorded into one compute pass and submitted
// lazily: when DISPATCHES_PER_SUBMIT have piled up, before an upload, and before a read.
// read() is the only place that waits (and idle(), for profiles). On the software drivers a
// submit and its wait cost several times what a dispatch recorded among many does
// (docs/performance-log.md, "Dispatch and submit cost"), hence the batching.
//
// Each dispatch's small parameter block (shapes, strides, offsets, scalars) goes into one
// 256-byte slot of a parameter arena, written with a single writeBuffer just before its submit;
// queue order makes it safe to reuse the arena for the next batch.
//
// Waiting: while any of its promises is pending, dawn.node polls its events from a setImmediate
// loop, a busy loop on the main thread. On a software adapter the GPU is the CPU, and that loop
// took one of this machine's 2 cores from lavapipe's shader threads for the whole wait. So on
// software adapters the waits sleep 1 ms between polls (settle), which made the training step
// much faster (docs/performance-log.md, "Waiting for lavapipe without a busy loop").
import type { GpuContext } from './adapter.js';
import type { BufferPool } from './pool.js';

const DISPATCHES_PER_SUBMIT = 128;
/** minStorageBufferOffsetAlignment is at most 256 on every adapter. */
const SLOT_BYTES = 256;
const SLOT_WORDS = SLOT_BYTES / 4;
const MAX_GROUPS_PER_DIMENSION = 65535;
/** Cached bind groups kept before the cache starts over (a step uses a few hundred). */
const MAX_BIND_GROUPS = 8192;

export interface Dispatch {
  /** WGSL: bindings 0..n-1 are `buffers` in order, binding n is the parameter block. */
  readonly source: string;
  readonly buffers: readonly GPUBuffer[];
  /** At most 64 words; f32 scalars as their bits. */
  readonly params: Uint32Array;
  /** What a profile calls the kernel; else the first `// ` line of its source names it. */
  readonly label?: string;
  /** A count (split over x and y when over 65535: shaders use linearGroup()) or a 3-D grid. */
  readonly groups: number | readonly [number, number, number];
}

/** WGSL for the linear workgroup index of a count-style dispatch. */
export const linearGroup = 'wid.x + wid.y * nwg.x';

/** A cell nobody notifies: Atomics.wait on it is a sleep that takes no CPU (made on first use: Node only). */
let napCell: Int32Array | null = null;

export class Queue {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly ids = new WeakMap<object, number>();
  private lastId = 0;
  private readonly arena: GPUBuffer;
  private readonly arenaHost = new Uint32Array(DISPATCHES_PER_SUBMIT * SLOT_WORDS);
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private recorded = 0;
  private firstError: string | null = null;
  private readonly printShaders = typeof process !== 'undefined' && process.env.SILENTGRAD_PRINT_SHADERS === '1';
  /** Dispatches and submits so far (the benchmark reports dispatches per step). */
  readonly counts = { dispatches: 0, submits: 0, pipelines: 0 };
  /** While set, every dispatch recorded is also kept here (WebGpuBackend.profile). */
  capture: Dispatch[] | null = null;

  constructor(private readonly ctx: GpuContext, private readonly pool: BufferPool) {
    const { device } = ctx;
    this.arena = device.createBuffer({ size: this.arenaHost.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: 'silentgrad parameters' });
    device.onuncapturederror = (event) => {
      const message = event.error.message;
      if (this.firstError === null) this.firstError = message;
      console.error(`silentgrad webgpu: ${message}`);
    };
  }

  private pipeline(source: string): GPUComputePipeline {
    let pipeline = this.pipelines.get(source);
    if (!pipeline) {
      if (this.printShaders) console.log(`// ---- silentgrad webgpu shader #${this.pipelines.size + 1}\n${source}`);
      const module = this.ctx.device.createShaderModule({ code: source });
      // An explicit layout (not 'auto'), so a binding a variant leaves unused still fits.
      const layout = this.ctx.device.createPipelineLayout({ bindGroupLayouts: [this.ctx.device.createBindGroupLayout({ entries: bindingsOf(source) })] });
      pipeline = this.ctx.device.createComputePipeline({ layout, compute: { module, entryPoint: 'main' } });
      this.pipelines.set(source, pipeline);
      this.counts.pipelines++;
    }
    return pipeline;
  }

  /**
   * The bind group of (pipeline, buffers, parameter slot), made once: pooled buffers live for
   * the whole process and a training step records the same dispatches in the same slots every
   * step, so groups repeat. (A dynamic offset for the slot instead measured ~2x slower per
   * dispatch on lavapipe.)
   */
  private bindGroup(pipeline: GPUComputePipeline, buffers: readonly GPUBuffer[], slot: number): GPUBindGroup {
    const key = `${this.idOf(pipeline)}:${slot}:${buffers.map((b) => this.idOf(b)).join(',')}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.bindGroups.clear();
      const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
      entries.push({ binding: buffers.length, resource: { buffer: this.arena, offset: slot * SLOT_BYTES, size: SLOT_BYTES } });
      group = this.ctx.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      this.bindGroups.set(key, group);
    }
    return group;
  }

  private idOf(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) this.ids.set(o, (id = ++this.lastId));
    return id;
  }

  private computePass(): GPUComputePassEncoder {
    this.encoder ??= this.ctx.device.createCommandEncoder();
    this.pass ??= this.encoder.beginComputePass();
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    this.pass?.end();
    this.pass = null;
    this.encoder ??= this.ctx.device.createCommandEncoder();
    return this.encoder;
  }

  dispatch(d: Dispatch): void {
    const grid = typeof d.groups === 'number' ? splitGroups(d.groups) : d.groups;
    if (grid[0] === 0 || grid[1] === 0 || grid[2] === 0) return;
    if (d.params.length > SLOT_WORDS) throw new Error(`webgpu: ${d.params.length} parameter words exceed the ${SLOT_WORDS}-word slot`);
    if (this.recorded === DISPATCHES_PER_SUBMIT) this.flush();
    const pipeline = this.pipeline(d.source);
    const slot = this.recorded++;
    this.arenaHost.set(d.params, slot * SLOT_WORDS);
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this.bindGroup(pipeline, d.buffers, slot));
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    this.counts.dispatches++;
    this.capture?.push(d);
  }

  /** Buffer-to-buffer copy, in order with the recorded dispatches. */
  copy(source: GPUBuffer, sourceOffset: number, target: GPUBuffer, targetOffset: number, bytes: number): void {
    if (bytes > 0) this.endPass().copyBufferToBuffer(source, sourceOffset, target, targetOffset, bytes);
  }

  /** Host data into a buffer. Flushes first: writeBuffer runs before any unsubmitted work. */
  upload(target: GPUBuffer, data: Float32Array): void {
    if (data.length === 0) return;
    this.flush();
    this.ctx.device.queue.writeBuffer(target, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    const commands = this.endPass().finish();
    if (this.recorded > 0) this.ctx.device.queue.writeBuffer(this.arena, 0, this.arenaHost.buffer, 0, this.recorded * SLOT_BYTES);
    this.ctx.device.queue.submit([commands]);
    this.encoder = null;
    this.recorded = 0;
    this.counts.submits++;
  }

  /** Submit what is recorded and wait until the device has run it (profiles only). */
  async idle(): Promise<void> {
    this.flush();
    await this.settle(this.ctx.device.queue.onSubmittedWorkDone());
    this.throwIfFailed();
  }

  /** `bytes` from `source` at `offset`, after all recorded work: the one place that waits. */
  async read(source: GPUBuffer, offset: number, bytes: number): Promise<Float32Array> {
    const out = new Float32Array(bytes / 4);
    if (bytes === 0) return out;
    const staging = this.pool.take('readback', bytes);
    this.copy(source, offset, staging, 0, bytes);
    this.flush();
    try {
      await this.settle(staging.mapAsync(GPUMapMode.READ, 0, bytes));
      out.set(new Float32Array(staging.getMappedRange(0, bytes)));
      staging.unmap();
    } finally {
      this.pool.give('readback', staging);
    }
    this.throwIfFailed();
    return out;
  }

  /**
   * `pending` once it settles. On a software adapter, without spinning (see the header): each
   * turn sleeps 1 ms, then lets one event-loop turn run dawn.node's poll; a read costs at most
   * ~1 ms more. On a real GPU the device computes elsewhere, so dawn.node's own loop stays; a
   * browser has no such loop.
   */
  private async settle<T>(pending: Promise<T>): Promise<T> {
    if (!this.ctx.software || this.ctx.kind === 'browser') return pending;
    napCell ??= new Int32Array(new SharedArrayBuffer(4));
    let settled = false;
    const watch = pending.then(() => { settled = true; }, () => { settled = true; });
    while (!settled) {
      Atomics.wait(napCell, 0, 0, 1);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await watch;
    return pending;
  }

  /** Validation errors arrive asynchronously; surface the first one at the next read. */
  throwIfFailed(): void {
    if (this.firstError !== null) throw new Error(`webgpu: ${this.firstError}`);
  }
}

/** The storage bindings a generated shader declares (kernels/wgsl.ts writes them in order). */
function bindingsOf(source: string): GPUBindGroupLayoutEntry[] {
  return [...source.matchAll(/@binding\((\d+)\) var<storage, (read_write|read)>/g)].map((m): GPUBindGroupLayoutEntry => ({
    binding: Number(m[1]),
    visibility: GPUShaderStage.COMPUTE,
    buffer: { type: m[2] === 'read' ? 'read-only-storage' : 'storage' },
  }));
}

function splitGroups(count: number): [number, number, number] {
  if (count <= MAX_GROUPS_PER_DIMENSION) return [count, 1, 1];
  return [MAX_GROUPS_PER_DIMENSION, Math.ceil(count / MAX_GROUPS_PER_DIMENSION), 1];
}
