// The GEMM macro kernel in WebAssembly SIMD, for float32 (f32x4) or float64 (f64x2) elements:
// it walks every MR×NR tile of a packed block (../pack.ts's layout: A as row panels of MR, B as
// column panels of NR, both k-major) and keeps the tile in MR·NR/lanes vector registers across
// the kc steps. Per step it loads NR/lanes vectors of B, broadcasts each of the MR values of A
// (v128.load32_splat, load64_splat) and does MR·NR/lanes multiplies and adds. gemm-f32.ts,
// gemm-f64.ts and winograd-f32.ts add it to their modules.
import { ModuleBuilder, type Local } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/** Register block: MR rows by NR columns (NR a multiple of the vector's lanes). */
export interface TileShape { readonly mr: number; readonly nr: number }

/** An element type: its size and the SIMD instructions on it. */
export interface Precision {
  readonly name: 'f32' | 'f64';
  readonly bytes: number;
  readonly lanes: number;
  readonly splat: number;
  readonly mul: number;
  readonly add: number;
  readonly load: number;
  readonly store: number;
}

export const F32: Precision = {
  name: 'f32', bytes: 4, lanes: 4, splat: SimdOp.v128_load32_splat, mul: SimdOp.f32x4_mul, add: SimdOp.f32x4_add,
  load: Op.f32_load, store: Op.f32_store,
};
export const F64: Precision = {
  name: 'f64', bytes: 8, lanes: 2, splat: SimdOp.v128_load64_splat, mul: SimdOp.f64x2_mul, add: SimdOp.f64x2_add,
  load: Op.f64_load, store: Op.f64_store,
};

/** Whether this engine validates relaxed SIMD (Node 20: only with --experimental-wasm-relaxed-simd). */
export function relaxedSimdSupported(): boolean {
  const m = new ModuleBuilder();
  const f = m.addFunction('f', [ValType.v128, ValType.v128, ValType.v128], [ValType.v128]);
  f.get(f.param(0)).get(f.param(1)).get(f.param(2)).simd(SimdOp.f32x4_relaxed_madd);
  return WebAssembly.validate(m.encode());
}

let fusedChoice: boolean | undefined;

/**
 * Whether float32 kernels use relaxed SIMD's madd. It may or may not round once depending on the
 * hardware, so the same seed could give different bits on different machines: opt in with
 * SILENTGRAD_WASM_RELAXED=1.
 */
export function relaxedMaddChosen(): boolean {
  return (fusedChoice ??= typeof process !== 'undefined' && process.env.SILENTGRAD_WASM_RELAXED === '1' && relaxedSimdSupported());
}

/** The exported `macro` (addMacro). */
export type Macro = (kc: number, mc: number, nc: number, aPtr: number, bPtr: number, cPtr: number, ldcBytes: number, load: number) => void;

/**
 * Add `macro(kc, mc, nc, aPtr, bPtr, cPtr, ldcBytes, load)` to `m`. aPtr/bPtr are byte addresses
 * of the packed A block (ceil(mc/MR) panels of MR×kc) and B block (ceil(nc/NR) panels of kc×NR);
 * tile (ir, jr) of the result is stored at cPtr + ir·ldcBytes + jr·bytes, row-major, all MR×NR
 * of it, and with `load` non-zero it is added to what is there. Each element's sum runs over k in
 * order with a multiply then an add, as gemm.ts's TypeScript kernel does; `fused` (float32 only)
 * uses f32x4.relaxed_madd instead.
 */
export function addMacro(m: ModuleBuilder, tile: TileShape, precision: Precision, fused: boolean): void {
  const { mr, nr } = tile, { bytes, lanes } = precision;
  if (!Number.isInteger(mr) || mr < 1 || !Number.isInteger(nr) || nr < lanes || nr % lanes !== 0 || (fused && precision !== F32)) {
    throw new RangeError(`addMacro: bad tile ${mr}x${nr} for ${precision.name}${fused ? ' fused' : ''}`);
  }
  const vecs = nr / lanes; // vectors per row of the tile
  const i32 = ValType.i32;
  const f = m.addFunction('macro', new Array<ValType>(8).fill(i32), []);
  const [kc, mc, nc, aPtr, bPtr, cPtr, ldc, load] = f.paramTuple(8);
  const jcol = f.local(i32), bPanel = f.local(i32), irow = f.local(i32), aPanel = f.local(i32);
  const ap = f.local(i32), bp = f.local(i32), p = f.local(i32), row = f.local(i32), from = f.local(i32);
  const acc: Local[] = [];
  for (let i = 0; i < mr * vecs; i++) acc.push(f.local(ValType.v128));
  const b: Local[] = [];
  for (let v = 0; v < vecs; v++) b.push(f.local(ValType.v128));
  const a = f.local(ValType.v128);

  const addTo = (x: Local, y: Local, target: Local): void => { // target += x·y
    if (fused) f.get(x).get(y).get(target).simd(SimdOp.f32x4_relaxed_madd).set(target);
    else f.get(target).get(x).get(y).simd(precision.mul).simd(precision.add).set(target);
  };
  const increment = (l: Local, by: number): void => { f.get(l).i32(by).op(Op.i32_add).set(l); };

  // for (jcol = 0, bPanel = bPtr; jcol < nc; jcol += NR, bPanel += kc·NR·bytes)
  f.i32(0).set(jcol).get(bPtr).set(bPanel);
  f.block(() => f.loop(() => {
    f.get(jcol).get(nc).op(Op.i32_ge_u).brIf(1);
    // for (irow = 0, aPanel = aPtr; irow < mc; irow += MR, aPanel += kc·MR·bytes)
    f.i32(0).set(irow).get(aPtr).set(aPanel);
    f.block(() => f.loop(() => {
      f.get(irow).get(mc).op(Op.i32_ge_u).brIf(1);
      // The tile's first row in C: row = cPtr + irow·ldc + jcol·bytes; one row of C per ldc bytes.
      f.get(cPtr).get(irow).get(ldc).op(Op.i32_mul).op(Op.i32_add).get(jcol).i32(bytes).op(Op.i32_mul).op(Op.i32_add).set(row);
      for (const c of acc) f.v128Zero().set(c);
      f.block(() => { // with `load`, start from the tile in C
        f.get(load).op(Op.i32_eqz).brIf(0).get(row).set(from);
        for (let i = 0; i < mr; i++) {
          for (let v = 0; v < vecs; v++) f.get(from).simdMemory(SimdOp.v128_load, 4, 16 * v).set(acc[i * vecs + v]!);
          if (i + 1 < mr) f.get(from).get(ldc).op(Op.i32_add).set(from);
        }
      });
      f.get(aPanel).set(ap).get(bPanel).set(bp).get(kc).set(p);
      // The k loop (kc >= 1): one row of B's panel, one column of A's, MR·NR/lanes multiply-adds.
      f.loop(() => {
        for (let v = 0; v < vecs; v++) f.get(bp).simdMemory(SimdOp.v128_load, 4, 16 * v).set(b[v]!);
        for (let i = 0; i < mr; i++) {
          f.get(ap).simdMemory(precision.splat, Math.log2(bytes), bytes * i).set(a);
          for (let v = 0; v < vecs; v++) addTo(a, b[v]!, acc[i * vecs + v]!);
        }
        increment(ap, bytes * mr);
        increment(bp, bytes * nr);
        f.get(p).i32(1).op(Op.i32_sub).tee(p).brIf(0);
      });
      for (let i = 0; i < mr; i++) {
        for (let v = 0; v < vecs; v++) f.get(row).get(acc[i * vecs + v]!).simdMemory(SimdOp.v128_store, 4, 16 * v);
        if (i + 1 < mr) f.get(row).get(ldc).op(Op.i32_add).set(row);
      }
      f.get(ap).set(aPanel); // the k loop left ap at the next panel of A
      increment(irow, mr);
      f.br(0);
    }));
    f.get(bp).set(bPanel); // and bp at the next panel of B
    increment(jcol, nr);
    f.br(0);
  }));
}
