// The fused silent-ELBO kernels as gpu.js templates (math: docs/silent-elbo.md; the per-pixel
// closed forms generated from engine/ops/silent-elbo-pixel.ts). Forward: one kernel contracts
// every term into sums[term][b][j] (the weight power u^p a^q formed on the fly, never stored),
// one sums each row's pixel terms into out[b], one writes the partials d(pixel)/d(contraction)
// in the same [term][b][j] layout as the CPU. Backward: one kernel per requested gradient.
// WebAssembly mode has no kernel maps, hence one output per kernel.
import type { SilentElboOperands } from '../../engine/backend.js';
import { silentElboTerms } from '../../engine/ops/silent-elbo.js';
import { letsFor, pixelExpression, pixelForms } from '../../engine/ops/silent-elbo-pixel.js';
import type { Constants } from './runtime.js';
import type { Template } from './templates.js';

const power = (p: number, q: number, at: string): string =>
  [...Array<string>(p).fill(`wMu[this.constants.uo + ${at}]`), ...Array<string>(q).fill(`wA[this.constants.ao + ${at}]`)].join(' * ') || '1.0';

/** Operand offsets and sizes every silent-ELBO kernel reads as constants. */
export function elboConstants(o: SilentElboOperands): Constants {
  const [B, d] = o.mean.shape as [number, number];
  return {
    B, d, k: o.x.shape[1]!, plane: B * o.x.shape[1]!,
    uo: o.wMu.offset, ao: o.wA?.offset ?? 0, bmo: o.bMu.offset, bao: o.bA?.offset ?? 0, xo: o.x.offset,
    mo: o.mean.offset, c2o: o.c2.offset, c3o: o.c3?.offset ?? 0, k4o: o.k4?.offset ?? 0,
  };
}

const momentArray = { mean: 'mean', c2: 'c2', c3: 'c3', k4: 'k4' } as const;
const momentOffset = { mean: 'mo', c2: 'c2o', c3: 'c3o', k4: 'k4o' } as const;
// The data array is X: x is the pixel's value in the per-pixel expressions.
const ARGS = 'mean, c2, c3, k4, wMu, wA, bMu, bA, X';

/** sums[t][b][j] = sum_i u_ji^p a_ji^q moment_t[b, i]. */
export function contractions(o: SilentElboOperands): Template {
  const branches = o.terms.map((t, n) => `if (t === ${n}.0) {\nfor (let i = 0; i < this.constants.d; i++) {\n`
    + `sum += ${power(t.powers[0], t.powers[1], 'j * this.constants.d + i')} * ${momentArray[t.moment]}[this.constants.${momentOffset[t.moment]} + b * this.constants.d + i];\n}\n}\n`).join('');
  return {
    source: `function(${ARGS}) {\nconst t = Math.floor(this.thread.x / this.constants.plane);\nconst at = this.thread.x - t * this.constants.plane;\n`
      + `const b = Math.floor(at / this.constants.k);\nconst j = at - b * this.constants.k;\nlet sum = 0.0;\n${branches}return sum;\n}`,
    constants: elboConstants(o),
  };
}

const js = (expression: string): string => pixelExpression(expression, 'js');

/**
 * Kernel code defining x and every contraction (0 when absent, biases added) for pixel (b, j)
 * at `at`, then the intermediates that `expressions` (of engine/ops/silent-elbo-pixel.ts) read.
 */
function pixel(o: SilentElboOperands, expressions: readonly string[]): string {
  const read = (name: string): string => {
    const n = o.terms.findIndex((t) => t.name === name);
    return n < 0 ? '0.0' : `sums[${n}.0 * this.constants.plane + at]`;
  };
  const bias = (name: string): string => (name === 'Ubar' ? ' + bMu[this.constants.bmo + j]'
    : name === 'Abar' && o.bA ? ' + bA[this.constants.bao + j]' : '');
  return `const x = X[this.constants.xo + at];\n`
    + silentElboTerms.map(({ name }) => `const ${name} = ${read(name)}${bias(name)};\n`).join('')
    + letsFor(pixelForms[o.form], expressions).map(([name, e]) => `const ${name} = ${js(e)};\n`).join('');
}

/** out[b] = sum_j pixel value (b, j). */
export function rowValues(o: SilentElboOperands): Template {
  const { value } = pixelForms[o.form];
  return {
    source: `function(sums, ${ARGS}, sigma2) {\nconst b = this.thread.x;\nlet total = 0.0;\n`
      + `for (let j = 0; j < this.constants.k; j++) {\nconst at = b * this.constants.k + j;\n${pixel(o, [value])}total += ${js(value)};\n}\nreturn total;\n}`,
    constants: elboConstants(o),
  };
}

/** partials[t][b][j] = d(pixel value)/d(contraction t). */
export function partials(o: SilentElboOperands): Template {
  const expressions = o.terms.map((t) => pixelForms[o.form].partials[t.name] ?? '0.0');
  const branches = expressions.map((e, n) => `if (t === ${n}.0) { return ${js(e)}; }\n`).join('');
  return {
    source: `function(sums, ${ARGS}, sigma2) {\nconst t = Math.floor(this.thread.x / this.constants.plane);\nconst at = this.thread.x - t * this.constants.plane;\n`
      + `const b = Math.floor(at / this.constants.k);\nconst j = at - b * this.constants.k;\n${pixel(o, expressions)}${branches}return 0.0;\n}`,
    constants: elboConstants(o),
  };
}

const scaled = (n: number, b: string, j: string): string =>
  `g[this.constants.go + ${b}] * partials[${n}.0 * this.constants.plane + ${b} * this.constants.k + ${j}]`;
const BACKWARD_ARGS = `partials, g, ${ARGS}`;

/** grad moment[b, i] = sum over its terms and pixels j of scaled partial times u^p a^q [j, i]. */
export function momentGradient(o: SilentElboOperands, moment: 'mean' | 'c2' | 'c3' | 'k4', gOffset: number): Template {
  const terms = o.terms.map((t, n) => [t, n] as const).filter(([t]) => t.moment === moment);
  const body = terms.map(([t, n]) => `sum += ${scaled(n, 'b', 'j')} * ${power(t.powers[0], t.powers[1], 'j * this.constants.d + i')};\n`).join('');
  return {
    source: `function(${BACKWARD_ARGS}) {\nconst b = Math.floor(this.thread.x / this.constants.d);\nconst i = this.thread.x - b * this.constants.d;\n`
      + `let sum = 0.0;\nfor (let j = 0; j < this.constants.k; j++) {\n${body}}\nreturn sum;\n}`,
    constants: { ...elboConstants(o), go: gOffset },
  };
}

/** grad w[j, i] (w = wMu or wA): chain rule through u^p a^q of each term's batch contraction. */
export function weightGradient(o: SilentElboOperands, weight: 'wMu' | 'wA', gOffset: number): Template {
  const body = o.terms.map((t, n) => {
    const [p, q] = t.powers;
    const k = weight === 'wMu' ? p : q;
    if (k === 0) return '';
    const rest = power(weight === 'wMu' ? p - 1 : p, weight === 'wA' ? q - 1 : q, 'j * this.constants.d + i');
    return `h = 0.0;\nfor (let b = 0; b < this.constants.B; b++) {\nh += ${scaled(n, 'b', 'j')} * ${momentArray[t.moment]}[this.constants.${momentOffset[t.moment]} + b * this.constants.d + i];\n}\n`
      + `sum += ${k}.0 * ${rest} * h;\n`;
  }).join('');
  return {
    source: `function(${BACKWARD_ARGS}) {\nconst j = Math.floor(this.thread.x / this.constants.d);\nconst i = this.thread.x - j * this.constants.d;\n`
      + `let sum = 0.0;\nlet h = 0.0;\n${body}return sum;\n}`,
    constants: { ...elboConstants(o), go: gOffset },
  };
}

/** Bias gradient (sum over the batch of one term's scaled partials) or the data gradient. */
export function planeGradient(o: SilentElboOperands, name: 'Ubar' | 'Abar', target: 'bias' | 'x', gOffset: number): Template {
  const n = o.terms.findIndex((t) => t.name === name);
  const source = target === 'x'
    ? `function(${BACKWARD_ARGS}) {\nconst b = Math.floor(this.thread.x / this.constants.k);\nconst j = this.thread.x - b * this.constants.k;\nreturn -${scaled(n, 'b', 'j')};\n}`
    : `function(${BACKWARD_ARGS}) {\nconst j = this.thread.x;\nlet sum = 0.0;\nfor (let b = 0; b < this.constants.B; b++) {\nsum += ${scaled(n, 'b', 'j')};\n}\nreturn sum;\n}`;
  return { source, constants: { ...elboConstants(o), go: gOffset } };
}
