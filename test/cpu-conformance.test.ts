// The CPU backend's WebAssembly kernels against its TypeScript kernels, through the shared table
// of test/conformance-cases.ts (every op's value and gradient, views, odd and empty shapes,
// convolutions, matmul paths, both silent-ELBO forms, AdamW, training steps): the default CPU
// backend (Wasm kernels, the pool) is the reference the table compares with, and the backend
// under test is the same one with every call run by the TypeScript kernels on this thread.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { getCpuKernels, setCpuKernels } from '../backends/cpu/gemm.js';
import { onCallingThread } from '../backends/cpu/parallel.js';
import type { Backend } from '../engine/backend.js';
import * as sg from '../silentgrad.js';
import { runConformance } from './conformance-cases.js';

function typeScriptKernels<T>(fn: () => T): T {
  const before = getCpuKernels();
  setCpuKernels('js');
  try {
    return onCallingThread(fn);
  } finally {
    setCpuKernels(before);
  }
}

/**
 * sg.cpuBackend with each method run by typeScriptKernels: an object of its own (the table wraps
 * the methods of the backend it tests to record which ran), inheriting everything else.
 */
function typeScriptBackend(cpu: Backend): Backend {
  const wrapped = Object.create(cpu) as Record<string, unknown>;
  const methods = new Set<string>();
  for (let o: object | null = Object.getPrototypeOf(cpu) as object; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null)
    for (const key of Object.getOwnPropertyNames(o)) if (key !== 'constructor') methods.add(key);
  for (const key of methods) {
    const method: unknown = Reflect.get(cpu, key);
    if (typeof method === 'function') wrapped[key] = (...args: unknown[]) => typeScriptKernels(() => (method as (...a: unknown[]) => unknown).apply(cpu, args));
  }
  return wrapped as unknown as Backend;
}
const typeScriptCpu = typeScriptBackend(sg.cpuBackend);

// Under SILENTGRAD_CPU_KERNELS=js both sides are TypeScript; the table still runs.
console.log(`cpu conformance: ${sg.cpuBackend.describe()} against its TypeScript kernels on one thread`);

runConformance('CPU TypeScript kernels', typeScriptCpu);

test('the reference side runs the Wasm kernels, the other side does not', () => {
  if (process.env.SILENTGRAD_CPU_KERNELS === 'js') return;
  assert.is(getCpuKernels(), 'wasm');
  assert.is(typeScriptKernels(() => getCpuKernels()), 'js');
});

test.run();
