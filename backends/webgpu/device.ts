// Getting a WebGPU device in Node through the `webgpu` package (Dawn). Two facts shape this
// file (docs/webgpu-without-a-gpu.md):
//  - the GPU object returned by create() must outlive every device made from it: when it was
//    garbage-collected while a device was alive, lavapipe and llvmpipe crashed 10 runs in 10.
//    So each create() result is held in a module-level map for the whole process, never dropped;
//  - without a GPU, Vulkan on Mesa's lavapipe is preferred (full WebGPU); Dawn's OpenGL backend
//    on llvmpipe (EGL surfaceless, compatibility mode) is the fallback.
import { availableParallelism } from 'node:os';
import { create, globals } from 'webgpu';
import { openContext, type GpuContext } from './adapter.js';

/** Dawn's backends this file tries, in order. */
export type DawnBackend = 'vulkan' | 'opengl';

// GPUBufferUsage, GPUMapMode, GPUShaderStage... as in a browser.
Object.assign(globalThis, globals);

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

/**
 * Whether the Vulkan loader can be loaded, tried as Dawn tries it: dlopen('libvulkan.so.1').
 * Without it Dawn prints "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared
 * object file" (and a source line) to stderr from native code, where no JavaScript can filter
 * it, before giving no adapter; asking first lets the Vulkan attempt be skipped with that reason
 * in our own words. process.dlopen is Node's dlopen: a library that loads but is no Node addon
 * throws "Module did not self-register" (and is closed again), one that cannot load throws
 * dlerror()'s message, which names the file. Anything else counts as loadable, so Dawn decides.
 */
export function vulkanLoaderError(): string | null {
  if (process.platform !== 'linux') return null;
  try {
    process.dlopen({ exports: {} }, 'libvulkan.so.1');
    return null;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return /libvulkan\.so\.1: /.test(message) && !/self-register/.test(message) ? message : null;
  }
}

async function tryAdapter(kind: DawnBackend): Promise<{ adapter: GPUAdapter } | { reason: string }> {
  if (kind === 'vulkan') {
    const missing = vulkanLoaderError();
    if (missing) return { reason: `Vulkan: not tried, no Vulkan loader (${missing}); .ci/install-system-deps.sh installs it with Mesa's lavapipe` };
  }
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

/** Dawn's cap on dynamic-offset buffers per pipeline layout (kMaxDynamic*BuffersPerPipelineLayout). */
const DAWN_DYNAMIC_BUFFER_CAP = 16;

/**
 * While it discovers an adapter, Dawn lowers two limits the driver reports above its own cap and
 * says so on stderr, from native code ("Warning: maxDynamicUniformBuffersPerPipelineLayout
 * artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.", and the same
 * for storage buffers): lavapipe reports 1000000, llvmpipe's OpenGL 90 and 80, and GPU drivers do
 * too. It does so for whatever limits we then request (our requiredLimits copy the already
 * lowered values), no Dawn toggle turns it off, and JavaScript cannot filter a native write to
 * stderr. So one line of ours follows it, saying that it needs no action. The adapter's limits
 * show the cap, not the driver's figure, so a limit at exactly the cap is taken as lowered.
 */
function explainLimitWarnings(adapter: GPUAdapter): void {
  const { maxDynamicUniformBuffersPerPipelineLayout: uniform, maxDynamicStorageBuffersPerPipelineLayout: storage } = adapter.limits;
  if (uniform !== DAWN_DYNAMIC_BUFFER_CAP && storage !== DAWN_DYNAMIC_BUFFER_CAP) return;
  console.error(`silentgrad: Dawn's "artificially reduced ... to ${DAWN_DYNAMIC_BUFFER_CAP}" warnings are its own cap on dynamic-offset buffer bindings, which silentgrad does not use: nothing to act on`);
}

async function openDevice(): Promise<GpuContext | { reason: string }> {
  // Mesa warns when this is unset; any writable directory will do.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  // Read by Mesa when the driver loads, so before the first adapter request.
  softwareThreads();
  const forced = process.env.SILENTGRAD_WEBGPU_ADAPTER;
  if (forced && forced !== 'vulkan' && forced !== 'opengl') return { reason: `SILENTGRAD_WEBGPU_ADAPTER must be 'vulkan' or 'opengl', not '${forced}'` };
  const order: DawnBackend[] = forced === 'opengl' ? ['opengl'] : forced === 'vulkan' ? ['vulkan'] : ['vulkan', 'opengl'];
  const reasons: string[] = [];
  for (const kind of order) {
    const found = await tryAdapter(kind);
    if ('reason' in found) {
      reasons.push(found.reason);
      continue;
    }
    explainLimitWarnings(found.adapter);
    // A software adapter's speed depends on its thread count (softwareThreads), so say it: the
    // setting itself, since Mesa caps it (at 32 in Mesa 25) rather than reporting what it used.
    return openContext(found.adapter, kind, reasons, `, LP_NUM_THREADS=${process.env.LP_NUM_THREADS}`);
  }
  return { reason: `no WebGPU adapter (${reasons.join('; ')})` };
}
