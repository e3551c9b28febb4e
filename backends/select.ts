// Choosing a backend by name. `auto` takes what is fastest here and says why, with the figures.
import type { Backend } from '../engine/backend.js';
import { cpuBackend } from './cpu/index.js';
import {
  defaultCacheFile, displayPath, machineFacts, readChoice, writeChoice,
  type AdapterFacts, type CachedChoice, type ChoiceKey, type MachineFacts,
} from './choice-cache.js';
import { measureProbe, PROBE_VERSION, PROBE_WORKLOAD, type CandidateFigures, type ProbeCandidate, type ProbeFigures } from './probe.js';

export const backendNames = ['auto', 'cpu', 'webgpu', 'gpujs'] as const;
export type BackendName = (typeof backendNames)[number];

export interface SelectedBackend {
  backend: Backend;
  /** One line: what was chosen and why (printed by every experiment). */
  reason: string;
}

/** Loaded on demand, so runs that never use gpu.js never load it. */
async function gpuJsBackend(): Promise<import('./gpujs/index.js').GpuJsBackend> {
  return (await import('./gpujs/index.js')).createGpuJsBackend();
}

/** Loaded on demand too (Dawn is a native module): the backend, or null and the reason. */
async function webGpuBackend(): Promise<{ backend: import('./webgpu/index.js').WebGpuBackend } | { reason: string }> {
  const webgpu = await import('./webgpu/index.js');
  const backend = await webgpu.createWebGpuBackend();
  return backend ? { backend } : { reason: webgpu.webGpuUnavailableReason() ?? 'no WebGPU adapter' };
}

/** What `auto` needs from the world; selectBackend passes the real ones, tests their own. */
export interface AutoDeps {
  /** The WebGPU backend and its adapter, or why there is none. */
  webgpu(): Promise<{ backend: Backend; adapter: AdapterFacts; passedOver?: readonly string[] } | { reason: string }>;
  /** The gpu.js backend and where it computes. */
  gpujs(): Promise<{ backend: Backend; mode: string; onHost: boolean }>;
  cpu: Backend;
  /** Times the probe on each candidate (backends/probe.ts: measureProbe). */
  measure(candidates: readonly ProbeCandidate[]): Promise<ProbeFigures>;
  /** This machine, for the cache key; called after webgpu() (which sets LP_NUM_THREADS). */
  machine(): MachineFacts;
  cacheFile: string;
  /** Measure even when the cache has an answer (SILENTGRAD_REPROBE=1). */
  reprobe: boolean;
  now(): Date;
  /** Where the one line announcing a probe goes. */
  log(line: string): void;
}

function realDeps(): AutoDeps {
  return {
    webgpu: async () => {
      const found = await webGpuBackend();
      if ('reason' in found) return found;
      const { context } = found.backend, info = context.adapter.info;
      return {
        backend: found.backend,
        adapter: { kind: context.kind, vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, software: context.software },
        passedOver: context.passedOver,
      };
    },
    gpujs: async () => {
      const backend = await gpuJsBackend();
      return { backend, mode: backend.mode, onHost: backend.onHost };
    },
    cpu: cpuBackend,
    measure: (candidates) => measureProbe(candidates),
    machine: () => machineFacts(),
    cacheFile: defaultCacheFile(),
    reprobe: process.env.SILENTGRAD_REPROBE === '1',
    now: () => new Date(),
    log: (line) => console.log(line),
  };
}

/** 'webgpu (a software adapter, vulkan)': the name and what it runs on. */
function webGpuLabel(adapter: AdapterFacts): string {
  return `webgpu (${adapter.software ? 'a software adapter' : 'a GPU adapter'}, ${adapter.kind})`;
}

function ms(x: number): string {
  return `${x < 10 ? x.toFixed(1) : x.toFixed(0)} ms`;
}

/**
 * The reason line of a measured choice: the chosen backend's time per probe step against each
 * alternative's, and where the figures come from.
 */
export function probeReason(chosen: string, figures: readonly CandidateFigures[], provenance: string, notes: readonly string[], describe: string): string {
  const winner = figures.find((f) => f.name === chosen)!;
  const others = figures.filter((f) => f !== winner);
  const against = others.length === 0 ? '' : ` against ${others.map((f) => `${ms(f.medianMs)} on ${f.label} (${(f.medianMs / winner.medianMs).toFixed(1)}x)`).join(', ')}`;
  return `--backend auto chose ${winner.label}: a probe step took ${ms(winner.medianMs)} on ${winner.name}${against} (${provenance})${notes.map((n) => `; ${n}`).join('')}; ${describe}`;
}

/**
 * `--backend auto`. A GPU is taken without probing: WebGPU on a GPU adapter, else gpu.js where
 * it reaches a GPU. Otherwise every backend computes on this CPU, and which is fastest depends
 * on the machine (its cores, the Mesa driver, Dawn's backend): with a software WebGPU adapter
 * (lavapipe on Vulkan, llvmpipe on OpenGL) the probe (backends/probe.ts) times the default
 * study's training step on it and on the cpu backend, and the faster one is taken. The answer is
 * cached per machine (backends/choice-cache.ts); SILENTGRAD_REPROBE=1 measures again. gpu.js
 * on the host is not probed: bench/gpujs.js measured it slower than the cpu backend.
 */
export async function chooseAuto(deps: AutoDeps): Promise<SelectedBackend> {
  const webgpu = await deps.webgpu();
  if ('backend' in webgpu && !webgpu.adapter.software)
    return { backend: webgpu.backend, reason: `--backend auto chose ${webGpuLabel(webgpu.adapter)}, without probing: a GPU is taken whenever Dawn finds one; ${webgpu.backend.describe()}` };
  const gpujs = await deps.gpujs();
  if (!gpujs.onHost) {
    const webGpuState = 'reason' in webgpu ? webgpu.reason : `WebGPU has only ${webGpuLabel(webgpu.adapter)}`;
    return { backend: gpujs.backend, reason: `--backend auto chose gpujs, without probing: gpu.js reaches a GPU (${webGpuState}); ${gpujs.backend.describe()}` };
  }
  const gpujsNote = `gpujs not probed: in '${gpujs.mode}' mode it computes on the CPU, where bench/gpujs.js measured it slower than cpu`;
  if ('reason' in webgpu)
    return { backend: deps.cpu, reason: `--backend auto chose cpu, the only candidate: ${webgpu.reason}; ${gpujsNote}; ${deps.cpu.describe()}` };
  // E.g. 'Vulkan: not tried, no Vulkan loader (...)' when OpenGL is what was found.
  const notes = [...(webgpu.passedOver ?? []), gpujsNote];

  const candidates: ProbeCandidate[] = [
    { name: 'webgpu', label: webGpuLabel(webgpu.adapter), backend: webgpu.backend },
    { name: 'cpu', label: 'cpu', backend: deps.cpu },
  ];
  const byName = (name: string): Backend => candidates.find((c) => c.name === name)!.backend;
  const key: ChoiceKey = { probe: PROBE_VERSION, ...deps.machine(), adapter: webgpu.adapter };
  const where = displayPath(deps.cacheFile);
  const again = 'SILENTGRAD_REPROBE=1 measures again';
  const cached = deps.reprobe ? null : readChoice(deps.cacheFile, key);
  if (cached && candidates.some((c) => c.name === cached.chosen)) {
    const provenance = `measured ${cached.measuredAt.slice(0, 10)}, cached in ${where}; ${again}`;
    return { backend: byName(cached.chosen), reason: probeReason(cached.chosen, cached.figures, provenance, notes, byName(cached.chosen).describe()) };
  }

  deps.log(`--backend auto: timing ${PROBE_WORKLOAD} on ${candidates.map((c) => c.label).join(' and ')}, a few seconds, once per machine (cached in ${where})`);
  const probe = await deps.measure(candidates);
  const failed = probe.failures.map((f) => `${f.label} failed in the probe: ${f.error}`);
  if (probe.figures.length === 0)
    return { backend: deps.cpu, reason: `--backend auto chose cpu: ${failed.join('; ')}; ${notes.join('; ')}; ${deps.cpu.describe()}` };
  const winner = probe.figures.reduce((best, f) => (f.medianMs < best.medianMs ? f : best));
  const counts = [...new Set(probe.figures.map((f) => f.samplesMs.length))].join('/');
  let saved: string;
  if (failed.length > 0) saved = 'not cached, since a candidate failed';
  else {
    const entry: CachedChoice = { key, chosen: winner.name, figures: probe.figures, measuredAt: deps.now().toISOString(), probeSeconds: probe.seconds };
    const error = writeChoice(deps.cacheFile, entry);
    saved = error === null ? `cached in ${where}; ${again}` : `could not be cached in ${where}: ${error}`;
  }
  const provenance = `measured now in ${probe.seconds.toFixed(1)} s, median of ${counts} alternated steps each, ${saved}`;
  return { backend: byName(winner.name), reason: probeReason(winner.name, probe.figures, provenance, [...failed, ...notes], byName(winner.name).describe()) };
}

export async function selectBackend(name: BackendName): Promise<SelectedBackend> {
  switch (name) {
    case 'cpu':
      return { backend: cpuBackend, reason: `--backend cpu: ${cpuBackend.describe()}` };
    case 'auto':
      return chooseAuto(realDeps());
    case 'gpujs': {
      const gpujs = await gpuJsBackend();
      return { backend: gpujs, reason: `--backend gpujs: ${gpujs.describe()}` };
    }
    case 'webgpu': {
      const webgpu = await webGpuBackend();
      if ('reason' in webgpu) throw new Error(`--backend webgpu: ${webgpu.reason}. Install a driver (.ci/install-system-deps.sh sets up Mesa's lavapipe) or use --backend cpu`);
      return { backend: webgpu.backend, reason: `--backend webgpu: ${webgpu.backend.describe()}` };
    }
  }
}
