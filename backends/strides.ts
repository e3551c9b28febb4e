// Axis merging for strided kernels, shared by the CPU, WebGPU and gpu.js backends: every
// pointwise and reduce kernel first reduces its layout to the fewest axes, so the common
// contiguous case becomes one flat loop and generated kernels are specialised on small ranks.

/** A layout after `coalesce`: the merged sizes and, per operand, its strides along them. */
export interface Coalesced { dims: number[]; strides: number[][] }

/**
 * Merge adjacent axes that are laid out contiguously in every operand (and drop size-1 axes),
 * so e.g. two contiguous [64, 784] operands become one flat axis of 50176. `strides[k]` are
 * operand k's strides over `shape`, in elements; offsets are unchanged by merging.
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): Coalesced {
  const dims: number[] = [];
  const out: number[][] = strides.map(() => []);
  shape.forEach((size, axis) => {
    if (size === 1) return;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => out[k]![last] === s[axis]! * size)) {
      dims[last]! *= size;
      strides.forEach((s, k) => (out[k]![last] = s[axis]!));
    } else {
      dims.push(size);
      strides.forEach((s, k) => out[k]!.push(s[axis]!));
    }
  });
  return { dims, strides: out };
}
