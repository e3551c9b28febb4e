// Where `--backend auto` keeps what its probe measured (backends/select.ts, backends/probe.ts),
// so that only a machine's first run pays for the probe. An entry holds for one key: everything
// that could change which backend is faster (this package's version and Dawn's, the adapter
// and its driver, Node, the CPU and its core count, the thread settings and kernel switches).
// Any change gives a different key and a new probe. A file that cannot be read or parsed, or an
// entry of the wrong shape, is ignored, and the next write replaces it atomically.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../engine/safetensors.js';
import type { CandidateFigures } from './probe.js';
import type { AdapterKind } from './webgpu/adapter.js';

/** What Dawn reports of an adapter, and which of its backends found it. */
export interface AdapterFacts {
  kind: AdapterKind;
  vendor: string;
  architecture: string;
  device: string;
  /** The driver: e.g. 'llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1'. */
  description: string;
  /** A CPU rasteriser (lavapipe, llvmpipe, SwiftShader), not a GPU. */
  software: boolean;
}

/** The machine and the settings a probe's figures depend on, beside the adapter. */
export interface MachineFacts {
  /** This package's version (package.json). */
  silentgrad: string;
  /** The `webgpu` package's version: which Dawn build. */
  webgpuPackage: string;
  /** A digest of the backends' compiled code: new kernels make old figures stale at the same version. */
  backendsCode: string;
  node: string;
  cpu: string;
  cores: number;
  /** The settings that change either backend's speed, as they stand (unset ones left out). */
  env: Record<string, string>;
}

export interface ChoiceKey extends MachineFacts {
  probe: number;
  adapter: AdapterFacts;
}

export interface CachedChoice {
  key: ChoiceKey;
  /** The `--backend` name chosen. */
  chosen: string;
  figures: CandidateFigures[];
  /** ISO time of the measurement. */
  measuredAt: string;
  /** How long the probe took, in seconds. */
  probeSeconds: number;
}

/** Variables that change a backend's speed: a different value is a different machine. */
export const SPEED_SETTINGS = [
  'SILENTGRAD_THREADS', 'SILENTGRAD_CPU_KERNELS', 'SILENTGRAD_WASM_RELAXED', 'LP_NUM_THREADS', 'SILENTGRAD_WEBGPU_ADAPTER', 'SILENTGRAD_DAWN_FEATURES', 'SILENTGRAD_WEBGPU_SHARED_ROWS',
  'SILENTGRAD_WEBGPU_KERNELS', 'SILENTGRAD_WEBGPU_WINOGRAD', 'SILENTGRAD_SILENT_ELBO_FUSE', 'SILENTGRAD_SILENT_ELBO_VEC',
] as const;

const FORMAT = 'silentgrad backend choice';
const KEPT_ENTRIES = 8;

function packageVersion(path: string): string {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return isRecord(parsed) && typeof parsed.version === 'string' ? parsed.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** SHA-256 (first 16 hex digits) of every compiled file under backends/, names and contents. */
function backendsDigest(): string {
  const root = fileURLToPath(new URL('.', import.meta.url));
  const hash = createHash('sha256');
  const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js')).sort();
  for (const file of files) hash.update(file).update(readFileSync(join(root, file)));
  return hash.digest('hex').slice(0, 16);
}

/**
 * This machine as the key sees it. Call it after the WebGPU device is open: device.ts sets
 * LP_NUM_THREADS's default then.
 */
export function machineFacts(env: NodeJS.ProcessEnv = process.env): MachineFacts {
  let webgpuPackage = 'absent';
  try {
    webgpuPackage = packageVersion(createRequire(import.meta.url).resolve('webgpu/package.json'));
  } catch { /* not installed: the key says so */ }
  const settings: Record<string, string> = {};
  for (const name of SPEED_SETTINGS) {
    const value = env[name];
    if (value !== undefined) settings[name] = value;
  }
  return {
    silentgrad: packageVersion(fileURLToPath(new URL('../package.json', import.meta.url))),
    webgpuPackage,
    backendsCode: backendsDigest(),
    node: process.version,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    env: settings,
  };
}

/** The cache file: $SILENTGRAD_CACHE_DIR, else $XDG_CACHE_HOME/silentgrad, else ~/.cache/silentgrad. */
export function defaultCacheFile(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.SILENTGRAD_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'silentgrad');
  return join(dir, 'backend-choice.json');
}

/** `path` with the home directory written as ~, for messages. */
export function displayPath(path: string): string {
  const home = homedir();
  return home && home !== '/' && path.startsWith(`${home}/`) ? `~${path.slice(home.length)}` : path;
}

/** A canonical string of a key (object keys sorted at every level), for comparison. */
export function keyString(key: ChoiceKey): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (isRecord(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]));
    return v;
  };
  return JSON.stringify(sorted(key));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isFigures(v: unknown): v is CandidateFigures {
  return isRecord(v) && typeof v.name === 'string' && typeof v.label === 'string' && typeof v.medianMs === 'number'
    && Number.isFinite(v.medianMs) && Array.isArray(v.samplesMs) && v.samplesMs.every((x) => typeof x === 'number');
}

function isEntry(v: unknown): v is CachedChoice {
  return isRecord(v) && isRecord(v.key) && isRecord(v.key.adapter) && typeof v.chosen === 'string'
    && Array.isArray(v.figures) && v.figures.length > 0 && v.figures.every(isFigures)
    && v.figures.some((f) => isFigures(f) && f.name === v.chosen)
    && typeof v.measuredAt === 'string' && !Number.isNaN(Date.parse(v.measuredAt)) && typeof v.probeSeconds === 'number';
}

/** Every well-formed entry in the file; none when it is missing, unreadable or corrupt. */
export function readEntries(file: string): CachedChoice[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
  if (!isRecord(parsed) || parsed.format !== FORMAT || !Array.isArray(parsed.entries)) return [];
  return parsed.entries.filter(isEntry);
}

/** The entry measured for exactly this key, if any. */
export function readChoice(file: string, key: ChoiceKey): CachedChoice | null {
  const wanted = keyString(key);
  return readEntries(file).find((e) => keyString(e.key) === wanted) ?? null;
}

/**
 * Records `entry` first, keeping the most recent other keys (a machine switching between
 * SILENTGRAD_WEBGPU_ADAPTER=vulkan and opengl keeps both). Written to a temporary file and
 * renamed over the old one. Returns null, or why it could not be written.
 */
export function writeChoice(file: string, entry: CachedChoice): string | null {
  const key = keyString(entry.key);
  const entries = [entry, ...readEntries(file).filter((e) => keyString(e.key) !== key)].slice(0, KEPT_ENTRIES);
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileAtomic(file, [new TextEncoder().encode(`${JSON.stringify({ format: FORMAT, entries }, null, 2)}\n`)]);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
