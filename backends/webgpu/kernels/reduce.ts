// Sum and max over any set of axes of a strided view into a contiguous output. The kept axes
// and the reduced axes are each coalesced, then one of two generated shapes runs:
//  - one invocation per output, nested loops over the reduced axes (many outputs, or short
//    reductions: e.g. a bias gradient, 784 outputs of 64 terms);
//  - one workgroup per output, 64 invocations striding over the reduction and a tree in
//    workgroup memory (few outputs of long reductions: a loss summed over a whole batch), so
//    a scalar sum is not left to a single invocation.
import type { ReduceOp } from '../../../engine/backend.js';
import { linearGroup, type Dispatch } from '../queue.js';
import { coalesce, type GpuView } from './elementwise.js';
import { ceilDiv, entry, header, Params } from './wgsl.js';

const WORKGROUP = 64;

const identity = { sum: '0.0', max: 'negInfF()' } as const;
const combine = {
  sum: (acc: string, v: string) => `${acc} + ${v}`,
  // NaN wins, as in the CPU backend.
  max: (acc: string, v: string) => `select(${acc}, ${v}, ${v} > ${acc} || ${v} != ${v})`,
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
  return `${header([{ name: 'X', access: 'read' }, { name: 'O', access: 'read_write' }])}
${entry([WORKGROUP])} {
  let o = (${linearGroup}) * ${WORKGROUP}u + lid;
  if (o >= P[0]) { return; }
  ${keptBase(layout)}
  var acc = ${identity[op]};
  ${body}
  O[o] = acc;
}`;
}

function workgroupPerOutput(op: ReduceOp, layout: Layout): string {
  const r0 = reducedStart(layout), q = layout.reduced.length;
  const walk: string[] = ['var rest = t; var at = base;'];
  for (let d = q - 1; d >= 0; d--)
    walk.push(`{ let c = rest % P[${r0 + d}]; rest = rest / P[${r0 + d}]; at += c * P[${r0 + q + d}]; }`);
  return `${header([{ name: 'X', access: 'read' }, { name: 'O', access: 'read_write' }])}
var<workgroup> partial: array<f32, ${WORKGROUP}>;
${entry([WORKGROUP])} {
  let o = ${linearGroup};
  ${keptBase(layout)}
  var acc = ${identity[op]};
  for (var t = lid; t < P[1]; t += ${WORKGROUP}u) {
    ${walk.join('\n    ')}
    acc = ${combine[op]('acc', 'X[at]')};
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var half = ${WORKGROUP / 2}u; half > 0u; half = half / 2u) {
    if (lid < half) { partial[lid] = ${combine[op]('partial[lid]', 'partial[lid + half]')}; }
    workgroupBarrier();
  }
  if (lid == 0u) { O[o] = partial[0]; }
}`;
}

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
  const layout: Layout = { kept: kept.dims, keptStrides: kept.strides[0]!, reduced: reduced.dims, reducedStrides: reduced.strides[0]! };
  const params = new Params().u32(outCount, reduceCount, x.offset, ...layout.kept, ...layout.keptStrides, ...layout.reduced, ...layout.reducedStrides).build();
  const cooperative = reduceCount >= 256 && outCount * WORKGROUP <= 65536;
  return {
    source: cooperative ? workgroupPerOutput(op, layout) : threadPerOutput(op, layout),
    buffers: [x.buffer, out],
    params,
    groups: cooperative ? outCount : ceilDiv(outCount, WORKGROUP),
  };
}
