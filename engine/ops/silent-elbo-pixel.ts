// The per-pixel closed forms of the silent ELBO, written once: one pixel's expected
// log-likelihood and its partial derivative with respect to each contraction, for both forms.
// Every backend generates its code from this table, so they cannot drift: the CPU a JavaScript
// function (backends/cpu/silent-elbo.ts), WebGPU a WGSL function (pixelFunction in
// backends/webgpu/kernels/silent-elbo-common.ts), gpu.js its kernels' source
// (backends/gpujs/silent-elbo.ts). No backend imports here.
//
// The expressions use what JavaScript and WGSL share: names, + - * /, parentheses, log(), and
// float literals written with a point (WGSL and gpu.js would read 4 as an integer). Their
// inputs: x (the pixel's data value), sigma2 (the fixed form's variance) and the contractions
// by their silentElboTerms names, biases included (Ubar = u.m + b_mu, Abar = a.m + b_a) and 0
// when absent (no c3 or k4).

export interface PixelForm {
  /** Named intermediates, in order, each in the inputs and the intermediates before it. */
  readonly lets: readonly (readonly [name: string, expression: string])[];
  /** The pixel's expected log-likelihood. */
  readonly value: string;
  /** d(value)/d(contraction) by term name; a term not listed has partial 0. */
  readonly partials: Readonly<Record<string, string>>;
  /**
   * The term that enters the value only as partials[constant] x contraction, with a partial in
   * sigma2 alone, and that no other partial reads: summed over pixels it is a column sum, so
   * backends leave it out of the per-pixel work (cpu compile, WebGPU constantPartial).
   */
  readonly constant: string;
}

/** log(2 pi), inlined into the generated code as a literal. */
const LOG_2PI = Math.log(2 * Math.PI);

export const pixelForms: Readonly<Record<'fixed' | 'learnable', PixelForm>> = {
  // docs/silent-elbo.md section 2 (paper Eqs. 3-4): E[(x - U)^2] = (x - Ubar)^2 + Suu, so
  // E[log p(x|z)] = -((x - Ubar)^2 + Suu) / (2 sigma2) - log(2 pi sigma2) / 2, exactly.
  fixed: {
    lets: [['residual', 'x - Ubar']],
    value: '-(residual * residual + Suu) / (2.0 * sigma2) - 0.5 * (LOG_2PI + log(sigma2))',
    partials: { Ubar: 'residual / sigma2', Suu: '-0.5 / sigma2' },
    constant: 'Suu',
  },
  // docs/silent-elbo.md section 3 (paper Eqs. 6-7): with D = x - Ubar and A = Abar,
  // -1/2 E[D^2 A^2] + 1/2 E[log A^2] - 1/2 log(2 pi), where E[log A^2] is the second-order
  // Taylor expansion log E[A^2] - Var[A^2] / (2 E[A^2]^2), the only approximation.
  learnable: {
    lets: [
      ['D', 'x - Ubar'], ['A', 'Abar'], ['D2', 'D * D'], ['A2', 'A * A'],
      ['eDA', 'D2 * A2 + D2 * Saa + A2 * Suu - 4.0 * D * A * Sua - 2.0 * D * Tuaa + 2.0 * A * Tuua'
        + ' + Kuuaa + Suu * Saa + 2.0 * Sua * Sua'],
      ['eA2', 'A2 + Saa'],
      ['varA2', '4.0 * A2 * Saa + 4.0 * A * Taaa + Kaaaa + 2.0 * Saa * Saa'],
      ['logTerm', 'log(eA2) - varA2 / (2.0 * eA2 * eA2)'],
      // d logTerm / d E[A^2], d logTerm / d Var[A^2], d E[D^2 A^2] / dD and / dA.
      ['dLogdE', '1.0 / eA2 + varA2 / (eA2 * eA2 * eA2)'],
      ['dLogdV', '-1.0 / (2.0 * eA2 * eA2)'],
      ['dEdD', '2.0 * D * A2 + 2.0 * D * Saa - 4.0 * A * Sua - 2.0 * Tuaa'],
      ['dEdA', '2.0 * D2 * A + 2.0 * A * Suu - 4.0 * D * Sua + 2.0 * Tuua'],
    ],
    value: '-0.5 * eDA + 0.5 * logTerm - 0.5 * LOG_2PI',
    partials: {
      Ubar: '0.5 * dEdD', // D = x - Ubar
      Abar: '-0.5 * dEdA + 0.5 * (dLogdE * 2.0 * A + dLogdV * (8.0 * A * Saa + 4.0 * Taaa))',
      Suu: '-0.5 * (A2 + Saa)',
      Saa: '-0.5 * (D2 + Suu) + 0.5 * (dLogdE + dLogdV * (4.0 * A2 + 4.0 * Saa))',
      Sua: '2.0 * D * A - 2.0 * Sua',
      Tuaa: 'D',
      Tuua: '-A',
      Taaa: '2.0 * A * dLogdV',
      Kuuaa: '-0.5',
      Kaaaa: '0.5 * dLogdV',
    },
    constant: 'Kuuaa',
  },
};

/** `expression` in JavaScript (log is Math.log) or WGSL, with LOG_2PI as a literal. */
export function pixelExpression(expression: string, language: 'js' | 'wgsl'): string {
  const inlined = expression.replace(/\bLOG_2PI\b/g, String(LOG_2PI));
  return language === 'js' ? inlined.replace(/\blog\(/g, 'Math.log(') : inlined;
}

/** The intermediates that `expressions` read, directly or through one another, in order. */
export function letsFor(form: PixelForm, expressions: readonly string[]): PixelForm['lets'] {
  const read = [...expressions];
  const kept: (typeof form.lets)[number][] = [];
  for (const entry of [...form.lets].reverse()) {
    if (!read.some((e) => new RegExp(`\\b${entry[0]}\\b`).test(e))) continue;
    kept.unshift(entry);
    read.push(entry[1]);
  }
  return kept;
}

/** An expression of the table as a tree, for backends that emit instructions, not source. */
export type PixelNode =
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'negate'; readonly operand: PixelNode }
  | { readonly kind: 'log'; readonly operand: PixelNode }
  | { readonly kind: 'binary'; readonly op: '+' | '-' | '*' | '/'; readonly left: PixelNode; readonly right: PixelNode };

/**
 * Parses `expression` with JavaScript's precedence and left associativity (unary minus binds
 * tighter than * and /), so evaluating the tree in float64 gives the generated JavaScript's
 * bits. LOG_2PI becomes its literal.
 */
export function parsePixelExpression(expression: string): PixelNode {
  const source = pixelExpression(expression, 'wgsl');
  const tokens = source.match(/\d+\.\d+(?:e[+-]?\d+)?|[A-Za-z_]\w*|[-+*/()]/g) ?? [];
  if (tokens.join('') !== source.replace(/\s+/g, ''))
    throw new Error(`parsePixelExpression: unexpected characters in ${expression}`);
  let at = 0;
  const peek = (): string | undefined => tokens[at];
  const take = (expected?: string): string => {
    const token = tokens[at++];
    if (token === undefined || (expected !== undefined && token !== expected))
      throw new Error(`parsePixelExpression: expected ${expected ?? 'more'} at token ${at} of ${expression}`);
    return token;
  };
  const binary = (next: () => PixelNode, ops: readonly string[]): PixelNode => {
    let left = next();
    while (ops.includes(peek() ?? '')) {
      const op = take() as '+' | '-' | '*' | '/';
      left = { kind: 'binary', op, left, right: next() };
    }
    return left;
  };
  const sum = (): PixelNode => binary(product, ['+', '-']);
  const product = (): PixelNode => binary(unary, ['*', '/']);
  function unary(): PixelNode {
    if (peek() === '-') { take(); return { kind: 'negate', operand: unary() }; }
    const token = take();
    if (token === '(') { const inner = sum(); take(')'); return inner; }
    if (/^\d/.test(token)) return { kind: 'number', value: Number(token) };
    if (token === 'log') { take('('); const operand = sum(); take(')'); return { kind: 'log', operand }; }
    return { kind: 'name', name: token };
  }
  const tree = sum();
  if (at !== tokens.length) throw new Error(`parsePixelExpression: unexpected ${tokens[at]} in ${expression}`);
  return tree;
}
