// Starts a study and kills it (SIGKILL, as a power cut would) the moment `checkpoint` appears,
// so a test can check that --resume continues to the uninterrupted run's numbers.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export async function killAfterCheckpoint(script: string, args: readonly string[], checkpoint: string): Promise<void> {
  const child = spawn(process.execPath, [script, ...args], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(checkpoint)) { clearInterval(poll); child.kill('SIGKILL'); resolve(); }
    }, 5);
    child.on('exit', () => { clearInterval(poll); reject(new Error('the run finished before it could be killed')); });
  });
  await new Promise((resolve) => child.on('exit', resolve));
}
