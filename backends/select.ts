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

/** Loaded on demand too (Dawn is a native module): the backend, or null and the reason. */
async function webGpuBackend(): Promise<{ backend: import('./webgpu/index.js').WebGpuBackend } | { reason: string }> {
  const webgpu = await import('./webgpu/index.js');
  const backend = await webgpu.createWebGpuBackend();
  return backend ? { backend } : { reason: webgpu.webGpuUnavailableReason() ?? 'no WebGPU adapter' };
}

export async function selectBackend(name: BackendName): Promise<SelectedBackend> {
  switch (name) {
    case 'cpu':
      return { backend: cpuBackend, reason: `--backend cpu: ${cpuBackend.describe()}` };
    case 'auto': {
      // WebGPU whenever an adapter exists, as issue 5 asks. On a software adapter (lavapipe in
      // CI) the same WGSL runs on the host CPU, and since the subgroup GEMM (kernels/gemm.ts)
      // it is also the faster choice there (docs/performance-log.md, "WebGPU on lavapipe
      // against the CPU backend: the default study"). The reason line says which kind of
      // adapter it is.
      const webgpu = await webGpuBackend();
      if ('backend' in webgpu) {
        const kind = webgpu.backend.context.software ? 'a software adapter: WGSL computed on this CPU' : 'a GPU adapter';
        return { backend: webgpu.backend, reason: `--backend auto chose webgpu (${kind}): ${webgpu.backend.describe()}` };
      }
      // gpu.js next, but only where it reaches a GPU: in its webasm/cpu modes it computes on the
      // host, where the CPU backend's blocked two-core kernels are faster (bench/gpujs.ts measures both).
      const gpujs = await gpuJsBackend();
      if (!gpujs.onHost) return { backend: gpujs, reason: `--backend auto chose gpujs (${webgpu.reason}): ${gpujs.describe()}` };
      return { backend: cpuBackend, reason: `--backend auto chose cpu: ${webgpu.reason}; gpu.js would run in '${gpujs.mode}' mode, computing on the CPU, where the cpu backend is faster; ${cpuBackend.describe()}` };
    }
    case 'gpujs': {
      const gpujs = await gpuJsBackend();
      return { backend: gpujs, reason: `--backend gpujs: ${gpujs.describe()}` };
    }
    case 'webgpu': {
      const webgpu = await webGpuBackend();
      if ('reason' in webgpu) throw new Error(`--backend webgpu: ${webgpu.reason}. Install a driver (.ci/install-system-deps.sh sets up Mesa's lavapipe) or use --backend cpu`);
      return { backend: webgpu.backend, reason: `--backend webgpu: ${webgpu.backend.describe()}` };
    }
  }
}
