// The probe behind `--backend auto` on a machine without a GPU (backends/select.ts): a few
// training steps of the default fixed-variance study, timed on each candidate backend in
// alternation, so the choice rests on what is fastest here rather than on what exists.
//
// The step is built from engine ops, not from experiments/ or models/ (backends/ sits below
// both), but it is the default study's hot work at the default study's size: the Table-5
// encoder (three 3x3 convolutions, 8 channels, on [64, 1, 28, 28]; a linear layer to 2 x 200),
// Gaussian moments, the fused fixed-variance silent ELBO against a linear decoder [784, 200]
// (Silent Gradients), a reparameterized sample decoded by the same decoder (what the sampling
// estimators do: matmul 64x200x784 and its two gradients), the backward pass and AdamW. On
// WebGPU the probe also compiles the very shaders the study then uses.
import * as sg from '../engine/index.js';
import type { Backend, Tensor } from '../engine/index.js';

/** Bumped whenever the probe's work changes, so that older cached figures are not compared with new ones. */
export const PROBE_VERSION = 1;

/** What one probe step is, for messages. */
export const PROBE_WORKLOAD = 'one training step of the default fixed-variance study (8 channels, d = 200, batch 64, MNIST-sized data)';

const BATCH = 64, CHANNELS = 8, LATENTS = 200, SIDE = 28, PIXELS = SIDE * SIDE, SIGMA2 = 0.01;

export interface ProbeStep {
  /** One training step, finished (its loss read back) when the promise settles. */
  run(): Promise<void>;
  /** Frees every tensor the step holds. */
  dispose(): void;
}

/** The probe's model and data on `backend`, ready to step. */
export function probeStep(backend: Backend): ProbeStep {
  const on = { backend };
  const root = new sg.RandomStream(0x5113);
  const init = root.fork(1), noise = root.fork(2);
  const built: { encoder?: sg.nn.Sequential; decoder?: sg.nn.Linear; images?: Tensor } = {};
  // tidy() frees the initialisers' temporaries; parameters are kept by registerParameter.
  sg.tidy(() => {
    const conv = (inChannels: number): sg.nn.Conv2d => new sg.nn.Conv2d(inChannels, CHANNELS, 3, { stream: init, backend, stride: 1, padding: 1 });
    built.encoder = new sg.nn.Sequential(
      conv(1), sg.nn.ReLU(), conv(CHANNELS), sg.nn.ReLU(), conv(CHANNELS), sg.nn.Flatten(),
      new sg.nn.Linear(CHANNELS * PIXELS, 2 * LATENTS, { stream: init, backend }),
    );
    const decoder = built.decoder = new sg.nn.Linear(LATENTS, PIXELS, { stream: init, backend });
    // The study's 'scaled' decoder start (E||W_i||^2 = sigma^2), so the losses stay moderate.
    decoder.weight.assign(sg.scale(decoder.weight, Math.sqrt(SIGMA2 / (PIXELS / (3 * LATENTS)))));
    built.images = sg.uniform([BATCH, PIXELS], init, on).keep();
  });
  const enc = built.encoder!, dec = built.decoder!, images = built.images!;
  const params = [...enc.parameters(), ...dec.parameters()];
  const optimizer = new sg.AdamW(params, { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.01 });
  return {
    async run() {
      const loss = sg.tidy(() => {
        const out = enc.forward(sg.reshape(images, [BATCH, 1, SIDE, SIDE]));
        const mean = sg.slice(out, 1, 0, LATENTS), logVariance = sg.slice(out, 1, LATENTS, 2 * LATENTS);
        const variance = sg.exp(logVariance);
        const kl = sg.scale(sg.sum(sg.sub(sg.add(sg.square(mean), variance), sg.shift(logVariance, 1)), [1]), 0.5);
        const silent = sg.expectedLogLikelihoodFixed({ mean, c2: variance }, dec.weight, dec.bias!, images, SIGMA2);
        const z = sg.add(mean, sg.mul(sg.exp(sg.scale(logVariance, 0.5)), sg.normal([BATCH, LATENTS], noise, on)));
        const sampled = sg.scale(sg.sum(sg.square(sg.sub(images, dec.forward(z))), [1]), -0.5 / SIGMA2);
        const value = sg.mean(sg.sub(sg.scale(kl, 2), sg.add(silent, sampled)));
        sg.backward(value);
        optimizer.step();
        optimizer.zeroGrad();
        return sg.detach(value);
      });
      await loss.data();
      loss.dispose();
    },
    dispose() {
      optimizer.zeroGrad();
      for (const p of params) {
        const state = optimizer.stateOf(p);
        state?.m.dispose();
        state?.v.dispose();
        p.dispose();
      }
      images.dispose();
    },
  };
}

export interface ProbeCandidate {
  /** The backend's name as `--backend` spells it. */
  readonly name: string;
  /** The name with what it runs on, e.g. 'webgpu (a software adapter, vulkan)'. */
  readonly label: string;
  readonly backend: Backend;
}

export interface CandidateFigures {
  name: string;
  label: string;
  /** Median of the timed steps, in milliseconds. */
  medianMs: number;
  samplesMs: number[];
}

export interface ProbeFigures {
  /** Every candidate that finished the probe, in the candidates' order. */
  figures: CandidateFigures[];
  /** Candidates that threw during the probe, with the error's message. */
  failures: { name: string; label: string; error: string }[];
  /** Wall time of the whole probe (building, warm-up and timed steps), in seconds. */
  seconds: number;
}

export interface ProbeOptions {
  /** Untimed steps per candidate first: the first compiles the shaders and creates AdamW's state. */
  warmupSteps: number;
  /** Timed rounds start while the timed time so far plus the last round's stays within this, in ms. */
  budgetMs: number;
  /** Rounds of one timed step per candidate: at least this many, whatever the budget. */
  minRounds: number;
  maxRounds: number;
}

/**
 * About 2.5 s of timed rounds after one warm-up step each: on this 2-core machine a probe step
 * takes 150 to 750 ms per backend (lavapipe and cpu, quiet or loaded), so that is 3 to 8 samples
 * each, enough for a median that one slowed sample does not move, and little beside a study that
 * runs for minutes. Slow steps still get minRounds rounds.
 */
export const defaultProbeOptions: ProbeOptions = { warmupSteps: 1, budgetMs: 2500, minRounds: 3, maxRounds: 9 };

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b), mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Times the probe step on each candidate: the warm-up steps, then rounds of one timed step per
 * candidate, in alternating order (A B, B A, ...) so that a machine whose speed drifts (a shared
 * one) slows every candidate alike. Each round's duration calibrates the rest: a new round
 * starts only while the timed time plus one more round stays within `budgetMs` (and minRounds
 * always run). A candidate that throws drops out and is reported, never fatal.
 */
export async function measureProbe(candidates: readonly ProbeCandidate[], options: ProbeOptions = defaultProbeOptions): Promise<ProbeFigures> {
  const started = performance.now();
  const failures: ProbeFigures['failures'] = [];
  const live: { candidate: ProbeCandidate; step: ProbeStep; samplesMs: number[] }[] = [];
  const fail = (candidate: ProbeCandidate, e: unknown, step: ProbeStep | null): void => {
    failures.push({ name: candidate.name, label: candidate.label, error: message(e) });
    try { step?.dispose(); } catch { /* already reported */ }
  };
  for (const candidate of candidates) {
    let step: ProbeStep | null = null;
    try {
      step = probeStep(candidate.backend);
      for (let i = 0; i < options.warmupSteps; i++) await step.run();
      live.push({ candidate, step, samplesMs: [] });
    } catch (e) {
      fail(candidate, e, step);
    }
  }
  let timedMs = 0, lastRoundMs = 0;
  for (let round = 0; live.length > 0 && round < options.maxRounds; round++) {
    if (round >= options.minRounds && timedMs + lastRoundMs > options.budgetMs) break;
    const order = round % 2 === 0 ? [...live] : [...live].reverse();
    lastRoundMs = 0;
    for (const entry of order) {
      try {
        const t0 = performance.now();
        await entry.step.run();
        const took = performance.now() - t0;
        entry.samplesMs.push(took);
        lastRoundMs += took;
      } catch (e) {
        live.splice(live.indexOf(entry), 1);
        fail(entry.candidate, e, entry.step);
      }
    }
    timedMs += lastRoundMs;
  }
  for (const entry of live) entry.step.dispose();
  return {
    figures: live.map(({ candidate, samplesMs }) => ({ name: candidate.name, label: candidate.label, medianMs: median(samplesMs), samplesMs })),
    failures,
    seconds: (performance.now() - started) / 1000,
  };
}
