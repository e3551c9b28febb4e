// Reverse-mode autodiff in one screen (micrograd's shape, without its recursion): ops call
// record() (graph.ts) to remember how to send a gradient back; backward() walks the graph in
// reverse topological order, accumulating gradients where a tensor fed several ops.
import { detach, noGrad } from './graph.js';
import { add } from './ops/elementwise.js';
import { fullLike } from './ops/core.js';
import type { Tensor } from './tensor.js';

/** Inputs before outputs, found iteratively so deep graphs cannot overflow the stack. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, next] = top;
    const inputs = t.node?.inputs ?? [];
    if (next < inputs.length) {
      top[1]++;
      const input = inputs[next]!;
      if (input.requiresGrad && !visited.has(input)) {
        visited.add(input);
        stack.push([input, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

/**
 * Accumulates d(root)/d(leaf) into leaf.grad for every leaf that requires a gradient.
 * `seed` defaults to ones (root must then have one element). The graph is freed afterwards,
 * unless `retainGraph` keeps it for another backward through the same nodes (as PyTorch's).
 */
export function backward(root: Tensor, seed?: Tensor, options: { retainGraph?: boolean } = {}): void {
  if (!root.requiresGrad) throw new Error(`backward: the tensor [${root.shape}] does not require a gradient (no parameter fed it, or it was computed under noGrad)`);
  if (!seed && root.size !== 1) throw new Error(`backward: root has shape [${root.shape}]; pass a seed gradient for non-scalar roots`);
  const grads = new Map<Tensor, Tensor>([[root, seed ?? fullLike(root, 1)]]);
  const order = topologicalOrder(root);
  noGrad(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t.node) {
        const previous = t.grad;
        // A view of its own, so two leaves fed by the same gradient never share one Tensor.
        t.grad = (previous ? add(previous, g) : detach(g)).keep();
        previous?.dispose();
        continue;
      }
      const inputGrads = t.node.backward(g);
      t.node.inputs.forEach((input, k) => {
        const ig = inputGrads[k];
        if (!ig || !input.requiresGrad) return;
        const existing = grads.get(input);
        grads.set(input, existing ? add(existing, ig) : ig);
      });
      if (!options.retainGraph) t.node = null;
    }
  });
}
