// Strided elementwise kernels generated from one template, as backends/cpu/elementwise.ts does
// for JavaScript: a table of WGSL expressions in a, b and the scalar p, and one generator that
// walks any strided layout (shape, strides and offsets in the parameter block). Axes that are
// contiguous in every operand are merged first, so most calls become a rank-1 loop, and the
// shader is specialised on the merged rank only (not on sizes): few pipelines, reused.
import type { BinaryOp, UnaryOp } from '../../../engine/backend.js';
import type { Dispatch } from '../queue.js';
import { ceilDiv, elementLoop, elementsPerInvocation, entry, header, Params } from './wgsl.js';

/** A view as the kernels see it: a buffer plus shape, strides and offset in elements. */
export interface GpuView {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

export const unaryWgsl: Record<UnaryOp, string> = {
  copy: 'a',
  neg: '-a',
  exp: 'exp(a)',
  log: 'log(a)',
  sqrt: 'sqrt(a)',
  abs: 'abs(a)',
  sign: 'sign(a)',
  square: 'a * a',
  reciprocal: '1.0 / a',
  relu: 'select(0.0, a, a > 0.0)',
  step: 'select(0.0, 1.0, a > 0.0)',
  // Both branches are evaluated by select(); the chosen one never overflows.
  sigmoid: 'select(exp(a) / (1.0 + exp(a)), 1.0 / (1.0 + exp(-a)), a >= 0.0)',
  softplus: 'max(a, 0.0) + log1p(exp(-abs(a)))',
  logSigmoid: 'min(a, 0.0) - log1p(exp(-abs(a)))',
  // Some drivers compute tanh from exp and return NaN past |a| ~ 44; tanh(+-15) is +-1 in f32.
  tanh: 'tanh(clamp(a, -15.0, 15.0))',
  scale: 'a * p',
  shift: 'a + p',
  pow: 'powJs(a, p)',
};

export const binaryWgsl: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  maximum: 'select(b, a, a >= b || b != b)',
  minimum: 'select(b, a, a <= b || b != b)',
  greater: 'select(0.0, 1.0, a > b)',
};

/** Helpers some expressions use, matching JavaScript's Math where WGSL differs. */
const helpers = `
fn log1p(x: f32) -> f32 { let u = 1.0 + x; if (u == 1.0) { return x; } return log(u) * x / (u - 1.0); }
// Math.pow: integer powers of negative bases, x^0 = 1 (WGSL's pow is exp2(p log2 x)).
fn powJs(x: f32, p: f32) -> f32 {
  if (p == 0.0) { return 1.0; }
  let m = pow(abs(x), p);
  if (x >= 0.0) { return m; }
  if (p != floor(p)) { return nanF(); }
  return select(m, -m, (abs(p) % 2.0) == 1.0);
}`;

/**
 * Merge adjacent axes contiguous in every operand and drop size-1 axes (the same rule as the
 * CPU backend's coalesce), so layouts reduce to the smallest rank.
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): { dims: number[]; strides: number[][] } {
  const dims: number[] = [];
  const out: number[][] = strides.map(() => []);
  shape.forEach((size, axis) => {
    if (size === 1) return;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => out[k]![last] === s[axis]! * size)) {
      dims[last]! *= size;
      strides.forEach((s, k) => (out[k]![last] = s[axis]!));
    } else {
      dims.push(size);
      strides.forEach((s, k) => out[k]!.push(s[axis]!));
    }
  });
  return { dims, strides: out };
}

const WORKGROUP = 64;
const names = ['O', 'A', 'B'] as const;

/**
 * The template: each invocation walks a few elements (wgsl.ts, elementLoop); index
 * decomposition unrolled for `rank`. With `dims` the sizes are literals: a division by a
 * runtime size is a scalar `div` per lane on llvmpipe (~25 cycles), by a constant a multiply.
 * Bias-add over [64, 32, 784] (rank 3) took 15 ms with runtime sizes.
 */
function source(expression: string, inputs: number, rank: number, dims: readonly number[] | null): string {
  const operands = names.slice(0, inputs + 1);
  // Parameter block: n, shape[rank], then per operand: offset, strides[rank]; then p, then the
  // elements per invocation (wgsl.ts, elementsPerInvocation).
  const base = (k: number): number => 1 + rank + k * (rank + 1);
  const pIndex = base(operands.length);
  const size = (d: number): string => (dims ? `${dims[d]!}u` : `P[${1 + d}]`);
  const walk: string[] = [];
  for (let d = rank - 1; d >= 0; d--) {
    // The outermost coordinate is what is left: no division.
    walk.push(d === 0 ? '    { let c = rest;' : `    { let c = rest % ${size(d)}; rest = rest / ${size(d)};`);
    walk.push(`      ${operands.map((_, k) => `i${k} += c * P[${base(k) + 1 + d}];`).join(' ')} }`);
  }
  const loads = operands.slice(1).map((name, k) => `let ${name.toLowerCase()} = ${name}[i${k + 1}];`).join(' ');
  return `${header(operands.map((name, k) => ({ name, access: k === 0 ? 'read_write' : 'read' })))}
${helpers}
${entry([WORKGROUP])} {
  let p = pf(${pIndex}u);
  ${elementLoop(WORKGROUP, `P[${pIndex + 1}]`, 'P[0]')}
    var rest = index;
    ${operands.map((_, k) => `var i${k} = P[${base(k)}];`).join(' ')}
${walk.join('\n')}
    ${loads}
    O[i0] = ${expression};
  }
}`;
}

/** Elements from which sizes are baked: big tensors, whose shapes a training step repeats. */
const BAKE_MIN_ELEMENTS = 1 << 16;

/** Generated sources by (expression, inputs, rank, baked sizes): built and hashed once. */
const sources = new Map<string, string>();

/** A dispatch computing `expression` of 0-2 strided inputs into a strided out, all of out's shape. */
export function elementwise(expression: string, out: GpuView, inputs: readonly GpuView[], p: number): Dispatch | null {
  const n = out.shape.reduce((a, d) => a * d, 1);
  if (n === 0) return null;
  const all = [out, ...inputs];
  const { dims, strides } = coalesce(out.shape, all.map((v) => v.strides));
  const params = new Params().u32(n, ...dims);
  all.forEach((v, k) => params.u32(v.offset, ...strides[k]!));
  const per = elementsPerInvocation(n, WORKGROUP);
  params.f32(p).u32(per);
  const baked = n >= BAKE_MIN_ELEMENTS && dims.length > 1 ? dims : null;
  const key = `${expression}|${inputs.length}|${dims.length}|${baked ? baked.join(',') : ''}`;
  let code = sources.get(key);
  if (code === undefined) sources.set(key, (code = source(expression, inputs.length, dims.length, baked)));
  return {
    source: code,
    buffers: all.map((v) => v.buffer),
    params: params.build(),
    groups: ceilDiv(n, WORKGROUP * per),
  };
}
