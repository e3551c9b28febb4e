// `node bench/silent-elbo.js --pytorch`: our fused op, our composite (models/composite-elbo.ts,
// the plain reference) and PyTorch's composite of the same maths (bench/pytorch/silent_elbo.py
// --serve, a warm process), B = 64, d = 200, k = 784, forward + backward, float32, timed in
// alternation round by round. Issue 23's bar: the fused op at most 2x PyTorch's composite.
// PyTorch first gets our inputs and must give our loss and gradients: a ratio between two
// different functions would mean nothing.
import * as sg from '../silentgrad.js';
import { compositeExpectedLogLikelihoodLearnable } from '../models/composite-elbo.js';
import { inputNames, problem, type Problem } from './silent-elbo-problem.js';
import { startPytorch, type PytorchServer } from './pytorch-serve.js';
import { median } from './stats.js';

export interface PytorchOptions { python: string; dense: string; rounds: number; calls: number }

/** Loss within this relative difference, each gradient within this share of its largest entry. */
const LOSS_TOLERANCE = 1e-5, GRAD_TOLERANCE = 1e-4;

const base64 = (a: Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
const fromBase64 = (s: string): Float32Array => {
  const bytes = Buffer.from(s, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

/** max |a - b| over max |b|. */
function relativeMaxDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) { diff = Math.max(diff, Math.abs(a[i]! - b[i]!)); scale = Math.max(scale, Math.abs(b[i]!)); }
  return diff / Math.max(scale, 1e-30);
}

/** Sends the inputs; prints PyTorch's loss and gradients against ours; throws if they disagree. */
async function checkAgreement(torch: PytorchServer, base: Problem): Promise<void> {
  const inputs: Record<string, { shape: number[]; data: string }> = {};
  for (const name of inputNames) {
    const t = base.inputs[name];
    inputs[name] = { shape: [...t.shape], data: base64(Float32Array.from(await t.data())) };
  }
  const answer = await torch.ask(`load ${JSON.stringify(inputs)}`);
  const theirs = answer.loss as number, theirGrads = answer.grads as Record<string, string>;
  let worst = 0;
  for (const [name, elbo] of [['fused', sg.expectedLogLikelihoodLearnable], ['composite', compositeExpectedLogLikelihoodLearnable]] as const) {
    const ours = await base.valueAndGrads(elbo);
    const lossDiff = Math.abs(theirs - ours.loss) / Math.abs(ours.loss);
    const gradDiffs = Object.entries(ours.grads).map(([leaf, g]) => [leaf, relativeMaxDiff(fromBase64(theirGrads[leaf]!), g)] as const);
    worst = Math.max(worst, lossDiff / LOSS_TOLERANCE, ...gradDiffs.map(([, r]) => r / GRAD_TOLERANCE));
    console.log(`agreement, PyTorch against our ${name}: loss ${theirs.toPrecision(9)} against ${ours.loss.toPrecision(9)} (relative difference ${lossDiff.toExponential(2)}); ` +
      `gradients, max |difference| over max |ours|: ${gradDiffs.map(([leaf, r]) => `${leaf} ${r.toExponential(2)}`).join(', ')}`);
  }
  if (worst > 1) throw new Error(`--pytorch: PyTorch's composite does not compute our function (tolerances: loss ${LOSS_TOLERANCE}, gradients ${GRAD_TOLERANCE} of their scale)`);
  console.log(`agreement: within tolerances (loss ${LOSS_TOLERANCE} relative, gradients ${GRAD_TOLERANCE} of their largest entry)`);
}

/** Median ms of `calls` calls, after 2 warm-up calls (as the PyTorch script does). */
async function medianMs(fn: () => Promise<void>, calls: number): Promise<number> {
  for (let i = 0; i < 2; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

export async function compareWithPytorch(options: PytorchOptions): Promise<void> {
  const torch = await startPytorch(options.python, 'silent_elbo.py', ['--dense', options.dense], '--pytorch');
  const h = torch.hello;
  console.log(`PyTorch ${String(h.torch)}, ${String(h.threads)} threads, contractions on ${String(h.dense)}, allocator ${JSON.stringify(h.malloc_env)}`);
  // Both problems draw the same numbers from RandomStream(1), so the inputs PyTorch checks
  // against are the ones both modes time.
  const problems = { alone: problem(64, 200, 784, false), logits: problem(64, 200, 784, true) };
  await checkAgreement(torch, problems.logits);
  const summary: string[] = [];
  for (const fromLogits of [false, true]) {
    const what = fromLogits ? 'with moments from logits' : 'op alone';
    const base = fromLogits ? problems.logits : problems.alone;
    const ours = { fused: () => base.run(sg.expectedLogLikelihoodLearnable), composite: () => base.run(compositeExpectedLogLikelihoodLearnable) };
    const rows = { fused: [] as number[], composite: [] as number[], pytorch: [] as number[] };
    let disturbed = 0;
    console.log(`\n${what}: B=64 d=200 k=784 fwd+bwd, medians of ${options.calls} calls per sample, after 2 warm-up calls`);
    console.log('round  fused ms  composite ms  PyTorch ms  fused/PyTorch  composite/PyTorch  fused/composite  others\' CPU in PyTorch\'s timing');
    for (let round = 1; round <= options.rounds; round++) {
      const fused = await medianMs(ours.fused, options.calls), composite = await medianMs(ours.composite, options.calls);
      const answer = await torch.ask(`${fromLogits ? 'logits' : 'alone'} ${options.calls}`);
      const them = answer.median_ms as number, others = answer.others_cpu as number | null;
      rows.fused.push(fused); rows.composite.push(composite); rows.pytorch.push(them);
      if ((others ?? 0) > 0.05) disturbed++;
      console.log(`${String(round).padStart(5)}  ${fused.toFixed(2).padStart(8)}  ${composite.toFixed(2).padStart(12)}  ${them.toFixed(2).padStart(10)}  ` +
        `${(fused / them).toFixed(2).padStart(13)}  ${(composite / them).toFixed(2).padStart(17)}  ${(fused / composite).toFixed(2).padStart(15)}  ${others === null ? '?' : `${(100 * others).toFixed(0)}%`}`);
    }
    const ratio = (a: number[], b: number[]): number => median(a.map((x, i) => x / b[i]!));
    const fusedToTorch = ratio(rows.fused, rows.pytorch);
    summary.push(`${what}: medians fused ${median(rows.fused).toFixed(2)} ms, composite ${median(rows.composite).toFixed(2)} ms, PyTorch ${median(rows.pytorch).toFixed(2)} ms; ` +
      `median ratios fused/PyTorch ${fusedToTorch.toFixed(2)} (bar: at most 2, ${fusedToTorch <= 2 ? 'met' : 'NOT met'}), ` +
      `composite/PyTorch ${ratio(rows.composite, rows.pytorch).toFixed(2)}, fused/composite ${ratio(rows.fused, rows.composite).toFixed(2)}` +
      // PyTorch's OpenMP threads lose several-fold to a busy core (bench/pytorch/README.md).
      (disturbed > 0 ? `; WARNING: other processes used over 5% of the CPUs in ${disturbed} of ${options.rounds} of PyTorch's samples` : ''));
  }
  torch.close();
  console.log(`\n${summary.join('\n')}`);
}
