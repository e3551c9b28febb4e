// BatchNorm2d as PyTorch defines it: batch statistics in training (biased variance for the
// normalisation, unbiased for the running estimate), running statistics in eval. Its state is
// PyTorch's too: weight, bias, running_mean, running_var and num_batches_tracked, the count of
// training batches, which checkpoints store as int64 (./int64.ts).
import { noGrad } from '../graph.js';
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { full, getDefaultBackend, shapeString } from '../ops/core.js';
import { add, div, mul, scale, shift, sqrt, square, sub } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { reshape } from '../ops/shape.js';
import type { Tensor } from '../tensor.js';
import { markInt64 } from './int64.js';
import { Module } from './module.js';

export interface BatchNormOptions {
  eps?: number;
  /**
   * The newest batch's weight in the running statistics (default 0.1). null averages every
   * batch so far equally, weight 1 / num_batches_tracked, as PyTorch's momentum=None does.
   */
  momentum?: number | null;
  dtype?: DType;
  backend?: Backend;
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  /** Training batches seen, a scalar holding a whole number (int64 in checkpoints). */
  readonly numBatchesTracked: Tensor;
  readonly eps: number;
  readonly momentum: number | null;
  constructor(readonly channels: number, o: BatchNormOptions = {}) {
    super();
    const opts = { dtype: o.dtype ?? 'float32', backend: o.backend ?? getDefaultBackend() };
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    this.weight = this.registerParameter('weight', full([channels], 1, opts));
    this.bias = this.registerParameter('bias', full([channels], 0, opts));
    this.runningMean = this.registerBuffer('running_mean', full([channels], 0, opts));
    this.runningVar = this.registerBuffer('running_var', full([channels], 1, opts));
    // Counted on the device, so a training step never waits for a read-back.
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', markInt64(full([], 0, opts)));
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.channels)
      throw new Error(`BatchNorm2d: expected [N, ${this.channels}, H, W], got ${shapeString(x)}`);
    const perChannel = (t: Tensor): Tensor => reshape(t, [1, this.channels, 1, 1]);
    let mu: Tensor, variance: Tensor;
    if (this.training) {
      mu = mean(x, [0, 2, 3], true);
      variance = mean(square(sub(x, mu)), [0, 2, 3], true);
      const n = x.size / this.channels;
      noGrad(() => {
        this.numBatchesTracked.assign(shift(this.numBatchesTracked, 1));
        const { momentum } = this;
        const blend = (running: Tensor, batchStatistic: Tensor): Tensor => {
          const batch = reshape(batchStatistic, [this.channels]);
          return momentum === null
            ? add(running, div(sub(batch, running), this.numBatchesTracked))
            : add(scale(running, 1 - momentum), scale(batch, momentum));
        };
        this.runningMean.assign(blend(this.runningMean, mu));
        this.runningVar.assign(blend(this.runningVar, scale(variance, n / Math.max(n - 1, 1))));
      });
    } else {
      mu = perChannel(this.runningMean);
      variance = perChannel(this.runningVar);
    }
    const normalized = div(sub(x, mu), sqrt(shift(variance, this.eps)));
    return add(mul(normalized, perChannel(this.weight)), perChannel(this.bias));
  }
}
