// Choosing a backend by name. `auto` takes the fastest one that works here and says why.
import type { Backend } from '../engine/backend.js';
import { cpuBackend } from './cpu/index.js';
import { createWebGpuBackend, webGpuUnavailableReason } from './webgpu/index.js';

export const backendNames = ['auto', 'cpu', 'webgpu', 'gpujs'] as const;
export type BackendName = (typeof backendNames)[number];

export interface SelectedBackend {
  backend: Backend;
  /** One line: what was chosen and why (printed by every experiment). */
  reason: string;
}

export async function selectBackend(name: BackendName): Promise<SelectedBackend> {
  switch (name) {
    case 'cpu':
      return { backend: cpuBackend, reason: `--backend cpu: ${cpuBackend.describe()}` };
    case 'webgpu': {
      const gpu = await createWebGpuBackend();
      if (!gpu) throw new Error(`--backend webgpu: ${webGpuUnavailableReason()}. Install a driver (.ci/install-system-deps.sh sets up Mesa's lavapipe) or use --backend cpu`);
      return { backend: gpu, reason: `--backend webgpu: ${gpu.describe()}` };
    }
    case 'auto': {
      const gpu = await createWebGpuBackend();
      if (gpu) return { backend: gpu, reason: `--backend auto chose webgpu (an adapter exists): ${gpu.describe()}` };
      return { backend: cpuBackend, reason: `--backend auto chose cpu (${webGpuUnavailableReason()}): ${cpuBackend.describe()}` };
    }
    case 'gpujs':
      throw new Error(`the ${name} backend is not built yet; use --backend cpu, webgpu or auto`);
  }
}
