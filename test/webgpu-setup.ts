// The WebGPU device for the WebGPU test files, or null with a visible message. In CI
// (CI=true) a missing adapter is a failure, never a silent skip (docs/webgpu-without-a-gpu.md,
// "Testing policy").
import { test } from 'uvu';
import { createWebGpuBackend, webGpuUnavailableReason, type WebGpuBackend } from '../backends/webgpu/index.js';

export async function webGpuOrSkip(suite: string): Promise<WebGpuBackend | null> {
  const gpu = await createWebGpuBackend();
  if (gpu) {
    console.log(`${suite}: ${gpu.describe()}`);
    return gpu;
  }
  const reason = webGpuUnavailableReason();
  if (process.env.CI === 'true') {
    test(`${suite}: a WebGPU adapter must exist in CI`, () => {
      throw new Error(`${suite}: no WebGPU adapter in CI (${reason}); .ci/install-system-deps.sh should have installed lavapipe`);
    });
    test.run();
  } else {
    console.warn(`\n*** SKIPPED ${suite}: ${reason}. Run .ci/install-system-deps.sh to get Mesa's lavapipe. ***\n`);
  }
  return null;
}
