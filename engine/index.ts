// silentgrad's public engine API, the same in Node and in a browser. Importing it makes the CPU
// backend the default; other backends are chosen with setDefaultBackend (see backends/select.ts).
// Reading and writing checkpoint files is Node-only, so it lives apart in engine/safetensors.ts.
import { cpuBackend } from '../backends/cpu/index.js';
import { setDefaultBackend } from './ops/core.js';

setDefaultBackend(cpuBackend);

export * from './ops/index.js';
export { backward } from './autograd.js';
export { detach, isGradEnabled, noGrad, record } from './graph.js';
export { Tensor, tidy, sizeOf } from './tensor.js';
export type { Backend, Storage, View } from './backend.js';
export type { DType, FloatArray } from './dtype.js';
export { RandomStream } from './random.js';
export { cpuBackend };
export { gradcheck } from './gradcheck.js';
export * as nn from './nn/index.js';
export { AdamW, SGD, adamwDefaults } from './optim.js';
export type { AdamWOptions, ParamGroup, SGDOptions } from './optim.js';
export { setAnomalyMode } from './ops/core.js';
export type { LatentMoments, LearnableDecoderWeights } from './ops/silent-elbo.js';
