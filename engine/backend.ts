// The narrow interface every backend implements: an allocator plus a small set of primitive
// kernels. Every op of the engine is composed from these, so a new backend is one folder
// that fills in this interface (the TensorFlow.js lesson in docs/engine-design.md).
import type { DType, FloatArray } from './dtype.js';

/** Memory owned by a backend. Opaque to the engine except for its size and type. */
export interface Storage {
  readonly dtype: DType;
  readonly length: number;
}

/** A strided window onto a storage: how every kernel sees its operands. */
export interface View {
  readonly storage: Storage;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

/** Pointwise functions of one argument; `p` is the scalar parameter of scale/shift/pow. */
export const unaryOps = [
  'copy', 'neg', 'exp', 'log', 'sqrt', 'abs', 'sign', 'square', 'reciprocal', 'relu', 'step',
  'sigmoid', 'softplus', 'logSigmoid', 'tanh', 'scale', 'shift', 'pow',
] as const;
export type UnaryOp = (typeof unaryOps)[number];

export const binaryOps = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'greater', 'keepWherePositive'] as const;
export type BinaryOp = (typeof binaryOps)[number];

export const reduceOps = ['sum', 'max'] as const;
export type ReduceOp = (typeof reduceOps)[number];

export type RandomKind = 'uniform' | 'normal';

export interface Conv2dGeometry {
  batch: number; inChannels: number; height: number; width: number;
  outChannels: number; kernelH: number; kernelW: number;
  stride: number; padding: number; outHeight: number; outWidth: number;
}

/** One AdamW step's constants (PyTorch's update rule, see engine/optim.ts). */
export interface AdamWStep {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number;
  /** 1-based step count, for the bias corrections. */
  step: number;
}

/**
 * One contraction of the silent ELBO: sum_i u_ji^p a_ji^q moment_bi (docs/silent-elbo.md,
 * sections 3 and 4). Ubar and Abar are the mean terms, S* use c2, T* use c3, K* use k4.
 */
export interface SilentElboTerm {
  readonly name: string;
  readonly moment: 'mean' | 'c2' | 'c3' | 'k4';
  /** Powers (p, q) of the mean-decoder weight u and the precision-decoder weight a. */
  readonly powers: readonly [number, number];
}

/** Everything the fused kernels read; all views contiguous. Shapes in the op's docs. */
export interface SilentElboOperands {
  readonly form: 'fixed' | 'learnable';
  /** The terms to contract, in the order a backend that saves partials lays them out. */
  readonly terms: readonly SilentElboTerm[];
  readonly mean: View; readonly c2: View; readonly c3: View | null; readonly k4: View | null;
  readonly wMu: View; readonly bMu: View; readonly wA: View | null; readonly bA: View | null;
  readonly x: View;
  /** The fixed form's output variance. */
  readonly sigma2: number;
}

/** Where the backward writes each input's gradient (null: not needed). */
export interface SilentElboGradients {
  mean: Storage | null; c2: Storage | null; c3: Storage | null; k4: Storage | null;
  wMu: Storage | null; bMu: Storage | null; wA: Storage | null; bA: Storage | null; x: Storage | null;
}

export interface Backend {
  readonly name: string;
  /** One line saying what runs the kernels (device, adapter, threads). */
  describe(): string;
  supports(dtype: DType): boolean;

  alloc(dtype: DType, length: number): Storage;
  /** Return memory to the backend's pool; the storage must not be used again. */
  free(storage: Storage): void;
  upload(data: FloatArray): Storage;
  /** Copy a view out to the host as a contiguous array. */
  read(view: View): Promise<FloatArray>;
  /** Synchronous read, where the backend can (CPU); used by anomaly mode and item(). */
  readSync?(view: View): FloatArray;

  fill(out: View, value: number): void;
  /** out = f(x), elementwise; x and out have the same shape, any strides. */
  unary(op: UnaryOp, x: View, out: View, p: number): void;
  /** out = f(a, b); a and b arrive already broadcast to out's shape (zero strides). */
  binary(op: BinaryOp, a: View, b: View, out: View): void;
  /** Reduce x over `axes` into a contiguous out whose shape keeps those axes as 1. */
  reduce(op: ReduceOp, x: View, axes: readonly number[], out: Storage): void;
  /**
   * out[M,N] = a[M,K] b[K,N]. The views have those logical shapes; a flag says the operand's
   * memory is the row-major transpose (a stored K x M), so transposed operands are never copied.
   */
  matmul(a: View, transA: boolean, b: View, transB: boolean, out: Storage): void;
  conv2d(x: View, w: View, geometry: Conv2dGeometry, out: Storage): void;
  conv2dBackwardInput(dy: View, w: View, geometry: Conv2dGeometry, dx: Storage): void;
  conv2dBackwardFilter(x: View, dy: View, geometry: Conv2dGeometry, dw: Storage): void;
  /**
   * The one in-place kernel: AdamW's update of param, m and v from a contiguous gradient.
   * Fused because composed from pointwise ops it would read and write every parameter ~14 times.
   */
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, step: AdamWStep): void;
  /**
   * The shape of what the silent-ELBO forward saves for the backward when the op will be
   * differentiated, or null when it saves nothing and the backward recomputes what it needs.
   * Absent: [terms, B, k], the partials d(pixel term)/d(contraction) laid out [term][b][j]
   * (the CPU and gpu.js backends). Each backend decides; the engine only allocates it.
   */
  silentElboSavedShape?(operands: SilentElboOperands): readonly number[] | null;
  /**
   * The fused silent-ELBO op: out[b] = expected log-likelihood of example b. `saved` is given
   * (shaped as silentElboSavedShape says) when the op will be differentiated; the forward
   * fills it for the backward.
   */
  silentElbo(operands: SilentElboOperands, out: Storage, saved: Storage | null): void;
  /**
   * Gradients of sum_b gradOut[b] out[b]: contractions only. `saved` is what the forward
   * filled (null exactly when silentElboSavedShape said the forward saves nothing).
   */
  silentElboBackward(operands: SilentElboOperands, saved: Storage | null, gradOut: View, grads: SilentElboGradients): void;
  /** Philox-4x32-10 draws, see engine/random.ts: element i uses counter (offset + i/4). */
  random(kind: RandomKind, seed: number, offset: number, out: Storage): void;
}
