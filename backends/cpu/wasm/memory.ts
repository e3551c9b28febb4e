// The memory a generated kernel imports. Operands reach it with TypedArray.set, and copies
// between JavaScript arrays and a non-shared WebAssembly.Memory measured up to 4x slower than
// with a shared one (docs/performance-log.md, "CPU Winograd in WebAssembly"), so memories are
// shared (SharedArrayBuffer-backed) wherever the engine allows it; a page without cross-origin
// isolation gets a plain one. The module's import must say which (ModuleBuilder.importMemory).

let sharedAllowed: boolean | undefined;

/** Whether this engine creates shared memories. */
export function sharedMemories(): boolean {
  if (sharedAllowed === undefined) {
    try {
      sharedAllowed = typeof SharedArrayBuffer === 'function'
        && new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
    } catch {
      sharedAllowed = false;
    }
  }
  return sharedAllowed;
}

/** A memory of `initial` 64 KiB pages that may grow to `maximum`, shared where sharedMemories(). */
export function kernelMemory(initial: number, maximum: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial, maximum, shared: sharedMemories() });
}
