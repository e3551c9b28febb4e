// How ops remember what they did: each op calls record() with a rule that sends its output's
// gradient back to its inputs; autograd.ts walks those records backwards. Apart from
// autograd.ts so that ops can record without importing the backward pass that uses them.
import type { GradNode, Tensor } from './tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn without recording a graph (evaluation, optimiser updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Attach a backward rule to `out` if any input needs a gradient. Returns `out`. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode['backward']): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

/** The same values, cut from the graph. */
export function detach(t: Tensor): Tensor {
  return t.view(t.shape, t.strides, t.offset);
}
