// The page's UI thread: reads the controls, starts the trainer worker (trainer.ts), and draws
// what it reports: the BPD curves, the numbers, the reconstructions. URL parameters preset the
// controls and the run (backend=webgpu|cpu|auto, threads, train, test, epochs, seed, pair, lr,
// latent, autostart=1), which is how the browser test drives it.
import { DATASET_MANIFEST, type DatasetManifest } from './dataset.js';
import { drawCurves, drawDigits, type Series } from './charts.js';
import { pairs, type BackendRequest, type DemoConfig, type FromTrainer, type PairName, type ToTrainer } from './protocol.js';

const COLORS = ['#1f6feb', '#e8590c'] as const;
const $ = <T extends HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page lacks #${id}`);
  return element as T;
};

interface ModelView extends Series {
  steps: number;
  epoch: number;
  kl: number;
  activeLatents: number;
  /** The last few step times in ms, for a steady per-step figure. */
  recentMs: number[];
  reconstructions: Float32Array | null;
}

const params = new URLSearchParams(location.search);
const worker = new Worker(new URL('trainer.js', import.meta.url), { type: 'module' });
let manifest: DatasetManifest;
let models: ModelView[] = [];
let originals: Float32Array = new Float32Array(0);
let stepsPerEpoch = 1;

function send(message: ToTrainer): void {
  worker.postMessage(message);
}

function number(name: string, fallback: number): number {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) && raw !== 'Infinity') throw new Error(`URL parameter ${name}=${raw} is not a number`);
  return value;
}

/** The configuration the controls (and, the first time, the URL) describe. */
function readConfig(): DemoConfig {
  const lr = Number($<HTMLInputElement>('lr').value), latentDim = Number($<HTMLInputElement>('latent').value);
  if (!(lr > 0)) throw new Error(`the learning rate must be a positive number, got '${$<HTMLInputElement>('lr').value}'`);
  if (!(Number.isInteger(latentDim) && latentDim >= 1)) throw new Error(`the latent size must be a whole number of at least 1, got '${$<HTMLInputElement>('latent').value}'`);
  const backend = params.get('backend') ?? 'auto';
  if (backend !== 'auto' && backend !== 'webgpu' && backend !== 'cpu') throw new Error(`URL parameter backend=${backend}: use auto, webgpu or cpu`);
  const threads = number('threads', navigator.hardwareConcurrency);
  if (!(Number.isInteger(threads) && threads >= 1)) throw new Error(`URL parameter threads=${params.get('threads')}: use a whole number of at least 1`);
  return {
    pair: $<HTMLSelectElement>('pair').value as PairName,
    lr,
    latentDim,
    trainCount: number('train', manifest.trainCount),
    testCount: number('test', manifest.testCount),
    backend: backend as BackendRequest,
    threads,
    seed: number('seed', 0),
    epochs: number('epochs', Infinity),
  };
}

function reset(): void {
  try {
    const config = readConfig();
    models = [];
    status('setting up…');
    setButtons(false, false);
    send({ type: 'reset', config });
  } catch (error) {
    // Bad input: say what to fix; the run in progress, if any, carries on.
    $('status').textContent = `${(error as Error).message}; the current run is unchanged`;
    $('status').classList.add('error');
  }
}

worker.onmessage = (event: MessageEvent<FromTrainer>) => {
  const m = event.data;
  switch (m.type) {
    case 'ready':
      $('backend').textContent = m.backend;
      document.body.dataset.backend = m.backend;
      originals = m.originals;
      stepsPerEpoch = m.stepsPerEpoch;
      models = m.labels.map((label, i) => ({
        label, color: COLORS[i]!, steps: 0, epoch: 0, kl: NaN, activeLatents: NaN, recentMs: [], reconstructions: null, training: [], test: [],
      }));
      break;
    case 'step': {
      const view = models[m.model]!;
      view.steps = m.step;
      view.training.push([m.step, m.bpd]);
      view.recentMs.push(m.ms);
      if (view.recentMs.length > 10) view.recentMs.shift();
      document.body.dataset.poolPieces = String(m.poolPieces);
      break;
    }
    case 'evaluation': {
      const view = models[m.model]!;
      Object.assign(view, { epoch: m.epoch, kl: m.kl, activeLatents: m.activeLatents, reconstructions: m.reconstructions });
      view.test.push([m.step, m.bpd]);
      addEvaluationRow(view, m.epoch, m.bpd);
      break;
    }
    case 'state':
      setButtons(!m.running && !m.done, m.running);
      status(m.done ? 'done' : m.running ? 'training…' : 'paused');
      document.body.dataset.state = m.done ? 'done' : m.running ? 'running' : 'paused';
      if (!m.running && params.get('autostart') === '1' && !m.done && models.length && models[0]!.steps === 0) send({ type: 'start' });
      break;
    case 'error':
      showError(new Error(m.message));
      break;
  }
  scheduleDraw();
};
worker.onerror = (event) => showError(new Error(`the trainer stopped: ${event.message}`));

let drawPending = false;
function scheduleDraw(): void {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    drawCurves($<HTMLCanvasElement>('curves'), models, stepsPerEpoch);
    drawDigits($<HTMLCanvasElement>('reconstructions'), [originals, ...models.map((v) => v.reconstructions)]);
    renderTable();
  });
}

function renderTable(): void {
  $('table').querySelector('tbody')!.replaceChildren(...models.map((v) => {
    const row = document.createElement('tr');
    const mean = v.recentMs.reduce((a, b) => a + b, 0) / Math.max(1, v.recentMs.length);
    const last = v.test.at(-1)?.[1];
    row.innerHTML = `<td><span class="swatch" style="background:${v.color}"></span>${v.label}</td>`
      + [v.steps, v.epoch, last?.toFixed(4) ?? '–', v.kl.toFixed(1), String(v.activeLatents), v.recentMs.length ? mean.toFixed(0) : '–'].map((c) => `<td>${c}</td>`).join('');
    return row;
  }));
}

/** Every evaluation, one row each, for people (and the browser test) who want the figures. */
function addEvaluationRow(view: ModelView, epoch: number, bpd: number): void {
  const row = document.createElement('tr');
  row.dataset.model = view.label;
  row.dataset.epoch = String(epoch);
  row.dataset.bpd = String(bpd);
  row.innerHTML = `<td>${view.label}</td><td>${epoch}</td><td>${bpd.toFixed(5)}</td>`;
  $('evaluations').querySelector('tbody')!.append(row);
}

function setButtons(canStart: boolean, canPause: boolean): void {
  $<HTMLButtonElement>('start').disabled = !canStart;
  $<HTMLButtonElement>('pause').disabled = !canPause;
}

function status(text: string): void {
  $('status').textContent = text;
  $('status').classList.remove('error');
}

function showError(error: unknown): void {
  const text = error instanceof Error ? error.message : String(error);
  $('status').textContent = `error: ${text}`;
  $('status').classList.add('error');
  document.body.dataset.state = 'error';
  document.body.dataset.error = text;
}

async function main(): Promise<void> {
  const response = await fetch(DATASET_MANIFEST);
  if (!response.ok) throw new Error(`cannot load ${DATASET_MANIFEST}: HTTP ${response.status}; build the demo with \`npm run demo:build\``);
  manifest = await response.json() as DatasetManifest;
  $('footer').textContent = `The page ships ${manifest.source}.`;
  const pair = params.get('pair');
  if (pair !== null) {
    if (!(pair in pairs)) throw new Error(`URL parameter pair=${pair}: use ${Object.keys(pairs).join(' or ')}`);
    $<HTMLSelectElement>('pair').value = pair;
  }
  if (params.has('lr')) $<HTMLInputElement>('lr').value = params.get('lr')!;
  if (params.has('latent')) $<HTMLInputElement>('latent').value = params.get('latent')!;
  $('start').addEventListener('click', () => send({ type: 'start' }));
  $('pause').addEventListener('click', () => send({ type: 'pause' }));
  $('reset').addEventListener('click', () => {
    $('evaluations').querySelector('tbody')!.replaceChildren();
    reset();
  });
  reset();
}

main().catch(showError);
