// adamw.ts's update for float32 arrays in WebAssembly SIMD, four elements per f32x4. The arrays
// live in JavaScript memory, so they pass through this thread's Wasm memory in blocks of BLOCK
// elements, small enough for the four of them to stay in L2 between the copy in, the update and
// the copy out. The arithmetic is float32, as PyTorch's float32 AdamW is; adamw.ts's TypeScript
// loop (float64 arithmetic, float32 stores) is the reference test/cpu-wasm.test.ts checks it against.
import { kernelMemory, sharedMemories } from './memory.js';
import { ModuleBuilder } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/** Elements per array per block: p, g, m, v sit at 0, 1, 2, 3 times BLOCK·4 bytes. */
const BLOCK = 4096;
const PAGES = Math.ceil((4 * BLOCK * 4) / 65536);

/** The scalars of one step, as adamw.ts derives them. */
export interface AdamwScalars {
  beta1: number; beta2: number; eps: number; decay: number; stepSize: number; rootCorrection: number;
}

/**
 * The module: imports `env.memory` (`shared` or not, memory.ts) and exports `update(vectors, beta1, 1-beta1, beta2, 1-beta2,
 * decay, stepSize, rootCorrection, eps)`, which updates the first 4·vectors elements of the block.
 */
export function emitAdamwModule(shared: boolean): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder().importMemory('env', 'memory', PAGES, PAGES, shared);
  const f = m.addFunction('update', [ValType.i32, ...new Array<ValType>(8).fill(ValType.f32)], []);
  const [vectors, ...scalars] = f.paramTuple(9);
  const [beta1, keep1, beta2, keep2, decay, stepSize, rootCorrection, eps] = scalars.map((scalar) => {
    const splat = f.local(ValType.v128);
    f.get(scalar).simd(SimdOp.f32x4_splat).set(splat);
    return splat;
  }) as typeof scalars;
  const at = f.local(ValType.i32), end = f.local(ValType.i32), g = f.local(ValType.v128), mi = f.local(ValType.v128), vi = f.local(ValType.v128);
  const [P, G, M, V] = [0, 1, 2, 3].map((k) => k * BLOCK * 4) as [number, number, number, number];
  f.get(vectors).i32(4).op(Op.i32_shl).set(end);
  f.i32(0).set(at);
  f.block(() => f.loop(() => {
    f.get(at).get(end).op(Op.i32_ge_u).brIf(1);
    f.get(at).simdMemory(SimdOp.v128_load, 4, G).set(g);
    // m = beta1·m + (1 - beta1)·g
    f.get(beta1).get(at).simdMemory(SimdOp.v128_load, 4, M).simd(SimdOp.f32x4_mul)
      .get(keep1).get(g).simd(SimdOp.f32x4_mul).simd(SimdOp.f32x4_add).set(mi);
    f.get(at).get(mi).simdMemory(SimdOp.v128_store, 4, M);
    // v = beta2·v + (1 - beta2)·g·g
    f.get(beta2).get(at).simdMemory(SimdOp.v128_load, 4, V).simd(SimdOp.f32x4_mul)
      .get(keep2).get(g).simd(SimdOp.f32x4_mul).get(g).simd(SimdOp.f32x4_mul).simd(SimdOp.f32x4_add).set(vi);
    f.get(at).get(vi).simdMemory(SimdOp.v128_store, 4, V);
    // p = p·decay - stepSize·m / (sqrt(v) / rootCorrection + eps)
    f.get(at)
      .get(at).simdMemory(SimdOp.v128_load, 4, P).get(decay).simd(SimdOp.f32x4_mul)
      .get(stepSize).get(mi).simd(SimdOp.f32x4_mul)
      .get(vi).simd(SimdOp.f32x4_sqrt).get(rootCorrection).simd(SimdOp.f32x4_div).get(eps).simd(SimdOp.f32x4_add)
      .simd(SimdOp.f32x4_div).simd(SimdOp.f32x4_sub)
      .simdMemory(SimdOp.v128_store, 4, P);
    f.get(at).i32(16).op(Op.i32_add).set(at);
    f.br(0);
  }));
  return m.encode();
}

type Update = (vectors: number, beta1: number, keep1: number, beta2: number, keep2: number, decay: number,
  stepSize: number, rootCorrection: number, eps: number) => void;

let compiled: { update: Update; f32: Float32Array } | undefined;

/** adamw.ts's update of elements [start, end) of p, m, v, given g, in WebAssembly. */
export function adamwF32Wasm(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, h: AdamwScalars,
  start: number, end: number): void {
  if (!compiled) {
    const memory = kernelMemory(PAGES, PAGES);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(emitAdamwModule(sharedMemories())), { env: { memory } });
    compiled = { update: instance.exports.update as Update, f32: new Float32Array(memory.buffer) };
  }
  const { update, f32 } = compiled;
  for (let s = start; s < end; s += BLOCK) {
    const n = Math.min(BLOCK, end - s);
    f32.set(p.subarray(s, s + n), 0);
    f32.set(g.subarray(s, s + n), BLOCK);
    f32.set(m.subarray(s, s + n), 2 * BLOCK);
    f32.set(v.subarray(s, s + n), 3 * BLOCK);
    // Lanes past n compute on stale values and are not copied back.
    update(Math.ceil(n / 4), h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.decay, h.stepSize, h.rootCorrection, h.eps);
    p.set(f32.subarray(0, n), s);
    m.set(f32.subarray(2 * BLOCK, 2 * BLOCK + n), s);
    v.set(f32.subarray(3 * BLOCK, 3 * BLOCK + n), s);
  }
}
