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

export async function selectBackend(name: BackendName): Promise<SelectedBackend> {
  switch (name) {
    case 'cpu':
      return { backend: cpuBackend, reason: `--backend cpu: ${cpuBackend.describe()}` };
    case 'auto':
      return { backend: cpuBackend, reason: `--backend auto chose cpu (no GPU backend is built yet): ${cpuBackend.describe()}` };
    case 'webgpu':
    case 'gpujs':
      throw new Error(`the ${name} backend is not built yet; use --backend cpu (or auto)`);
  }
}
