// The fused silent ELBO's per-pixel epilogue (../silent-elbo-epilogue.ts) in WebAssembly: the
// closed forms of pixelForms (engine/ops/silent-elbo-pixel.ts), parsed into trees and emitted as
// f64x2 instructions, two pixels of a row at a time (a row of odd length ends with one scalar
// pixel). The arithmetic is float64 in JavaScript's order and log is the imported Math.log, so
// the values, partials and per-example sums (added lane by lane, in pixel order) are the bits
// of the generated JavaScript loop, which test/cpu-wasm.test.ts checks. Operands are in the
// CPU backend's heap (../heap.ts), addressed in bytes; a module is built per form, set of
// terms, element type and whether partials are written, once per thread.
import type { DType } from '../../../engine/dtype.js';
import { silentElboTerms } from '../../../engine/ops/silent-elbo.js';
import { letsFor, parsePixelExpression, pixelForms, type PixelNode } from '../../../engine/ops/silent-elbo-pixel.js';
import { HEAP_MAX_PAGES } from '../heap.js';
import { forEachPairInRows, lanes, type Lanes } from './f64-lanes.js';
import { ModuleBuilder, type Local } from './module.js';
import { Op, SimdOp, ValType } from './opcodes.js';

/**
 * Examples [rowStart, rowEnd) of the epilogue. `k` pixels a row, `plane` = B·k elements per
 * term; the rest are byte addresses in the heap: the contractions (term n's plane at sums +
 * n·plane·size), x, the biases (bA unused by the fixed form), the partials (written only by a
 * module built to write them) and the per-example sums.
 */
export type EpilogueRows = (rowStart: number, rowEnd: number, k: number, plane: number, sigma2: number,
  sums: number, x: number, bMu: number, bA: number, partials: number, result: number) => void;

/** The names a tree reads. */
function namesIn(node: PixelNode, into: Set<string>): Set<string> {
  if (node.kind === 'name') into.add(node.name);
  else if (node.kind === 'negate' || node.kind === 'log') namesIn(node.operand, into);
  else if (node.kind === 'binary') { namesIn(node.left, into); namesIn(node.right, into); }
  return into;
}

/** The module for one form, set of terms (by name, in the order of the sums' planes) and type. */
export function emitEpilogueModule(formName: 'fixed' | 'learnable', termNames: readonly string[], dtype: DType, writesPartials: boolean): Uint8Array<ArrayBuffer> {
  const form = pixelForms[formName];
  const size = dtype === 'float32' ? 4 : 8;
  const m = new ModuleBuilder();
  const log = m.importFunction('env', 'log', [ValType.f64], [ValType.f64]);
  m.importMemory('env', 'memory', 1, HEAP_MAX_PAGES, true);
  const f = m.addFunction('rows', [ValType.i32, ValType.i32, ValType.i32, ValType.i32, ValType.f64, ...new Array<ValType>(6).fill(ValType.i32)], []);
  const [rowStart, rowEnd, k, plane, sigma2, sums, x, bMu, bA, partials, result] = f.paramTuple(11);
  const total = f.local(ValType.f64);
  const scalar = lanes(false, dtype);
  // Term n's contractions and partials start at sums + n·plane·size and partials + n·plane·size.
  const planeBase = (base: Local, n: number): Local => {
    const l = f.local(ValType.i32);
    f.get(base).get(plane).i32(n * size).op(Op.i32_mul).op(Op.i32_add).set(l);
    return l;
  };
  const sumBase = termNames.map((_, n) => planeBase(sums, n));
  const partialBase = writesPartials ? termNames.map((_, n) => planeBase(partials, n)) : [];

  const written = writesPartials ? termNames.map((name) => form.partials[name]) : [];
  const outputs = [form.value, ...written.filter((e): e is string => e !== undefined)];
  const lets = letsFor(form, outputs).map(([name, e]) => [name, parsePixelExpression(e)] as const);
  const value = parsePixelExpression(form.value);
  const partialTrees = written.map((e) => (e === undefined ? null : parsePixelExpression(e)));
  const read = new Set<string>();
  for (const tree of [value, ...lets.map(([, t]) => t), ...partialTrees]) if (tree) namesIn(tree, read);

  /** One pixel (or two) at byte offset `pixel` of its row plane and `column` of the bias rows. */
  const emitPixels = (lane: Lanes, pixel: Local, column: Local): void => {
    const locals = new Map<string, Local>();
    const scratch = f.local(lane.type);
    const emit = (node: PixelNode): void => {
      switch (node.kind) {
        case 'number': lane.constant(f, node.value); return;
        case 'name': {
          const l = locals.get(node.name);
          if (l === undefined) throw new Error(`emitEpilogueModule: ${node.name} is read before it is defined`);
          f.get(l);
          return;
        }
        case 'negate': emit(node.operand); lane.ops.negate(f); return;
        case 'binary': emit(node.left); emit(node.right); lane.ops[node.op](f); return;
        case 'log':
          emit(node.operand);
          if (!lane.vector) { f.call(log); return; }
          f.set(scratch).get(scratch).simdLane(SimdOp.f64x2_extract_lane, 0).call(log).simd(SimdOp.f64x2_splat)
            .get(scratch).simdLane(SimdOp.f64x2_extract_lane, 1).call(log).simdLane(SimdOp.f64x2_replace_lane, 1);
      }
    };
    const define = (name: string, push: () => void): void => {
      const l = f.local(lane.type);
      push();
      f.set(l);
      locals.set(name, l);
    };
    if (read.has('sigma2')) define('sigma2', () => (!lane.vector ? f.get(sigma2) : f.get(sigma2).simd(SimdOp.f64x2_splat)));
    if (read.has('x')) define('x', () => { f.get(x).get(pixel).op(Op.i32_add); lane.load(f); });
    const bias: Record<string, Local> = { Ubar: bMu, Abar: bA };
    for (const { name } of silentElboTerms) {
      if (!read.has(name)) continue;
      const n = termNames.indexOf(name);
      define(name, () => {
        if (n < 0) { lane.constant(f, 0); return; }
        f.get(sumBase[n]!).get(pixel).op(Op.i32_add);
        lane.load(f);
        const biasAt = bias[name];
        if (biasAt === undefined) return;
        f.get(biasAt).get(column).op(Op.i32_add);
        lane.load(f);
        lane.ops['+'](f);
      });
    }
    for (const [name, tree] of lets) define(name, () => emit(tree));
    // total = total + each pixel's value, in pixel order.
    if (!lane.vector) {
      f.get(total);
      emit(value);
      f.op(Op.f64_add).set(total);
    } else {
      emit(value);
      f.set(scratch)
        .get(total).get(scratch).simdLane(SimdOp.f64x2_extract_lane, 0).op(Op.f64_add)
        .get(scratch).simdLane(SimdOp.f64x2_extract_lane, 1).op(Op.f64_add).set(total);
    }
    partialTrees.forEach((tree, n) => {
      f.get(partialBase[n]!).get(pixel).op(Op.i32_add);
      if (tree) emit(tree);
      else lane.constant(f, 0);
      lane.store(f);
    });
  };

  forEachPairInRows(f, rowStart, rowEnd, k, size, (lane, at) => emitPixels(lane, at.element, at.columnBytes), dtype, {
    beforeRow: () => f.f64(0).set(total),
    // result[row] = total, narrowed as the JavaScript loop's store narrows it.
    afterRow: ({ row }) => {
      f.get(result).get(row).i32(size).op(Op.i32_mul).op(Op.i32_add).get(total);
      scalar.store(f);
    },
  });
  return m.encode();
}

const instances = new Map<string, EpilogueRows>();

/** This thread's epilogue for these terms (names, in plane order), built on first use. */
export function epilogueRows(memory: WebAssembly.Memory, form: 'fixed' | 'learnable', termNames: readonly string[], dtype: DType, writesPartials: boolean): EpilogueRows {
  const id = `${form}|${termNames.join(',')}|${dtype}|${writesPartials}`;
  let rows = instances.get(id);
  if (!rows) {
    const module = new WebAssembly.Module(emitEpilogueModule(form, termNames, dtype, writesPartials));
    rows = new WebAssembly.Instance(module, { env: { memory, log: Math.log } }).exports.rows as EpilogueRows;
    instances.set(id, rows);
  }
  return rows;
}
