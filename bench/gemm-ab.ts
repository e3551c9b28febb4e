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
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gemmStrided, type FloatArray } from '../backends/cpu/gemm.js';
import { scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';

const flags = scriptFlags('bench/gemm-ab.js', "This checkout's CPU GEMM against another build's, alternating in one process.", {
  other: { type: 'string', help: 'root of the other checkout, built (its backends/cpu/gemm.js is loaded)' },
  rounds: { type: 'string', help: 'alternations per shape', default: '12' },
}, (v) => {
  if (typeof v.other !== 'string') throw new Error('--other <checkout> is required: the build to compare with');
  const file = resolve(v.other, 'backends/cpu/gemm.js');
  if (!existsSync(file)) throw new Error(`${file} does not exist: build that checkout first (npm ci, or node scripts/build.mjs)`);
  const rounds = Number(v.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${String(v.rounds)}`);
  return { file, rounds };
});

type Gemm = typeof gemmStrided;
const other = (await import(pathToFileURL(flags.file).href) as { gemmStrided: Gemm }).gemmStrided;

// [M, N, K, transA, transB, float64]: the Gaussian step's encoder dense layer (forward, input
// gradient, weight gradient; 32 channels, then the default study's 8), a Winograd position's
// GEMM and its filter gradient, 512³.
const shapes: [number, number, number, boolean, boolean, boolean][] = [
  [64, 400, 25088, false, true, false], [64, 25088, 400, false, false, false], [400, 25088, 64, true, false, false],
  [64, 400, 6272, false, true, false],
  [441, 32, 32, false, false, true], [32, 32, 441, true, false, true], [512, 512, 512, false, false, false],
];
const ROUND_MS = 250;

console.log(`gemm, one thread: this checkout against ${flags.file}, ${flags.rounds} alternating rounds of ${ROUND_MS} ms`);
for (const [M, N, K, tA, tB, f64] of shapes) {
  const make = (n: number): FloatArray => (f64 ? new Float64Array(n) : new Float32Array(n)).map(() => Math.random() - 0.5);
  const A = make(M * K), B = make(K * N), mine = make(M * N), theirs = make(M * N);
  const run = (g: Gemm, C: FloatArray): void => g(M, N, K, A, 0, tA ? M : K, tA, B, 0, tB ? K : N, tB, C, 0, N, false);
  run(gemmStrided, mine);
  run(other, theirs);
  const differs = mine.findIndex((x, i) => x !== theirs[i]);
  const rate = (g: Gemm): number => {
    const start = performance.now();
    let calls = 0;
    while (performance.now() - start < ROUND_MS) { run(g, mine); calls++; }
    return (2 * M * N * K * calls) / ((performance.now() - start) * 1e6);
  };
  const thisRates: number[] = [], otherRates: number[] = [], ratios: number[] = [];
  for (let round = 0; round < flags.rounds; round++) {
    // Who goes first alternates too, so neither always runs on a warmer cache or a calmer core.
    const thisFirst = round % 2 === 0;
    const first = rate(thisFirst ? gemmStrided : other), second = rate(thisFirst ? other : gemmStrided);
    const [ours, theirs] = thisFirst ? [first, second] : [second, first];
    thisRates.push(ours); otherRates.push(theirs); ratios.push(ours / theirs);
  }
  const shape = `${M}x${N}x${K}${tA ? ' Aᵀ' : ''}${tB ? ' Bᵀ' : ''} ${f64 ? 'f64' : 'f32'}`;
  console.log(`${shape.padEnd(24)} other ${median(otherRates).toFixed(2).padStart(6)}  this ${median(thisRates).toFixed(2).padStart(6)} GFLOP/s  ratio ${median(ratios).toFixed(3)}` +
    (differs >= 0 ? `  (products differ first at ${differs}: ${mine[differs]} vs ${theirs[differs]})` : '  (same product)'));
}
