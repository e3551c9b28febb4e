// Checkpoints of a training run: the model, every optimiser's moments, the random stream's
// position and the REINFORCE baseline, in one safetensors file written atomically, so a
// resumed run continues bit for bit where the interrupted one stopped. Model tensors keep
// PyTorch's state_dict names ("encoder.0.weight"), so the file loads with the safetensors library.
import { existsSync } from 'node:fs';
import * as sg from '../silentgrad.js';
import { loadSafetensors, saveSafetensors } from '../engine/safetensors.js';
import type { Tensor } from '../silentgrad.js';
import { Reinforce, type Estimator } from '../models/index.js';

/** What a study checkpoints: a model's named state, its optimisers, its stream, its estimators. */
export interface Checkpointable {
  readonly backend: sg.Backend;
  readonly trainingStream: sg.RandomStream;
  readonly optimizers: readonly sg.AdamW[];
  readonly estimator: Estimator;
  /** Every model tensor by name. */
  namedState(): Map<string, Tensor>;
  /** Copies in what namedState() names; every name must be there. */
  loadNamedState(state: ReadonlyMap<string, Tensor>): void;
}

interface CheckpointMetadata<H> {
  epoch: number;
  streamOffset: number;
  optimizerSteps: Record<string, number>;
  history: H;
}

export async function saveCheckpoint<H>(path: string, model: Checkpointable, epoch: number, history: H): Promise<void> {
  const tensors = model.namedState();
  const optimizerSteps: Record<string, number> = {};
  for (const [name, param] of model.namedState()) {
    const state = model.optimizers.map((o) => o.stateOf(param)).find((s) => s !== undefined);
    if (!state) continue;
    tensors.set(`optimizer.m.${name}`, state.m);
    tensors.set(`optimizer.v.${name}`, state.v);
    optimizerSteps[name] = state.step;
  }
  if (model.estimator instanceof Reinforce && model.estimator.baselineValue) tensors.set('reinforce.baseline', model.estimator.baselineValue);
  const metadata: CheckpointMetadata<H> = { epoch, streamOffset: model.trainingStream.offset, optimizerSteps, history };
  await saveSafetensors(path, tensors, { silentgrad: JSON.stringify(metadata) });
}

/** Restores the model in place; returns the epoch the checkpoint ended and the saved history. */
export function loadCheckpoint<H>(path: string, model: Checkpointable): { epoch: number; history: H } {
  if (!existsSync(path)) throw new Error(`--resume: no checkpoint at ${path}`);
  const { tensors, metadata } = loadSafetensors(path, model.backend);
  let meta: CheckpointMetadata<H>;
  try {
    meta = JSON.parse(metadata.silentgrad ?? '') as CheckpointMetadata<H>;
  } catch {
    throw new Error(`${path}: not a silentgrad checkpoint (no training metadata)`);
  }
  model.loadNamedState(new Map([...tensors].filter(([name]) => !name.startsWith('optimizer.') && !name.startsWith('reinforce.'))));
  for (const [name, param] of model.namedState()) {
    const m = tensors.get(`optimizer.m.${name}`), v = tensors.get(`optimizer.v.${name}`), step = meta.optimizerSteps[name];
    const owner = model.optimizers.find((o) => o.groups.some((g) => g.params.includes(param)));
    if (m && v && step !== undefined && owner) owner.restoreState(param, { m, v, step });
  }
  if (model.estimator instanceof Reinforce) model.estimator.restoreBaseline(tensors.get('reinforce.baseline') ?? null);
  model.trainingStream.offset = meta.streamOffset;
  for (const t of tensors.values()) t.dispose();
  return { epoch: meta.epoch, history: meta.history };
}
