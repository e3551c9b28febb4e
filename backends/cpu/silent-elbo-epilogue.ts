// The silent ELBO's per-pixel epilogue on the CPU: the closed forms of docs/silent-elbo.md
// (pixelForms in engine/ops/silent-elbo-pixel.ts) as one generated JavaScript loop over the
// (example, pixel) pairs. It reads the contractions from the GEMMs' results, adds the biases,
// sums each example's value and writes the partials the backward reads. Generated per form and
// set of terms, so every contraction is a local (absent ones the literal 0) rather than a slot
// of an array handed to a per-pixel function, which cost over three times as much (a one-thread
// profile, docs/performance-log.md).
import type { SilentElboTerm } from '../../engine/backend.js';
import type { FloatArray } from '../../engine/dtype.js';
import { silentElboTermIndex, silentElboTerms } from '../../engine/ops/silent-elbo.js';
import { pixelExpression, pixelForms } from '../../engine/ops/silent-elbo-pixel.js';
import { getCpuKernels } from './gemm.js';
import { generatedFunction } from './generated.js';
import { heap, heapElementAddress } from './heap.js';
import { defineKernel, parallelFor } from './parallel.js';
import { f64LanesAvailable } from './wasm/f64-lanes.js';
import { epilogueRows } from './wasm/silent-elbo-epilogue.js';

/**
 * result[b] = sum_j of the pixel's value, and (when given) partials[n][b][j] = d(value)/d(term
 * n's contraction). Reads x (xs), the biases and term n's contractions sums[n][b][j].
 */
type PixelLoop = (sums: FloatArray, xs: FloatArray, xOff: number, bMu: FloatArray, bMuOff: number,
  bA: FloatArray | null, bAOff: number, partials: FloatArray | null, result: FloatArray, B: number, k: number, sigma2: number) => void;

/**
 * The form's constant term (PixelForm.constant: Suu fixed, Kuuaa learnable) enters every
 * pixel's value as coefficient x contraction with one coefficient for all pixels, so it needs
 * no GEMM: summed over pixels it is coefficient x (m_b . colsum_j of its weight power), and its
 * gradients broadcast the same column sums. The loop therefore reads it as 0 and writes no
 * partial for it. Halves the fixed form's GEMMs, and saves 3 of the learnable form's 30.
 */
export function constantCoefficient(form: 'fixed' | 'learnable', sigma2: number): number {
  return coefficients[form](sigma2);
}
const coefficient = (name: 'fixed' | 'learnable'): ((sigma2: number) => number) => {
  const f = pixelForms[name];
  return generatedFunction<(sigma2: number) => number>(`constant_${name}`, ['sigma2'], `return ${pixelExpression(f.partials[f.constant]!, 'js')};`);
};
const coefficients = { fixed: coefficient('fixed'), learnable: coefficient('learnable') };

const loops = new Map<string, PixelLoop>();

/** What the loop reads and writes besides the sums; bA is null in the fixed form. */
export interface PixelOperands {
  x: FloatArray; xOff: number; bMu: FloatArray; bMuOff: number; bA: FloatArray | null; bAOff: number;
  partials: FloatArray | null; result: FloatArray; B: number; k: number; sigma2: number;
}

/**
 * Examples [start, end) in WebAssembly (wasm/silent-elbo-epilogue.ts) on any thread of the pool.
 * Args: form (0 fixed, 1 learnable), float64?, writes partials?, the term count, each term's
 * index in silentElboTerms, then k, plane, sigma2 and the heap byte addresses of the operands.
 */
const epilogueKernel = defineKernel('silentgrad.silentElboEpilogue', import.meta.url, (_arrays, a, start, end) => {
  const terms = Array.from({ length: a[3]! }, (_, n) => silentElboTerms[a[4 + n]!]!.name);
  const [k, plane, sigma2, sums, x, bMu, bA, partials, result] = Array.from(a).slice(4 + terms.length) as Tuple9;
  epilogueRows(heap()!, a[0] === 0 ? 'fixed' : 'learnable', terms, a[1] === 1 ? 'float64' : 'float32', a[2] === 1)(
    start, end, k, plane, sigma2, sums, x, bMu, bA, partials, result);
});
type Tuple9 = [number, number, number, number, number, number, number, number, number];

/** Multiply-adds a pixel costs, about (for the pool's threshold). */
const PIXEL_WORK = 40;

/**
 * The epilogue in WebAssembly over the pool when every operand is in the heap and Wasm kernels
 * are on; returns false (nothing done) otherwise.
 */
function wasmPixels(form: 'fixed' | 'learnable', terms: readonly SilentElboTerm[], sums: FloatArray, o: PixelOperands): boolean {
  if (getCpuKernels() !== 'wasm' || heap() === null || !f64LanesAvailable()) return false;
  const size = sums.BYTES_PER_ELEMENT;
  if ([o.x, o.bMu, o.bA, o.partials, o.result].some((a) => a !== null && a.BYTES_PER_ELEMENT !== size)) return false;
  const at = (a: FloatArray | null, offset: number): number | null => (a === null ? 0 : heapElementAddress(a, offset));
  const addresses = [at(sums, 0), at(o.x, o.xOff), at(o.bMu, o.bMuOff), at(o.bA, o.bAOff), at(o.partials, 0), at(o.result, 0)];
  if (addresses.some((a) => a === null)) return false;
  const indices = terms.map((t) => silentElboTermIndex(t.name));
  const args = [form === 'fixed' ? 0 : 1, size === 8 ? 1 : 0, o.partials ? 1 : 0, terms.length, ...indices,
    o.k, o.B * o.k, o.sigma2, ...(addresses as number[])];
  parallelFor(epilogueKernel, [], args, o.B, 1, o.B * o.k * PIXEL_WORK);
  return true;
}

/**
 * The epilogue of `form` over every (example, pixel): in WebAssembly where it can, else the
 * generated JavaScript loop, built once per form and terms (the reference the Wasm one matches).
 */
export function pixels(form: 'fixed' | 'learnable', terms: readonly SilentElboTerm[], sums: FloatArray, o: PixelOperands): void {
  if (wasmPixels(form, terms, sums, o)) return;
  const id = `${form}|${terms.map((t) => t.name).join(',')}`;
  let loop = loops.get(id);
  if (!loop) {
    loop = compile(form, terms);
    loops.set(id, loop);
  }
  loop(sums, o.x, o.xOff, o.bMu, o.bMuOff, o.bA, o.bAOff, o.partials, o.result, o.B, o.k, o.sigma2);
}

/** Locals start with $, which no name in pixelForms does. */
function compile(name: 'fixed' | 'learnable', terms: readonly SilentElboTerm[]): PixelLoop {
  const form = pixelForms[name];
  const js = (expression: string): string => pixelExpression(expression, 'js');
  const bias: Record<string, string> = { Ubar: ' + bMu[bMuOff + $j]', Abar: ' + bA[bAOff + $j]' };
  const reads = silentElboTerms.map(({ name }) => {
    const n = terms.findIndex((t) => t.name === name);
    return `const ${name} = ${n < 0 ? '0' : `sums[${n} * $plane + $at]${bias[name] ?? ''}`};`;
  });
  const body = [
    'const $plane = B * k;',
    'for (let $b = 0; $b < B; $b++) {',
    '  let $total = 0;',
    '  for (let $j = 0; $j < k; $j++) {',
    '    const $at = $b * k + $j, x = xs[xOff + $at];',
    ...reads.map((line) => `    ${line}`),
    ...form.lets.map(([name, expression]) => `    const ${name} = ${js(expression)};`),
    `    $total += ${js(form.value)};`,
    '    if (partials) {',
    ...terms.map((t, n) => `      partials[${n} * $plane + $at] = ${form.partials[t.name] ? js(form.partials[t.name]!) : '0'};`),
    '    }',
    '  }',
    '  result[$b] = $total;',
    '}',
  ];
  return generatedFunction<PixelLoop>(`epilogue_${name}`, ['sums', 'xs', 'xOff', 'bMu', 'bMuOff', 'bA', 'bAOff', 'partials', 'result', 'B', 'k', 'sigma2'],
    body.join('\n'));
}
