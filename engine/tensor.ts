// The Tensor: a strided view onto backend storage, plus the little autograd bookkeeping a
// node needs (who made it and how to send a gradient back). Ops live in engine/ops/.
import type { Backend, Storage, View } from './backend.js';
import type { DType, FloatArray } from './dtype.js';

/** How a tensor was made: its inputs and the rule that maps its gradient to theirs. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly backward: (grad: Tensor) => readonly (Tensor | null)[];
}

/** Views share storage; the storage goes back to the backend when the last view is disposed. */
class SharedStorage {
  refs = 1;
  constructor(readonly backend: Backend, readonly storage: Storage) {}
  release(): void {
    if (--this.refs === 0) this.backend.free(this.storage);
  }
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= shape[i]!;
  }
  return strides;
}

/** Whether a view's elements lie densely in row-major order from its offset (size-1 axes aside). */
export function isContiguousView(view: { readonly shape: readonly number[]; readonly strides: readonly number[] }): boolean {
  let expected = 1;
  for (let i = view.shape.length - 1; i >= 0; i--) {
    if (view.shape[i] !== 1 && view.strides[i] !== expected) return false;
    expected *= view.shape[i]!;
  }
  return true;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

export class Tensor implements View {
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  /** Set by keep(): survives the enclosing tidy() scope. */
  kept = false;
  private disposed = false;

  private constructor(
    private shared: SharedStorage,
    readonly shape: readonly number[],
    public strides: readonly number[],
    public offset: number,
  ) {
    trackInScope(this);
  }

  /** A new tensor owning freshly made storage. */
  static fromStorage(backend: Backend, storage: Storage, shape: readonly number[]): Tensor {
    return new Tensor(new SharedStorage(backend, storage), [...shape], contiguousStrides(shape), 0);
  }

  /** Another window onto this tensor's storage (reshape, transpose, slice): no copy. */
  view(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    this.assertLive('view');
    this.shared.refs++;
    return new Tensor(this.shared, [...shape], [...strides], offset);
  }

  get storage(): Storage { return this.shared.storage; }
  get backend(): Backend { return this.shared.backend; }
  get dtype(): DType { return this.shared.storage.dtype; }
  get size(): number { return sizeOf(this.shape); }
  get rank(): number { return this.shape.length; }
  get isDisposed(): boolean { return this.disposed; }

  get isContiguous(): boolean {
    return isContiguousView(this);
  }

  /** Contiguous host copy of the values. */
  async data(): Promise<FloatArray> {
    this.assertLive('data');
    return this.backend.read(this);
  }

  /** Synchronous host copy, for backends that can (CPU). */
  dataSync(): FloatArray {
    this.assertLive('dataSync');
    const { readSync } = this.backend;
    if (!readSync) throw new Error(`dataSync: the ${this.backend.name} backend reads asynchronously; use await tensor.data()`);
    return readSync.call(this.backend, this);
  }

  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: expected a tensor with one element, got shape [${this.shape}]`);
    return (await this.data())[0]!;
  }

  /** Keep this tensor alive past the enclosing tidy() (parameters, optimiser state). */
  keep(): this {
    this.kept = true;
    return this;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.node = null;
    this.shared.release();
  }

  /** Replace this tensor's values by `source`'s (same shape), taking over its storage. */
  assign(source: Tensor): void {
    if (source.shape.length !== this.shape.length || source.shape.some((d, i) => d !== this.shape[i]))
      throw new Error(`assign: shape [${source.shape}] does not match [${this.shape}]`);
    if (!source.isContiguous || source.offset !== 0 || source.shared.refs !== 1)
      throw new Error('assign: source must be a freshly computed contiguous tensor');
    this.shared.release();
    source.shared.refs++;
    this.shared = source.shared;
    this.strides = source.strides;
    this.offset = 0;
    source.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype} [${this.shape}] on ${this.backend.name})`;
  }

  assertLive(op: string): void {
    if (this.disposed) throw new Error(`${op}: tensor [${this.shape}] was already disposed (was it created inside a tidy() scope that has ended?)`);
  }
}

// ---- tidy(): deterministic release of intermediate tensors (what GPU memory needs) ----------

const scopes: Set<Tensor>[] = [];

function trackInScope(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

type Nested = Tensor | null | undefined | number | string | boolean | readonly Nested[] | { readonly [k: string]: Nested };

function collect(value: unknown, into: Set<Tensor>): void {
  if (value instanceof Tensor) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, into);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) collect(v, into);
}

/**
 * Runs fn and disposes every tensor it created, except those it returns and those marked
 * keep(). The returned tensors move to the enclosing scope.
 */
export function tidy<T extends Nested | void>(fn: () => T): T {
  scopes.push(new Set());
  let result: T;
  try {
    result = fn();
  } finally {
    const created = scopes.pop()!;
    const returned = new Set<Tensor>();
    collect(result!, returned);
    for (const t of created) {
      if (returned.has(t)) scopes[scopes.length - 1]?.add(t);
      else if (!t.kept) t.dispose();
    }
  }
  return result;
}
