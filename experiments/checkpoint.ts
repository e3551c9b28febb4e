// Checkpoints of a training run: the model, the optimiser's moments, the random stream's
// position and the REINFORCE baseline, in one safetensors file written atomically, so a
// resumed run continues bit for bit where the interrupted one stopped.
import { existsSync } from 'node:fs';
import * as sg from '../engine/index.js';
import { Reinforce } from '../models/index.js';
import type { FixedVarianceVae } from './vae.js';

interface CheckpointMetadata<H> {
  epoch: number;
  streamOffset: number;
  optimizerSteps: Record<string, number>;
  history: H;
}

export async function saveCheckpoint<H>(path: string, vae: FixedVarianceVae, epoch: number, history: H): Promise<void> {
  const tensors = vae.namedState();
  const optimizerSteps: Record<string, number> = {};
  for (const [name, param] of vae.namedState()) {
    const state = vae.optimizer.stateOf(param);
    if (!state) continue;
    tensors.set(`optimizer.m.${name}`, state.m);
    tensors.set(`optimizer.v.${name}`, state.v);
    optimizerSteps[name] = state.step;
  }
  if (vae.estimator instanceof Reinforce && vae.estimator.baselineValue) tensors.set('reinforce.baseline', vae.estimator.baselineValue);
  const metadata: CheckpointMetadata<H> = { epoch, streamOffset: vae.trainingStream.offset, optimizerSteps, history };
  await sg.saveSafetensors(path, tensors, { silentgrad: JSON.stringify(metadata) });
}

/** Restores vae in place; returns the epoch the checkpoint ended and the saved history. */
export function loadCheckpoint<H>(path: string, vae: FixedVarianceVae): { epoch: number; history: H } {
  if (!existsSync(path)) throw new Error(`--resume: no checkpoint at ${path}`);
  const { tensors, metadata } = sg.loadSafetensors(path, vae.backend);
  let meta: CheckpointMetadata<H>;
  try {
    meta = JSON.parse(metadata.silentgrad ?? '') as CheckpointMetadata<H>;
  } catch {
    throw new Error(`${path}: not a silentgrad checkpoint (no training metadata)`);
  }
  const model = new Map([...tensors].filter(([name]) => !name.startsWith('optimizer.') && !name.startsWith('reinforce.')));
  const encoderState = new Map([...model].filter(([n]) => n.startsWith('encoder.')).map(([n, t]) => [n.slice('encoder.'.length), t]));
  const decoderState = new Map([...model].filter(([n]) => n.startsWith('decoder.')).map(([n, t]) => [n.slice('decoder.'.length), t]));
  vae.encoder.loadStateDict(encoderState);
  vae.decoder.loadStateDict(decoderState);
  for (const [name, param] of vae.namedState()) {
    const m = tensors.get(`optimizer.m.${name}`), v = tensors.get(`optimizer.v.${name}`), step = meta.optimizerSteps[name];
    if (m && v && step !== undefined) vae.optimizer.restoreState(param, { m, v, step });
  }
  if (vae.estimator instanceof Reinforce) vae.estimator.restoreBaseline(tensors.get('reinforce.baseline') ?? null);
  vae.trainingStream.offset = meta.streamOffset;
  for (const t of tensors.values()) t.dispose();
  return { epoch: meta.epoch, history: meta.history };
}
