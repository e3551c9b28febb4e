// Float32 matmul in GFLOP/s at the MLP's shapes (64x784 · 784x200, 64x200 · 200x784) and 512³:
// our CPU backend's matmul (engine ops, SILENTGRAD_THREADS threads, by default every core)
// against jax-js's Wasm backend (@jax-js/jax, benchmark only, installed outside the repository),
// alternating round by round in one process: on a shared machine whose speed drifts by tens of
// percent within minutes, only neighbouring samples compare. Also timed in the same rounds: our
// kernels on one thread (gemmStrided), the WebAssembly SIMD one and the TypeScript one
// (SILENTGRAD_CPU_KERNELS=js, the scalar kernel the backend had before the Wasm one).
//   npm install --prefix /tmp/jaxjs @jax-js/jax
//   node bench/gemm-jaxjs.js --jax /tmp/jaxjs/node_modules [--rounds 8] [--jax-workers 2]
//   SILENTGRAD_THREADS=1 node bench/gemm-jaxjs.js --jax /tmp/jaxjs/node_modules --jax-workers 1
// (one thread each; --jax-workers 0 runs jax-js as stock Node 20 does, on the main thread).
// Both engines' float32 products here sum K in order in float32, so they agree to the bit.
// Issue 23's bar: our matmul at least jax-js's speed, both on both threads.
import { availableParallelism } from 'node:os';
import * as sg from '../silentgrad.js';
import { gemmStrided, getCpuKernels, setCpuKernels, type CpuKernels } from '../backends/cpu/gemm.js';
import { threadCount } from '../backends/cpu/parallel.js';
import { nonNegativeInteger, positiveInteger, scriptFlags } from '../experiments/cli.js';
import { findJax, loadJax } from './jaxjs-node.js';
import { median } from './stats.js';

const flags = scriptFlags('bench/gemm-jaxjs.js', "Our CPU matmul against jax-js's Wasm backend (and our one-thread kernels), float32, alternating in one process.", {
  jax: { type: 'string', help: 'a node_modules folder holding @jax-js/jax (npm install --prefix /tmp/jaxjs @jax-js/jax)' },
  'jax-workers': { type: 'string', help: "threads for jax-js's Wasm pool; 0 = as Node 20 runs it, on the main thread alone", default: String(availableParallelism()) },
  rounds: { type: 'string', help: 'alternations per shape', default: '8' },
}, (v) => ({
  jax: findJax(v.jax as string | undefined),
  workers: nonNegativeInteger('jax-workers', v['jax-workers'] as string),
  rounds: positiveInteger('rounds', v.rounds as string),
}));

const jax = await loadJax(flags.jax, flags.workers);
const np = jax.numpy;
const ROUND_MS = 250;
console.log(`ours: ${sg.cpuBackend.describe()}; matmul on ${threadCount()} thread(s)`);
console.log(`jax-js ${jax.version}, Wasm backend, ${flags.workers === 0 ? 'main thread only (no Worker global in Node 20)' : `a pool of ${flags.workers} worker thread(s) (worker_threads as browser Workers)`}`);
console.log(`float32, C = A·B with fresh C per call, read back each call (both engines); ${flags.rounds} alternating rounds of ${ROUND_MS} ms per contender; GFLOP/s are medians of rounds, ratios medians of the rounds' ratios`);

/** One call's product, as a host array. */
type Contender = { name: string; call(): Promise<Float32Array> };

/** gemmStrided on this thread with `kernels`, then back to what the backend uses. */
function oneThread(kernels: CpuKernels, M: number, N: number, K: number, A: Float32Array, B: Float32Array): () => Promise<Float32Array> {
  return async () => {
    const previous = getCpuKernels(), C = new Float32Array(M * N);
    setCpuKernels(kernels);
    try { gemmStrided(M, N, K, A, 0, K, false, B, 0, N, false, C, 0, N, false); } finally { setCpuKernels(previous); }
    return C;
  };
}

/** max |a - b| over max |b|, or 'same bits'. */
function difference(a: Float32Array, b: Float32Array): string {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) { diff = Math.max(diff, Math.abs(a[i]! - b[i]!)); scale = Math.max(scale, Math.abs(b[i]!)); }
  return diff === 0 ? 'same bits' : (diff / scale).toExponential(1);
}

for (const [M, K, N] of [[64, 784, 200], [64, 200, 784], [512, 512, 512]] as const) {
  const random = (n: number): Float32Array => new Float32Array(n).map(() => Math.random() - 0.5);
  const A = random(M * K), B = random(K * N);
  const a = sg.tensor(A, [M, K]), b = sg.tensor(B, [K, N]);
  const ja = np.array(A).reshape([M, K]), jb = np.array(B).reshape([K, N]);
  const contenders: Contender[] = [
    { name: `ours (${threadCount()} thr)`, call: async () => { const c = sg.matmul(a, b); const v = await c.data(); c.dispose(); return v as Float32Array; } }, // float32 in, float32 out
    { name: 'jax-js', call: () => np.matmul(ja.ref, jb.ref).data() },
    { name: 'ours wasm 1 thr', call: oneThread('wasm', M, N, K, A, B) },
    { name: 'ours js 1 thr', call: oneThread('js', M, N, K, A, B) },
  ];
  const products = [];
  for (const c of contenders) products.push(await c.call()); // also compiles, packs, starts pools
  const rate = async (c: Contender): Promise<number> => {
    const start = performance.now();
    let calls = 0;
    while (performance.now() - start < ROUND_MS) { await c.call(); calls++; }
    return (2 * M * N * K * calls) / ((performance.now() - start) * 1e6);
  };
  const rates: number[][] = contenders.map(() => []);
  for (let round = 0; round < flags.rounds; round++) {
    // Who goes first rotates, so no contender always runs on a warmer cache or a calmer core.
    for (let j = 0; j < contenders.length; j++) {
      const i = (round + j) % contenders.length;
      rates[i]!.push(await rate(contenders[i]!));
    }
  }
  const ratio = (i: number, j: number): number => median(rates[i]!.map((r, n) => r / rates[j]![n]!));
  const shape = `${M}x${K} · ${K}x${N}`;
  console.log(`${shape.padEnd(18)} ${contenders.map((c, i) => `${c.name} ${median(rates[i]!).toFixed(2)}`).join(',  ')} GFLOP/s`);
  console.log(`${''.padEnd(18)} ours/jax-js ${ratio(0, 1).toFixed(2)} (rounds: ${rates[0]!.map((r, n) => (r / rates[1]![n]!).toFixed(2)).join(', ')}), ` +
    `ours/js 1 thr ${ratio(0, 3).toFixed(2)}, wasm/js 1 thr ${ratio(2, 3).toFixed(2)}; ` +
    `max |difference| over max |ours|: jax-js ${difference(products[1]!, products[0]!)}, js ${difference(products[3]!, products[0]!)}`);
  a.dispose(); b.dispose(); ja.dispose(); jb.dispose();
}
process.exit(0); // jax-js's worker threads would keep the process alive
