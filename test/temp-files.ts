// What the data-loader tests share: a temporary folder for files written in the real formats,
// and the message of the error an action throws.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';

/** Runs `body` with a fresh temporary folder, removed afterwards. */
export function withTempDir(prefix: string, body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The message of the Error that `action` throws; fails the test if it throws none. */
export function errorMessage(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    assert.instance(error, Error);
    return (error as Error).message;
  }
  assert.unreachable('expected an error');
  return '';
}
