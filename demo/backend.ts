// Which backend the page trains on: WebGPU where the browser gives an adapter (the same
// backends/webgpu code as in Node, on the browser's own device), else the CPU backend, here in
// the trainer's Web Worker on one thread (its thread pool is Node's worker_threads).
import * as sg from '../silentgrad.js';
import { browserWebGpuBackend } from '../backends/webgpu/browser.js';
import { getCpuKernels } from '../backends/cpu/gemm.js';
import type { BackendRequest } from './protocol.js';

/** One WebGPU device for the page's lifetime: resets make new models on it, not new devices. */
let webgpu: ReturnType<typeof browserWebGpuBackend> | null = null;

export async function chooseBackend(request: BackendRequest): Promise<{ backend: sg.Backend; description: string }> {
  if (request !== 'cpu') {
    const found = await (webgpu ??= browserWebGpuBackend());
    if ('backend' in found) return { backend: found.backend, description: found.backend.describe() };
    if (request === 'webgpu') throw new Error(`WebGPU was asked for, but ${found.reason}; try ?backend=cpu`);
  }
  const gemm = getCpuKernels() === 'wasm' ? 'WebAssembly SIMD GEMM' : 'JavaScript GEMM (no WebAssembly SIMD here)';
  return { backend: sg.cpuBackend, description: `CPU backend, one thread, ${gemm}` };
}
