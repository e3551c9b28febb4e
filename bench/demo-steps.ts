// The web demo's training speed in headless Chromium, per backend and thread count, the
// configurations alternating round by round (a shared machine's speed drifts within minutes):
//   npm run demo:build && node bench/demo-steps.js [--configs cpu:1,cpu:2,webgpu] [--steps 40] [--rounds 2]
// Each round opens the page once per configuration on the built demo/dist (the default 4096
// training images), trains both models of the continuous pair for --steps steps each, and
// reads the page's ms per step (its mean over each model's last 10 steps). Prints the median
// over rounds of each model's ms per step and the steps a second per model.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { CHROMIUM_ARGS, findChromium } from '../demo/chromium.js';
import { serveDemo } from '../demo/serve.js';
import { scriptFlags } from '../experiments/cli.js';
import { median } from './stats.js';

interface Config { backend: 'cpu' | 'webgpu'; threads: number }

const dist = fileURLToPath(new URL('../demo/dist', import.meta.url));
const flags = scriptFlags('bench/demo-steps.js', "The web demo's ms per training step in headless Chromium, configurations alternating.", {
  configs: { type: 'string', help: 'backend:threads list (webgpu takes no thread count)', default: 'cpu:1,cpu:2' },
  steps: { type: 'string', help: 'training steps of each model per page', default: '40' },
  rounds: { type: 'string', help: 'alternations', default: '2' },
}, (v) => {
  const steps = Number(v.steps), rounds = Number(v.rounds);
  if (!Number.isInteger(steps) || steps < 10) throw new Error(`--steps must be a whole number of at least 10 (the page averages the last 10), got ${String(v.steps)}`);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${String(v.rounds)}`);
  const configs = String(v.configs).split(',').map((c): Config => {
    const [backend, threads = '1'] = c.split(':');
    if (backend !== 'cpu' && backend !== 'webgpu') throw new Error(`--configs: backend '${backend}' is neither cpu nor webgpu`);
    if (!/^[1-9]\d*$/.test(threads)) throw new Error(`--configs: '${c}' wants a positive whole thread count after the colon`);
    return { backend, threads: Number(threads) };
  });
  if (!existsSync(join(dist, 'index.html'))) throw new Error('demo/dist is missing: run `npm run demo:build` first');
  const chromium = findChromium();
  if (!chromium) throw new Error("no Chromium found: install Debian's chromium package or set CHROMIUM_PATH");
  return { steps, rounds, configs, chromium };
});

const { url, server } = await serveDemo(dist, 0);
const browser = await puppeteer.launch({ executablePath: flags.chromium, headless: true, args: CHROMIUM_ARGS, protocolTimeout: 1_800_000 });
const label = (c: Config): string => c.backend === 'cpu' ? `cpu, ${c.threads} thread(s)` : 'webgpu';
const samples = new Map<string, number[][]>();
const backendText = new Map<string, string>();

try {
  for (let round = 0; round < flags.rounds; round++) {
    for (const config of flags.configs) {
      const page = await browser.newPage();
      // The page trains until paused; it is read and closed once both models have the steps.
      await page.goto(`${url}?backend=${config.backend}&threads=${config.threads}&autostart=1`);
      await page.waitForFunction((steps: number) => document.body.dataset.state === 'error'
        || [...document.querySelectorAll('#table tbody tr')].every((r) => Number(r.children[1]?.textContent) >= steps)
        && document.querySelectorAll('#table tbody tr').length === 2, { timeout: 1_800_000, polling: 200 }, flags.steps);
      const read = await page.evaluate(() => ({
        error: document.body.dataset.error,
        backend: document.body.dataset.backend ?? '',
        ms: [...document.querySelectorAll('#table tbody tr')].map((r) => Number(r.lastElementChild?.textContent)),
      }));
      await page.close();
      if (read.error) throw new Error(`the page failed on ${label(config)}: ${read.error}`);
      backendText.set(label(config), read.backend);
      const rows = samples.get(label(config)) ?? [];
      rows.push(read.ms);
      samples.set(label(config), rows);
      console.log(`round ${round + 1} ${label(config)}: ms per step ${read.ms.join(' / ')} (silent / reparameterization)`);
    }
  }
} finally {
  await browser.close();
  server.close();
}

console.log(`\nmedian over ${flags.rounds} round(s), each the mean of the last 10 of ${flags.steps}+ steps per model:`);
for (const [name, rows] of samples) {
  const ms = [0, 1].map((m) => median(rows.map((r) => r[m]!)));
  console.log(`${name.padEnd(20)} ${ms.map((x) => `${x.toFixed(0)} ms`).join(' / ')} per step; ${ms.map((x) => (1000 / x).toFixed(1)).join(' / ')} steps/s per model   [${backendText.get(name)}]`);
}
