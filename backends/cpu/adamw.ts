// The fused AdamW update (PyTorch's rule), split over the thread pool: the Table-5 encoder's
// last layer alone has 10M parameters, and one pass over four such arrays is memory-bound work
// that two cores do in about half the time of one. Float32 parameters take the WebAssembly SIMD
// loop of wasm/adamw-f32.ts when float32 products do (SILENTGRAD_CPU_KERNELS, gemm.ts); the
// loop below is the reference and serves float64.
import type { AdamWStep } from '../../engine/backend.js';
import { getCpuKernels } from './gemm.js';
import type { FloatArray } from '../../engine/dtype.js';
import { defineKernel, parallelFor } from './parallel.js';
import { adamwF32Wasm } from './wasm/adamw-f32.js';

const adamwKernel = defineKernel('silentgrad.adamw', import.meta.url, (arrays, a, start, end) => {
  const [p, g, m, v] = arrays as [FloatArray, FloatArray, FloatArray, FloatArray];
  const beta1 = a[0]!, beta2 = a[1]!, eps = a[2]!, decay = a[3]!, stepSize = a[4]!, rootCorrection = a[5]!;
  if (p instanceof Float32Array && getCpuKernels() === 'wasm') {
    adamwF32Wasm(p, g as Float32Array, m as Float32Array, v as Float32Array, { beta1, beta2, eps, decay, stepSize, rootCorrection }, start, end);
    return;
  }
  for (let i = start; i < end; i++) {
    const gi = g[i]!;
    const mi = (m[i] = beta1 * m[i]! + (1 - beta1) * gi);
    const vi = (v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi);
    p[i] = p[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) / rootCorrection + eps);
  }
});

/** One AdamW step in place over param, its moments m and v, given its gradient. */
export function adamw(p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, h: AdamWStep): void {
  const decay = 1 - h.lr * h.weightDecay;
  const stepSize = h.lr / (1 - h.beta1 ** h.step);
  const rootCorrection = Math.sqrt(1 - h.beta2 ** h.step);
  // Work is counted in multiply-adds (about 10 an element) for the pool's threshold.
  parallelFor(adamwKernel, [p, g, m, v], [h.beta1, h.beta2, h.eps, decay, stepSize, rootCorrection],
    p.length, 4096, 10 * p.length);
}
