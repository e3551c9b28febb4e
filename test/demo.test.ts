// The web demo (demo/) in a real headless browser: Debian's Chromium, driven by puppeteer-core.
// The page trains both models of a pair for a few epochs; the test reads the test BPD it shows,
// checks the curves are finite and falling, and that a seed gives the Node study's numbers on
// the same backend. Without a browser the test is skipped with a message, except under CI=true.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser } from 'puppeteer-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildDemo } from '../demo/build.js';
import { CHROMIUM_ARGS, CHROMIUM_PATHS, findChromium } from '../demo/chromium.js';
import { serveDemo } from '../demo/serve.js';

const chromium = findChromium();
const study = fileURLToPath(new URL('../experiments/fixed-variance.js', import.meta.url));
/** A few dozen steps of each model: 3 epochs of 512 images in batches of 64 (2 on WebGPU, whose adapter here is SwiftShader's). */
const RUN = { train: 512, test: 200 };

interface Evaluation { model: string; epoch: number; bpd: number }
interface PageRun { evaluations: Evaluation[]; backend: string; seconds: number; steps: number; poolPieces: number; screenshot: string }

const dir = mkdtempSync(join(tmpdir(), 'silentgrad-demo-'));
let browser: Browser | null = null;
let url = '';
let close = (): void => {};

test.before(async () => {
  if (!chromium) return;
  await buildDemo({ outDir: join(dir, 'dist'), trainCount: RUN.train, testCount: RUN.test });
  const served = await serveDemo(join(dir, 'dist'), 0);
  url = served.url;
  close = () => served.server.close();
  browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: CHROMIUM_ARGS });
});

test.after(async () => {
  await browser?.close();
  close();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens the page with `query`, lets it train to the end, and reads what it shows. */
async function runPage(query: string, name: string, epochs: number): Promise<PageRun> {
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.setViewport({ width: 1320, height: 1000 });
  const started = Date.now();
  await page.goto(`${url}?${query}&train=${RUN.train}&test=${RUN.test}&epochs=${epochs}&autostart=1`);
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), { timeout: 600_000 });
  const seconds = (Date.now() - started) / 1000;
  const { state, error, backend, evaluations, steps, poolPieces } = await page.evaluate(() => ({
    state: document.body.dataset.state,
    error: document.body.dataset.error,
    backend: document.body.dataset.backend ?? '',
    evaluations: [...document.querySelectorAll<HTMLTableRowElement>('#evaluations tbody tr')]
      .map((r) => ({ model: r.dataset.model!, epoch: Number(r.dataset.epoch), bpd: Number(r.dataset.bpd) })),
    steps: Number(document.querySelector('#table tbody td:nth-child(2)')?.textContent),
    poolPieces: Number(document.body.dataset.poolPieces),
  }));
  const screenshot = join(tmpdir(), `silentgrad-demo-${name}.png`);
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.close();
  assert.is(state, 'done', `the page stopped with: ${error ?? errors.join('; ')}`);
  assert.equal(errors, []);
  return { evaluations, backend, seconds, steps, poolPieces, screenshot };
}

/** Each model's test BPD by epoch, from the page's table. */
function curves(run: PageRun): Map<string, number[]> {
  const byModel = new Map<string, number[]>();
  for (const e of run.evaluations) {
    const curve = byModel.get(e.model) ?? [];
    curve[e.epoch] = e.bpd;
    byModel.set(e.model, curve);
  }
  return byModel;
}

function assertLearning(run: PageRun, epochs: number): void {
  const byModel = curves(run);
  assert.is(byModel.size, 2, 'two models side by side');
  for (const [model, curve] of byModel) {
    assert.is(curve.length, epochs + 1, `${model}: an evaluation before training and after each epoch`);
    assert.ok(curve.every(Number.isFinite), `${model}: finite BPD ${curve}`);
    for (let e = 1; e < curve.length; e++) assert.ok(curve[e]! < curve[e - 1]!, `${model}: test BPD should fall every epoch: ${curve.join(', ')}`);
  }
  console.log(`  demo on ${run.backend}: ${run.steps} steps of each model in ${run.seconds.toFixed(1)} s (pool workers ran ${run.poolPieces} kernel pieces); screenshot ${run.screenshot}`);
}

if (!chromium) {
  const message = `no Chromium found (looked for ${CHROMIUM_PATHS.join(', ')}; CHROMIUM_PATH overrides): install Debian's chromium package to run the demo's browser test`;
  if (process.env.CI === 'true') test('a browser for the demo test', () => assert.unreachable(message));
  else console.warn(`demo.test: skipped: ${message}`);
} else {
  let cpuCurves = new Map<string, number[]>();

  test('the page trains Silent Gradients and reparameterization on the CPU backend, and matches the Node study', async () => {
    const run = await runPage('backend=cpu&pair=continuous', 'cpu', 3);
    assertLearning(run, 3);
    cpuCurves = curves(run);
    assert.match(run.backend, /^CPU backend/);
    // The CPU backend splits its kernels over Web Workers, one per core.
    if (availableParallelism() > 1) {
      assert.match(run.backend, /^CPU backend, \d+ threads \(Web Workers\)/);
      assert.ok(run.poolPieces > 0, `the pool's workers ran no kernel pieces (${run.poolPieces})`);
    }
    // The study on the same images, seed and backend: the page's numbers to float32 tolerance.
    const out = join(dir, 'study');
    const result = spawnSync(process.execPath, [study, '--backend', 'cpu', '--methods', 'silent-gaussian,reparam', '--train-size', String(RUN.train),
      '--test-size', String(RUN.test), '--epochs', '3', '--out', out], { encoding: 'utf8' });
    assert.is(result.status, 0, result.stderr);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { methods: Record<string, { label: string; runs: { epochs: { bpd: number }[] }[] }> };
    const page = curves(run);
    for (const method of Object.values(results.methods)) {
      const node = method.runs[0]!.epochs.map((e) => e.bpd);
      const shown = page.get(method.label);
      assert.ok(shown, `the page shows ${method.label}`);
      node.forEach((bpd, epoch) => assert.ok(Math.abs(bpd - shown![epoch]!) < 1e-4, `${method.label} epoch ${epoch}: page ${shown![epoch]} vs Node ${bpd}`));
    }
  });

  test('the controls: a bad learning rate is refused with a message, and reset switches to the discrete pair', async () => {
    const page = await browser!.newPage();
    await page.goto(`${url}?backend=cpu&train=64&test=20`);
    await page.waitForFunction(() => document.body.dataset.state === 'paused', { timeout: 120_000 });
    await page.$eval('#lr', (e) => { (e as HTMLInputElement).value = '-1'; });
    await page.click('#reset');
    assert.is(await page.$eval('#status', (e) => e.textContent), "the learning rate must be a positive number, got '-1'; the current run is unchanged");
    await page.$eval('#lr', (e) => { (e as HTMLInputElement).value = '0.001'; });
    await page.select('#pair', 'discrete');
    await page.click('#reset');
    await page.waitForFunction(() => document.querySelector('#table')?.textContent?.includes('Gumbel-Softmax') && document.body.dataset.state === 'paused', { timeout: 120_000 });
    const labels = await page.$$eval('#table tbody tr td:first-child', (cells) => cells.map((c) => c.textContent));
    assert.equal(labels, ['Discrete Silent Gradients', 'Gumbel-Softmax']);
    await page.close();
  });

  test('the page trains on the browser\'s WebGPU, close to the CPU backend\'s numbers', async () => {
    const run = await runPage('backend=webgpu&pair=continuous', 'webgpu', 2);
    assertLearning(run, 2);
    assert.match(run.backend, /^webgpu \(the browser's\)/);
    // Another device's float32 arithmetic (reduction orders, Winograd) drifts a little over the steps.
    for (const [model, curve] of curves(run)) {
      curve.forEach((bpd, epoch) => assert.ok(Math.abs(bpd - cpuCurves.get(model)![epoch]!) < 1e-3, `${model} epoch ${epoch}: WebGPU ${bpd} vs CPU ${cpuCurves.get(model)![epoch]}`));
    }
  });
}

test.run();
