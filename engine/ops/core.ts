// What every op shares: the op registry (so tests can check that every op has a gradient or
// says it has none), the default backend, output allocation, argument checks and the opt-in
// anomaly mode that names the first op to produce a NaN.
import type { Backend } from '../backend.js';
import { arrayFor, type DType } from '../dtype.js';
import { Tensor, sizeOf } from '../tensor.js';

export interface OpInfo {
  readonly name: string;
  /** false: the op has no gradient by design (comparisons, random draws, kernels of backward). */
  readonly differentiable: boolean;
}

export const opRegistry = new Map<string, OpInfo>();

let anomalyMode = false;

/** Like PyTorch's anomaly mode: check every op's output for NaN/Inf. Off by default: it reads back. */
export function setAnomalyMode(enabled: boolean): void {
  anomalyMode = enabled;
}

/** Register an op by name; the returned function is the op itself (checked in anomaly mode). */
export function defineOp<Args extends unknown[]>(name: string, differentiable: boolean, fn: (...args: Args) => Tensor): (...args: Args) => Tensor {
  if (opRegistry.has(name)) throw new Error(`defineOp: '${name}' is defined twice`);
  opRegistry.set(name, { name, differentiable });
  return (...args: Args): Tensor => {
    const out = fn(...args);
    if (anomalyMode) checkFinite(name, out, args);
    return out;
  };
}

function checkFinite(op: string, out: Tensor, args: readonly unknown[]): void {
  const values = out.dataSync();
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad < 0) return;
  const inputs = args.filter((a): a is Tensor => a instanceof Tensor).map((t) => `[${t.shape}]`).join(', ');
  throw new Error(`anomaly: ${op}(${inputs}) produced ${values[bad]} at flat index ${bad} of its output [${out.shape}]`);
}

// ---- backends ---------------------------------------------------------------------------

let defaultBackend: Backend | null = null;

export function setDefaultBackend(backend: Backend): void {
  defaultBackend = backend;
}

export function getDefaultBackend(): Backend {
  if (!defaultBackend) throw new Error('silentgrad: no default backend is set: import silentgrad.js (the CPU backend by default) or call setDefaultBackend');
  return defaultBackend;
}

// ---- creation ---------------------------------------------------------------------------

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

/** A tensor whose storage is allocated but not initialised: ops write their outputs into it. */
export function empty(shape: readonly number[], dtype: DType, backend: Backend): Tensor {
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0) throw new Error(`empty: invalid shape [${shape}] (dimensions must be non-negative integers)`);
  if (!backend.supports(dtype)) throw new Error(`the ${backend.name} backend does not support ${dtype}`);
  return Tensor.fromStorage(backend, backend.alloc(dtype, sizeOf(shape)), shape);
}

export function tensor(values: ArrayLike<number>, shape: readonly number[], options: CreateOptions = {}): Tensor {
  const dtype = options.dtype ?? 'float32';
  const backend = options.backend ?? getDefaultBackend();
  if (values.length !== sizeOf(shape))
    throw new Error(`tensor: ${values.length} values do not fill shape [${shape}] (${sizeOf(shape)} elements)`);
  const data = arrayFor(dtype, values.length);
  data.set(values);
  const t = Tensor.fromStorage(backend, backend.upload(data), shape);
  t.requiresGrad = options.requiresGrad ?? false;
  return t;
}

export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  const out = empty(shape, options.dtype ?? 'float32', options.backend ?? getDefaultBackend());
  out.backend.fill(out, value);
  out.requiresGrad = options.requiresGrad ?? false;
  return out;
}

export const zeros = (shape: readonly number[], options: CreateOptions = {}): Tensor => full(shape, 0, options);
export const ones = (shape: readonly number[], options: CreateOptions = {}): Tensor => full(shape, 1, options);

/** Same shape, dtype and backend as `like`. */
export function fullLike(like: Tensor, value: number): Tensor {
  return full(like.shape, value, { dtype: like.dtype, backend: like.backend });
}

/** An uninitialised output like `like` (shape optional). */
export function emptyLike(like: Tensor, shape: readonly number[] = like.shape): Tensor {
  return empty(shape, like.dtype, like.backend);
}

// ---- checks -----------------------------------------------------------------------------

export const shapeString = (t: Tensor): string => `[${t.shape.join(', ')}]`;

/** All tensor arguments must share dtype and backend; names make the error say which. */
export function checkCompatible(op: string, args: Record<string, Tensor>): void {
  const entries = Object.entries(args);
  const [firstName, first] = entries[0]!;
  for (const [name, t] of entries) {
    t.assertLive(op);
    if (t.dtype !== first.dtype)
      throw new Error(`${op}: mixed dtypes: ${firstName} is ${first.dtype} ${shapeString(first)} but ${name} is ${t.dtype} ${shapeString(t)}`);
    if (t.backend !== first.backend)
      throw new Error(`${op}: ${firstName} lives on ${first.backend.name} but ${name} on ${t.backend.name}`);
  }
}

export function checkRank(op: string, name: string, t: Tensor, rank: number): void {
  if (t.rank !== rank) throw new Error(`${op}: ${name} must have rank ${rank}, got shape ${shapeString(t)}`);
}
