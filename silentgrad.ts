// silentgrad, the package: the engine (engine/index.ts, which depends on no backend) with the
// CPU backend as the default, as TensorFlow.js composes its core with its backends. Import this
// in programs; other backends are chosen with setDefaultBackend (backends/select.ts does it for
// every experiment's --backend flag).
import { cpuBackend } from './backends/cpu/index.js';
import { setDefaultBackend } from './engine/index.js';

setDefaultBackend(cpuBackend);

export * from './engine/index.js';
export { cpuBackend };
