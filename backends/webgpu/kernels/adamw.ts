// AdamW's in-place update of a parameter and its two moments (PyTorch's rule, as the CPU
// backend): one pass instead of ~14 pointwise kernels. The step-dependent constants are
// computed on the host in double precision and passed as f32.
// Parameters whose length is a multiple of 4 (every one of the paper's models) are walked as
// vec4s: llvmpipe pays ~10 instructions per lane for each storage access whatever its width
// (elementwise.ts), and this kernel makes seven per element. The gain is small because the
// update is close to memory-bound (10M parameters move 280 MB; docs/performance-log.md,
// "Vector (vec4) storage access on lavapipe").
import type { AdamWStep } from '../../../engine/backend.js';
import type { Dispatch } from '../queue.js';
import { ceilDiv, elementLoop, elementsPerInvocation, entry, header, Params } from './wgsl.js';

const WORKGROUP = 64;

const source = (type: 'f32' | 'vec4<f32>'): string => `${header([
  { name: 'Param', access: 'read_write', type }, { name: 'G', access: 'read', type },
  { name: 'Mom1', access: 'read_write', type }, { name: 'Mom2', access: 'read_write', type },
])}
${entry([WORKGROUP])} {
  let beta1 = pf(1u); let beta2 = pf(2u); let decay = pf(3u); let stepSize = pf(4u);
  let rootCorrection = pf(5u); let eps = pf(6u);
  ${elementLoop(WORKGROUP, 'P[7]', 'P[0]')}
    let i = index;
    let g = G[i];
    let m = beta1 * Mom1[i] + (1.0 - beta1) * g;
    let v = beta2 * Mom2[i] + (1.0 - beta2) * g * g;
    Mom1[i] = m;
    Mom2[i] = v;
    Param[i] = Param[i] * decay - stepSize * m / (sqrt(v) / rootCorrection + eps);
  }
}`;
const sources = { scalar: source('f32'), vector: source('vec4<f32>') };

export function adamw(param: GPUBuffer, grad: GPUBuffer, m: GPUBuffer, v: GPUBuffer, length: number, h: AdamWStep): Dispatch {
  const vector = length % 4 === 0;
  const count = vector ? length / 4 : length;
  const per = elementsPerInvocation(count, WORKGROUP);
  const params = new Params().u32(count).f32(
    h.beta1, h.beta2, 1 - h.lr * h.weightDecay, h.lr / (1 - h.beta1 ** h.step), Math.sqrt(1 - h.beta2 ** h.step), h.eps,
  ).u32(per).build();
  return {
    source: vector ? sources.vector : sources.scalar, buffers: [param, grad, m, v], params, groups: ceilDiv(count, WORKGROUP * per),
    label: `adamw${vector ? ' (vec4)' : ''}`,
  };
}
