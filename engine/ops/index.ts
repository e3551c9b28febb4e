export * from './core.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './shape.js';
export * from './matmul.js';
export * from './conv.js';
export * from './random.js';
export * from './silent-elbo.js';
