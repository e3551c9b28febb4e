// The WebGPU backend: the Backend interface of engine/backend.ts on a Dawn device (float32
// only, WGSL has no f64). Allocation goes through a size-class pool (pool.ts), work through a
// queue that batches dispatches into few submits (queue.ts), and every kernel is generated
// from a template in kernels/ and cached by its source. Only read() waits for the GPU.
import type { AdamWStep, Backend, BinaryOp, Conv2dGeometry, RandomKind, ReduceOp, SilentElboGradients, SilentElboOperands, Storage, UnaryOp, View } from '../../engine/backend.js';
import type { DType, FloatArray } from '../../engine/dtype.js';
import { isContiguousView } from '../../engine/tensor.js';
import { gpuContext, type GpuContext } from './device.js';
import { adamw } from './kernels/adamw.js';
import { conv2dBackwardFilter, conv2dBackwardInput, conv2dForward } from './kernels/conv.js';
import { gemmDevice } from './kernels/gemm.js';
import { binaryWgsl, elementwise, unaryWgsl, type GpuView } from './kernels/elementwise.js';
import { matmul } from './kernels/matmul.js';
import { random } from './kernels/random.js';
import { KeptInputTransforms, winogradDevice, type WinogradPass } from './kernels/winograd.js';
import { reduce } from './kernels/reduce.js';
import { backwardTuning, silentElboBackward, silentElboForwardSaving } from './kernels/silent-elbo-backward.js';
import { momentsUsed } from './kernels/silent-elbo-common.js';
import { operandBuffers, silentElboForward } from './kernels/silent-elbo-forward.js';
import { BufferPool, type PoolStats } from './pool.js';
import { Queue, type Dispatch } from './queue.js';

export class WebGpuStorage implements Storage {
  readonly dtype: DType = 'float32';
  constructor(readonly buffer: GPUBuffer, readonly length: number) {}
}

function bufferOf(storage: Storage): GPUBuffer {
  if (!(storage instanceof WebGpuStorage)) throw new Error('webgpu backend: storage belongs to another backend');
  return storage.buffer;
}

const gpuView = (v: View): GpuView => ({ buffer: bufferOf(v.storage), shape: v.shape, strides: v.strides, offset: v.offset });

export interface WebGpuStats extends PoolStats {
  dispatches: number;
  submits: number;
  pipelines: number;
  /** Winograd input transforms kept for a filter gradient (kernels/winograd.ts). */
  keptTransforms: number;
}

/** One dispatch's time in a profile: its kernel's name and grid. */
export interface KernelTime { kernel: string; groups: string; ms: number }

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  private readonly pool: BufferPool;
  private readonly queue: Queue;
  private readonly keptTransforms: KeptInputTransforms;

  constructor(readonly context: GpuContext) {
    // Shared-row GEMM tilings were measured on lavapipe only (kernels/gemm.ts).
    gemmDevice.shareRows = context.subgroups8 && context.software && process.env.SILENTGRAD_WEBGPU_SHARED_ROWS !== '0';
    // Winograd F(4x4, 3x3) for 3x3 stride-1 layers (kernels/winograd.ts), pass by pass:
    // SILENTGRAD_WEBGPU_WINOGRAD=0 turns it off, or lists the passes (forward,input,filter).
    const passes = process.env.SILENTGRAD_WEBGPU_WINOGRAD;
    if (passes !== undefined) winogradDevice.passes = new Set(passes.split(',').filter((s): s is WinogradPass => s === 'forward' || s === 'input' || s === 'filter'));
    winogradDevice.maxBindingBytes = Math.min(context.device.limits.maxStorageBufferBindingSize, context.device.limits.maxBufferSize);
    this.pool = new BufferPool(context.device);
    this.queue = new Queue(context, this.pool);
    this.keptTransforms = new KeptInputTransforms((floats) => this.pool.take('storage', floats * 4), (buffer) => this.pool.give('storage', buffer));
  }

  describe(): string {
    return `webgpu (Dawn) on ${this.context.info}`;
  }

  supports(dtype: DType): boolean {
    return dtype === 'float32';
  }

  /**
   * Per-kernel times of the work `run` records (bench/webgpu-profile.js): it runs once as usual,
   * then each of its dispatches is replayed alone `reps` times, the device idle before and
   * after, and timed. A replay runs on copies of its dispatch's buffers: by then those may
   * belong to live tensors (AdamW's parameters, or anything the pool has handed out since).
   * A replay has no neighbour to overlap with, so the times add up to about what `run` took,
   * not exactly; on a software adapter each replay's wait also sleeps up to 1 ms (Queue.settle),
   * so a kernel's figure may read up to 1/reps ms high. A kernel repeated alone can also gain
   * what the call does not: a change that cut the silent ELBO's moment pass 15.3 -> 12.1 ms
   * here left the whole call unchanged (docs/performance-log.md, "Silent-ELBO backward: an
   * 8-wide shared side"), so time whole calls before keeping one.
   */
  async profile(run: () => Promise<void>, reps = 4): Promise<KernelTime[]> {
    await this.queue.idle();
    const captured: Dispatch[] = [];
    this.queue.capture = captured;
    try {
      await run();
    } finally {
      this.queue.capture = null;
    }
    const times: KernelTime[] = [];
    for (const d of captured) {
      // One copy per distinct buffer; the pool may offer one of the dispatch's own buffers
      // (returned since), which is set aside until the replay is done.
      const copyOf = new Map<GPUBuffer, GPUBuffer>(), setAside: GPUBuffer[] = [];
      for (const buffer of d.buffers) {
        if (copyOf.has(buffer)) continue;
        let copy = this.pool.take('storage', buffer.size);
        while (d.buffers.includes(copy)) {
          setAside.push(copy);
          copy = this.pool.take('storage', buffer.size);
        }
        this.queue.copy(buffer, 0, copy, 0, buffer.size);
        copyOf.set(buffer, copy);
      }
      await this.queue.idle();
      const replay = { ...d, buffers: d.buffers.map((buffer) => copyOf.get(buffer)!) };
      const start = performance.now();
      for (let r = 0; r < reps; r++) this.queue.dispatch(replay);
      await this.queue.idle();
      times.push({ kernel: d.label ?? /^\/\/ (.*)$/m.exec(d.source)?.[1] ?? 'unnamed', groups: JSON.stringify(d.groups), ms: (performance.now() - start) / reps });
      for (const buffer of [...copyOf.values(), ...setAside]) this.pool.give('storage', buffer);
    }
    return times;
  }

  /** Live GPU buffers and bytes (flat after warm-up when the pool reuses), dispatch counts. */
  stats(): WebGpuStats {
    return { ...this.pool.snapshot(), ...this.queue.counts, keptTransforms: this.keptTransforms.size };
  }

  /** Submit recorded work now (a benchmark's end of iteration). */
  flush(): void {
    this.queue.flush();
  }

  alloc(dtype: DType, length: number): Storage {
    if (dtype !== 'float32') throw new Error(`webgpu backend: ${dtype} is not supported (WGSL computes in float32)`);
    return new WebGpuStorage(this.pool.take('storage', length * 4), length);
  }

  free(storage: Storage): void {
    this.keptTransforms.drop(bufferOf(storage));
    this.pool.give('storage', bufferOf(storage));
  }

  upload(data: FloatArray): Storage {
    const storage = this.alloc('float32', data.length);
    this.queue.upload(bufferOf(storage), data instanceof Float32Array ? data : Float32Array.from(data));
    return storage;
  }

  async read(view: View): Promise<FloatArray> {
    const n = view.shape.reduce((a, d) => a * d, 1);
    if (n === 0) return new Float32Array(0);
    if (isContiguousView(view)) return this.queue.read(bufferOf(view.storage), view.offset * 4, n * 4);
    const packed = this.alloc('float32', n);
    try {
      this.unary('copy', view, { storage: packed, shape: view.shape, strides: denseStrides(view.shape), offset: 0 }, 0);
      return await this.queue.read(bufferOf(packed), 0, n * 4);
    } finally {
      this.free(packed);
    }
  }

  /**
   * Record dispatches; scratch buffers taken meanwhile, and buffers adopted as scratch, go back
   * after (queue order keeps them safe).
   */
  private run(make: (scratch: (floats: number) => GPUBuffer, adopt: (buffer: GPUBuffer) => void) => Dispatch | null | readonly Dispatch[]): void {
    const taken: GPUBuffer[] = [];
    const scratch = (floats: number): GPUBuffer => {
      const buffer = this.pool.take('storage', floats * 4);
      taken.push(buffer);
      return buffer;
    };
    const made = make(scratch, (buffer) => taken.push(buffer));
    for (const d of made === null ? [] : Array.isArray(made) ? made : [made as Dispatch]) this.queue.dispatch(d);
    for (const buffer of taken) this.pool.give('storage', buffer);
  }

  /** An elementwise dispatch; an input sharing out's buffer is read from a copy (WebGPU forbids the alias). */
  private pointwise(expression: string, out: View, inputs: readonly View[], p: number): void {
    this.run((scratch) => {
      const target = gpuView(out);
      const sources = inputs.map((v) => {
        const g = gpuView(v);
        if (g.buffer !== target.buffer) return g;
        const copy = scratch(g.buffer.size / 4);
        this.queue.copy(g.buffer, 0, copy, 0, g.buffer.size);
        return { ...g, buffer: copy };
      });
      return elementwise(expression, target, sources, p);
    });
  }

  fill(out: View, value: number): void {
    this.pointwise('p', out, [], value);
  }

  unary(op: UnaryOp, x: View, out: View, p: number): void {
    this.pointwise(unaryWgsl[op], out, [x], p);
  }

  binary(op: BinaryOp, a: View, b: View, out: View): void {
    this.pointwise(binaryWgsl[op], out, [a, b], 0);
  }

  reduce(op: ReduceOp, x: View, axes: readonly number[], out: Storage): void {
    this.run(() => reduce(op, gpuView(x), axes, bufferOf(out)));
  }

  matmul(a: View, transA: boolean, b: View, transB: boolean, out: Storage): void {
    this.run((scratch) => matmul(gpuView(a), transA, gpuView(b), transB, bufferOf(out), scratch));
  }

  conv2d(x: View, w: View, geometry: Conv2dGeometry, out: Storage): void {
    this.run((scratch) => conv2dForward(gpuView(x), gpuView(w), geometry, bufferOf(out), scratch, this.keptTransforms));
  }

  conv2dBackwardInput(dy: View, w: View, geometry: Conv2dGeometry, dx: Storage): void {
    this.run((scratch) => conv2dBackwardInput(gpuView(dy), gpuView(w), geometry, bufferOf(dx), scratch));
  }

  conv2dBackwardFilter(x: View, dy: View, geometry: Conv2dGeometry, dw: Storage): void {
    this.run((scratch, adopt) => conv2dBackwardFilter(gpuView(x), gpuView(dy), geometry, bufferOf(dw), scratch, this.keptTransforms, adopt));
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, step: AdamWStep): void {
    // The one in-place kernel: a V computed from the parameter's old values must go.
    this.keptTransforms.drop(bufferOf(param));
    this.run(() => adamw(bufferOf(param), bufferOf(grad), bufferOf(m), bufferOf(v), param.length, step));
  }

  /**
   * No partials: the backward recomputes them on chip (kernels/silent-elbo-backward.ts). With
   * fuseMoments the forward saves the moment contraction, [moments, B, d], which the backward
   * scales by the output gradient; else nothing.
   */
  silentElboSavedShape(o: SilentElboOperands): readonly number[] | null {
    return backwardTuning.fuseMoments ? [momentsUsed(o.terms).length, o.mean.shape[0]!, o.mean.shape[1]!] : null;
  }

  silentElbo(o: SilentElboOperands, out: Storage, saved: Storage | null): void {
    if (saved) {
      this.run(() => silentElboForwardSaving(o, (v) => bufferOf(v.storage), bufferOf(out), bufferOf(saved)));
      return;
    }
    const inputs = operandBuffers(o, (v) => bufferOf(v.storage));
    this.run((scratch) => silentElboForward(o, inputs, bufferOf(out), scratch));
  }

  silentElboBackward(o: SilentElboOperands, saved: Storage | null, gradOut: View, grads: SilentElboGradients): void {
    const targets: Partial<Record<keyof SilentElboGradients, GPUBuffer>> = {};
    for (const key of Object.keys(grads) as (keyof SilentElboGradients)[]) {
      const s = grads[key];
      if (s) targets[key] = bufferOf(s);
    }
    this.run(() => silentElboBackward(o, { buffer: bufferOf(gradOut.storage), offset: gradOut.offset }, (v) => bufferOf(v.storage), targets, saved ? bufferOf(saved) : null));
  }

  random(kind: RandomKind, seed: number, offset: number, out: Storage): void {
    this.run(() => random(kind, seed, offset, bufferOf(out), out.length));
  }
}

function denseStrides(shape: readonly number[]): number[] {
  const strides: number[] = [];
  for (let i = shape.length - 1, s = 1; i >= 0; i--) { strides[i] = s; s *= shape[i]!; }
  return strides;
}

let backend: Promise<WebGpuBackend | null> | null = null;
let unavailable: string | null = null;

/**
 * The process's WebGPU backend (one device, shared by every caller), or null when no adapter
 * can be created; webGpuUnavailableReason() then says why.
 */
export function createWebGpuBackend(): Promise<WebGpuBackend | null> {
  backend ??= gpuContext().then((ctx) => {
    if ('reason' in ctx) {
      unavailable = ctx.reason;
      return null;
    }
    return new WebGpuBackend(ctx);
  });
  return backend;
}

export function webGpuUnavailableReason(): string | null {
  return unavailable;
}
