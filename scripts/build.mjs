// Compiles every TypeScript source next to itself (engine/foo.ts -> engine/foo.js), so the
// README's `node experiments/fixed-variance.js` runs without a bundler and worker threads can
// load their own files. Type checking is separate (`npm run typecheck`): esbuild only strips.
import { build } from 'esbuild';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['engine', 'backends', 'models', 'experiments', 'test', 'bench', 'demo'];

function tsFiles(dir) {
  let found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    // demo/dist holds the built page and copies of the sources it links to: not ours to compile.
    if (statSync(path).isDirectory()) found = name === 'dist' ? found : found.concat(tsFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) found.push(path);
  }
  return found;
}

// silentgrad.ts is the package's entry: the engine with the CPU backend as its default.
const entryPoints = ['silentgrad.ts', ...roots.flatMap((root) => tsFiles(root))];
await build({
  entryPoints,
  outdir: '.',
  outbase: '.',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'inline',
  logLevel: 'warning',
});
console.log(`silentgrad: built ${entryPoints.length} TypeScript files`);
