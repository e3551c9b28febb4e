// PyTorch keeps some module state as int64 (BatchNorm's num_batches_tracked); the engine
// computes in floats only. Such state lives here in a float tensor holding whole numbers (exact
// up to 2^24 in float32, 2^53 in float64) and is tagged, so that safetensors files store it as
// I64, as a PyTorch state_dict has it, and files that hold I64 load back tagged.
import type { Tensor } from '../tensor.js';

const int64Tensors = new WeakSet<Tensor>();

/** Tags t as integer state that checkpoints store as int64; returns t. */
export function markInt64<T extends Tensor>(t: T): T {
  int64Tensors.add(t);
  return t;
}

/** Whether t holds integer state (markInt64): saveSafetensors writes it as I64. */
export function isInt64(t: Tensor): boolean {
  return int64Tensors.has(t);
}
