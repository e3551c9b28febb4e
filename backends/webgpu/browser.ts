// The WebGPU backend in a web page: the browser's own navigator.gpu instead of Dawn (device.ts),
// with the same kernels, chosen by the same tuning profile from what the adapter says it is.
import { openContext } from './adapter.js';
import { webGpuBackendOn, type WebGpuBackend } from './index.js';

/** The page's WebGPU backend, or why there is none (no navigator.gpu, or no adapter). */
export async function browserWebGpuBackend(): Promise<{ backend: WebGpuBackend } | { reason: string }> {
  const gpu = typeof navigator === 'undefined' ? undefined : navigator.gpu;
  if (!gpu) return { reason: 'this browser offers no WebGPU (navigator.gpu is missing)' };
  const adapter = await gpu.requestAdapter();
  if (!adapter) return { reason: 'navigator.gpu.requestAdapter() gave no adapter' };
  return { backend: webGpuBackendOn(await openContext(adapter, 'browser', [])) };
}
