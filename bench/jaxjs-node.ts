// jax-js (@jax-js/jax) in Node, for benchmarks only: it is never a dependency of silentgrad. It
// is loaded from a node_modules folder named on the command line, installed outside the
// repository:
//   npm install --prefix /tmp/jaxjs @jax-js/jax        (then --jax /tmp/jaxjs/node_modules)
// jax-js's Wasm backend runs its kernels on a pool of browser-style Workers when the globals
// `Worker` and `SharedArrayBuffer` exist, sized by navigator.hardwareConcurrency. Node 20 has no
// global `Worker` (nor `navigator`), so there jax-js computes on the main thread alone. With
// `workers` > 0 this module first installs a `Worker` global over worker_threads, which is all
// the pool uses of a browser's Worker (a blob: URL of a classic script, postMessage, onmessage,
// onerror), and a `navigator` saying `workers` cores, so jax-js gets the threads it would get in
// a cross-origin-isolated page.
import { existsSync, readFileSync } from 'node:fs';
import { resolveObjectURL } from 'node:buffer';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker as ThreadWorker } from 'node:worker_threads';

/** What the benchmarks use of jax-js (its own types live outside this repository). */
export interface JaxArray {
  readonly ref: JaxArray;
  reshape(shape: number[]): JaxArray;
  /** Reads the values and disposes the array (jax-js's arguments are owned references). */
  data(): Promise<Float32Array>;
  dispose(): void;
}

export interface Jax {
  version: string;
  init(...devices: string[]): Promise<string[]>;
  defaultDevice(device?: string): string;
  numpy: { array(values: Float32Array): JaxArray; matmul(a: JaxArray, b: JaxArray): JaxArray };
}

const INSTALL = 'npm install --prefix /tmp/jaxjs @jax-js/jax, then pass --jax /tmp/jaxjs/node_modules';

/** The package folder under `modules` (a node_modules folder, or the prefix holding one), or a one-line error. */
export function findJax(modules: string | undefined): string {
  if (modules === undefined) throw new Error(`--jax <node_modules holding @jax-js/jax> is required (install it outside the repository: ${INSTALL})`);
  const found = [join(modules, '@jax-js/jax'), join(modules, 'node_modules/@jax-js/jax')].find((p) => existsSync(join(p, 'package.json')));
  if (!found) throw new Error(`--jax: no @jax-js/jax under ${resolve(modules)} (install it outside the repository: ${INSTALL})`);
  return resolve(found);
}

// Run first in each worker: the browser globals the pool's script uses, over worker_threads.
const PRELUDE = `const { parentPort } = require('node:worker_threads');
globalThis.self = globalThis;
globalThis.postMessage = (message) => parentPort.postMessage(message);
parentPort.on('message', (data) => self.onmessage({ data }));
`;

/** The part of a browser's Worker that jax-js's pool uses, on a worker_threads thread. */
class BrowserStyleWorker {
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((event: { message: string }) => void) | null = null;
  #queued: unknown[] = [];
  #thread: ThreadWorker | null = null;

  constructor(url: string | URL) {
    const blob = resolveObjectURL(String(url));
    if (!blob) throw new Error(`Worker: ${String(url)} is not a blob: URL of this process`);
    // The source is read asynchronously, so messages posted before the thread exists wait.
    void blob.text().then((source) => {
      const thread = new ThreadWorker(PRELUDE + source, { eval: true });
      thread.on('message', (data: unknown) => this.onmessage?.({ data }));
      thread.on('error', (e: Error) => this.onerror?.({ message: e.message }));
      for (const message of this.#queued) thread.postMessage(message);
      this.#queued = [];
      this.#thread = thread;
    });
  }

  postMessage(message: unknown): void {
    if (this.#thread) this.#thread.postMessage(message);
    else this.#queued.push(message);
  }

  terminate(): void { void this.#thread?.terminate(); }
}

/**
 * Imports jax-js from `packageDir` and starts its Wasm backend as the default device. With
 * `workers` > 0 it gets a pool of that many threads; the globals must exist before the import,
 * since jax-js creates its Wasm backend when its module loads. The pool's threads keep the
 * process alive: end it with process.exit.
 */
export async function loadJax(packageDir: string, workers: number): Promise<Jax> {
  if (workers > 0) {
    Object.defineProperty(globalThis, 'Worker', { value: BrowserStyleWorker, configurable: true, writable: true });
    Object.defineProperty(globalThis, 'navigator', { value: { hardwareConcurrency: workers, userAgent: `Node.js/${process.versions.node}` }, configurable: true, writable: true });
  }
  const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string; module?: string; main?: string };
  const jax = await import(pathToFileURL(join(packageDir, pkg.module ?? pkg.main ?? 'dist/index.js')).href) as Omit<Jax, 'version'>;
  // Only the Wasm device: asking for all would probe navigator.gpu, which Node 20 lacks.
  const devices = await jax.init('wasm');
  if (!devices.includes('wasm')) throw new Error(`jax-js ${pkg.version}: no Wasm device here (devices: ${devices.join(', ')})`);
  jax.defaultDevice('wasm');
  return { ...jax, version: pkg.version };
}
