// The page's two pictures, drawn on canvases with no library: BPD against training step for
// both models, and rows of 28x28 digits.

export interface Series {
  label: string;
  color: string;
  /** [step, training-loss BPD] of every step. */
  training: [number, number][];
  /** [step, test BPD] after every epoch (step 0: before training). */
  test: [number, number][];
}

const MARGIN = { left: 52, right: 12, top: 12, bottom: 34 };

export function drawCurves(canvas: HTMLCanvasElement, series: readonly Series[], stepsPerEpoch: number): void {
  const g = canvas.getContext('2d')!;
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const tests = series.flatMap((s) => s.test.map(([, v]) => v));
  if (tests.length === 0) return;
  const lastStep = Math.max(stepsPerEpoch, ...series.flatMap((s) => s.training.map(([x]) => x)));
  // The y range follows the test curve; early training losses far above it are clipped.
  const low = Math.min(...tests, ...series.flatMap((s) => s.training.map(([, v]) => v))) - 0.05;
  const high = Math.max(...tests) + 0.1;
  const x = (step: number) => MARGIN.left + (step / lastStep) * (width - MARGIN.left - MARGIN.right);
  const y = (bpd: number) => MARGIN.top + ((high - Math.min(bpd, high)) / (high - low)) * (height - MARGIN.top - MARGIN.bottom);

  g.strokeStyle = '#ccc';
  g.fillStyle = '#555';
  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  for (const tick of niceTicks(low, high, 6)) {
    g.beginPath();
    g.moveTo(MARGIN.left, y(tick));
    g.lineTo(width - MARGIN.right, y(tick));
    g.stroke();
    g.fillText(tick.toFixed(2), 6, y(tick) + 4);
  }
  // Epoch boundaries on the x axis, at whole epochs only.
  const epochs = lastStep / stepsPerEpoch;
  const every = Math.max(1, Math.ceil(epochs / 10));
  for (let e = 0; e <= epochs; e += every) {
    g.fillText(String(e), x(e * stepsPerEpoch) - 3, height - MARGIN.bottom + 14);
  }
  g.fillText('epoch', width / 2 - 14, height - 6);

  for (const s of series) {
    g.strokeStyle = s.color;
    g.globalAlpha = 0.3;
    polyline(g, s.training.map(([step, v]) => [x(step), y(v)]));
    g.globalAlpha = 1;
    g.lineWidth = 2;
    polyline(g, s.test.map(([step, v]) => [x(step), y(v)]));
    g.lineWidth = 1;
    g.fillStyle = s.color;
    for (const [step, v] of s.test) {
      g.beginPath();
      g.arc(x(step), y(v), 3, 0, 2 * Math.PI);
      g.fill();
    }
  }
}

function polyline(g: CanvasRenderingContext2D, points: [number, number][]): void {
  g.beginPath();
  points.forEach(([px, py], i) => (i === 0 ? g.moveTo(px, py) : g.lineTo(px, py)));
  g.stroke();
}

/** About `count` round values between low and high. */
function niceTicks(low: number, high: number, count: number): number[] {
  const raw = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(low / step) * step; t <= high; t += step) ticks.push(t);
  return ticks;
}

/** Each row's images (n x 784 values in [0, 1], or null for a row not drawn yet), side by side. */
export function drawDigits(canvas: HTMLCanvasElement, rows: readonly (Float32Array | null)[]): void {
  const g = canvas.getContext('2d')!;
  const size = 28;
  const count = rows[0] ? rows[0].length / (size * size) : 0;
  const image = g.createImageData(count * size, rows.length * size);
  rows.forEach((values, r) => {
    if (!values) return;
    for (let n = 0; n < count; n++) {
      for (let i = 0; i < size * size; i++) {
        const grey = 255 - Math.round(255 * Math.min(1, Math.max(0, values[n * size * size + i]!)));
        const at = 4 * ((r * size + Math.floor(i / size)) * count * size + n * size + (i % size));
        image.data.set([grey, grey, grey, 255], at);
      }
    }
  });
  // Draw at 1:1 on a scratch canvas, then scale up with crisp pixels.
  const scratch = new OffscreenCanvas(image.width, image.height);
  scratch.getContext('2d')!.putImageData(image, 0, 0);
  g.imageSmoothingEnabled = false;
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (count > 0) g.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}
