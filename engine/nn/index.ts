export { Module } from './module.js';
export { Conv2d, ConvTranspose2d, Flatten, Linear, LogSigmoid, ReLU, Sequential, Sigmoid, Softplus, Unflatten } from './layers.js';
export type { ConvOptions, LayerOptions } from './layers.js';
export { BatchNorm2d } from './batchnorm.js';
export type { BatchNormOptions } from './batchnorm.js';
export { isInt64, markInt64 } from './int64.js';
