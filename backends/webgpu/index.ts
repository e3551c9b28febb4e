// The WebGPU backend: the Backend interface of engine/backend.ts on a Dawn device (float32
// only, WGSL has no f64). Allocation goes through a size-class pool (pool.ts), work through a
// queue that batches dispatches into few submits (queue.ts), and every kernel is generated
// from a template and cached by its source. Only read() waits for the GPU. Each kernel has a
// plain form (kernels/); a TuningProfile that says 'tuned' (tuning.ts) runs the products and the
// silent ELBO from tuned/ instead.
import type { AdamWStep, Backend, BinaryOp, Conv2dGeometry, RandomKind, ReduceOp, SilentElboGradients, SilentElboOperands, Storage, UnaryOp, View } from '../../engine/backend.js';
import type { DType, FloatArray } from '../../engine/dtype.js';
import { isContiguousView } from '../../engine/tensor.js';
import type { GpuContext } from './adapter.js';
import { adamw } from './kernels/adamw.js';
import { conv2dBackwardFilter, conv2dBackwardInput, conv2dForward } from './kernels/conv.js';
import { binaryWgsl, elementwise, unaryWgsl, type GpuView } from './kernels/elementwise.js';
import { matmul } from './kernels/matmul.js';
import { random } from './kernels/random.js';
import { reduce } from './kernels/reduce.js';
import { savedShape, silentElboBackward, silentElboForward, type Targets } from './kernels/silent-elbo.js';
import { BufferPool, type PoolStats } from './pool.js';
import { Queue, type Dispatch } from './queue.js';
import { replayTimes, type KernelTime } from './replay.js';
import { TunedKernels } from './tuned/index.js';
import { adapterTraits, defaultTuning, describeTuning, frozenTuning, tuningFromEnvironment, type TuningProfile } from './tuning.js';

export class WebGpuStorage implements Storage {
  readonly dtype: DType = 'float32';
  constructor(readonly buffer: GPUBuffer, readonly length: number, readonly owner: WebGpuBackend) {}
}

export interface WebGpuStats extends PoolStats {
  dispatches: number;
  submits: number;
  pipelines: number;
  /** Winograd input transforms kept for a filter gradient (tuned/winograd.ts). */
  keptTransforms: number;
}

/** The device with its pool and queue, shared by every backend made on it. */
interface SharedDevice { context: GpuContext; pool: BufferPool; queue: Queue }

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly context: GpuContext;
  private readonly pool: BufferPool;
  private readonly queue: Queue;
  /** The tuned variants when the profile asks for them; null: every kernel is the plain one. */
  private readonly tuned: TunedKernels | null;

  constructor(device: SharedDevice, readonly tuning: TuningProfile) {
    this.context = device.context;
    this.pool = device.pool;
    this.queue = device.queue;
    this.tuned = tuning.kernels === 'tuned' ? new TunedKernels(tuning, this.pool) : null;
  }

  /**
   * A storage's buffer. A storage of another backend is refused, even on the same device: a
   * backend must see every free of its buffers, or a kept Winograd transform could outlive them.
   */
  private bufferOf(storage: Storage): GPUBuffer {
    if (!(storage instanceof WebGpuStorage) || storage.owner !== this) throw new Error('webgpu backend: storage belongs to another backend');
    return storage.buffer;
  }

  private gpuView(v: View): GpuView {
    return { buffer: this.bufferOf(v.storage), shape: v.shape, strides: v.strides, offset: v.offset };
  }

  describe(): string {
    return `webgpu (${this.context.kind === 'browser' ? 'the browser\'s' : 'Dawn'}) on ${this.context.info}; ${describeTuning(this.tuning)}`;
  }

  supports(dtype: DType): boolean {
    return dtype === 'float32';
  }

  /** Per-kernel times of the work `run` records (replay.ts; bench/webgpu-profile.js). */
  profile(run: () => Promise<void>, reps = 4): Promise<KernelTime[]> {
    return replayTimes(this.queue, this.pool, run, reps);
  }

  /** Live GPU buffers and bytes (flat after warm-up when the pool reuses), dispatch counts. */
  stats(): WebGpuStats {
    return { ...this.pool.snapshot(), ...this.queue.counts, keptTransforms: this.tuned?.keptTransforms ?? 0 };
  }

  /** Submit recorded work now (a benchmark's end of iteration). */
  flush(): void {
    this.queue.flush();
  }

  alloc(dtype: DType, length: number): Storage {
    if (dtype !== 'float32') throw new Error(`webgpu backend: ${dtype} is not supported (WGSL computes in float32)`);
    return new WebGpuStorage(this.pool.take('storage', length * 4), length, this);
  }

  free(storage: Storage): void {
    const buffer = this.bufferOf(storage);
    this.tuned?.forget(buffer);
    this.pool.give('storage', buffer);
  }

  upload(data: FloatArray): Storage {
    const storage = this.alloc('float32', data.length);
    this.queue.upload(this.bufferOf(storage), data instanceof Float32Array ? data : Float32Array.from(data));
    return storage;
  }

  async read(view: View): Promise<FloatArray> {
    const n = view.shape.reduce((a, d) => a * d, 1);
    if (n === 0) return new Float32Array(0);
    if (isContiguousView(view)) return this.queue.read(this.bufferOf(view.storage), view.offset * 4, n * 4);
    const packed = this.alloc('float32', n);
    try {
      this.unary('copy', view, { storage: packed, shape: view.shape, strides: denseStrides(view.shape), offset: 0 }, 0);
      return await this.queue.read(this.bufferOf(packed), 0, n * 4);
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
      const target = this.gpuView(out);
      const sources = inputs.map((v) => {
        const g = this.gpuView(v);
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
    this.run(() => reduce(op, this.gpuView(x), axes, this.bufferOf(out)));
  }

  // The products and the silent ELBO: the tuned variants where the profile asks, else the plain kernels.

  matmul(a: View, transA: boolean, b: View, transB: boolean, out: Storage): void {
    const [av, bv, o] = [this.gpuView(a), this.gpuView(b), this.bufferOf(out)];
    this.run((scratch) => this.tuned ? this.tuned.matmul(av, transA, bv, transB, o, scratch) : matmul(av, transA, bv, transB, o));
  }

  conv2d(x: View, w: View, geometry: Conv2dGeometry, out: Storage): void {
    const [xv, wv, o] = [this.gpuView(x), this.gpuView(w), this.bufferOf(out)];
    this.run((scratch) => this.tuned ? this.tuned.conv2d(xv, wv, geometry, o, scratch) : conv2dForward(xv, wv, geometry, o));
  }

  conv2dBackwardInput(dy: View, w: View, geometry: Conv2dGeometry, dx: Storage): void {
    const [dyv, wv, o] = [this.gpuView(dy), this.gpuView(w), this.bufferOf(dx)];
    this.run((scratch) => this.tuned ? this.tuned.conv2dBackwardInput(dyv, wv, geometry, o, scratch) : conv2dBackwardInput(dyv, wv, geometry, o));
  }

  conv2dBackwardFilter(x: View, dy: View, geometry: Conv2dGeometry, dw: Storage): void {
    const [xv, dyv, o] = [this.gpuView(x), this.gpuView(dy), this.bufferOf(dw)];
    this.run((scratch, adopt) => this.tuned ? this.tuned.conv2dBackwardFilter(xv, dyv, geometry, o, scratch, adopt) : conv2dBackwardFilter(xv, dyv, geometry, o));
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, step: AdamWStep): void {
    // The one in-place kernel: whatever was computed from the parameter's old values must go.
    this.tuned?.forget(this.bufferOf(param));
    this.run(() => adamw(this.bufferOf(param), this.bufferOf(grad), this.bufferOf(m), this.bufferOf(v), param.length, step));
  }

  /** The plain forward saves the per-pixel partials, [terms, B, k]; the tuned one less or nothing. */
  silentElboSavedShape(o: SilentElboOperands): readonly number[] | null {
    return this.tuned ? this.tuned.silentElboSavedShape(o) : savedShape(o);
  }

  silentElbo(o: SilentElboOperands, out: Storage, saved: Storage | null): void {
    const buffer = (v: View): GPUBuffer => this.bufferOf(v.storage);
    const [target, save] = [this.bufferOf(out), saved && this.bufferOf(saved)];
    this.run((scratch) => this.tuned ? this.tuned.silentElbo(o, buffer, target, save, scratch) : silentElboForward(o, buffer, target, save, scratch));
  }

  silentElboBackward(o: SilentElboOperands, saved: Storage | null, gradOut: View, grads: SilentElboGradients): void {
    const targets: Targets = {};
    for (const key of Object.keys(grads) as (keyof SilentElboGradients)[]) {
      const s = grads[key];
      if (s) targets[key] = this.bufferOf(s);
    }
    const buffer = (v: View): GPUBuffer => this.bufferOf(v.storage);
    const g = { buffer: buffer(gradOut), offset: gradOut.offset }, partials = saved && this.bufferOf(saved);
    const tuned = this.tuned;
    if (tuned) this.run(() => tuned.silentElboBackward(o, partials, g, buffer, targets));
    else if (partials) this.run(() => silentElboBackward(o, partials, g, buffer, targets));
    else throw new Error('webgpu backend: the plain silent-ELBO backward reads the partials its forward saved');
  }

  random(kind: RandomKind, seed: number, offset: number, out: Storage): void {
    this.run(() => random(kind, seed, offset, this.bufferOf(out), out.length));
  }
}

function denseStrides(shape: readonly number[]): number[] {
  const strides: number[] = [];
  for (let i = shape.length - 1, s = 1; i >= 0; i--) { strides[i] = s; s *= shape[i]!; }
  return strides;
}

let device: Promise<SharedDevice | null> | null = null;
let unavailable: string | null = null;
let processBackend: Promise<WebGpuBackend | null> | null = null;

function sharedDevice(): Promise<SharedDevice | null> {
  // Dawn (device.ts) is loaded only here, so a web page can use this backend without it.
  device ??= import('./device.js').then((dawn) => dawn.gpuContext()).then((context) => {
    if ('reason' in context) {
      unavailable = context.reason;
      return null;
    }
    return onContext(context);
  });
  return device;
}

function onContext(context: GpuContext): SharedDevice {
  const pool = new BufferPool(context.device);
  return { context, pool, queue: new Queue(context, pool) };
}

/** A backend on a device opened elsewhere (a web page's navigator.gpu: browser.ts), with the adapter's default tuning. */
export function webGpuBackendOn(context: GpuContext): WebGpuBackend {
  return new WebGpuBackend(onContext(context), frozenTuning(defaultTuning(adapterTraits(context))));
}

/**
 * The process's WebGPU backend, its kernels chosen from the adapter and the SILENTGRAD_*
 * variables (tuning.ts); given `tuning`, a further backend with those kernels on the same device
 * (tests and benchmarks comparing variants). Every backend shares the process's one device, pool
 * and queue. Null when no adapter can be created: webGpuUnavailableReason() then says why.
 */
export function createWebGpuBackend(options: { tuning?: TuningProfile } = {}): Promise<WebGpuBackend | null> {
  const { tuning } = options;
  if (tuning) return sharedDevice().then((d) => d && new WebGpuBackend(d, frozenTuning(tuning)));
  processBackend ??= sharedDevice().then((d) => d && new WebGpuBackend(d, tuningFromEnvironment(adapterTraits(d.context))));
  return processBackend;
}

export function webGpuUnavailableReason(): string | null {
  return unavailable;
}
