// Sum and max over any set of axes of a strided view into a contiguous output. The kept axes
// and the reduced axes are each coalesced, then one of two generated shapes runs:
//  - one invocation per output, nested loops over the reduced axes (many outputs, or short
//    reductions: e.g. a bias gradient, 784 outputs of 64 terms);
//  - one workgroup per output, 64 invocations striding over the reduction and a tree in
//    workgroup memory (few outputs of long reductions: a loss summed over a whole batch), so
//    a scalar sum is not left to a single invocation.
import type { ReduceOp } from '../../../engine/backend.js';
import { linearGroup, type Dispatch } from '../queue.js';
import { coalesce } from '../../strides.js';
import { vec4Strides, walksVec4, type GpuView } from './elementwise.js';
import { bakeWords, cachedSource, ceilDiv, entry, header, Params } from './wgsl.js';

const WORKGROUP = 64;

const identity = { sum: '0.0', max: 'negInfF()' } as const;
const combine = {
  sum: (acc: string, v: string) => `${acc} + ${v}`,
  // NaN wins, as in the CPU backend. `|`, not `||`, which takes scalar bools only.
  max: (acc: string, v: string) => `select(${acc}, ${v}, (${v} > ${acc}) | (${v} != ${v}))`,
} as const;

/** Parameter block: outCount, reduceCount, x offset, kept dims+strides, reduced dims+strides. */
interface Layout { kept: number[]; keptStrides: number[]; reduced: number[]; reducedStrides: number[] }

function keptBase(layout: Layout): string {
  // Output index -> x offset of its first reduced element, innermost kept axis fastest.
  const lines = ['var rest = o; var base = P[2];'];
  const k = layout.kept.length;
  for (let d = k - 1; d >= 0; d--)
    lines.push(`{ let c = rest % P[${3 + d}]; rest = rest / P[${3 + d}]; base += c * P[${3 + k + d}]; }`);
  return lines.join('\n  ');
}

function reducedStart(layout: Layout): number {
  return 3 + 2 * layout.kept.length;
}

function threadPerOutput(op: ReduceOp, layout: Layout): string {
  const r0 = reducedStart(layout), q = layout.reduced.length;
  // Nested loops, outermost reduced axis first; `at` is the running x offset.
  let loops = '', close = '', at = 'base';
  for (let d = 0; d < q; d++) {
    loops += `for (var j${d} = 0u; j${d} < P[${r0 + d}]; j${d}++) { let at${d} = ${at} + j${d} * P[${r0 + q + d}];\n    `;
    at = `at${d}`;
    close += ' }';
  }
  const body = `${loops}acc = ${combine[op]('acc', `X[${at}]`)};${close}`;
  return `${entry([WORKGROUP])} {
  let o = (${linearGroup}) * ${WORKGROUP}u + lid;
  if (o >= P[0]) { return; }
  ${keptBase(layout)}
  var acc = ${identity[op]};
  ${body}
  O[o] = acc;
}`;
}

/**
 * Bodies below go after header() (X, then O). With `vector` X is bound as vec4 and every index
 * counts vec4s: the innermost reduced axis is contiguous, 4-aligned and a multiple of 4 long
 * (reduce() checks), so each invocation step adds 4 elements and the 4 lanes of its
 * accumulator are combined before the tree.
 */
function workgroupPerOutput(op: ReduceOp, layout: Layout, vector: boolean): string {
  const r0 = reducedStart(layout), q = layout.reduced.length;
  const walk: string[] = ['var rest = t; var at = base;'];
  for (let d = q - 1; d >= 0; d--)
    walk.push(`{ let c = rest % P[${r0 + d}]; rest = rest / P[${r0 + d}]; at += c * P[${r0 + q + d}]; }`);
  const lanes = vector ? [0, 1, 2].reduce((acc, i) => combine[op](acc, `acc[${i + 1}]`), 'acc[0]') : 'acc';
  return `var<workgroup> partial: array<f32, ${WORKGROUP}>;
${entry([WORKGROUP])} {
  let o = ${linearGroup};
  ${keptBase(layout)}
  var acc = ${vector ? `vec4<f32>(${identity[op]})` : identity[op]};
  for (var t = lid; t < P[1]; t += ${WORKGROUP}u) {
    ${walk.join('\n    ')}
    acc = ${combine[op]('acc', 'X[at]')};
  }
  partial[lid] = ${lanes};
  workgroupBarrier();
  for (var half = ${WORKGROUP / 2}u; half > 0u; half = half / 2u) {
    if (lid < half) { partial[lid] = ${combine[op]('partial[lid]', 'partial[lid + half]')}; }
    workgroupBarrier();
  }
  if (lid == 0u) { O[o] = partial[0]; }
}`;
}

/** Elements from which a reduction's sizes are baked into its shader (all words but x's offset). */
const BAKE_MIN_ELEMENTS = 1 << 16;
const OFFSET_WORD = 2;

/** Reduce x over `axes` into out (contiguous, the kept shape with those axes as 1). */
export function reduce(op: ReduceOp, x: GpuView, axes: readonly number[], out: GPUBuffer): Dispatch | null {
  const isReduced = (i: number): boolean => axes.includes(i);
  const keptShape = x.shape.map((d, i) => (isReduced(i) ? 1 : d));
  const outCount = keptShape.reduce((a, d) => a * d, 1);
  if (outCount === 0) return null;
  const reduceCount = x.shape.reduce((a, d, i) => (isReduced(i) ? a * d : a), 1);
  const outStrides: number[] = [];
  for (let i = keptShape.length - 1, s = 1; i >= 0; i--) { outStrides[i] = s; s *= keptShape[i]!; }
  const kept = coalesce(keptShape, [x.strides, outStrides]);
  const reduced = coalesce(x.shape.map((d, i) => (isReduced(i) ? d : 1)), [x.strides]);
  const cooperative = reduceCount >= 256 && outCount * WORKGROUP <= 65536;
  // The vector form (a bias gradient: [64, 32, 28, 28] summed over all but the channels):
  // the innermost reduced axis walked in vec4s, kept and reduced strides counted in vec4s.
  const strides = [...kept.strides[0]!, ...reduced.strides[0]!], inner = strides.length - 1;
  const vector = cooperative && reduced.dims.length > 0 && reduced.dims[reduced.dims.length - 1]! % 4 === 0 && walksVec4(strides, inner, x.offset);
  const walk = vector ? vec4Strides(strides, inner) : strides;
  const layout: Layout = {
    kept: kept.dims, keptStrides: walk.slice(0, kept.dims.length),
    reduced: vector ? reduced.dims.map((size, d) => (d === reduced.dims.length - 1 ? size / 4 : size)) : reduced.dims,
    reducedStrides: walk.slice(kept.dims.length),
  };
  const params = new Params().u32(outCount, vector ? reduceCount / 4 : reduceCount, vector ? x.offset / 4 : x.offset,
    ...layout.kept, ...layout.keptStrides, ...layout.reduced, ...layout.reducedStrides).build();
  // Literal sizes turn the index walk's divisions into multiplies (~25 cycles a lane each on
  // llvmpipe otherwise). With the vector form they made the bias gradient above (3 per training
  // step) several times faster (docs/performance-log.md, "Vector (vec4) storage access on
  // lavapipe").
  const bake = outCount * reduceCount >= BAKE_MIN_ELEMENTS;
  const key = `reduce|${op}|${cooperative}|${vector}|${layout.kept.length},${layout.reduced.length}|${bake ? [...params].filter((_, i) => i !== OFFSET_WORD).join(',') : ''}`;
  const source = cachedSource(key, () => {
    const body = cooperative ? workgroupPerOutput(op, layout, vector) : threadPerOutput(op, layout);
    return `${header([{ name: 'X', access: 'read', type: vector ? 'vec4<f32>' : 'f32' }, { name: 'O', access: 'read_write' }])}
${bake ? bakeWords(body, params, [...params.keys()].filter((i) => i !== OFFSET_WORD)) : body}`;
  });
  return {
    source, buffers: [x.buffer, out], params, groups: cooperative ? outCount : ceilDiv(outCount, WORKGROUP),
    label: `reduce ${op} ${cooperative ? 'a workgroup per output' : 'an invocation per output'}${vector ? ' (vec4)' : ''}`,
  };
}
