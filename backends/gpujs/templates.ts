// Kernel source templates for gpu.js. Each returns a `function(...)` string plus the
// constants it reads; shapes, strides and offsets are constants (so a kernel is compiled per
// geometry and cached), per-call scalars (p, AdamW's step sizes) are arguments (so a new
// learning rate or step count never recompiles). gpu.js's WebAssembly mode computes in f32
// and its `/` and `%` are float ops: index arithmetic below is exact for indices < 2^24.
import type { BinaryOp, Conv2dGeometry, UnaryOp } from '../../engine/backend.js';
import type { Constants } from './runtime.js';

/** gpu.js (JavaScript subset) expressions of each pointwise op, in a, b and p. */
export const unaryExpressions: Record<UnaryOp, string> = {
  copy: 'a', neg: '-a', exp: 'Math.exp(a)', log: 'Math.log(a)', sqrt: 'Math.sqrt(a)', abs: 'Math.abs(a)',
  sign: 'Math.sign(a)', square: 'a * a', reciprocal: '1.0 / a', relu: 'a > 0.0 ? a : 0.0', step: 'a > 0.0 ? 1.0 : 0.0',
  // The branches keep exp() from overflowing for large |a|, as on the CPU.
  sigmoid: 'a >= 0.0 ? 1.0 / (1.0 + Math.exp(-a)) : Math.exp(a) / (1.0 + Math.exp(a))',
  softplus: 'a > 0.0 ? a + Math.log1p(Math.exp(-a)) : Math.log1p(Math.exp(a))',
  logSigmoid: 'a < 0.0 ? a - Math.log1p(Math.exp(a)) : -Math.log1p(Math.exp(-a))',
  tanh: 'Math.tanh(a)', scale: 'a * p', shift: 'a + p', pow: 'Math.pow(a, p)',
};

export const binaryExpressions: Record<BinaryOp, string> = {
  add: 'a + b', sub: 'a - b', mul: 'a * b', div: 'a / b',
  maximum: 'a >= b || b !== b ? a : b', minimum: 'a <= b || b !== b ? a : b', greater: 'a > b ? 1.0 : 0.0',
  keepWherePositive: 'b > 0.0 ? a : 0.0',
};

/** A strided operand after coalescing: its per-axis strides and offset. */
export interface Strided { strides: readonly number[]; offset: number }

/**
 * Code that splits the flat cell index `flat` over `shape` (innermost axis fastest) and adds
 * each axis' coordinate times the operand's stride to `idx<name>`; fills in the constants.
 */
function gather(flat: string, tag: string, shape: readonly number[], operands: Record<string, Strided>, constants: Constants): string {
  const names = Object.keys(operands);
  let code = `let rem${tag} = ${flat};\n`;
  for (const n of names) {
    constants[`${n}o`] = operands[n]!.offset;
    code += `let idx${n} = this.constants.${n}o;\n`;
  }
  for (let d = shape.length - 1; d >= 0; d--) {
    constants[`${tag}n${d}`] = shape[d]!;
    const c = `c${tag}${d}`;
    code += `let ${c} = rem${tag} % this.constants.${tag}n${d};\nrem${tag} = Math.floor(rem${tag} / this.constants.${tag}n${d});\n`;
    for (const n of names) {
      constants[`${n}s${d}`] = operands[n]!.strides[d]!;
      code += `idx${n} += ${c} * this.constants.${n}s${d};\n`;
    }
  }
  return code;
}

export interface Template { source: string; constants: Constants }

/** out[i] = f(a[ia], b[ib]) over a coalesced shape; `p` is an argument. */
export function elementwise(expression: string, shape: readonly number[], a: Strided, b: Strided | null): Template {
  const constants: Constants = {};
  const operands: Record<string, Strided> = b ? { A: a, B: b } : { A: a };
  const body = gather('this.thread.x', '', shape, operands, constants);
  const reads = b ? 'const a = x[idxA];\nconst b = y[idxB];' : 'const a = x[idxA];';
  return { source: `function(x, y, p) {\n${body}${reads}\nreturn ${expression};\n}`, constants };
}

/** A constant value everywhere (fill's contiguous case). */
export const fill: Template = { source: 'function(p) {\nreturn p;\n}', constants: {} };

/**
 * Copy-on-write of a strided region: cell e of the storage takes values[view index] when e
 * lies in the view (offset + sum c_d s_d with 0 <= c_d < n_d), else keeps old[e]. Axes are
 * visited by decreasing stride, which decodes e uniquely for non-overlapping views (slices,
 * transposes, permutations of contiguous memory: every out view the engine makes).
 */
export function writeView(shape: readonly number[], strides: readonly number[], offset: number): Template {
  const axes = shape.map((_, d) => d).sort((p, q) => strides[q]! - strides[p]!);
  const constants: Constants = { offset };
  let viewStride = 1;
  const contiguous: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) { contiguous[d] = viewStride; viewStride *= shape[d]!; }
  let code = 'let r = this.thread.x - this.constants.offset;\nlet vi = 0;\nlet inside = r >= 0 ? 1.0 : 0.0;\n';
  axes.forEach((d, k) => {
    Object.assign(constants, { [`n${k}`]: shape[d]!, [`s${k}`]: strides[d]!, [`v${k}`]: contiguous[d]! });
    code += `let c${k} = Math.floor(r / this.constants.s${k});\nif (c${k} >= this.constants.n${k}) { inside = 0.0; }\n`
      + `r -= c${k} * this.constants.s${k};\nvi += c${k} * this.constants.v${k};\n`;
  });
  code += 'if (r !== 0) { inside = 0.0; }\nif (inside > 0.5) { return values[vi]; }\nreturn old[this.thread.x];\n';
  return { source: `function(values, old) {\n${code}}`, constants };
}

/**
 * Reduce x over `reduced` axes for each cell of the kept axes (shape/strides of each part).
 * Sums are Kahan-compensated so f32 accumulation of long rows stays near the CPU's float64.
 */
export function reduce(op: 'sum' | 'max', kept: readonly number[], keptStrides: readonly number[], reduced: readonly number[], reducedStrides: readonly number[], offset: number): Template {
  const constants: Constants = { count: reduced.reduce((n, d) => n * d, 1) };
  const outer = gather('this.thread.x', 'K', kept, { X: { strides: keptStrides, offset } }, constants);
  const inner = gather('j', 'R', reduced, { Y: { strides: reducedStrides, offset: 0 } }, constants);
  const step = op === 'sum'
    ? 'const term = v - carry;\nconst next = acc + term;\ncarry = (next - acc) - term;\nacc = next;'
    : 'if (v > acc || v !== v) { acc = v; }';
  return {
    source: `function(x, init) {\n${outer}let acc = init;\nlet carry = 0.0;\nfor (let j = 0; j < this.constants.count; j++) {\n${inner}`
      + `const v = x[idxX + idxY];\n${step}\n}\nreturn acc;\n}`,
    constants,
  };
}

/** out[m, n] = sum_k a[m, k] b[k, n]; a transposed operand is read as stored K x M (or N x K). */
export function matmul(M: number, N: number, K: number, transA: boolean, transB: boolean, aOffset: number, bOffset: number): Template {
  const aIndex = transA ? 'k * this.constants.M + m' : 'm * this.constants.K + k';
  const bIndex = transB ? 'n * this.constants.K + k' : 'k * this.constants.N + n';
  return {
    source: `function(a, b) {\nconst m = Math.floor(this.thread.x / this.constants.N);\nconst n = this.thread.x - m * this.constants.N;\n`
      + `let sum = 0.0;\nfor (let k = 0; k < this.constants.K; k++) {\nsum += a[this.constants.ao + ${aIndex}] * b[this.constants.bo + ${bIndex}];\n}\nreturn sum;\n}`,
    constants: { M, N, K, ao: aOffset, bo: bOffset },
  };
}

const convConstants = (g: Conv2dGeometry, aOffset: number, bOffset: number): Constants => ({
  C: g.inChannels, H: g.height, W: g.width, O: g.outChannels, KH: g.kernelH, KW: g.kernelW,
  S: g.stride, P: g.padding, OH: g.outHeight, OW: g.outWidth, B: g.batch, ao: aOffset, bo: bOffset,
});

/** Splits this.thread.x into named NCHW-style coordinates (last name fastest). */
function coordinates(names: readonly [string, string][]): string {
  let code = 'let rest = this.thread.x;\n';
  for (let i = names.length - 1; i >= 0; i--) {
    const [name, size] = names[i]!;
    code += i === 0 ? `const ${name} = rest;\n` : `const ${name} = rest % this.constants.${size};\nrest = Math.floor(rest / this.constants.${size});\n`;
  }
  return code;
}

/** y[b, o, oh, ow] = sum_{c, kh, kw} x[b, c, oh S - P + kh, ow S - P + kw] w[o, c, kh, kw]. */
export function conv2dForward(g: Conv2dGeometry, xOffset: number, wOffset: number): Template {
  return {
    source: `function(x, w) {\n${coordinates([['b', 'B'], ['o', 'O'], ['oh', 'OH'], ['ow', 'OW']])}let sum = 0.0;\n`
      + 'for (let c = 0; c < this.constants.C; c++) {\nfor (let kh = 0; kh < this.constants.KH; kh++) {\n'
      + 'const h = oh * this.constants.S - this.constants.P + kh;\nif (h >= 0 && h < this.constants.H) {\nfor (let kw = 0; kw < this.constants.KW; kw++) {\n'
      + 'const iw = ow * this.constants.S - this.constants.P + kw;\nif (iw >= 0 && iw < this.constants.W) {\n'
      + 'sum += x[this.constants.ao + ((b * this.constants.C + c) * this.constants.H + h) * this.constants.W + iw]'
      + ' * w[this.constants.bo + ((o * this.constants.C + c) * this.constants.KH + kh) * this.constants.KW + kw];\n}\n}\n}\n}\n}\nreturn sum;\n}',
    constants: convConstants(g, xOffset, wOffset),
  };
}

/** dx[b, c, h, w] = sum over (o, kh, kw) whose output pixel (h + P - kh) / S is whole and in range. */
export function conv2dBackwardInput(g: Conv2dGeometry, dyOffset: number, wOffset: number): Template {
  return {
    source: `function(dy, w) {\n${coordinates([['b', 'B'], ['c', 'C'], ['h', 'H'], ['iw', 'W']])}let sum = 0.0;\n`
      + 'for (let kh = 0; kh < this.constants.KH; kh++) {\nconst th = h + this.constants.P - kh;\nconst oh = Math.floor(th / this.constants.S);\n'
      + 'if (th >= 0 && oh * this.constants.S === th && oh < this.constants.OH) {\nfor (let kw = 0; kw < this.constants.KW; kw++) {\n'
      + 'const tw = iw + this.constants.P - kw;\nconst ow = Math.floor(tw / this.constants.S);\nif (tw >= 0 && ow * this.constants.S === tw && ow < this.constants.OW) {\n'
      + 'for (let o = 0; o < this.constants.O; o++) {\n'
      + 'sum += dy[this.constants.ao + ((b * this.constants.O + o) * this.constants.OH + oh) * this.constants.OW + ow]'
      + ' * w[this.constants.bo + ((o * this.constants.C + c) * this.constants.KH + kh) * this.constants.KW + kw];\n}\n}\n}\n}\n}\nreturn sum;\n}',
    constants: convConstants(g, dyOffset, wOffset),
  };
}

/** dw[o, c, kh, kw] = sum_{b, oh, ow} dy[b, o, oh, ow] x[b, c, oh S - P + kh, ow S - P + kw]. */
export function conv2dBackwardFilter(g: Conv2dGeometry, xOffset: number, dyOffset: number): Template {
  return {
    source: `function(x, dy) {\n${coordinates([['o', 'O'], ['c', 'C'], ['kh', 'KH'], ['kw', 'KW']])}let sum = 0.0;\n`
      + 'for (let b = 0; b < this.constants.B; b++) {\nfor (let oh = 0; oh < this.constants.OH; oh++) {\n'
      + 'const h = oh * this.constants.S - this.constants.P + kh;\nif (h >= 0 && h < this.constants.H) {\nfor (let ow = 0; ow < this.constants.OW; ow++) {\n'
      + 'const iw = ow * this.constants.S - this.constants.P + kw;\nif (iw >= 0 && iw < this.constants.W) {\n'
      + 'sum += dy[this.constants.bo + ((b * this.constants.O + o) * this.constants.OH + oh) * this.constants.OW + ow]'
      + ' * x[this.constants.ao + ((b * this.constants.C + c) * this.constants.H + h) * this.constants.W + iw];\n}\n}\n}\n}\n}\nreturn sum;\n}',
    constants: convConstants(g, xOffset, dyOffset),
  };
}

/**
 * AdamW as three kernels (m, v, then the parameter from the new m and v): gpu.js's WebAssembly
 * mode has no kernel maps, so one kernel cannot write three outputs.
 */
export const adamw = {
  m: { source: 'function(m, g, beta1) {\nreturn beta1 * m[this.thread.x] + (1.0 - beta1) * g[this.thread.x];\n}', constants: {} },
  v: { source: 'function(v, g, beta2) {\nconst gi = g[this.thread.x];\nreturn beta2 * v[this.thread.x] + (1.0 - beta2) * gi * gi;\n}', constants: {} },
  param: {
    source: 'function(p, m, v, decay, stepSize, rootCorrection, eps) {\nconst i = this.thread.x;\n'
      + 'return p[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / rootCorrection + eps);\n}',
    constants: {},
  },
} satisfies Record<string, Template>;
