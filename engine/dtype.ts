// The two element types the engine computes in. float64 exists for gradient checks and exact
// closed-form tests; training runs in float32 (the only float type WGSL has).
export type DType = 'float32' | 'float64';
export type FloatArray = Float32Array | Float64Array;

export function arrayFor(dtype: DType, length: number): FloatArray {
  return dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
}
