// Choosing a backend by name. `auto` takes the fastest one that works here and says why.
import type { Backend } from '../engine/backend.js';
import { cpuBackend } from './cpu/index.js';

export const backendNames = ['auto', 'cpu', 'webgpu', 'gpujs'] as const;
export type BackendName = (typeof backendNames)[number];

export interface SelectedBackend {
  backend: Backend;
  /** One line: what was chosen and why (printed by every experiment). */
  reason: string;
}

/** Loaded on demand, so runs that never use gpu.js never load it. */
async function gpuJsBackend(): Promise<import('./gpujs/index.js').GpuJsBackend> {
  return (await import('./gpujs/index.js')).createGpuJsBackend();
}

export async function selectBackend(name: BackendName): Promise<SelectedBackend> {
  switch (name) {
    case 'cpu':
      return { backend: cpuBackend, reason: `--backend cpu: ${cpuBackend.describe()}` };
    case 'auto': {
      // gpu.js next (WebGPU is not offered here yet), but only where it reaches a GPU: in its
      // webasm/cpu modes it computes on the host, where the CPU backend's blocked two-core
      // kernels are faster (bench/gpujs.ts measures both).
      const gpujs = await gpuJsBackend();
      if (!gpujs.onHost) return { backend: gpujs, reason: `--backend auto chose gpujs: ${gpujs.describe()}` };
      return { backend: cpuBackend, reason: `--backend auto chose cpu: gpu.js would run in '${gpujs.mode}' mode, computing on the CPU, where the cpu backend is faster; ${cpuBackend.describe()}` };
    }
    case 'gpujs': {
      const gpujs = await gpuJsBackend();
      return { backend: gpujs, reason: `--backend gpujs: ${gpujs.describe()}` };
    }
    case 'webgpu':
      throw new Error(`the ${name} backend is not built yet; use --backend cpu (or auto)`);
  }
}
