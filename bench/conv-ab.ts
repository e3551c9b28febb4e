// The CPU backend's float32 convolution passes, variants alternating round by round in one
// process (on a shared machine whose speed drifts within minutes, only neighbouring samples
// compare): this checkout's Winograd, this checkout's im2col (conv.ts's setWinograd(false)), and
// with --other, another build's conv.js (its own module instances and thread pool).
//   node scripts/build.mjs && node bench/conv-ab.js [--other /tmp/old] [--rounds 12] [--layer N,C,H,W,O,pad]
// The default layer is the Table-5 encoder's 32 -> 32 convolution at batch 64 (28x28, padding 1).
// Prints each variant's error against this checkout's float64 convolution (max |difference| over
// max |float64 result|), its median ms per call of forward, backward input and backward filter,
// and the median over rounds of its ratio to the first variant. SILENTGRAD_THREADS=1 gives one
// thread; SILENTGRAD_CPU_KERNELS=js runs this checkout's float32 products in TypeScript.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as conv from '../backends/cpu/conv.js';
import { allocShared, warmUp } from '../backends/cpu/parallel.js';
import { scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';

type Conv = Pick<typeof conv, 'conv2dForward' | 'conv2dBackwardInput' | 'conv2dBackwardFilter'>;

const flags = scriptFlags('bench/conv-ab.js', "The CPU backend's float32 conv passes: Winograd, im2col and another build's, alternating.", {
  other: { type: 'string', help: 'root of another checkout, built (its backends/cpu/conv.js is loaded)' },
  rounds: { type: 'string', help: 'alternations', default: '12' },
  layer: { type: 'string', help: 'N,C,H,W,O,padding of a 3x3 stride-1 layer', default: '64,32,28,28,32,1' },
}, (v) => {
  const rounds = Number(v.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${String(v.rounds)}`);
  const layer = String(v.layer).split(',').map(Number);
  if (layer.length !== 6 || !layer.every((n) => Number.isInteger(n) && n >= 0)) throw new Error(`--layer wants N,C,H,W,O,padding, got ${String(v.layer)}`);
  let other: string | null = null;
  if (typeof v.other === 'string') {
    other = resolve(v.other, 'backends/cpu/conv.js');
    if (!existsSync(other)) throw new Error(`${other} does not exist: build that checkout first (node scripts/build.mjs)`);
  }
  return { rounds, layer: layer as [number, number, number, number, number, number], other };
});

const [N, C, H, W, O, p] = flags.layer;
const Ho = H + 2 * p - 2, Wo = W + 2 * p - 2;
const xShape = [N, C, H, W], wShape = [O, C, 3, 3];
const random = (n: number): Float32Array => {
  const a = allocShared('float32', n) as Float32Array;
  for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5;
  return a;
};
const x = random(N * C * H * W), w = random(O * C * 9), dy = random(N * O * Ho * Wo);
const y = random(dy.length), dx = random(x.length), dw = random(w.length);

/** One variant: its passes, each switching this checkout's algorithm first where it has one. */
function variant(impl: Conv, winograd: boolean | null): Record<string, () => void> {
  const use = (): void => { if (winograd !== null) conv.setWinograd(winograd); };
  return {
    forward: () => { use(); impl.conv2dForward(x, xShape, w, wShape, 1, p, y); },
    'backward input': () => { use(); impl.conv2dBackwardInput(dy, xShape, w, wShape, 1, p, dx); },
    'backward filter': () => { use(); impl.conv2dBackwardFilter(x, xShape, dy, wShape, 1, p, dw); },
  };
}
const variants: [string, Record<string, () => void>][] = [];
if (flags.other) variants.push([`other (${flags.other})`, variant(await import(pathToFileURL(flags.other).href) as Conv, null)]);
variants.push(['winograd', variant(conv, true)], ['im2col', variant(conv, false)]);

// Errors first: each variant's float32 passes against the float64 ones on the same values.
const as64 = (a: Float32Array): Float64Array => Float64Array.from(a);
const reference = [new Float64Array(y.length), new Float64Array(dx.length), new Float64Array(dw.length)] as const;
conv.conv2dForward(as64(x), xShape, as64(w), wShape, 1, p, reference[0]);
conv.conv2dBackwardInput(as64(dy), xShape, as64(w), wShape, 1, p, reference[1]);
conv.conv2dBackwardFilter(as64(x), xShape, as64(dy), wShape, 1, p, reference[2]);
const scaledError = (got: Float32Array, want: Float64Array): string => {
  let worst = 0, scale = 0;
  for (let i = 0; i < want.length; i++) { worst = Math.max(worst, Math.abs(got[i]! - want[i]!)); scale = Math.max(scale, Math.abs(want[i]!)); }
  return (worst / scale).toExponential(1);
};
for (const [name, passes] of variants) {
  const errors = (['forward', 'backward input', 'backward filter'] as const).map((pass, i) => {
    passes[pass]!();
    return `${pass} ${scaledError([y, dx, dw][i]!, reference[i]!)}`;
  });
  console.log(`error of ${name}, of the float64 result's scale: ${errors.join(', ')}`);
}

warmUp();
const ROUND_MS = 300;
/** ms per call of `run`, calling it for about ROUND_MS. */
function time(run: () => void): number {
  const start = performance.now();
  let calls = 0;
  while (performance.now() - start < ROUND_MS) { run(); calls++; }
  return (performance.now() - start) / calls;
}
console.log(`conv N=${N} C=${C} ${H}x${W} O=${O} pad ${p}, float32: ${flags.rounds} alternating rounds of ${ROUND_MS} ms per variant`);
for (const pass of ['forward', 'backward input', 'backward filter']) {
  for (const [, passes] of variants) passes[pass]!();
  const ms = variants.map((): number[] => []), ratios = variants.map((): number[] => []);
  for (let round = 0; round < flags.rounds; round++) {
    // Who goes first rotates, so no variant always runs on a warmer cache.
    const order = variants.map((_, i) => (i + round) % variants.length);
    const got: number[] = [];
    for (const i of order) got[i] = time(variants[i]![1][pass]!);
    got.forEach((t, i) => { ms[i]!.push(t); ratios[i]!.push(t / got[0]!); });
  }
  conv.setWinograd(true);
  for (const [i, [name]] of variants.entries())
    console.log(`${pass.padEnd(16)} ${name.padEnd(28)} ${median(ms[i]!).toFixed(2).padStart(8)} ms   x${median(ratios[i]!).toFixed(3)} of ${variants[0]![0]}`);
}
