// Central finite differences in float64 against the analytic gradient: the test every
// differentiable op (and the fused silent-ELBO op) must pass.
import { backward } from './autograd.js';
import { noGrad } from './graph.js';
import { mul, sum, tensor } from './ops/index.js';
import type { Tensor } from './tensor.js';

export interface GradcheckOptions {
  /** Finite-difference step. */
  eps?: number;
  atol?: number;
  rtol?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Worst |analytic - numeric| - (atol + rtol |numeric|) found, with where it was. */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
}

/**
 * Checks d/d(inputs) of sum(f(inputs) * w) for a fixed random w (so every output element
 * matters). Inputs must be float64 leaves on a backend that reads synchronously.
 */
export function gradcheck(f: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const { eps = 1e-6, atol = 1e-6, rtol = 1e-5 } = options;
  for (const [i, t] of inputs.entries())
    if (t.dtype !== 'float64') throw new Error(`gradcheck: input ${i} is ${t.dtype}; finite differences need float64`);
  const base = inputs.map((t) => Float64Array.from(t.dataSync()));
  const leaves = inputs.map((_, i) => tensor(base[i]!, inputs[i]!.shape, { dtype: 'float64', backend: inputs[i]!.backend, requiresGrad: true }));
  const probe = f(...leaves);
  let seed = 12345;
  const weights = Array.from({ length: probe.size }, () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return 0.5 + seed / 2 ** 32;
  });
  const w = tensor(weights, probe.shape, { dtype: 'float64', backend: probe.backend });
  const objective = (ts: readonly Tensor[]): Tensor => sum(mul(f(...ts), w));

  backward(objective(leaves));
  const analytic = leaves.map((t) => (t.grad ? Float64Array.from(t.grad.dataSync()) : new Float64Array(t.size)));

  let worst: GradcheckResult['worst'] = null;
  let worstExcess = -Infinity;
  noGrad(() => {
    for (let i = 0; i < inputs.length; i++) {
      for (let k = 0; k < base[i]!.length; k++) {
        const valueAt = (delta: number): number => {
          const shifted = Float64Array.from(base[i]!);
          shifted[k]! += delta;
          const ts = base.map((b, j) => tensor(j === i ? shifted : b, inputs[j]!.shape, { dtype: 'float64', backend: inputs[j]!.backend }));
          return objective(ts).dataSync()[0]!;
        };
        const numeric = (valueAt(eps) - valueAt(-eps)) / (2 * eps);
        const a = analytic[i]![k]!;
        const excess = Math.abs(a - numeric) - (atol + rtol * Math.abs(numeric));
        if (excess > worstExcess || Number.isNaN(excess)) {
          worstExcess = Number.isNaN(excess) ? Infinity : excess;
          worst = { input: i, index: k, analytic: a, numeric };
        }
      }
    }
  });
  return { ok: worstExcess <= 0, worst };
}
