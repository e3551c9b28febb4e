// The reference backend: TypeScript over typed arrays. Elementwise kernels are generated
// strided loops (elementwise.ts), big ones split over the thread pool like AdamW (adamw.ts);
// matmul and convolutions are blocked GEMMs split over both cores (gemm.ts, conv.ts with
// winograd.ts for 3x3 layers, parallel.ts). Freed storage is pooled by size so a training step
// reuses last step's arrays instead of allocating (and zeroing) new ones.
import type { AdamWStep, Backend, BinaryOp, Conv2dGeometry, RandomKind, ReduceOp, SilentElboGradients, SilentElboOperands, Storage, UnaryOp, View } from '../../engine/backend.js';
import { arrayFor, type DType, type FloatArray } from '../../engine/dtype.js';
import { contiguousStrides } from '../../engine/tensor.js';
import { coalesce } from '../strides.js';
import { adamw } from './adamw.js';
import { getCpuKernels } from './gemm.js';
import { conv2dBackwardFilter, conv2dBackwardInput, conv2dForward } from './conv.js';
import { heapAddress, heapArray, heapRelease } from './heap.js';
import { allocShared, threadCount } from './parallel.js';
import { runGemmJobs } from './gemm-jobs.js';
import { parallelGemm } from './parallel-gemm.js';
import { randomDraw } from './random.js';
import { silentElboBackward, silentElboForward } from './silent-elbo.js';
import { runAccumulate, runBinary, runUnary, type Operand } from './elementwise.js';

export class CpuStorage implements Storage {
  constructor(readonly data: FloatArray) {}
  get dtype(): DType { return this.data instanceof Float32Array ? 'float32' : 'float64'; }
  get length(): number { return this.data.length; }
}

function dataOf(storage: Storage): FloatArray {
  if (!(storage instanceof CpuStorage)) throw new Error('cpu backend: storage belongs to another backend');
  return storage.data;
}

const operand = (v: View): Operand => ({ data: dataOf(v.storage), offset: v.offset, strides: v.strides });

/** Pool of freed arrays by dtype and length, bounded so a change of shapes cannot hoard memory. */
class ArrayPool {
  private readonly free = new Map<string, FloatArray[]>();
  private pooledElements = 0;
  constructor(private readonly maxElements: number) {}

  take(dtype: DType, length: number): FloatArray | undefined {
    const list = this.free.get(`${dtype}:${length}`);
    const found = list?.pop();
    if (found) this.pooledElements -= length;
    return found;
  }

  /** Keep `data` for reuse; false if the pool is full. */
  give(data: FloatArray): boolean {
    if (this.pooledElements + data.length > this.maxElements) return false;
    const key = `${data instanceof Float32Array ? 'float32' : 'float64'}:${data.length}`;
    const list = this.free.get(key) ?? [];
    list.push(data);
    this.free.set(key, list);
    this.pooledElements += data.length;
    return true;
  }
}

/** A heap block goes back to the heap when its array leaves the pool or its storage is collected. */
function releaseToHeap(data: FloatArray): void {
  const at = heapAddress(data);
  if (at !== null) heapRelease(at, data.byteLength);
}
const collected = new FinalizationRegistry<FloatArray>(releaseToHeap);

const shapes = (g: Conv2dGeometry): { x: number[]; w: number[] } => ({
  x: [g.batch, g.inChannels, g.height, g.width],
  w: [g.outChannels, g.inChannels, g.kernelH, g.kernelW],
});

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  private readonly pool = new ArrayPool(64 * 1024 * 1024);

  describe(): string {
    return `cpu: TypeScript kernels over typed arrays, float32 GEMM in ${getCpuKernels() === 'wasm' ? 'WebAssembly SIMD' : 'TypeScript'}, ${threadCount()} thread(s)`;
  }

  supports(): boolean {
    return true;
  }

  alloc(dtype: DType, length: number): Storage {
    const data = this.pool.take(dtype, length) ?? heapArray(dtype, length) ?? allocShared(dtype, length);
    const storage = new CpuStorage(data);
    // A storage dropped without free() gives a heap block back when collected (its array is
    // reached only through it: reads copy, kernels hold arrays only while they run).
    if (heapAddress(data) !== null) collected.register(storage, data, storage);
    return storage;
  }

  free(storage: Storage): void {
    const data = dataOf(storage);
    collected.unregister(storage);
    if (!this.pool.give(data)) releaseToHeap(data);
  }

  upload(data: FloatArray): Storage {
    const storage = this.alloc(data instanceof Float32Array ? 'float32' : 'float64', data.length);
    dataOf(storage).set(data);
    return storage;
  }

  readSync(view: View): FloatArray {
    const length = view.shape.reduce((n, d) => n * d, 1);
    // A contiguous view is one native copy; the strided loop is several times slower, and the
    // fused ops' finiteness checks read every operand each call.
    const { dims, strides } = coalesce(view.shape, [view.strides]);
    if (dims.length <= 1 && (dims.length === 0 || strides[0]![0] === 1))
      return dataOf(view.storage).slice(view.offset, view.offset + length);
    const out = arrayFor(view.storage.dtype, length);
    runUnary('copy', view.shape, { data: out, offset: 0, strides: contiguousStrides(view.shape) }, operand(view), 0);
    return out;
  }

  read(view: View): Promise<FloatArray> {
    return Promise.resolve(this.readSync(view));
  }

  fill(out: View, value: number): void {
    const data = dataOf(out.storage);
    if (out.offset === 0 && out.shape.reduce((n, d) => n * d, 1) === data.length) data.fill(value);
    // A strided region: shift a broadcast zero by `value`.
    else runUnary('shift', out.shape, operand(out), { data: new Float64Array(1), offset: 0, strides: out.shape.map(() => 0) }, value);
  }

  unary(op: UnaryOp, x: View, out: View, p: number): void {
    runUnary(op, x.shape, operand(out), operand(x), p);
  }

  binary(op: BinaryOp, a: View, b: View, out: View): void {
    runBinary(op, out.shape, operand(out), operand(a), operand(b));
  }

  reduce(op: ReduceOp, x: View, axes: readonly number[], out: Storage): void {
    const outShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    // Accumulate in float64 whatever the dtype, so float32 sums of many terms stay accurate.
    const accumulator = new Float64Array(out.length).fill(op === 'sum' ? 0 : -Infinity);
    const strides = contiguousStrides(outShape).map((s, i) => (axes.includes(i) ? 0 : s));
    runAccumulate(op, x.shape, { data: accumulator, offset: 0, strides }, operand(x));
    dataOf(out).set(accumulator);
  }

  matmul(a: View, transA: boolean, b: View, transB: boolean, out: Storage): void {
    const [M, K, N] = [a.shape[0]!, a.shape[1]!, b.shape[1]!];
    parallelGemm(M, N, K, dataOf(a.storage), a.offset, transA, dataOf(b.storage), b.offset, transB, dataOf(out), 0, false);
  }

  conv2d(x: View, w: View, geo: Conv2dGeometry, out: Storage): void {
    conv2dForward(dataOf(x.storage), shapes(geo).x, dataOf(w.storage), shapes(geo).w, geo.stride, geo.padding, dataOf(out), x.offset, w.offset);
  }

  conv2dBackwardInput(dy: View, w: View, geo: Conv2dGeometry, dx: Storage): void {
    conv2dBackwardInput(dataOf(dy.storage), shapes(geo).x, dataOf(w.storage), shapes(geo).w, geo.stride, geo.padding, dataOf(dx), dy.offset, w.offset);
  }

  conv2dBackwardFilter(x: View, dy: View, geo: Conv2dGeometry, dw: Storage): void {
    conv2dBackwardFilter(dataOf(x.storage), shapes(geo).x, dataOf(dy.storage), shapes(geo).w, geo.stride, geo.padding, dataOf(dw), x.offset, dy.offset);
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, h: AdamWStep): void {
    adamw(dataOf(param), dataOf(grad), dataOf(m), dataOf(v), h);
  }


  silentElbo(operands: SilentElboOperands, out: Storage, partials: Storage | null): void {
    silentElboForward(operands, out, partials, dataOf, runGemmJobs);
  }

  silentElboBackward(operands: SilentElboOperands, partials: Storage, gradOut: View, grads: SilentElboGradients): void {
    silentElboBackward(operands, partials, gradOut, grads, dataOf, runGemmJobs);
  }

  random(kind: RandomKind, seed: number, offset: number, out: Storage): void {
    randomDraw(kind, seed, offset, dataOf(out));
  }
}

export const cpuBackend = new CpuBackend();
