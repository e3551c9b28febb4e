// Flags for the experiments, on Node's util.parseArgs: every flag typed and validated, --help
// generated from the same table, and bad input reported as one line with a non-zero exit
// (never a stack trace).
import { parseArgs } from 'node:util';

export interface FlagSpec {
  type: 'string' | 'boolean';
  help: string;
  /** Shown in --help and used when the flag is absent. */
  default?: string;
}

export type FlagTable = Record<string, FlagSpec>;

/** An error whose message is all the user needs: printed without a stack trace. */
export class UsageError extends Error {}

export function parseFlags(argv: readonly string[], table: FlagTable): Record<string, string | boolean | undefined> {
  const options = Object.fromEntries(Object.entries(table).map(([name, spec]) => [name, { type: spec.type }]));
  try {
    const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]} (see --help)`);
  }
}

export function helpText(command: string, summary: string, table: FlagTable): string {
  const rows = Object.entries(table).map(([name, spec]) => {
    const flag = spec.type === 'boolean' ? `--${name}` : `--${name} <value>`;
    const fallback = spec.default !== undefined ? ` (default: ${spec.default})` : '';
    return `  ${flag.padEnd(26)} ${spec.help}${fallback}`;
  });
  return `Usage: node ${command} [flags]\n\n${summary}\n\nFlags:\n${rows.join('\n')}\n`;
}

export function positiveInteger(name: string, raw: string | undefined): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`--${name} must be a positive integer, got '${raw}'`);
  return value;
}

export function nonNegativeInteger(name: string, raw: string | undefined): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`--${name} must be a non-negative integer, got '${raw}'`);
  return value;
}

export function positiveNumber(name: string, raw: string | undefined): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--${name} must be a positive number, got '${raw}'`);
  return value;
}

/** A comma list of positive numbers, duplicates dropped, in the order given. */
export function positiveNumbers(name: string, raw: string | undefined): number[] {
  const items = (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${name} needs a positive number or a comma-separated list of them`);
  return [...new Set(items.map((item) => positiveNumber(name, item)))];
}

export function oneOf<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T {
  if (!allowed.includes(raw as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}; got '${raw}'`);
  return raw as T;
}

export function listOf<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T[] {
  const items = (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${name} needs a comma-separated list from ${allowed.join(', ')}`);
  for (const item of items) if (!allowed.includes(item as T)) throw new UsageError(`--${name}: '${item}' is not one of ${allowed.join(', ')}`);
  return [...new Set(items)] as T[];
}

/** Run main(); a UsageError (or any error) prints one line and exits 2 (1 for failures). */
export function runMain(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`error: ${message}\n`);
    if (process.env.SILENTGRAD_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  });
}

/**
 * Flags for a top-level script (the benchmarks): `--help` prints the table and exits 0; a bad
 * flag, or a value `validate` rejects, prints one line and exits 2 instead of a stack trace.
 */
export function scriptFlags<T>(command: string, summary: string, table: FlagTable,
  validate: (values: Record<string, string | boolean | undefined>) => T): T {
  const withHelp: FlagTable = { ...table, help: { type: 'boolean', help: 'show this help' } };
  try {
    const values = parseFlags(process.argv.slice(2), withHelp);
    if (values.help) {
      process.stdout.write(helpText(command, summary, withHelp));
      process.exit(0);
    }
    for (const [name, spec] of Object.entries(table)) if (values[name] === undefined && spec.default !== undefined) values[name] = spec.type === 'boolean' ? spec.default === 'true' : spec.default;
    return validate(values);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
