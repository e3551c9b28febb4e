// Which backend the page trains on. For now the CPU backend, here in the trainer's Web Worker
// on one thread (its thread pool is Node's worker_threads, which a page does not have).
import * as sg from '../engine/index.js';
import { getCpuKernels } from '../backends/cpu/gemm.js';
import type { BackendRequest } from './protocol.js';

export async function chooseBackend(request: BackendRequest): Promise<{ backend: sg.Backend; description: string }> {
  if (request === 'webgpu') throw new Error('this page does not run on WebGPU yet; use ?backend=cpu');
  const gemm = getCpuKernels() === 'wasm' ? 'WebAssembly SIMD GEMM' : 'JavaScript GEMM (no WebAssembly SIMD here)';
  return { backend: sg.cpuBackend, description: `CPU backend, one thread, ${gemm}` };
}
