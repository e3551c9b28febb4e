// What every study's training does the same way: dequantized batches, one epoch of steps in a
// seeded order with the loss summed on the device, and a clear stop when the loss diverges.
import * as sg from '../silentgrad.js';
import type { Tensor } from '../silentgrad.js';
import { epochOrder, pixelBatch, type ImageSet } from './data/images.js';

/** Training stopped because the loss stopped being finite (a learning-rate search skips the rate). */
export class DivergedError extends Error {}

/** x = (x_int + u) / 256 with u ~ U[0, 1) from the stream (paper App. B.1), [B, C*H*W]. */
export function dequantized(set: ImageSet, indices: Uint32Array, stream: sg.RandomStream, backend: sg.Backend): Tensor {
  const x = sg.tensor(pixelBatch(set, indices), [indices.length, set.channels * set.height * set.width], { backend });
  return sg.add(x, sg.scale(sg.uniform(x.shape, stream, { backend }), 1 / 256));
}

export interface EpochSettings {
  seed: number;
  batchSize: number;
  lr: number;
  backend: sg.Backend;
  /** Names the run in the divergence message. */
  label: string;
}

/**
 * One epoch over `train` in epochOrder(seed, epoch), dropping the last partial batch as
 * PyTorch's drop_last does: `step` trains on a batch's indices and returns its loss. Returns the
 * mean loss; throws a DivergedError rather than let NaN metrics and checkpoints follow.
 */
export async function trainEpoch(train: ImageSet, epoch: number, s: EpochSettings, step: (indices: Uint32Array) => Tensor,
  onStep: (step: number, steps: number) => void): Promise<number> {
  const order = epochOrder(train.count, s.seed, epoch);
  const steps = Math.floor(train.count / s.batchSize);
  let lossSum = sg.zeros([], { backend: s.backend }).keep();
  for (let n = 0; n < steps; n++) {
    const next = sg.tidy(() => sg.add(lossSum, sg.detach(step(order.subarray(n * s.batchSize, (n + 1) * s.batchSize)))));
    lossSum.dispose();
    lossSum = next.keep();
    onStep(n + 1, steps);
  }
  const mean = (await lossSum.item()) / steps;
  lossSum.dispose();
  if (!Number.isFinite(mean))
    throw new DivergedError(`${s.label}: the training loss became ${mean} in epoch ${epoch}; the run diverged (try a lower --lr than ${s.lr}); the last good checkpoint is the previous epoch's`);
  return mean;
}
