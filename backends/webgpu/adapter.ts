// What the WebGPU backend needs from an adapter, wherever the adapter comes from: Dawn in Node
// (device.ts) or a browser's navigator.gpu (browser.ts). Nothing here imports Node.

/** Where the adapter came from: one of Dawn's backends in Node, or a web page's navigator.gpu. */
export type AdapterKind = 'vulkan' | 'opengl' | 'browser';

export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly kind: AdapterKind;
  /** vendor, architecture, device, description of the adapter, one line. */
  readonly info: string;
  /** A CPU rasteriser (Mesa's lavapipe/llvmpipe, SwiftShader), not a GPU: WebGPU then computes on the host. */
  readonly software: boolean;
  /** The device has the 'subgroups' feature with subgroups of at least 8 lanes (lavapipe: 8). */
  readonly subgroups8: boolean;
  /** Why each Dawn backend tried before this one gave no adapter (e.g. no Vulkan loader). */
  readonly passedOver: readonly string[];
}

function isSoftware(adapter: GPUAdapter): boolean {
  const { architecture, device, description } = adapter.info;
  return architecture === 'software' || architecture === 'swiftshader' || /llvmpipe|lavapipe|swiftshader/i.test(`${device} ${description}`);
}

function describeInfo(adapter: GPUAdapter, kind: AdapterKind): string {
  const i = adapter.info;
  const parts = [`vendor '${i.vendor}'`, `architecture '${i.architecture}'`, `device '${i.device}'`];
  if (i.description) parts.push(`description '${i.description}'`);
  return `${kind}: ${parts.join(', ')}`;
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

/** The device the backend computes on: every limit the adapter offers, and subgroups where they have 8 lanes. */
export async function openContext(adapter: GPUAdapter, kind: AdapterKind, passedOver: readonly string[], infoSuffix = ''): Promise<GpuContext> {
  // Subgroups (Vulkan/lavapipe has them, OpenGL compatibility mode does not) let the GEMM
  // share loads between the 8 lanes of a SIMD register (tuned/gemm.ts).
  const subgroups8 = adapter.features.has('subgroups') && (adapter.info.subgroupMinSize ?? 0) >= 8;
  const device = await adapter.requestDevice({ requiredLimits: adapterLimits(adapter), requiredFeatures: subgroups8 ? ['subgroups'] : [] });
  const software = isSoftware(adapter);
  return { device, adapter, kind, info: `${describeInfo(adapter, kind)}${software ? infoSuffix : ''}`, software, subgroups8, passedOver };
}
