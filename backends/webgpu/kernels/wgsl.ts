// What every generated shader shares: binding declarations in the order the host passes the
// buffers, the parameter block (binding n, `array<u32>`, f32 scalars stored as their bits),
// and a writer that lays out those parameters on the host side.
import { linearGroup } from '../queue.js';

export interface BufferDecl {
  readonly name: string;
  readonly access: 'read' | 'read_write';
  /** Element type the shader sees; vec4 views need offsets and lengths in multiples of 4. */
  readonly type?: 'f32' | 'vec4<f32>' | 'u32';
}

/** Storage bindings 0..n-1, then the parameter block P at binding n, then helpers. */
export function header(buffers: readonly BufferDecl[]): string {
  const lines = buffers.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type ?? 'f32'}>;`);
  lines.push(`@group(0) @binding(${buffers.length}) var<storage, read> P: array<u32>;`);
  lines.push('fn pf(i: u32) -> f32 { return bitcast<f32>(P[i]); }');
  // WGSL rejects NaN and infinity in constant expressions; mixing in a runtime word (always 0)
  // makes these runtime values.
  lines.push('fn nanF() -> f32 { return bitcast<f32>(0x7fc00000u | (P[0] & 0u)); }');
  lines.push('fn negInfF() -> f32 { return bitcast<f32>(0xff800000u | (P[0] & 0u)); }');
  return lines.join('\n');
}

/** The entry point's signature; bodies use wid/nwg/lid/gid as needed, plus `extra` parameters. */
export function entry(workgroup: readonly number[], extra = ''): string {
  return `@compute @workgroup_size(${workgroup.join(', ')})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32${extra ? `, ${extra}` : ''})`;
}

/** Host side of the parameter block. */
export class Params {
  private readonly words: number[] = [];
  private readonly scratch = new DataView(new ArrayBuffer(4));

  /** Index of the next word (for shaders that compute where a field lives). */
  get length(): number { return this.words.length; }

  u32(...values: number[]): this {
    for (const v of values) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`webgpu: parameter ${v} is not a u32`);
      this.words.push(v);
    }
    return this;
  }

  f32(...values: number[]): this {
    for (const v of values) {
      this.scratch.setFloat32(0, v, true);
      this.words.push(this.scratch.getUint32(0, true));
    }
    return this;
  }

  build(): Uint32Array {
    return Uint32Array.from(this.words);
  }
}

/**
 * `source` with P[i] replaced by the literal words[i] for each i in `indices`: sizes become
 * WGSL constants, so LLVM folds index arithmetic, divides by constants and knows trip counts.
 * Only for words that repeat call after call (sizes, not offsets), else every call compiles;
 * only on a body, not on header() (its nanF reads P[0] to stay a runtime value). Tried on the
 * fused silent ELBO too: 135-151 -> 155-170 ms fwd+bwd, slower (LLVM unrolls the known loops).
 */
export function bakeWords(source: string, words: Uint32Array, indices: readonly number[]): string {
  return source.replace(/\bP\[(\d+)\]/g, (word, i: string) => (indices.includes(Number(i)) ? `${words[Number(i)]!}u` : word));
}

/**
 * Generated sources by key: each is built once and the same string object served after. A source
 * built per call costs its string work every call, and the queue then hashes the fresh string to
 * find its pipeline (a string hashes once): an 8x8 matmul took ~290 us on the host before the
 * GEMM's sources were cached, and the fused silent ELBO's fwd + bwd spent ~2.9 ms a call
 * building its two passes. `key` must name everything `build` reads, its kernel family first.
 */
const sources = new Map<string, string>();
export function cachedSource(key: string, build: () => string): string {
  let source = sources.get(key);
  if (source === undefined) sources.set(key, (source = build()));
  return source;
}

export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/** 0, 1, ..., n - 1: the indices kernel generators unroll over. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * Elements each invocation of a flat kernel (one element per step) handles: lavapipe pays
 * microseconds per workgroup, more than a few elements cost, so one element per invocation
 * left an elementwise op over 1.6M floats at 12.6 ms; 64 per invocation (64-wide workgroups)
 * ran it in 2.6 ms. Keeps at least 32 workgroups so both threads (or a GPU's cores) get work.
 */
export function elementsPerInvocation(n: number, workgroup: number): number {
  return Math.max(1, Math.min(64, Math.floor(n / (workgroup * 32))));
}

/**
 * WGSL opening a loop over the elements of this invocation (close it with `}`): `index` walks
 * group * per * workgroup + lid, stepping by the workgroup size, and stops at `count`.
 */
export function elementLoop(workgroup: number, per: string, count: string): string {
  return `let first = (${linearGroup}) * ${per} * ${workgroup}u + lid;
  for (var e = 0u; e < ${per}; e++) {
    let index = first + e * ${workgroup}u;
    if (index >= ${count}) { break; }`;
}
