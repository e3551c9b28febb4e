// The MNIST images the page trains on: the first N training and M test images of the same IDX
// files the Node studies read (so a seed gives the same numbers in both), packed at build time
// into one gzip file (build.ts) and unpacked here in the browser.
import { MNIST_PIXELS, mnistShapedSplit, type MnistSplit } from '../experiments/data/mnist-split.js';

export const DATASET_MANIFEST = 'mnist-subset.json';
export const DATASET_FILE = 'mnist-subset.bin.gz';

export interface DatasetManifest {
  trainCount: number;
  testCount: number;
  /** Where the images came from, for the page's footer. */
  source: string;
}

/** Train images, test images, train labels, test labels, one after another. */
export function packDataset(train: MnistSplit, test: MnistSplit): Uint8Array {
  const parts = [train.images, test.images, train.labels, test.labels];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function unpackDataset(bytes: Uint8Array, m: DatasetManifest): { train: MnistSplit; test: MnistSplit } {
  const expected = (m.trainCount + m.testCount) * (MNIST_PIXELS + 1);
  if (bytes.length !== expected)
    throw new Error(`${DATASET_FILE} has ${bytes.length} bytes but its manifest promises ${expected}; rebuild the demo with \`npm run demo:build\``);
  const trainImages = m.trainCount * MNIST_PIXELS, testImages = m.testCount * MNIST_PIXELS;
  const labels = trainImages + testImages;
  return {
    train: mnistShapedSplit('demo', { images: bytes.subarray(0, trainImages), labels: bytes.subarray(labels, labels + m.trainCount), count: m.trainCount }, {}),
    test: mnistShapedSplit('demo', { images: bytes.subarray(trainImages, labels), labels: bytes.subarray(labels + m.trainCount), count: m.testCount }, {}),
  };
}

/** Fetches and unpacks the shipped images, keeping the first `trainCount` and `testCount`. */
export async function fetchDataset(base: string, trainCount: number, testCount: number): Promise<{ train: MnistSplit; test: MnistSplit; manifest: DatasetManifest }> {
  const manifest = await (await fetchOk(new URL(DATASET_MANIFEST, base))).json() as DatasetManifest;
  for (const [what, wanted, shipped] of [['training', trainCount, manifest.trainCount], ['test', testCount, manifest.testCount]] as const) {
    if (!(Number.isInteger(wanted) && wanted >= 1 && wanted <= shipped))
      throw new Error(`asked for ${wanted} ${what} images but the page ships ${shipped}; choose 1..${shipped} or rebuild with more`);
  }
  const gzipped = (await fetchOk(new URL(DATASET_FILE, base))).body;
  if (!gzipped) throw new Error(`${DATASET_FILE}: empty response`);
  const bytes = new Uint8Array(await new Response(gzipped.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer());
  const { train, test } = unpackDataset(bytes, manifest);
  return {
    train: mnistShapedSplit('demo', train, { limit: trainCount }),
    test: mnistShapedSplit('demo', test, { limit: testCount }),
    manifest,
  };
}

async function fetchOk(url: URL): Promise<Response> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url.pathname}: HTTP ${response.status}; was the demo built (\`npm run demo:build\`)?`);
  return response;
}
