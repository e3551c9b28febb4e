// Backend conformance of WebGPU against the CPU backend: the shared table of
// test/conformance-cases.ts (every op's value and gradient, views, edge shapes, convolution,
// the matmul paths including split K and vec4, both silent-ELBO forms, AdamW, random streams,
// fills, training steps). Without an adapter this prints SKIPPED, or fails in CI.
import { test } from 'uvu';
import { runConformance } from './conformance-cases.js';
import { webGpuOrSkip } from './webgpu-setup.js';

const gpu = await webGpuOrSkip('webgpu conformance');

if (gpu) {
  runConformance('WebGPU', gpu);
  test.run();
}
