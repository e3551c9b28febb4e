// silentgrad's engine: tensors, autograd, ops, nn, optimisers, random streams; the same in Node
// and in a browser. It depends on no backend: ../silentgrad.ts composes it with the CPU backend
// as the default (as TensorFlow.js's core and its backends). Reading and writing checkpoint
// files is Node-only, so it lives apart in engine/safetensors.ts.
export * from './ops/index.js';
export { backward } from './autograd.js';
export { detach, isGradEnabled, noGrad, record } from './graph.js';
export { Tensor, tidy, sizeOf } from './tensor.js';
export type { Backend, Storage, View } from './backend.js';
export type { DType, FloatArray } from './dtype.js';
export { RandomStream } from './random.js';
export { gradcheck } from './gradcheck.js';
export * as nn from './nn/index.js';
export { AdamW, SGD, adamwDefaults } from './optim.js';
export type { AdamWOptions, ParamGroup, SGDOptions } from './optim.js';
export { setAnomalyMode } from './ops/core.js';
export type { LatentMoments, LearnableDecoderWeights } from './ops/silent-elbo.js';
