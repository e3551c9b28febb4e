// The tuned variants, which a backend whose TuningProfile says 'tuned' runs instead of the plain
// kernels of the products and the silent ELBO: the register-blocked GEMM (matmul.ts, gemm.ts),
// implicit GEMMs and Winograd for the convolutions (conv.ts, winograd.ts) and the fused silent
// ELBO (silent-elbo-*.ts). They keep one piece of state across calls: the Winograd input
// transforms a forward keeps for its layer's filter gradient.
import type { Conv2dGeometry, SilentElboOperands, View } from '../../../engine/backend.js';
import type { GpuView } from '../kernels/elementwise.js';
import { momentsUsed } from '../kernels/silent-elbo-common.js';
import type { Targets } from '../kernels/silent-elbo.js';
import type { BufferPool } from '../pool.js';
import type { Dispatch } from '../queue.js';
import type { TuningProfile } from '../tuning.js';
import { conv2dBackwardFilter, conv2dBackwardInput, conv2dForward } from './conv.js';
import { matmul } from './matmul.js';
import { silentElboBackward, silentElboForwardSaving } from './silent-elbo-backward.js';
import { operandBuffers, silentElboForward } from './silent-elbo-forward.js';
import { KeptInputTransforms } from './winograd.js';

type Scratch = (floats: number) => GPUBuffer;
type Made = Dispatch | readonly Dispatch[] | null;

export class TunedKernels {
  private readonly kept: KeptInputTransforms;

  constructor(private readonly tuning: TuningProfile, pool: BufferPool) {
    this.kept = new KeptInputTransforms((floats) => pool.take('storage', floats * 4), (buffer) => pool.give('storage', buffer));
  }

  /** Winograd input transforms held for a filter gradient (the stability test counts them as live). */
  get keptTransforms(): number {
    return this.kept.size;
  }

  /** `buffer` is freed, or about to change in place: nothing computed from it may be reused. */
  forget(buffer: GPUBuffer): void {
    this.kept.drop(buffer);
  }

  matmul(a: GpuView, transA: boolean, b: GpuView, transB: boolean, out: GPUBuffer, scratch: Scratch): Made {
    return matmul(this.tuning, a, transA, b, transB, out, scratch);
  }

  conv2d(x: GpuView, w: GpuView, g: Conv2dGeometry, out: GPUBuffer, scratch: Scratch): Made {
    return conv2dForward(this.tuning, x, w, g, out, scratch, this.kept);
  }

  conv2dBackwardInput(dy: GpuView, w: GpuView, g: Conv2dGeometry, dx: GPUBuffer, scratch: Scratch): Made {
    return conv2dBackwardInput(this.tuning, dy, w, g, dx, scratch);
  }

  conv2dBackwardFilter(x: GpuView, dy: GpuView, g: Conv2dGeometry, dw: GPUBuffer, scratch: Scratch, adopt: (buffer: GPUBuffer) => void): Made {
    return conv2dBackwardFilter(this.tuning, x, dy, g, dw, scratch, this.kept, adopt);
  }

  /**
   * No partials: the backward recomputes them on chip (silent-elbo-backward.ts). With the moment
   * pass in the forward, that pass's contraction, [moments, B, d], which the backward scales by
   * the output gradient; else nothing.
   */
  silentElboSavedShape(o: SilentElboOperands): readonly number[] | null {
    return this.tuning.silentElbo.momentsInForward ? [momentsUsed(o.terms).length, o.mean.shape[0]!, o.mean.shape[1]!] : null;
  }

  silentElbo(o: SilentElboOperands, buffer: (v: View) => GPUBuffer, out: GPUBuffer, saved: GPUBuffer | null, scratch: Scratch): Made {
    if (saved) return silentElboForwardSaving(this.tuning, o, buffer, out, saved);
    return silentElboForward(this.tuning, o, operandBuffers(o, buffer), out, scratch);
  }

  silentElboBackward(o: SilentElboOperands, saved: GPUBuffer | null, gradOut: { buffer: GPUBuffer; offset: number }, buffer: (v: View) => GPUBuffer, targets: Targets): Made {
    return silentElboBackward(this.tuning, o, gradOut, buffer, targets, saved);
  }
}
