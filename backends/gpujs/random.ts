// Philox-4x32-10 (engine/random.ts) as a gpu.js kernel, bit for bit. gpu.js's WebAssembly
// mode gives true i32 arithmetic only inside expressions and in helper functions whose
// arguments are declared Integer: a local variable initialised from an integer expression
// is silently declared f32 ("int-typed initializers decay to float declarations",
// web-assembly/function-node.js). So the state lives in f32 locals as 16-bit halves (exact),
// and every 32-bit operation happens inside one Integer expression or helper call.
import type { RandomKind } from '../../engine/backend.js';
import { seedKey } from '../../engine/random.js';
import type { KernelArgument, KernelFunction } from './runtime.js';
import type { Template } from './templates.js';

const integer = (source: string, ...names: string[]): KernelFunction => ({
  source, returnType: 'Integer', argumentTypes: Object.fromEntries(names.map((n) => [n, 'Integer'])),
});

/** Helpers compiled into the random kernels: 32x32-bit products from 16-bit halves. */
export const philoxFunctions: KernelFunction[] = [
  { source: 'function word(h, l) { return ((h | 0) << 16) | (l | 0); }', returnType: 'Integer', argumentTypes: { h: 'Number', l: 'Number' } },
  integer('function hi16(v) { return v >>> 16; }', 'v'),
  integer('function lo16(v) { return v & 65535; }', 'v'),
  integer('function mulLo(a, b) { return a * b; }', 'a', 'b'),
  integer('function mid1(a, b) { return ((a >>> 16) * (b & 65535)) + (((a & 65535) * (b & 65535)) >>> 16); }', 'a', 'b'),
  integer('function mid2(a, b) { return ((a & 65535) * (b >>> 16)) + (mid1(a, b) & 65535); }', 'a', 'b'),
  integer('function mulHi(a, b) { return ((a >>> 16) * (b >>> 16)) + (mid1(a, b) >>> 16) + (mid2(a, b) >>> 16); }', 'a', 'b'),
  { source: 'function uniformOf(h, l) { return (h * 256.0 + Math.floor(l / 256.0) + 0.5) / 16777216.0; }', returnType: 'Number', argumentTypes: { h: 'Number', l: 'Number' } },
];

// The Philox constants as (high, low) 16-bit halves.
const M0 = 'word(53841, 8019)', M1 = 'word(52638, 36183)', W0 = 'word(40503, 31161)', W1 = 'word(47975, 44677)';
const X = (n: number): string => `word(x${n}h, x${n}l)`;

function round(): string {
  const assign = (target: string, expr: string): string => `${target}h = hi16(${expr});\n${target}l = lo16(${expr});\n`;
  return assign('n0', `mulHi(${M1}, ${X(2)}) ^ ${X(1)} ^ word(k0h, k0l)`)
    + assign('n1', `mulLo(${M1}, ${X(2)})`)
    + assign('n2', `mulHi(${M0}, ${X(0)}) ^ ${X(3)} ^ word(k1h, k1l)`)
    + assign('n3', `mulLo(${M0}, ${X(0)})`)
    + [0, 1, 2, 3].map((n) => `x${n}h = n${n}h;\nx${n}l = n${n}l;\n`).join('')
    + assign('n0', `word(k0h, k0l) + ${W0}`) + 'k0h = n0h;\nk0l = n0l;\n'
    + assign('n0', `word(k1h, k1l) + ${W1}`) + 'k1h = n0h;\nk1l = n0l;\n';
}

/** Element i draws from counter (offset + floor(i / 4)) mod 2^32, word i % 4. */
export function randomTemplate(kind: RandomKind): Template {
  const declare = (names: string[]): string => names.map((n) => `let ${n} = 0.0;\n`).join('');
  const state = [0, 1, 2, 3].flatMap((n) => [`x${n}h`, `x${n}l`, `n${n}h`, `n${n}l`]);
  const pick = (which: string, h: string): string => `${which === 'lane' ? 'lane' : which} < 0.5 ? x0${h} : (${which} < 1.5 ? x1${h} : (${which} < 2.5 ? x2${h} : x3${h}))`;
  const draw = kind === 'uniform'
    ? `return uniformOf(${pick('lane', 'h')}, ${pick('lane', 'l')});`
    : 'const pair = lane < 1.5 ? 0.0 : 2.0;\nconst second = pair + 1.0;\n'
      + `const u1 = uniformOf(${pick('pair', 'h')}, ${pick('pair', 'l')});\nconst u2 = uniformOf(${pick('second', 'h')}, ${pick('second', 'l')});\n`
      + 'const radius = Math.sqrt(-2.0 * Math.log(u1));\nconst angle = 6.283185307179586 * u2;\n'
      + 'if (lane === 1.0 || lane === 3.0) { return radius * Math.sin(angle); }\nreturn radius * Math.cos(angle);';
  return {
    source: `function(seed0h, seed0l, seed1h, seed1l, offh, offl) {\nconst q = Math.floor(this.thread.x / 4.0);\nconst lane = this.thread.x - q * 4.0;\n${declare(state)}`
      + 'let k0h = seed0h;\nlet k0l = seed0l;\nlet k1h = seed1h;\nlet k1l = seed1l;\n'
      + 'x0h = hi16(word(offh, offl) + (q | 0));\nx0l = lo16(word(offh, offl) + (q | 0));\n'
      + `for (let r = 0; r < 10; r++) {\n${round()}}\n${draw}\n}`,
    constants: {},
  };
}

/** The kernel's arguments for a draw: seed key and offset as 16-bit halves (exact in f32). */
export function randomArguments(seed: number, offset: number): KernelArgument[] {
  const [k0, k1] = seedKey(seed);
  const start = offset % 4294967296;
  return [k0 >>> 16, k0 & 0xffff, k1 >>> 16, k1 & 0xffff, Math.floor(start / 65536), start % 65536];
}
