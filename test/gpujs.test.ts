// Backend conformance of gpu.js against the CPU backend: the shared table of
// test/conformance-cases.ts (every op's value and gradient, views, edge shapes, convolution,
// matmul paths, both silent-ELBO forms, AdamW, random streams, fills, training steps), plus a
// check that the mode gpu.js picked is the one reported.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createGpuJsBackend } from '../backends/gpujs/index.js';
import { runConformance } from './conformance-cases.js';

const gpu = createGpuJsBackend();
console.log(`gpujs conformance: ${gpu.describe()}`);

runConformance('gpu.js', gpu);

test('the mode that ran is reported', () => {
  assert.match(gpu.describe(), new RegExp(`'${gpu.mode}' mode`));
});

test.run();
