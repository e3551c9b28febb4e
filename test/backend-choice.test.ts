// `--backend auto` (backends/select.ts): the probe's figures decide between a software WebGPU
// adapter and the cpu backend, the decision is cached per machine and driver, and a GPU is taken
// without probing. The timings are injected, so nothing here is timed and no device is opened.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuBackend, type Backend } from '../silentgrad.js';
import { chooseAuto, type AutoDeps } from '../backends/select.js';
import { keyString, machineFacts, readEntries, type AdapterFacts, type ChoiceKey, type MachineFacts } from '../backends/choice-cache.js';
import { measureProbe, PROBE_VERSION, type ProbeCandidate, type ProbeFigures } from '../backends/probe.js';

/** A stand-in with its own name and description; the probe that would run on it is faked. */
function fakeBackend(name: string): Backend {
  const fake: Backend = Object.create(cpuBackend, {
    name: { value: name },
    describe: { value: () => `${name} (a stand-in)` },
  });
  return fake;
}

const webgpuBackend = fakeBackend('webgpu'), gpujsBackend = fakeBackend('gpujs');

const lavapipe: AdapterFacts = {
  kind: 'vulkan', vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15-0-6-256-bits-',
  description: 'llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1', software: true,
};
const machine: MachineFacts = { silentgrad: '0.1.0', webgpuPackage: '0.6.2', backendsCode: '0123456789abcdef', node: 'v20.20.2', cpu: 'AMD EPYC', cores: 2, env: { LP_NUM_THREADS: '4' } };

/** Figures as measureProbe gives them, from milliseconds per candidate. */
function figures(ms: Record<string, number>, failures: ProbeFigures['failures'] = []) {
  return (candidates: readonly ProbeCandidate[]): ProbeFigures => ({
    figures: candidates.filter((c) => c.name in ms).map((c) => ({ name: c.name, label: c.label, medianMs: ms[c.name]!, samplesMs: [ms[c.name]!, ms[c.name]!, ms[c.name]!] })),
    failures,
    seconds: 4.2,
  });
}

interface Setup {
  deps: AutoDeps;
  /** How many times the probe ran. */
  probes(): number;
  logged: string[];
  cacheFile: string;
}

const dirs: string[] = [];

/** Deps with a fresh cache folder (or `cacheFile`), and `measure` giving `ms`. */
function setup(o: { ms?: Record<string, number>; adapter?: AdapterFacts | null; machine?: MachineFacts; cacheFile?: string; reprobe?: boolean; gpujsOnHost?: boolean; failures?: ProbeFigures['failures'] } = {}): Setup {
  let probes = 0;
  const logged: string[] = [];
  let cacheFile = o.cacheFile;
  if (!cacheFile) {
    const dir = mkdtempSync(join(tmpdir(), 'silentgrad-choice-'));
    dirs.push(dir);
    cacheFile = join(dir, 'nested', 'backend-choice.json');
  }
  const adapter = o.adapter === undefined ? lavapipe : o.adapter;
  const measure = figures(o.ms ?? { webgpu: 41, cpu: 88 }, o.failures);
  const deps: AutoDeps = {
    webgpu: async () => (adapter ? { backend: webgpuBackend, adapter } : { reason: 'no WebGPU adapter (Vulkan: requestAdapter() returned null)' }),
    gpujs: async () => ({ backend: gpujsBackend, mode: o.gpujsOnHost === false ? 'headlessgl' : 'webasm', onHost: o.gpujsOnHost !== false }),
    cpu: cpuBackend,
    measure: async (candidates) => { probes++; return measure(candidates); },
    machine: () => o.machine ?? machine,
    cacheFile,
    reprobe: o.reprobe ?? false,
    now: () => new Date('2026-12-07T10:00:00Z'),
    log: (line) => logged.push(line),
  };
  return { deps, probes: () => probes, logged, cacheFile };
}

test('the choice follows the measured figures', async () => {
  const faster = await chooseAuto(setup({ ms: { webgpu: 41, cpu: 88 } }).deps);
  assert.is(faster.backend, webgpuBackend);
  const slower = await chooseAuto(setup({ ms: { webgpu: 120, cpu: 88 } }).deps);
  assert.is(slower.backend, cpuBackend);
  assert.match(slower.reason, /^--backend auto chose cpu: a probe step took 88 ms on cpu against 120 ms on webgpu \(a software adapter, vulkan\) \(1\.4x\)/);
});

test('the reason line gives the choice, the alternatives and their figures', async () => {
  const s = setup({ ms: { webgpu: 41, cpu: 88 } });
  const { reason } = await chooseAuto(s.deps);
  assert.match(reason, /^--backend auto chose webgpu \(a software adapter, vulkan\): a probe step took 41 ms on webgpu against 88 ms on cpu \(2\.1x\)/);
  assert.match(reason, /measured now in 4\.2 s, median of 3 alternated steps each, cached in /);
  assert.match(reason, /SILENTGRAD_REPROBE=1 measures again/);
  assert.match(reason, /gpujs not probed: in 'webasm' mode it computes on the CPU/);
  assert.ok(reason.endsWith('webgpu (a stand-in)'), reason);
  assert.is(s.logged.length, 1, 'one line announces the probe');
});

test('a second run takes the cached choice without probing, and says when it was measured', async () => {
  const first = setup();
  await chooseAuto(first.deps);
  const second = setup({ cacheFile: first.cacheFile, ms: { webgpu: 500, cpu: 1 } });
  const { backend, reason } = await chooseAuto(second.deps);
  assert.is(second.probes(), 0);
  assert.is(second.logged.length, 0);
  assert.is(backend, webgpuBackend, 'the cached figures decide, not the new ones');
  assert.match(reason, /took 41 ms on webgpu against 88 ms on cpu \(2\.1x\) \(measured 2026-12-07, cached in .*; SILENTGRAD_REPROBE=1 measures again\)/);
});

test('SILENTGRAD_REPROBE=1 measures again and replaces the entry', async () => {
  const first = setup();
  await chooseAuto(first.deps);
  const again = setup({ cacheFile: first.cacheFile, reprobe: true, ms: { webgpu: 120, cpu: 88 } });
  assert.is((await chooseAuto(again.deps)).backend, cpuBackend);
  assert.is(again.probes(), 1);
  const entries = readEntries(first.cacheFile);
  assert.is(entries.length, 1);
  assert.is(entries[0]!.chosen, 'cpu');
});

test('a new driver, package version or backend code is a new key: the cache is ignored', async () => {
  const first = setup();
  await chooseAuto(first.deps);
  const key = (adapter: AdapterFacts, facts: MachineFacts): ChoiceKey => ({ probe: PROBE_VERSION, ...facts, adapter });
  const newDriver: AdapterFacts = { ...lavapipe, description: 'llvmpipe: Mesa 25.2.0 (LLVM 19.1.7)' };
  const newPackage: MachineFacts = { ...machine, silentgrad: '0.2.0' };
  const openGl: AdapterFacts = { ...lavapipe, kind: 'opengl' };
  const moreThreads: MachineFacts = { ...machine, env: { ...machine.env, SILENTGRAD_THREADS: '1' } };
  const newKernels: MachineFacts = { ...machine, backendsCode: 'fedcba9876543210' };
  const base = keyString(key(lavapipe, machine));
  for (const [adapter, facts] of [[newDriver, machine], [lavapipe, newPackage], [openGl, machine], [lavapipe, moreThreads], [lavapipe, newKernels]] as const) {
    assert.is.not(keyString(key(adapter, facts)), base);
    const s = setup({ cacheFile: first.cacheFile, adapter, machine: facts, ms: { webgpu: 120, cpu: 88 } });
    assert.is((await chooseAuto(s.deps)).backend, cpuBackend, 'measured again, not read from the old entry');
    assert.is(s.probes(), 1);
  }
  // The old key's entry is still there for when it applies again.
  const back = setup({ cacheFile: first.cacheFile });
  assert.is((await chooseAuto(back.deps)).backend, webgpuBackend);
  assert.is(back.probes(), 0);
  assert.is(keyString(key(lavapipe, { ...machine })), base, 'the same facts give the same key');
});

test('the key carries a digest of the backends\' code, the same on every call', () => {
  const code = machineFacts().backendsCode;
  assert.match(code, /^[0-9a-f]{16}$/);
  assert.is(machineFacts().backendsCode, code);
});

test('a corrupt or foreign cache file is ignored and rewritten', async () => {
  for (const contents of ['{"format": "silentgrad backend choice", "entries": [', 'null', '{"format": "something else", "entries": []}',
    JSON.stringify({ format: 'silentgrad backend choice', entries: [{ key: {}, chosen: 'webgpu', figures: [], measuredAt: 'yesterday', probeSeconds: 1 }] })]) {
    const first = setup();
    await chooseAuto(first.deps);
    writeFileSync(first.cacheFile, contents);
    const s = setup({ cacheFile: first.cacheFile, ms: { webgpu: 120, cpu: 88 } });
    assert.is((await chooseAuto(s.deps)).backend, cpuBackend);
    assert.is(s.probes(), 1);
    const rewritten: unknown = JSON.parse(readFileSync(first.cacheFile, 'utf8'));
    assert.ok(typeof rewritten === 'object' && rewritten !== null);
    assert.is(readEntries(first.cacheFile).length, 1);
  }
});

test('a GPU adapter is chosen without probing', async () => {
  const gpu: AdapterFacts = { kind: 'vulkan', vendor: 'nvidia', architecture: 'ada', device: 'NVIDIA L4', description: 'NVIDIA: 550.120', software: false };
  const s = setup({ adapter: gpu });
  s.deps.gpujs = () => Promise.reject(new Error('gpu.js need not be loaded'));
  const { backend, reason } = await chooseAuto(s.deps);
  assert.is(backend, webgpuBackend);
  assert.is(s.probes(), 0);
  assert.match(reason, /^--backend auto chose webgpu \(a GPU adapter, vulkan\), without probing/);
});

test('gpu.js on a GPU is chosen without probing; gpu.js on the host is never probed', async () => {
  const onGpu = setup({ gpujsOnHost: false });
  assert.is((await chooseAuto(onGpu.deps)).backend, gpujsBackend);
  assert.is(onGpu.probes(), 0);
  const hostOnly = setup({ adapter: null });
  const { backend, reason } = await chooseAuto(hostOnly.deps);
  assert.is(backend, cpuBackend);
  assert.is(hostOnly.probes(), 0);
  assert.match(reason, /^--backend auto chose cpu, the only candidate: no WebGPU adapter .*gpujs not probed/);
});

test('a candidate that fails in the probe loses, and the choice is not cached', async () => {
  const s = setup({ ms: { cpu: 88 }, failures: [{ name: 'webgpu', label: 'webgpu (a software adapter, vulkan)', error: 'device lost' }] });
  const { backend, reason } = await chooseAuto(s.deps);
  assert.is(backend, cpuBackend);
  assert.match(reason, /webgpu \(a software adapter, vulkan\) failed in the probe: device lost/);
  assert.match(reason, /not cached/);
  assert.is(readEntries(s.cacheFile).length, 0);
});

test('measureProbe reports a backend that throws instead of failing', async () => {
  const broken: Backend = Object.create(cpuBackend, { alloc: { value: () => { throw new Error('out of memory'); } } });
  const result = await measureProbe([{ name: 'broken', label: 'broken', backend: broken }], { warmupSteps: 1, budgetMs: 0, minRounds: 1, maxRounds: 1 });
  assert.equal(result.figures, []);
  assert.equal(result.failures.map((f) => f.error), ['out of memory']);
});

test.after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test.run();
