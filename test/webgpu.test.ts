// Backend conformance of WebGPU against the CPU backend: the shared table of
// test/conformance-cases.ts (every op's value and gradient, views, edge shapes, convolution,
// the matmul paths including split K and vec4, both silent-ELBO forms, AdamW, random streams,
// fills, training steps). Without an adapter this prints SKIPPED, or fails in CI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { selectBackend } from '../backends/select.js';
import { runConformance } from './conformance-cases.js';
import { webGpuOrSkip } from './webgpu-setup.js';

const gpu = await webGpuOrSkip('webgpu conformance');

if (gpu) {
  runConformance('WebGPU', gpu);
  // Issue 5: auto takes WebGPU whenever an adapter exists, and says which kind it is.
  test('--backend auto picks WebGPU when an adapter exists', async () => {
    const { backend, reason } = await selectBackend('auto');
    assert.is(backend.name, 'webgpu');
    assert.match(reason, gpu.context.software ? /auto chose webgpu \(a software adapter/ : /auto chose webgpu \(a GPU adapter/);
  });
  test.run();
}
