// How far the CPU backend's float32 GEMM runs from this machine's peak, in FLOPs per cycle:
//   node bench/peak.js [--rounds 5]
// The clock is measured, not read (a VM's reported MHz is its host's nominal rate): a Wasm loop
// of dependent i32.add runs one add a cycle on every x86-64 and ARM64 core. The Wasm SIMD peak
// is measured too: twelve independent f32x4 multiply-add chains (mul then add: Wasm SIMD has no
// fused multiply-add without relaxed SIMD). The GEMM rows are the issue-23 shapes on one thread
// (gemmStridedF32Wasm) and over the pool (parallelGemm), each the median over rounds.
import { readFileSync } from 'node:fs';
import { allocShared, threadCount, warmUp } from '../backends/cpu/parallel.js';
import { parallelGemm } from '../backends/cpu/parallel-gemm.js';
import { gemmStridedF32Wasm, wasmGemmAvailable } from '../backends/cpu/wasm/gemm-f32.js';
import { ModuleBuilder } from '../backends/cpu/wasm/module.js';
import { Op, SimdOp, ValType } from '../backends/cpu/wasm/opcodes.js';
import { scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';

const flags = scriptFlags('bench/peak.js', "The float32 GEMM's FLOPs per cycle against the measured clock and Wasm SIMD peak.", {
  rounds: { type: 'string', help: 'samples per figure (median taken)', default: '5' },
}, (v) => {
  const rounds = Number(v.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${String(v.rounds)}`);
  if (!wasmGemmAvailable()) throw new Error('this engine has no WebAssembly SIMD, so there is no Wasm peak to measure');
  return { rounds };
});

const CHAIN = 32; // dependent adds per loop iteration: the loop's own counter runs beside them
const ACCUMULATORS = 12;

/** `clock(iterations, y)`: CHAIN·iterations dependent i32 adds; `simd(iterations, m, c)`: ACCUMULATORS multiply-add chains. */
function emitProbe(): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder();
  const clock = m.addFunction('clock', [ValType.i32, ValType.i32], [ValType.i32]);
  {
    const [iterations, y] = clock.paramTuple(2);
    const x = clock.local(ValType.i32), i = clock.local(ValType.i32);
    // x = x + y with y unknown at compile time, so the chain cannot be folded.
    clock.forLoop(i, iterations, () => {
      clock.get(x);
      for (let k = 0; k < CHAIN; k++) clock.get(y).op(Op.i32_add);
      clock.set(x);
    });
    clock.get(x);
  }
  const simd = m.addFunction('simd', [ValType.i32, ValType.f32, ValType.f32], [ValType.f32]);
  {
    const [iterations, mf, cf] = simd.paramTuple(3);
    const mul = simd.local(ValType.v128), add = simd.local(ValType.v128), i = simd.local(ValType.i32);
    simd.get(mf).simd(SimdOp.f32x4_splat).set(mul).get(cf).simd(SimdOp.f32x4_splat).set(add);
    const acc = Array.from({ length: ACCUMULATORS }, () => simd.local(ValType.v128));
    for (const a of acc) simd.f32x4Const(1).set(a);
    simd.forLoop(i, iterations, () => {
      for (const a of acc) simd.get(a).get(mul).simd(SimdOp.f32x4_mul).get(add).simd(SimdOp.f32x4_add).set(a);
    });
    // Sum the accumulators' first lanes into the result, so none is dead code.
    simd.get(acc[0]!).simdLane(SimdOp.f32x4_extract_lane, 0);
    for (const a of acc.slice(1)) simd.get(a).simdLane(SimdOp.f32x4_extract_lane, 0).op(Op.f32_add);
  }
  return m.encode();
}

const probe = new WebAssembly.Instance(new WebAssembly.Module(emitProbe())).exports as {
  clock: (iterations: number, y: number) => number;
  simd: (iterations: number, m: number, c: number) => number;
};

/** Median seconds of `run` over the rounds, after one warm-up call (Wasm tiers up on hot code). */
function seconds(run: () => void): number {
  run();
  return median(Array.from({ length: flags.rounds }, () => {
    const t = performance.now();
    run();
    return (performance.now() - t) / 1000;
  }));
}

const clockIterations = 20_000_000;
const hz = (clockIterations * CHAIN) / seconds(() => probe.clock(clockIterations, 1));
const simdIterations = 20_000_000;
const simdFlops = simdIterations * ACCUMULATORS * 2 * 4;
const peakPerCycle = simdFlops / seconds(() => probe.simd(simdIterations, 1, 0)) / hz;

let reported = 'none';
try {
  reported = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'none';
} catch { /* not Linux */ }
console.log(`clock: ${(hz / 1e9).toFixed(2)} GHz measured (one dependent i32.add a cycle); /proc/cpuinfo says ${reported} MHz`);
console.log(`Wasm SIMD peak, one thread: ${peakPerCycle.toFixed(1)} FLOPs/cycle (${(peakPerCycle * hz / 1e9).toFixed(1)} GFLOP/s; f32x4 mul + add, ${ACCUMULATORS} chains)`);

warmUp();
const shapes: [number, number, number][] = [[64, 784, 200], [64, 200, 784], [512, 512, 512]];
console.log(`\nfloat32 GEMM (M x K x N), median of ${flags.rounds}: GFLOP/s, FLOPs/cycle, share of the Wasm SIMD peak (per thread)`);
for (const [M, K, N] of shapes) {
  const A = allocShared('float32', M * K), B = allocShared('float32', K * N), C = allocShared('float32', M * N);
  A.fill(0.5); B.fill(0.25);
  const flops = 2 * M * N * K;
  const repeat = Math.max(1, Math.round(2e8 / flops));
  const rows: [string, number, number][] = [
    ['one thread', 1, seconds(() => { for (let r = 0; r < repeat; r++) gemmStridedF32Wasm(M, N, K, A as Float32Array, 0, K, false, B as Float32Array, 0, N, false, C as Float32Array, 0, N, false); }) / repeat],
    [`${threadCount()} threads`, threadCount(), seconds(() => { for (let r = 0; r < repeat; r++) parallelGemm(M, N, K, A, 0, false, B, 0, false, C, 0, false); }) / repeat],
  ];
  for (const [label, threads, s] of rows) {
    const perCycle = flops / s / hz / threads;
    console.log(`${`${M}x${K}x${N}`.padEnd(12)} ${label.padEnd(10)} ${(flops / s / 1e9).toFixed(1).padStart(6)} GFLOP/s  ${perCycle.toFixed(1).padStart(5)} FLOPs/cycle/thread  ${(100 * perCycle / peakPerCycle).toFixed(0).padStart(3)}% of peak`);
  }
}
