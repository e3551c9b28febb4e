// Which backend the page trains on: WebGPU where the browser gives an adapter (the same
// backends/webgpu code as in Node, on the browser's own device), else the CPU backend, its
// kernels split over the trainer's Web Worker and a pool of further workers (one per core).
import * as sg from '../silentgrad.js';
import { browserWebGpuBackend } from '../backends/webgpu/browser.js';
import { getCpuKernels } from '../backends/cpu/gemm.js';
import { startWebPool } from '../backends/cpu/parallel-web.js';
import type { BackendRequest } from './protocol.js';

/** One WebGPU device for the page's lifetime: resets make new models on it, not new devices. */
let webgpu: ReturnType<typeof browserWebGpuBackend> | null = null;
/** One CPU pool for the page's lifetime, started the first time the CPU backend is chosen. */
let cpuPool: ReturnType<typeof startWebPool> | null = null;

export async function chooseBackend(request: BackendRequest, cpuThreads: number): Promise<{ backend: sg.Backend; description: string }> {
  if (request !== 'cpu') {
    const found = await (webgpu ??= browserWebGpuBackend());
    if ('backend' in found) return { backend: found.backend, description: found.backend.describe() };
    if (request === 'webgpu') throw new Error(`WebGPU was asked for, but ${found.reason}; try ?backend=cpu`);
  }
  // The pool's workers are the bundle demo/build.ts writes beside this one.
  const { threads, reason } = await (cpuPool ??= startWebPool(new URL('./cpu-pool-worker.js', import.meta.url), cpuThreads));
  const gemm = getCpuKernels() === 'wasm' ? 'WebAssembly SIMD GEMM' : 'JavaScript GEMM (no WebAssembly SIMD here)';
  const where = threads > 1 ? `${threads} threads (Web Workers)` : `one thread (${reason})`;
  return { backend: sg.cpuBackend, description: `CPU backend, ${where}, ${gemm}` };
}
