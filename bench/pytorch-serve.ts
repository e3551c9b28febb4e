// A warm PyTorch process for a benchmark to alternate with: a bench/pytorch/*.py script run with
// --serve, which prints one JSON line on start and answers each request line with one JSON line.
// Timing both engines in one session, sample after sample, is what makes their ratio mean
// anything on a shared machine whose speed drifts by tens of percent within minutes.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export type Answer = Record<string, unknown>;

export interface PytorchServer {
  /** The first line the script printed (its torch version, threads, and so on). */
  hello: Answer;
  /** Send one request line; resolves with the answer, rejects if the script answered an error. */
  ask(request: string): Promise<Answer>;
  close(): void;
}

/** Starts `python bench/pytorch/<script> --serve ...args`; `flag` names the caller's flag in errors. */
export async function startPytorch(python: string, script: string, args: readonly string[], flag: string): Promise<PytorchServer> {
  const path = fileURLToPath(new URL(`./pytorch/${script}`, import.meta.url));
  const child = spawn(python, [path, '--serve', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const exited = new Promise<never>((_, reject) => {
    child.on('error', (e) => reject(new Error(`${flag}: could not start ${python}: ${e.message}`)));
    child.on('exit', (code) => reject(new Error(`${flag}: ${python} ${path} --serve exited (${code}); is torch installed? (apt-get install python3-torch)`)));
  });
  const next = async (): Promise<Answer> => {
    const line = await Promise.race([lines.next(), exited]);
    if (line.done) return exited;
    const answer = JSON.parse(line.value) as Answer;
    if (typeof answer.error === 'string') throw new Error(`${flag}: ${answer.error}`);
    return answer;
  };
  const hello = await next();
  return {
    hello,
    ask: async (request) => { child.stdin.write(`${request}\n`); return next(); },
    close: () => { exited.catch(() => {}); child.stdin.end(); },
  };
}
