// Philox-4x32-10 in WGSL: the same draws as engine/random.ts's referenceDraw for the same
// (seed, offset). One invocation per counter value makes the four words of elements 4g..4g+3.
// WGSL has no 32x32->64 multiply, so the high word is built from 16-bit halves, exactly as the
// TypeScript reference does; the low word is u32 multiplication (wraps, as Math.imul).
import type { RandomKind } from '../../../engine/backend.js';
import { seedKey } from '../../../engine/random.js';
import { linearGroup, type Dispatch } from '../queue.js';
import { ceilDiv, entry, header, Params } from './wgsl.js';

const WORKGROUP = 64;

const philox = `
fn mulHi(a: u32, b: u32) -> u32 {
  let aLo = a & 0xffffu; let aHi = a >> 16u; let bLo = b & 0xffffu; let bHi = b >> 16u;
  let lo = aLo * bLo;
  let mid1 = aHi * bLo + (lo >> 16u);
  let mid2 = aLo * bHi + (mid1 & 0xffffu);
  return aHi * bHi + (mid1 >> 16u) + (mid2 >> 16u);
}
fn philox(counter: u32, k0: u32, k1: u32) -> vec4<u32> {
  var x = vec4<u32>(counter, 0u, 0u, 0u);
  var key = vec2<u32>(k0, k1);
  for (var round = 0; round < 10; round++) {
    let hi0 = mulHi(0xd2511f53u, x.x); let lo0 = 0xd2511f53u * x.x;
    let hi1 = mulHi(0xcd9e8d57u, x.z); let lo1 = 0xcd9e8d57u * x.z;
    x = vec4<u32>(hi1 ^ x.y ^ key.x, lo1, hi0 ^ x.w ^ key.y, lo0);
    key += vec2<u32>(0x9e3779b9u, 0xbb67ae85u);
  }
  return x;
}
// 24 random bits, centred in their bin: never 0, so log(u) is finite.
fn uniformOf(word: u32) -> f32 { return (f32(word >> 8u) + 0.5) / 16777216.0; }`;

/** Element j (0..3) of a counter's draw. Box-Muller uses word pairs (0,1), (2,3); cosine first. */
const element: Record<RandomKind, string> = {
  uniform: 'uniformOf(w[j])',
  normal: 'sqrt(-2.0 * log(uniformOf(w[j & 2u]))) * select(cos(6.283185307179586 * uniformOf(w[(j & 2u) + 1u])), sin(6.283185307179586 * uniformOf(w[(j & 2u) + 1u])), (j & 1u) == 1u)',
};

function source(kind: RandomKind): string {
  return `${header([{ name: 'O', access: 'read_write' }])}
${philox}
${entry([WORKGROUP])} {
  let g = (${linearGroup}) * ${WORKGROUP}u + lid;
  let n = P[0];
  if (g * 4u >= n) { return; }
  let w = philox(P[1] + g, P[2], P[3]);
  for (var j = 0u; j < 4u && g * 4u + j < n; j++) {
    O[g * 4u + j] = ${element[kind]};
  }
}`;
}

export function random(kind: RandomKind, seed: number, offset: number, out: GPUBuffer, length: number): Dispatch | null {
  if (length === 0) return null;
  const [k0, k1] = seedKey(seed);
  // Counters wrap modulo 2^32 exactly as in the reference (it takes counter >>> 0).
  const params = new Params().u32(length, offset % 4294967296, k0, k1).build();
  return { source: source(kind), buffers: [out], params, groups: ceilDiv(ceilDiv(length, 4), WORKGROUP), label: `random ${kind}` };
}
