// Which kernels the WebGPU backend runs: one frozen TuningProfile per backend, made from what
// the adapter says about itself, then from the SILENTGRAD_* variables, here and nowhere else
// (docs/webgpu-without-a-gpu.md, "Tuning profile", has the table). The plain kernels
// (kernels/) implement the whole Backend interface; a 'tuned' profile runs the products and the
// silent ELBO from tuned/ instead, which the conformance table checks against the same CPU
// reference as the plain ones.
import type { GpuContext } from './adapter.js';

export type WinogradPass = 'forward' | 'input' | 'filter';
const winogradPasses: readonly WinogradPass[] = ['forward', 'input', 'filter'];

export interface TuningProfile {
  /** 'plain': every kernel from kernels/; 'tuned': matmul, conv2d and the silent ELBO from tuned/. */
  readonly kernels: 'plain' | 'tuned';
  /**
   * The 8 lanes of a subgroup share their loads through broadcasts and shuffles (the GEMM's A
   * rows, the silent ELBO's tiles), for llvmpipe, which loads storage lane by lane (tuned/gemm.ts).
   */
  readonly sharedRows: boolean;
  /**
   * Winograd F(4x4, 3x3) for these passes of 3x3 stride-1 layers with at least `minChannels`
   * each side, where its scratch fits one binding of `maxBindingBytes` (tuned/winograd.ts).
   */
  readonly winograd: { readonly passes: readonly WinogradPass[]; readonly minChannels: number; readonly maxBindingBytes: number };
  /**
   * The fused silent ELBO (tuned/silent-elbo-backward.ts): the moment pass runs in the forward,
   * the [*, d] operands are read as vec4 rows where d allows, and with shared rows phase B walks
   * the latents rather than latent groups.
   */
  readonly silentElbo: { readonly momentsInForward: boolean; readonly vec4Rows: boolean; readonly latentWalk: boolean };
}

/** What the default profile is chosen from. */
export interface AdapterTraits {
  /** A CPU rasteriser (lavapipe, llvmpipe): the variants were measured there. */
  readonly software: boolean;
  /** The device has subgroups of at least 8 lanes. */
  readonly subgroups8: boolean;
  /** The largest storage binding and buffer, whichever is smaller. */
  readonly maxBindingBytes: number;
}

export const adapterTraits = (ctx: GpuContext): AdapterTraits => ({
  software: ctx.software, subgroups8: ctx.subgroups8,
  maxBindingBytes: Math.min(ctx.device.limits.maxStorageBufferBindingSize, ctx.device.limits.maxBufferSize),
});

/**
 * A software adapter gets every variant as measured there (docs/performance-log.md). A GPU gets
 * the tuned variants without shared rows: register blocking, Winograd and the fused silent ELBO
 * are portable WGSL that CI checks on every run, while shared rows answer llvmpipe's lane-by-lane
 * loads and their cost on a GPU was never measured. Winograd's 24 channels are where it paid on
 * lavapipe (tuned/winograd.ts).
 */
export function defaultTuning(adapter: AdapterTraits): TuningProfile {
  return frozenTuning({
    kernels: 'tuned',
    sharedRows: adapter.software && adapter.subgroups8,
    winograd: { passes: winogradPasses, minChannels: 24, maxBindingBytes: adapter.maxBindingBytes },
    silentElbo: { momentsInForward: true, vec4Rows: true, latentWalk: true },
  });
}

type Environment = Readonly<Record<string, string | undefined>>;

/** The adapter's default with the SILENTGRAD_* overrides of `env` applied. */
export function tuningFromEnvironment(adapter: AdapterTraits, env: Environment = typeof process === 'undefined' ? {} : process.env): TuningProfile {
  const base = defaultTuning(adapter);
  const kernels = env.SILENTGRAD_WEBGPU_KERNELS;
  if (kernels !== undefined && kernels !== '' && kernels !== 'plain' && kernels !== 'tuned')
    throw new Error(`SILENTGRAD_WEBGPU_KERNELS must be plain or tuned, got ${JSON.stringify(kernels)}`);
  const passes = env.SILENTGRAD_WEBGPU_WINOGRAD;
  return frozenTuning({
    kernels: kernels === 'plain' ? 'plain' : base.kernels,
    sharedRows: base.sharedRows && env.SILENTGRAD_WEBGPU_SHARED_ROWS !== '0',
    // '0' (or any list without a pass's name) leaves that pass to the implicit GEMM.
    winograd: { ...base.winograd, passes: passes === undefined ? base.winograd.passes : winogradPasses.filter((p) => passes.split(',').includes(p)) },
    silentElbo: {
      momentsInForward: env.SILENTGRAD_SILENT_ELBO_FUSE !== '0',
      vec4Rows: env.SILENTGRAD_SILENT_ELBO_VEC !== '0',
      latentWalk: base.silentElbo.latentWalk,
    },
  });
}

/** A copy nobody can change: kernels read the profile at every call. */
export function frozenTuning(t: TuningProfile): TuningProfile {
  return Object.freeze({
    ...t,
    winograd: Object.freeze({ ...t.winograd, passes: Object.freeze([...t.winograd.passes]) }),
    silentElbo: Object.freeze({ ...t.silentElbo }),
  });
}

/** One line for describe(), so every figure says which kernels produced it. */
export function describeTuning(t: TuningProfile): string {
  if (t.kernels === 'plain') return 'plain kernels';
  const winograd = t.winograd.passes.length ? `Winograd ${t.winograd.passes.join('+')} from ${t.winograd.minChannels} channels` : 'no Winograd';
  return `tuned kernels (${t.sharedRows ? 'shared rows' : 'no shared rows'}, ${winograd})`;
}
