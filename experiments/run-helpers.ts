// What every experiment's run does the same way: a progress bar with an ETA, the commit that
// produced the results, the check that --resume continues the same configuration, and the
// results files.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { writeFileAtomic } from '../engine/safetensors.js';
import { UsageError } from './cli.js';

/** A bar over `{total}` units (`unit` names them), cleared when it completes. */
export function progressBar(label: string, unit = 'batches'): cliProgress.SingleBar {
  return new cliProgress.SingleBar({
    format: `${label} |{bar}| {value}/{total} ${unit} | {duration_formatted} elapsed, ETA {eta_formatted}`,
    hideCursor: true, clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
}

export function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/** --resume must repeat the interrupted run's settings (the backend may change). */
export function checkResumable<C extends object>(resultsPath: string, config: C): void {
  if (!existsSync(resultsPath)) throw new UsageError(`--resume: ${resultsPath} does not exist (nothing to resume)`);
  const saved = (JSON.parse(readFileSync(resultsPath, 'utf8')) as { config: C }).config;
  for (const key of Object.keys(config) as (keyof C)[])
    if (JSON.stringify(saved[key]) !== JSON.stringify(config[key]) && key !== 'backend')
      throw new UsageError(`--resume: the run used ${String(key)} = ${JSON.stringify(saved[key])}, but this command gives ${JSON.stringify(config[key])}`);
}

/** results.json (the record --resume checks) and results.md (`tables` of it), each written atomically. */
export function writeResults<R>(folder: string, results: R, tables: (results: R) => string): void {
  const write = (name: string, text: string): void => writeFileAtomic(join(folder, name), [new TextEncoder().encode(text)]);
  write('results.json', JSON.stringify(results, null, 2));
  write('results.md', tables(results));
}

/**
 * The run folder: --out or runs/<study>-<time>. A new run refuses a folder that already holds
 * one; --resume requires one with the same settings. Creates the checkpoints folder.
 */
export function prepareRunFolder<C extends object>(study: string, out: string | undefined, resume: boolean, config: C): string {
  const folder = out ?? join('runs', `${study}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const resultsPath = join(folder, 'results.json');
  if (resume) checkResumable(resultsPath, config);
  else if (existsSync(resultsPath)) throw new UsageError(`${folder} already holds a run; pass --resume to continue it or choose another --out`);
  mkdirSync(join(folder, 'checkpoints'), { recursive: true });
  return folder;
}
