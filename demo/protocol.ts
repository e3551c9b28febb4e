// The messages between the page (page.ts, the UI thread) and the trainer (trainer.ts, a Web
// Worker, so training never freezes the page). Both models of a pair train in the one worker,
// one step each in turn, so they share the backend and the step times are comparable.
import type { MethodName } from '../experiments/vae.js';

/** The two pairs the page compares: a Silent Gradients model and its sampling rival. */
export const pairs = {
  continuous: ['silent-gaussian', 'reparam'],
  discrete: ['silent-bernoulli', 'gumbel'],
} as const satisfies Record<string, readonly [MethodName, MethodName]>;
export type PairName = keyof typeof pairs;

export type BackendRequest = 'auto' | 'webgpu' | 'cpu';

export interface DemoConfig {
  pair: PairName;
  lr: number;
  latentDim: number;
  /** Training and test images used, the first ones of those shipped (at most the shipped counts). */
  trainCount: number;
  testCount: number;
  backend: BackendRequest;
  /** The CPU backend's threads (the trainer and a pool of workers); the first reset's count holds for the page's life. */
  threads: number;
  seed: number;
  /** Stop after this many epochs (Infinity: until paused). */
  epochs: number;
}

export type ToTrainer =
  | { type: 'reset'; config: DemoConfig }
  | { type: 'start' }
  | { type: 'pause' };

export type FromTrainer =
  | { type: 'ready'; backend: string; methods: readonly [MethodName, MethodName]; labels: readonly [string, string]; stepsPerEpoch: number; originals: Float32Array }
  /**
   * One training step of model `model` (0 or 1); `bpd` is its training loss in bits per
   * dimension; `poolPieces` counts the kernel pieces the CPU pool's workers have run so far.
   */
  | { type: 'step'; model: number; step: number; bpd: number; ms: number; poolPieces: number }
  /** Test-set metrics after `epoch` epochs (0: before training), with reconstructions of the shown digits. */
  | { type: 'evaluation'; model: number; epoch: number; step: number; bpd: number; kl: number; activeLatents: number; reconstructions: Float32Array }
  | { type: 'state'; running: boolean; done: boolean }
  | { type: 'error'; message: string };
