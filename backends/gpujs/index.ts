// The gpu.js fallback backend: every primitive is a kernel generated from the templates in
// templates.ts, random.ts and silent-elbo.ts and compiled by gpu.js for whatever mode it
// picks. In Node without headless-gl that mode is 'webasm' (WebAssembly + SIMD on the host
// CPU). Storage is therefore a Float32Array: webasm has no device memory, and its
// `pipeline: true` returns "a plain typed array (a fresh copy per call)" (gpu.js README,
// WebAssembly), so there is nothing to keep resident between kernels; each kernel's output
// array simply becomes the storage's contents. Writes into strided views are copy-on-write
// kernels over the whole storage (templates.writeView), since a gpu.js kernel always
// produces a fresh output and cannot scatter into an existing buffer.
import type { AdamWStep, Backend, BinaryOp, Conv2dGeometry, RandomKind, ReduceOp, SilentElboGradients, SilentElboOperands, Storage, UnaryOp, View } from '../../engine/backend.js';
import type { DType, FloatArray } from '../../engine/dtype.js';
import { coalesce } from '../strides.js';
import { philoxFunctions, randomArguments, randomTemplate } from './random.js';
import { GpuJsRuntime, hostModes, type KernelArgument } from './runtime.js';
import * as elbo from './silent-elbo.js';
import * as T from './templates.js';

export class GpuJsStorage implements Storage {
  readonly dtype = 'float32';
  constructor(public data: Float32Array) {}
  get length(): number { return this.data.length; }
}

function dataOf(storage: Storage): Float32Array {
  if (!(storage instanceof GpuJsStorage)) throw new Error('gpujs backend: storage belongs to another backend');
  return storage.data;
}

/** Replace a storage's contents with a kernel's output (same length). */
function store(storage: Storage, result: Float32Array): void {
  if (!(storage instanceof GpuJsStorage)) throw new Error('gpujs backend: storage belongs to another backend');
  if (result.length !== storage.length) throw new Error(`gpujs backend: kernel wrote ${result.length} values into a storage of ${storage.length}`);
  storage.data = result;
}

const size = (shape: readonly number[]): number => shape.reduce((n, d) => n * d, 1);

/** `coalesce` (../strides.ts) over views: the merged dims and each view's layout on them. */
function coalesceViews(shape: readonly number[], views: readonly View[]): [number[], T.Strided[]] {
  const { dims, strides } = coalesce(shape, views.map((v) => v.strides));
  return [dims, views.map((v, k) => ({ strides: strides[k]!, offset: v.offset }))];
}

const EMPTY = new Float32Array(1);

export class GpuJsBackend implements Backend {
  readonly name = 'gpujs';
  readonly runtime: GpuJsRuntime;

  constructor(mode?: string) {
    this.runtime = new GpuJsRuntime(mode, philoxFunctions);
  }

  /** gpu.js's mode ('webasm', 'headlessgl', 'cpu', ...). */
  get mode(): string { return this.runtime.mode; }

  /** True when gpu.js computes on the host CPU (webasm, cpu) instead of a GPU. */
  get onHost(): boolean { return hostModes.includes(this.mode); }

  describe(): string {
    const where = this.onHost ? 'computing on the host CPU' : 'computing on the GPU';
    return `gpujs: gpu.js kernels in '${this.mode}' mode (${where})`;
  }

  supports(dtype: DType): boolean { return dtype === 'float32'; }

  alloc(dtype: DType, length: number): Storage {
    if (dtype !== 'float32') throw new Error('gpujs backend: float32 only (gpu.js computes in single precision)');
    return new GpuJsStorage(new Float32Array(length));
  }

  free(): void {
    // Nothing to pool: every kernel returns a fresh array, so a freed one would never be reused.
  }

  upload(data: FloatArray): Storage { return new GpuJsStorage(Float32Array.from(data)); }

  readSync(view: View): Float32Array {
    const [dims, [x]] = coalesceViews(view.shape, [view]);
    const t = T.elementwise('a', dims, x!, null);
    return this.runtime.run(t.source, t.constants, size(view.shape), [dataOf(view.storage), EMPTY, 0]);
  }

  read(view: View): Promise<FloatArray> { return Promise.resolve(this.readSync(view)); }

  /** Put `values` (contiguous in out's shape) into out's view: whole storage or copy-on-write. */
  private write(out: View, values: Float32Array): void {
    const storage = out.storage;
    const old = dataOf(storage);
    const n = size(out.shape);
    const [dims, [o]] = coalesceViews(out.shape, [out]);
    if (out.offset === 0 && n === old.length && (dims.length === 0 || (dims.length === 1 && o!.strides[0] === 1))) return store(storage, values);
    if (n === 0) return;
    const t = T.writeView(dims, o!.strides, o!.offset);
    store(storage, this.runtime.run(t.source, t.constants, old.length, [values, old]));
  }

  fill(out: View, value: number): void {
    this.write(out, this.runtime.run(T.fill.source, T.fill.constants, size(out.shape), [value]));
  }

  unary(op: UnaryOp, x: View, out: View, p: number): void {
    const [dims, [a]] = coalesceViews(x.shape, [x]);
    const t = T.elementwise(T.unaryExpressions[op], dims, a!, null);
    this.write(out, this.runtime.run(t.source, t.constants, size(x.shape), [dataOf(x.storage), EMPTY, p]));
  }

  binary(op: BinaryOp, a: View, b: View, out: View): void {
    const [dims, [x, y]] = coalesceViews(out.shape, [a, b]);
    const t = T.elementwise(T.binaryExpressions[op], dims, x!, y!);
    this.write(out, this.runtime.run(t.source, t.constants, size(out.shape), [dataOf(a.storage), dataOf(b.storage), 0]));
  }

  reduce(op: ReduceOp, x: View, axes: readonly number[], out: Storage): void {
    const part = (reduced: boolean): [number[], number[]] => {
      const idx = x.shape.map((_, i) => i).filter((i) => axes.includes(i) === reduced);
      return [idx.map((i) => x.shape[i]!), idx.map((i) => x.strides[i]!)];
    };
    const [kept, keptStrides] = part(false), [reduced, reducedStrides] = part(true);
    const t = T.reduce(op, kept, keptStrides, reduced, reducedStrides, x.offset);
    store(out, this.runtime.run(t.source, t.constants, out.length, [dataOf(x.storage), op === 'sum' ? 0 : -Infinity]));
  }

  matmul(a: View, transA: boolean, b: View, transB: boolean, out: Storage): void {
    const [M, K, N] = [a.shape[0]!, a.shape[1]!, b.shape[1]!];
    const t = T.matmul(M, N, K, transA, transB, a.offset, b.offset);
    store(out, this.runtime.run(t.source, t.constants, out.length, [dataOf(a.storage), dataOf(b.storage)]));
  }

  conv2d(x: View, w: View, g: Conv2dGeometry, out: Storage): void {
    const t = T.conv2dForward(g, x.offset, w.offset);
    store(out, this.runtime.run(t.source, t.constants, out.length, [dataOf(x.storage), dataOf(w.storage)]));
  }

  conv2dBackwardInput(dy: View, w: View, g: Conv2dGeometry, dx: Storage): void {
    const t = T.conv2dBackwardInput(g, dy.offset, w.offset);
    store(dx, this.runtime.run(t.source, t.constants, dx.length, [dataOf(dy.storage), dataOf(w.storage)]));
  }

  conv2dBackwardFilter(x: View, dy: View, g: Conv2dGeometry, dw: Storage): void {
    const t = T.conv2dBackwardFilter(g, x.offset, dy.offset);
    store(dw, this.runtime.run(t.source, t.constants, dw.length, [dataOf(x.storage), dataOf(dy.storage)]));
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, h: AdamWStep): void {
    const n = param.length, g = dataOf(grad);
    store(m, this.runtime.run(T.adamw.m.source, {}, n, [dataOf(m), g, h.beta1]));
    store(v, this.runtime.run(T.adamw.v.source, {}, n, [dataOf(v), g, h.beta2]));
    const stepSize = h.lr / (1 - h.beta1 ** h.step), rootCorrection = Math.sqrt(1 - h.beta2 ** h.step);
    store(param, this.runtime.run(T.adamw.param.source, {}, n, [dataOf(param), dataOf(m), dataOf(v), 1 - h.lr * h.weightDecay, stepSize, rootCorrection, h.eps]));
  }

  /** The nine operand arrays in the order every silent-ELBO template declares them. */
  private elboArguments(o: SilentElboOperands): KernelArgument[] {
    const arr = (v: View | null): Float32Array => (v ? dataOf(v.storage) : EMPTY);
    return [o.mean, o.c2, o.c3, o.k4, o.wMu, o.wA, o.bMu, o.bA, o.x].map(arr);
  }

  silentElbo(o: SilentElboOperands, out: Storage, partials: Storage | null): void {
    const B = o.mean.shape[0]!, plane = B * o.x.shape[1]!;
    const args = this.elboArguments(o);
    const c = elbo.contractions(o);
    const sums = this.runtime.run(c.source, c.constants, o.terms.length * plane, args);
    const r = elbo.rowValues(o);
    store(out, this.runtime.run(r.source, r.constants, B, [sums, ...args, o.sigma2]));
    if (!partials) return;
    const p = elbo.partials(o);
    store(partials, this.runtime.run(p.source, p.constants, o.terms.length * plane, [sums, ...args, o.sigma2]));
  }

  silentElboBackward(o: SilentElboOperands, partials: Storage, gradOut: View, grads: SilentElboGradients): void {
    const args = [dataOf(partials), dataOf(gradOut.storage), ...this.elboArguments(o)];
    const run = (target: Storage | null, t: T.Template): void => {
      if (target) store(target, this.runtime.run(t.source, t.constants, target.length, args));
    };
    for (const moment of ['mean', 'c2', 'c3', 'k4'] as const) run(grads[moment], elbo.momentGradient(o, moment, gradOut.offset));
    run(grads.wMu, elbo.weightGradient(o, 'wMu', gradOut.offset));
    run(grads.wA, elbo.weightGradient(o, 'wA', gradOut.offset));
    run(grads.bMu, elbo.planeGradient(o, 'Ubar', 'bias', gradOut.offset));
    run(grads.bA, elbo.planeGradient(o, 'Abar', 'bias', gradOut.offset));
    run(grads.x, elbo.planeGradient(o, 'Ubar', 'x', gradOut.offset));
  }

  random(kind: RandomKind, seed: number, offset: number, out: Storage): void {
    const t = randomTemplate(kind);
    store(out, this.runtime.run(t.source, t.constants, out.length, randomArguments(seed, offset)));
  }
}

/** A gpu.js backend in the mode gpu.js picks here (or the one named). */
export function createGpuJsBackend(mode?: string): GpuJsBackend {
  return new GpuJsBackend(mode);
}
