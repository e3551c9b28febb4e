// The CPU backend's heap (backends/cpu/heap.ts): one shared WebAssembly.Memory holding tensors
// and kernel scratch. Blocks are aligned and reused by size, the memory grows without moving
// what it holds, a full heap says so (callers fall back), and the backend's tensors live in it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CpuStorage } from '../backends/cpu/index.js';
import { heap, heapAddress, heapAllocate, heapArray, heapBytes, heapRelease, HEAP_MAX_PAGES } from '../backends/cpu/heap.js';
import { sharedMemories } from '../backends/cpu/wasm/memory.js';
import * as sg from '../silentgrad.js';

// No heap without shared memories, nor under SILENTGRAD_CPU_KERNELS=js (no WebAssembly at all).
const present = sharedMemories() && process.env.SILENTGRAD_CPU_KERNELS !== 'js';

test('without shared memories or under SILENTGRAD_CPU_KERNELS=js there is no heap, else there is one', () => {
  assert.is(heap() !== null, present);
});

if (present) {
  test('blocks are aligned, fresh ones are zero, and arrays outside the heap have no address', () => {
    const a = heapArray('float32', 5)!, b = heapArray('float64', 3)!;
    for (const x of [a, b]) {
      assert.ok(heapAddress(x)! % 64 === 0, `address ${heapAddress(x)}`);
      assert.ok(x.every((v) => v === 0));
    }
    assert.ok(heapAddress(b)! >= heapAddress(a)! + 64, 'blocks do not overlap');
    assert.is(heapAddress(new Float32Array(4)), null);
    assert.is(heapAddress(new Float32Array(new SharedArrayBuffer(16))), null);
  });

  test('a released block is the next one given for its size', () => {
    const a = heapArray('float32', 1000)!;
    const at = heapAddress(a)!;
    heapRelease(at, a.byteLength);
    assert.is(heapAddress(heapArray('float32', 1000)!), at);
    assert.is.not(heapAddress(heapArray('float32', 1000)!), at, 'and only once');
  });

  test('the heap grows without moving or changing what it holds', () => {
    const before = heapArray('float32', 1024)!;
    before.forEach((_, i) => { before[i] = i; });
    const size = heapBytes();
    // 64 MiB from the top: past the end of the memory so far, wherever earlier tests left it.
    const big = heapArray('float64', 8 << 20);
    assert.ok(big, 'room for 64 MiB in the 1 GiB heap');
    const end = heapAddress(big)! + big.byteLength;
    assert.ok(end > size && heapBytes() >= end, `it grew: ${size} -> ${heapBytes()} bytes for a block ending at ${end}`);
    big[big.length - 1] = 7;
    assert.is(big[big.length - 1], 7);
    assert.ok(before.every((v, i) => v === i), 'earlier arrays keep their values');
  });

  test('a request past the limit gets no block, and the backend then allocates outside the heap', () => {
    assert.is(heapAllocate(HEAP_MAX_PAGES * 65536), null);
    assert.is(heapArray('float32', HEAP_MAX_PAGES * 65536 / 4), null);
    const t = sg.zeros([16, 16]);
    assert.ok(t.storage instanceof CpuStorage && heapAddress(t.storage.data) !== null, 'a tensor lies in the heap');
    t.dispose();
  });

  test('with the heap full, a float32 Winograd convolution falls back to the TypeScript path instead of failing', () => {
    // A process of its own: filling this one's heap would starve every later test.
    const fixture = fileURLToPath(new URL('./fixtures/full-heap-winograd.js', import.meta.url));
    const run = spawnSync(process.execPath, [fixture], { encoding: 'utf8', env: { ...process.env, SILENTGRAD_THREADS: '1' } });
    assert.is(run.status, 0, `the fixture failed: ${run.stderr}`);
    const { worst, scale, length } = JSON.parse(run.stdout) as { worst: number; scale: number; length: number };
    assert.is(length, 2 * 8 * 12 * 12 * 2 + 8 * 8 * 9);
    assert.ok(worst <= 1e-5 * scale, `value and gradients within float32 rounding of the TypeScript kernels: ${worst} of ${scale}`);
  });
}

test.run();
