// Getting a WebGPU device in Node through the `webgpu` package (Dawn). Two facts shape this
// file (docs/webgpu-without-a-gpu.md):
//  - the GPU object returned by create() must outlive every device made from it: when it was
//    garbage-collected while a device was alive, lavapipe and llvmpipe crashed 10 runs in 10.
//    So each create() result is held in a module-level map for the whole process, never dropped;
//  - without a GPU, Vulkan on Mesa's lavapipe is preferred (full WebGPU); Dawn's OpenGL backend
//    on llvmpipe (EGL surfaceless, compatibility mode) is the fallback.
import { availableParallelism } from 'node:os';
import { create, globals } from 'webgpu';

// GPUBufferUsage, GPUMapMode, GPUShaderStage... as in a browser.
Object.assign(globalThis, globals);

export type AdapterKind = 'vulkan' | 'opengl';

export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly kind: AdapterKind;
  /** vendor, architecture, device, description of the adapter, one line. */
  readonly info: string;
  /** A CPU rasteriser (Mesa's lavapipe/llvmpipe), not a GPU: WebGPU then computes on the host. */
  readonly software: boolean;
  /** The device has the 'subgroups' feature with subgroups of at least 8 lanes (lavapipe: 8). */
  readonly subgroups8: boolean;
}

function isSoftware(adapter: GPUAdapter): boolean {
  const { architecture, device, description } = adapter.info;
  return architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(`${device} ${description}`);
}

/** create() results by option string: kept forever on purpose (see the header). */
const instances = new Map<string, GPU>();

function instance(options: string[]): GPU {
  const key = options.join(' ');
  let gpu = instances.get(key);
  if (!gpu) instances.set(key, (gpu = create(options)));
  return gpu;
}

/** Extra Dawn toggles, e.g. SILENTGRAD_DAWN_FEATURES=disable_robustness. */
function dawnFlags(): string[] {
  const features = process.env.SILENTGRAD_DAWN_FEATURES;
  return features ? [`enable-dawn-features=${features}`] : [];
}

function describeInfo(adapter: GPUAdapter, kind: AdapterKind): string {
  const i = adapter.info;
  const parts = [`vendor '${i.vendor}'`, `architecture '${i.architecture}'`, `device '${i.device}'`];
  if (i.description) parts.push(`description '${i.description}'`);
  return `${kind}: ${parts.join(', ')}`;
}

async function tryAdapter(kind: AdapterKind): Promise<{ adapter: GPUAdapter } | { reason: string }> {
  try {
    if (kind === 'opengl') {
      // EGL needs no display server this way; must be set before Dawn loads EGL.
      process.env.EGL_PLATFORM ??= 'surfaceless';
      const adapter = await instance(['backend=opengl', ...dawnFlags()]).requestAdapter({ featureLevel: 'compatibility' });
      return adapter ? { adapter } : { reason: 'OpenGL: requestAdapter() returned null' };
    }
    const adapter = await instance(dawnFlags()).requestAdapter();
    return adapter ? { adapter } : { reason: 'Vulkan: requestAdapter() returned null' };
  } catch (e) {
    return { reason: `${kind}: ${(e as Error).message}` };
  }
}

/** Copy every numeric limit the adapter offers (so e.g. OpenGL gets its real 1024 invocations). */
function adapterLimits(adapter: GPUAdapter): Record<string, number> {
  const limits: Record<string, number> = {};
  const source = adapter.limits as unknown as Record<string, unknown>;
  for (const key in source) {
    const value = source[key];
    if (typeof value === 'number') limits[key] = value;
  }
  return limits;
}

let pending: Promise<GpuContext | { reason: string }> | null = null;

/**
 * The process's one WebGPU device, made on first call (later calls share it). Order: the
 * SILENTGRAD_WEBGPU_ADAPTER env variable ('vulkan' or 'opengl') if set, else Vulkan then OpenGL.
 * Vulkan stays first on lavapipe: both pass the conformance and 1,000-step tests, but OpenGL's
 * compatibility mode has no subgroups, which the GEMM and silent-ELBO kernels use to share
 * loads, and Vulkan measured as fast or faster (docs/performance-log.md, "Vulkan against
 * OpenGL on a software driver").
 */
export function gpuContext(): Promise<GpuContext | { reason: string }> {
  pending ??= openDevice();
  return pending;
}

/**
 * Threads for Mesa's software rasterisers, unless the user set LP_NUM_THREADS: twice the cores.
 * llvmpipe's compute thread pool (Mesa's lp_cs_tpool.c) hands each thread an equal run of
 * workgroups/threads workgroups up front, so with one thread per core a dispatch waits for its
 * slower half whenever a core is slowed, which on this shared 2-core machine is often. With more
 * runs than cores the OS evens them out; many more wake too many threads per small dispatch
 * (docs/performance-log.md, "Mesa threads: twice the cores").
 */
function softwareThreads(): void {
  process.env.LP_NUM_THREADS ??= String(2 * availableParallelism());
}

async function openDevice(): Promise<GpuContext | { reason: string }> {
  // Mesa warns when this is unset; any writable directory will do.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  // Read by Mesa when the driver loads, so before the first adapter request.
  softwareThreads();
  const forced = process.env.SILENTGRAD_WEBGPU_ADAPTER;
  if (forced && forced !== 'vulkan' && forced !== 'opengl') return { reason: `SILENTGRAD_WEBGPU_ADAPTER must be 'vulkan' or 'opengl', not '${forced}'` };
  const order: AdapterKind[] = forced === 'opengl' ? ['opengl'] : forced === 'vulkan' ? ['vulkan'] : ['vulkan', 'opengl'];
  const reasons: string[] = [];
  for (const kind of order) {
    const found = await tryAdapter(kind);
    if ('reason' in found) {
      reasons.push(found.reason);
      continue;
    }
    const { adapter } = found;
    // Subgroups (Vulkan/lavapipe has them, OpenGL compatibility mode does not) let the GEMM
    // share loads between the 8 lanes of a SIMD register (kernels/gemm.ts).
    const subgroups8 = adapter.features.has('subgroups') && (adapter.info.subgroupMinSize ?? 0) >= 8;
    const device = await adapter.requestDevice({ requiredLimits: adapterLimits(adapter), requiredFeatures: subgroups8 ? ['subgroups'] : [] });
    const software = isSoftware(adapter);
    // A software adapter's speed depends on its thread count (softwareThreads), so say it: the
    // setting itself, since Mesa caps it (at 32 in Mesa 25) rather than reporting what it used.
    const info = `${describeInfo(adapter, kind)}${software ? `, LP_NUM_THREADS=${process.env.LP_NUM_THREADS}` : ''}`;
    return { device, adapter, kind, info, software, subgroups8 };
  }
  return { reason: `no WebGPU adapter (${reasons.join('; ')})` };
}
