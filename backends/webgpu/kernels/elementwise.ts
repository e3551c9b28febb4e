// Strided elementwise kernels generated from one template, as backends/cpu/elementwise.ts does
// for JavaScript: a table of WGSL expressions in a, b and the scalar p, and one generator that
// walks any strided layout (shape, strides and offsets in the parameter block). Axes that are
// contiguous in every operand are merged first, so most calls become a rank-1 loop, and the
// shader is specialised on the merged rank only (not on sizes): few pipelines, reused.
//
// Vector form: when the innermost merged axis is a multiple of 4 long and every operand either
// walks it contiguously from a 4-aligned start or broadcasts along it, each invocation step
// handles 4 elements: contiguous operands are bound as vec4 arrays, broadcast ones are loaded
// once and splatted. llvmpipe pays ~10 instructions per lane for every storage access,
// whatever its width, so a vec4 access moves 4 floats for the price of one
// (docs/performance-log.md, "Vector (vec4) storage access on lavapipe").
// The expressions are written over the alias V (f32 or vec4<f32>) so one table serves both.
import type { BinaryOp, UnaryOp } from '../../../engine/backend.js';
import { coalesce } from '../../strides.js';
import type { Dispatch } from '../queue.js';
import { cachedSource, ceilDiv, elementLoop, elementsPerInvocation, entry, header, Params } from './wgsl.js';

/** A view as the kernels see it: a buffer plus shape, strides and offset in elements. */
export interface GpuView {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

/**
 * WGSL for each op over `a` (and `b`) of type V and the f32 scalar p. Constants are written V(c):
 * WGSL does not splat a scalar into a vector for comparisons or builtins like max and clamp.
 */
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
  relu: 'select(V(0.0), a, a > V(0.0))',
  step: 'select(V(0.0), V(1.0), a > V(0.0))',
  // Both branches are evaluated by select(); the chosen one never overflows.
  sigmoid: 'select(exp(a) / (1.0 + exp(a)), 1.0 / (1.0 + exp(-a)), a >= V(0.0))',
  softplus: 'max(a, V(0.0)) + log1p(exp(-abs(a)))',
  logSigmoid: 'min(a, V(0.0)) - log1p(exp(-abs(a)))',
  // Some drivers compute tanh from exp and return NaN past |a| ~ 44; tanh(+-15) is +-1 in f32.
  tanh: 'tanh(clamp(a, V(-15.0), V(15.0)))',
  scale: 'a * p',
  shift: 'a + p',
  pow: 'powJs(a, p)',
};

export const binaryWgsl: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  // `|`, not `||`: WGSL's `||` takes scalar bools only.
  maximum: 'select(b, a, (a >= b) | (b != b))',
  minimum: 'select(b, a, (a <= b) | (b != b))',
  greater: 'select(V(0.0), V(1.0), a > b)',
  keepWherePositive: 'select(V(0.0), a, b > V(0.0))',
};

/** Expressions that call powJs, which takes f32 only: they keep the scalar form. */
const scalarOnly = (expression: string): boolean => expression.includes('powJs');

/** Helpers some expressions use, matching JavaScript's Math where WGSL differs. */
const helpers = `
// log(1 + x) without losing x when 1 + x rounds to 1 (where the quotient is 0 / 0 and unused).
fn log1p(x: V) -> V { let u = 1.0 + x; return select(log(u) * x / (u - 1.0), x, u == V(1.0)); }
// Math.pow: integer powers of negative bases, x^0 = 1 (WGSL's pow is exp2(p log2 x)).
fn powJs(x: f32, p: f32) -> f32 {
  if (p == 0.0) { return 1.0; }
  let m = pow(abs(x), p);
  if (x >= 0.0) { return m; }
  if (p != floor(p)) { return nanF(); }
  return select(m, -m, (abs(p) % 2.0) == 1.0);
}`;

/**
 * Whether a walk with these strides (in floats) from `offset` can go 4 floats at a time along
 * axis `inner`: contiguous there, the start and every other stride multiples of 4. The vector
 * forms here and in reduce.ts bind such an operand as vec4.
 */
export const walksVec4 = (strides: readonly number[], inner: number, offset: number): boolean =>
  strides[inner] === 1 && offset % 4 === 0 && strides.every((stride, d) => d === inner || stride % 4 === 0);

/** Those strides counted in vec4s: the contiguous axis keeps stride 1. */
export const vec4Strides = (strides: readonly number[], inner: number): number[] =>
  strides.map((stride, d) => (d === inner ? stride : stride / 4));

const WORKGROUP = 64;
const names = ['O', 'A', 'B'] as const;

/**
 * How an operand meets the vector form: 'scalar' (the scalar form, all operands), 'vec4'
 * (bound as vec4, strides and offset in vec4s), 'splat' (f32, constant along the innermost axis).
 */
type Access = 'scalar' | 'vec4' | 'splat';

/**
 * The template: each invocation walks a few elements (wgsl.ts, elementLoop), 4 at a time in
 * the vector form; index decomposition unrolled for `rank`. With `dims` the sizes are
 * literals: a division by a runtime size is a scalar `div` per lane on llvmpipe (~25 cycles),
 * by a constant a multiply. Bias-add over [64, 32, 784] (rank 3) took 15 ms with runtime sizes.
 */
function source(expression: string, access: readonly Access[], rank: number, dims: readonly number[] | null): string {
  const operands = names.slice(0, access.length);
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
  const loads = operands.slice(1).map((name, k) => `let ${name.toLowerCase()} = V(${name}[i${k + 1}]);`).join(' ');
  const vector = access[0] === 'vec4';
  return `${header(operands.map((name, k) => ({ name, access: k === 0 ? 'read_write' : 'read', type: access[k] === 'vec4' ? 'vec4<f32>' : 'f32' })))}
alias V = ${vector ? 'vec4<f32>' : 'f32'};
${helpers}
${entry([WORKGROUP])} {
  let p = pf(${pIndex}u);
  ${elementLoop(WORKGROUP, `P[${pIndex + 1}]`, 'P[0]')}
    var rest = index;
    ${operands.map((_, k) => `var i${k} = P[${base(k)}];`).join(' ')}
${walk.join('\n')}
    ${loads}
    O[i0] = V(${expression});
  }
}`;
}

/** Elements from which sizes are baked: big tensors, whose shapes a training step repeats. */
const BAKE_MIN_ELEMENTS = 1 << 16;

/**
 * Each operand's access in the vector form of a coalesced layout, or null where it does not
 * apply: out and every input must walk the innermost axis (a multiple of 4 long) contiguously
 * with 4-aligned offset and outer strides, or (inputs only) not move along it at all.
 */
function vectorAccess(expression: string, dims: readonly number[], strides: readonly (readonly number[])[], offsets: readonly number[]): Access[] | null {
  const last = dims.length - 1;
  if (last < 0 || dims[last]! % 4 !== 0 || scalarOnly(expression)) return null;
  const access = strides.map((s, k): Access | null => {
    if (s[last] === 0 && k > 0) return 'splat';
    return walksVec4(s, last, offsets[k]!) ? 'vec4' : null;
  });
  return access.every((a) => a !== null) ? (access as Access[]) : null;
}

/** A dispatch computing `expression` of 0-2 strided inputs into a strided out, all of out's shape. */
export function elementwise(expression: string, out: GpuView, inputs: readonly GpuView[], p: number): Dispatch | null {
  const n = out.shape.reduce((a, d) => a * d, 1);
  if (n === 0) return null;
  const all = [out, ...inputs];
  const { dims, strides } = coalesce(out.shape, all.map((v) => v.strides));
  const offsets = all.map((v) => v.offset);
  const vector = vectorAccess(expression, dims, strides, offsets);
  const access = vector ?? all.map((): Access => 'scalar');
  // In the vector form indices count vec4s along the innermost axis and in vec4-bound operands.
  const last = dims.length - 1;
  const walkDims = vector ? dims.map((size, d) => (d === last ? size / 4 : size)) : dims;
  const count = vector ? n / 4 : n;
  const params = new Params().u32(count, ...walkDims);
  all.forEach((_, k) => (access[k] === 'vec4'
    ? params.u32(offsets[k]! / 4, ...vec4Strides(strides[k]!, last))
    : params.u32(offsets[k]!, ...strides[k]!)));
  const per = elementsPerInvocation(count, WORKGROUP);
  params.f32(p).u32(per);
  const baked = count >= BAKE_MIN_ELEMENTS && walkDims.length > 1 ? walkDims : null;
  const key = `elementwise|${expression}|${access.join(',')}|${walkDims.length}|${baked ? baked.join(',') : ''}`;
  return {
    source: cachedSource(key, () => source(expression, access, walkDims.length, baked)),
    buffers: all.map((v) => v.buffer),
    params: params.build(),
    groups: ceilDiv(count, WORKGROUP * per),
    label: `elementwise ${expression}${vector ? ' (vec4)' : ''}`,
  };
}
