// The paper's protocol for choosing a learning rate (App. B.3): every candidate rate is trained,
// and the one whose final validation BPD is lowest (mean over seeds) is the one reported. The
// validation images are held out from the training set, so the test set never chooses.

export interface CandidateRun {
  lr: number;
  seed: number;
  /** Final validation BPD, or null when the run diverged or has not finished. */
  validationBpd: number | null;
}

export interface Choice {
  lr: number;
  /** Mean final validation BPD per candidate rate (Infinity where any seed diverged). */
  validationBpd: Map<number, number>;
}

/** The rate with the lowest mean validation BPD; null when every candidate diverged. */
export function chooseLearningRate(runs: readonly CandidateRun[]): Choice | null {
  const byRate = new Map<number, number[]>();
  for (const run of runs) byRate.set(run.lr, [...(byRate.get(run.lr) ?? []), run.validationBpd ?? Infinity]);
  const validationBpd = new Map([...byRate].map(([lr, bpds]) => [lr, bpds.reduce((a, b) => a + b, 0) / bpds.length]));
  let best: number | null = null;
  for (const [lr, bpd] of validationBpd) if (Number.isFinite(bpd) && (best === null || bpd < validationBpd.get(best)!)) best = lr;
  return best === null ? null : { lr: best, validationBpd };
}

/** Mean and sample standard deviation (0 for one value). */
export function meanAndStd(values: readonly number[]): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const squares = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  return { mean, std: values.length > 1 ? Math.sqrt(squares / (values.length - 1)) : 0 };
}
