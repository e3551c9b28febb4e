// This checkout's CPU GEMM against another build's, in one process, alternating round by round:
// on a shared machine whose speed drifts by tens of percent within minutes, two runs a minute
// apart cannot say whether a kernel change helped; neighbouring samples can.
//   git worktree add /tmp/before <commit> && (cd /tmp/before && npm ci)
//   node bench/gemm-ab.js --other /tmp/before [--rounds 12]
// Single-thread gemmStrided at the shapes a training step runs (the dense layers with B
// transposed, the Winograd GEMMs in float64) and 512³; prints both builds' GFLOP/s (medians)
// and the median of the rounds' ratios, and checks that both give the same product. Run it two
// or three times: which float32 and float64 calls V8 has seen changes the code it generates
// (the backend's kernels see both), and a run can land in a slow phase for one build.
//   node bench/gemm-ab.js --kernels [--rounds 12]
// instead compares this checkout's kernels with each other, TypeScript ("other") against
// WebAssembly SIMD ("this", SILENTGRAD_CPU_KERNELS=wasm), at the MLP's shapes and 512³ in float32
// (reporting the largest difference: float64 against float32 accumulation), and at the silent
// ELBO's contraction shape and 512³ in float64 (where the two give the same bits).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FloatArray } from '../engine/dtype.js';
import { gemmStrided, setCpuKernels } from '../backends/cpu/gemm.js';
import { scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';

const flags = scriptFlags('bench/gemm-ab.js', "This checkout's CPU GEMM against another build's, alternating in one process.", {
  other: { type: 'string', help: 'root of the other checkout, built (its backends/cpu/gemm.js is loaded)' },
  kernels: { type: 'boolean', help: "instead of another build: this checkout's kernels, js against wasm" },
  rounds: { type: 'string', help: 'alternations per shape', default: '12' },
}, (v) => {
  const rounds = Number(v.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${String(v.rounds)}`);
  if (v.kernels === true) return { file: null, rounds };
  if (typeof v.other !== 'string') throw new Error('--other <checkout> (or --kernels) is required: what to compare with');
  const file = resolve(v.other, 'backends/cpu/gemm.js');
  if (!existsSync(file)) throw new Error(`${file} does not exist: build that checkout first (npm ci, or node scripts/build.mjs)`);
  return { file, rounds };
});

type Gemm = typeof gemmStrided;
/** gemmStrided with this thread's float32 kernels switched to `kernels` for the call. */
const withKernels = (kernels: 'js' | 'wasm'): Gemm => (...args) => { setCpuKernels(kernels); gemmStrided(...args); };
const other = flags.file === null
  ? withKernels('js')
  : (await import(pathToFileURL(flags.file).href) as { gemmStrided: Gemm }).gemmStrided;
const mine = flags.file === null ? withKernels('wasm') : gemmStrided;

// [M, N, K, transA, transB, float64]: the Gaussian step's encoder dense layer (forward, input
// gradient, weight gradient; 32 channels, then the default study's 8), a Winograd position's
// GEMM and its filter gradient, 512³.
const shapes: [number, number, number, boolean, boolean, boolean][] = flags.file === null
  // The MLP's first layer forward (64x784 · 784x200), the second's (64x200 · 200x784), 512³; in
  // float64, a silent-ELBO contraction (B x k x d = 64x784x200) and 512³.
  ? [[64, 200, 784, false, false, false], [64, 784, 200, false, false, false], [512, 512, 512, false, false, false],
    [64, 784, 200, false, true, true], [512, 512, 512, false, false, true]]
  : [
    [64, 400, 25088, false, true, false], [64, 25088, 400, false, false, false], [400, 25088, 64, true, false, false],
    [64, 400, 6272, false, true, false],
    [441, 32, 32, false, false, true], [32, 32, 441, true, false, true], [512, 512, 512, false, false, false],
  ];
const ROUND_MS = 250;

console.log(flags.file === null
  ? `gemm, one thread: kernels, js (other) against wasm (this), ${flags.rounds} alternating rounds of ${ROUND_MS} ms`
  : `gemm, one thread: this checkout against ${flags.file}, ${flags.rounds} alternating rounds of ${ROUND_MS} ms`);
for (const [M, N, K, tA, tB, f64] of shapes) {
  const make = (n: number): FloatArray => (f64 ? new Float64Array(n) : new Float32Array(n)).map(() => Math.random() - 0.5);
  const A = make(M * K), B = make(K * N), ours = make(M * N), theirs = make(M * N);
  const run = (g: Gemm, C: FloatArray): void => g(M, N, K, A, 0, tA ? M : K, tA, B, 0, tB ? K : N, tB, C, 0, N, false);
  run(mine, ours);
  run(other, theirs);
  const differs = ours.findIndex((x, i) => x !== theirs[i]);
  let maxDiff = 0;
  for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - theirs[i]!));
  const rate = (g: Gemm): number => {
    const start = performance.now();
    let calls = 0;
    while (performance.now() - start < ROUND_MS) { run(g, ours); calls++; }
    return (2 * M * N * K * calls) / ((performance.now() - start) * 1e6);
  };
  const thisRates: number[] = [], otherRates: number[] = [], ratios: number[] = [];
  for (let round = 0; round < flags.rounds; round++) {
    // Who goes first alternates too, so neither always runs on a warmer cache or a calmer core.
    const thisFirst = round % 2 === 0;
    const first = rate(thisFirst ? mine : other), second = rate(thisFirst ? other : mine);
    const [thisRate, otherRate] = thisFirst ? [first, second] : [second, first];
    thisRates.push(thisRate); otherRates.push(otherRate); ratios.push(thisRate / otherRate);
  }
  const shape = `${M}x${N}x${K}${tA ? ' Aᵀ' : ''}${tB ? ' Bᵀ' : ''} ${f64 ? 'f64' : 'f32'}`;
  console.log(`${shape.padEnd(24)} other ${median(otherRates).toFixed(2).padStart(6)}  this ${median(thisRates).toFixed(2).padStart(6)} GFLOP/s  ratio ${median(ratios).toFixed(3)}` +
    (differs < 0 ? '  (same product)' : flags.file === null ? `  (max |difference| ${maxDiff.toExponential(2)})`
      : `  (products differ first at ${differs}: ${ours[differs]} vs ${theirs[differs]})`));
}
