// A small typed facade over gpu.js (a CommonJS package with loose typings) and the kernel
// cache: every kernel is generated source text plus `this.constants`, compiled once per
// (template, constants, output length) and reused, the way the training step repeats the
// same shapes every batch.
import { createRequire } from 'node:module';

/** What a kernel reads: float32 arrays (in every mode we run, storage is a Float32Array) or scalars. */
export type KernelArgument = Float32Array | number;

interface GpuJsKernel {
  (...args: KernelArgument[]): unknown;
  destroy(): void;
}

interface GpuJsInstance {
  readonly mode: string;
  createKernel(source: string, settings: Record<string, unknown>): GpuJsKernel;
  addFunction(source: string, settings: Record<string, unknown>): unknown;
  destroy(): void;
}

type GpuJsConstructor = new (settings?: { mode?: string }) => GpuJsInstance;

const require = createRequire(import.meta.url);

function loadGpuJs(): GpuJsConstructor {
  const module: unknown = require('gpu.js');
  const GPU = (module as { GPU?: unknown }).GPU;
  if (typeof GPU !== 'function') throw new Error('gpujs backend: the gpu.js package does not export GPU');
  return GPU as GpuJsConstructor;
}

/** Modes in which gpu.js computes on the host CPU rather than a GPU. */
export const hostModes: readonly string[] = ['webasm', 'cpu'];

/** A helper function compiled into kernels that call it (Integer arguments are i32 in webasm). */
export interface KernelFunction {
  source: string;
  argumentTypes: Record<string, 'Integer' | 'Number'>;
  returnType: 'Integer' | 'Number';
}

export type Constants = Record<string, number>;

const PLACEHOLDER = new Float32Array(1);

export class GpuJsRuntime {
  readonly gpu: GpuJsInstance;
  private readonly kernels = new Map<string, GpuJsKernel>();
  compiled = 0;

  /** `mode` as gpu.js takes it; undefined lets gpu.js pick (headlessgl, webgl2, webgl, webasm, cpu). */
  constructor(mode?: string, functions: readonly KernelFunction[] = []) {
    const GPU = loadGpuJs();
    this.gpu = mode ? new GPU({ mode }) : new GPU();
    for (const f of functions) this.gpu.addFunction(f.source, { argumentTypes: f.argumentTypes, returnType: f.returnType });
  }

  get mode(): string {
    return this.gpu.mode;
  }

  /**
   * Run `source` (a `function(args) { ... }` string that reads this.thread.x and
   * this.constants) over `length` output cells; returns the new output array.
   */
  run(source: string, constants: Constants, length: number, args: readonly KernelArgument[]): Float32Array {
    if (length === 0) return new Float32Array(0);
    const key = `${source}\u0000${JSON.stringify(constants)}\u0000${length}`;
    let kernel = this.kernels.get(key);
    if (!kernel) {
      kernel = this.gpu.createKernel(source, {
        output: [length], constants, precision: 'single',
        // Storages behind one key can differ in length (views of bigger buffers).
        dynamicArguments: true,
        // In GL modes the result stays a texture between kernels; webasm returns an array anyway.
        pipeline: false,
        loopMaxIterations: 1 << 30,
      });
      this.kernels.set(key, kernel);
      this.compiled++;
    }
    // gpu.js cannot size an empty array argument; such an operand is never read (no cells use it).
    const result = kernel(...args.map((a) => (typeof a !== 'number' && a.length === 0 ? PLACEHOLDER : a)));
    if (result instanceof Float32Array) return result;
    throw new Error(`gpujs backend: kernel returned ${Object.prototype.toString.call(result)}, expected a Float32Array (mode ${this.mode})`);
  }
}
