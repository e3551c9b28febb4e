// adamw.ts's update for float32 arrays in WebAssembly SIMD, four elements per f32x4. Arrays in
// the CPU backend's heap (../heap.ts), which the module imports, are updated where they lie;
// others pass through a staging area in blocks of BLOCK elements, small enough for the four of
// them to stay in L2 between the copy in, the update and the copy out. The arithmetic is
// float32, as PyTorch's float32 AdamW is; adamw.ts's TypeScript loop (float64 arithmetic,
// float32 stores) is the reference test/cpu-wasm.test.ts checks it against.
import { heapAddress, kernelPlace } from '../heap.js';
import { ModuleBuilder, type Local } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/** Elements per array per staged block: p, g, m, v sit at 0, 1, 2, 3 times BLOCK·4 bytes from the area's start. */
const BLOCK = 4096;

/** The scalars of one step, as adamw.ts derives them. */
export interface AdamwScalars {
  beta1: number; beta2: number; eps: number; decay: number; stepSize: number; rootCorrection: number;
}

/**
 * The module: imports `env.memory` (the heap, or a memory of its own) and exports
 * `update(vectors, beta1, 1-beta1, beta2, 1-beta2, decay, stepSize, rootCorrection, eps, p, g, m, v)`,
 * which updates 4·vectors elements of the arrays at byte addresses p, g, m and v.
 */
export function emitAdamwModule(shared: boolean, pages: number, maxPages: number): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder().importMemory('env', 'memory', pages, maxPages, shared);
  const f = m.addFunction('update', [ValType.i32, ...new Array<ValType>(8).fill(ValType.f32), ...new Array<ValType>(4).fill(ValType.i32)], []);
  const [vectors, beta1In, keep1In, beta2In, keep2In, decayIn, stepSizeIn, rootIn, epsIn, P, G, M, V] = f.paramTuple(13);
  const splat = (scalar: Local): Local => {
    const l = f.local(ValType.v128);
    f.get(scalar).simd(SimdOp.f32x4_splat).set(l);
    return l;
  };
  const [beta1, keep1, beta2, keep2, decay, stepSize, rootCorrection, eps] = [beta1In, keep1In, beta2In, keep2In, decayIn, stepSizeIn, rootIn, epsIn].map(splat) as [Local, Local, Local, Local, Local, Local, Local, Local];
  const at = f.local(ValType.i32), end = f.local(ValType.i32), g = f.local(ValType.v128), mi = f.local(ValType.v128), vi = f.local(ValType.v128);
  const address = (base: Local): void => { f.get(base).get(at).op(Op.i32_add); };
  f.get(vectors).i32(4).op(Op.i32_shl).set(end);
  f.i32(0).set(at);
  f.block(() => f.loop(() => {
    f.get(at).get(end).op(Op.i32_ge_u).brIf(1);
    address(G); f.simdMemory(SimdOp.v128_load, 2, 0).set(g);
    // m = beta1·m + (1 - beta1)·g
    f.get(beta1); address(M); f.simdMemory(SimdOp.v128_load, 2, 0).simd(SimdOp.f32x4_mul)
      .get(keep1).get(g).simd(SimdOp.f32x4_mul).simd(SimdOp.f32x4_add).set(mi);
    address(M); f.get(mi).simdMemory(SimdOp.v128_store, 2, 0);
    // v = beta2·v + (1 - beta2)·g·g
    f.get(beta2); address(V); f.simdMemory(SimdOp.v128_load, 2, 0).simd(SimdOp.f32x4_mul)
      .get(keep2).get(g).simd(SimdOp.f32x4_mul).get(g).simd(SimdOp.f32x4_mul).simd(SimdOp.f32x4_add).set(vi);
    address(V); f.get(vi).simdMemory(SimdOp.v128_store, 2, 0);
    // p = p·decay - stepSize·m / (sqrt(v) / rootCorrection + eps)
    address(P);
    address(P); f.simdMemory(SimdOp.v128_load, 2, 0).get(decay).simd(SimdOp.f32x4_mul)
      .get(stepSize).get(mi).simd(SimdOp.f32x4_mul)
      .get(vi).simd(SimdOp.f32x4_sqrt).get(rootCorrection).simd(SimdOp.f32x4_div).get(eps).simd(SimdOp.f32x4_add)
      .simd(SimdOp.f32x4_div).simd(SimdOp.f32x4_sub)
      .simdMemory(SimdOp.v128_store, 2, 0);
    f.get(at).i32(16).op(Op.i32_add).set(at);
    f.br(0);
  }));
  return m.encode();
}

type Update = (vectors: number, beta1: number, keep1: number, beta2: number, keep2: number, decay: number,
  stepSize: number, rootCorrection: number, eps: number, p: number, g: number, m: number, v: number) => void;

/** This thread's module and its staging area (4 blocks of BLOCK floats from element `scratch` of `f32`). */
let compiled: { update: Update; f32: Float32Array; scratch: number } | undefined;

function instance(): { update: Update; f32: Float32Array; scratch: number } {
  if (!compiled) {
    const place = kernelPlace(4 * BLOCK * 4);
    const module = new WebAssembly.Module(emitAdamwModule(place.shared, place.pages, place.maxPages));
    const update = new WebAssembly.Instance(module, { env: { memory: place.memory } }).exports.update as Update;
    compiled = { update, f32: new Float32Array(place.buffer), scratch: place.scratch / 4 };
  }
  return compiled;
}

/** adamw.ts's update of elements [start, end) of p, m, v, given g, in WebAssembly. */
export function adamwF32Wasm(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, h: AdamwScalars,
  start: number, end: number): void {
  const { update, f32, scratch } = instance();
  const run = (vectors: number, pAt: number, gAt: number, mAt: number, vAt: number): void =>
    update(vectors, h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.decay, h.stepSize, h.rootCorrection, h.eps, pAt, gAt, mAt, vAt);
  const at = [p, g, m, v].map(heapAddress);
  if (heapAddress(f32) !== null && at.every((a) => a !== null)) {
    // In place, four at a time; the last n mod 4 are staged below (a vector would write past them).
    const vectors = (end - start) >> 2;
    const [pAt, gAt, mAt, vAt] = at.map((a) => a! + start * 4) as [number, number, number, number];
    run(vectors, pAt, gAt, mAt, vAt);
    start += vectors << 2;
  }
  const [P, G, M, V] = [0, 1, 2, 3].map((k) => scratch + k * BLOCK) as [number, number, number, number];
  for (let s = start; s < end; s += BLOCK) {
    const n = Math.min(BLOCK, end - s);
    f32.set(p.subarray(s, s + n), P);
    f32.set(g.subarray(s, s + n), G);
    f32.set(m.subarray(s, s + n), M);
    f32.set(v.subarray(s, s + n), V);
    // Lanes past n compute on stale values and are not copied back.
    run(Math.ceil(n / 4), P * 4, G * 4, M * 4, V * 4);
    p.set(f32.subarray(P, P + n), s);
    m.set(f32.subarray(M, M + n), s);
    v.set(f32.subarray(V, V + n), s);
  }
}
