// PNG figures for the experiments: a Figure-2 style grid of originals and reconstructions, a
// convergence line chart and a percentage bar chart. Everything is rasterized here with a
// built-in bitmap font, so producing the paper's figures needs nothing beyond pngjs.
import ndarray from 'ndarray';
import { BLACK, Canvas, Rgb, WHITE, textHeight, textWidth } from './pictures-canvas.js';

/** Tableau-10: distinct, colour-blind-friendlier hues; series and bars take them in order. */
const SERIES_COLOURS: readonly Rgb[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

/** The colour of series or bar `index`; the palette repeats after ten. */
export function seriesColour(index: number): Rgb {
  return SERIES_COLOURS[index % SERIES_COLOURS.length]!;
}
const AXIS: Rgb = [60, 60, 60];
const GRIDLINE: Rgb = [230, 230, 230];
/** Shown for NaN/Infinity pixels, so a diverged model is obvious rather than silently black. */
const NON_FINITE_PIXEL: Rgb = [255, 0, 255];

export interface GridRow {
  label: string;
  /** n*c*h*w pixel intensities in [0, 1], one image after another, each channel-major. */
  images: Float32Array;
}

export interface GridOptions {
  /** Each image pixel becomes a scale x scale block (default 2). */
  scale?: number;
  /** Blank pixels between neighbouring images and rows (default 2). */
  gap?: number;
  /** Font scale of the row labels (default 2 if a cell is at least 40 px tall, else 1). */
  labelScale?: number;
  /** 1 (grey, the default) or 3 (red, green, blue planes). */
  channels?: 1 | 3;
}

export interface GridLayout {
  width: number;
  height: number;
  /** Output pixels per image pixel. */
  scale: number;
  /** Top-left output pixel of the image in row `row`, column `column`. */
  imageOrigin(row: number, column: number): { x: number; y: number };
}

/** Inverse of the paper's x = x_int / 256, so original images reproduce their exact bytes. */
function intensityToByte(value: number): number {
  return Math.max(0, Math.min(255, Math.floor(value * 256)));
}

/**
 * The layout of the paper's Figure 2: one row per entry (originals first, then one row per
 * method), row labels in a left margin, images side by side. Returns where everything went.
 */
export function writeImageGrid(path: string, rows: readonly GridRow[], h: number, w: number, options: GridOptions = {}): GridLayout {
  const scale = options.scale ?? 2;
  const gap = options.gap ?? 2;
  const channels = options.channels ?? 1;
  const cellWidth = w * scale;
  const cellHeight = h * scale;
  const labelScale = options.labelScale ?? (cellHeight >= 40 ? 2 : 1);
  const counts = rows.map((row, r) => {
    if (row.images.length % (channels * h * w) !== 0) {
      throw new RangeError(`writeImageGrid: row ${r} (${row.label}) has ${row.images.length} values, not a multiple of ${channels > 1 ? `${channels}x` : ''}${h}x${w}`);
    }
    return row.images.length / (channels * h * w);
  });
  const columns = Math.max(1, ...counts);
  const margin = 4 * labelScale;
  const labelWidth = Math.max(0, ...rows.map((row) => textWidth(row.label, labelScale)));
  const left = margin + labelWidth + margin;
  const layout: GridLayout = {
    width: left + columns * (cellWidth + gap),
    height: gap + Math.max(1, rows.length) * (cellHeight + gap),
    scale,
    imageOrigin: (row, column) => ({ x: left + column * (cellWidth + gap), y: gap + row * (cellHeight + gap) }),
  };
  const canvas = new Canvas(layout.width, layout.height, WHITE);
  // Strided views: the canvas as [y, x, channel] and each row's images as [image, channel, y, x].
  const pixels = ndarray(canvas.rgba, [layout.height, layout.width, 4]);
  rows.forEach((row, r) => {
    const origin = layout.imageOrigin(r, 0);
    canvas.text(row.label, margin, origin.y + (cellHeight - textHeight(labelScale)) / 2, BLACK, labelScale);
    const images = ndarray(row.images, [counts[r]!, channels, h, w]);
    for (let i = 0; i < counts[r]!; i++) {
      const { x, y } = layout.imageOrigin(r, i);
      const cell = pixels.lo(y, x, 0).hi(cellHeight, cellWidth, 4);
      const image = images.pick(i, null, null, null);
      // Upscale by visiting the cell as scale^2 interleaved sub-grids, each aligned with the image.
      for (let dy = 0; dy < scale; dy++) {
        for (let dx = 0; dx < scale; dx++) {
          const subgrid = cell.lo(dy, dx, 0).step(scale, scale, 1);
          for (let iy = 0; iy < h; iy++) {
            for (let ix = 0; ix < w; ix++) {
              const values = [0, 1, 2].map((c) => image.get(channels === 3 ? c : 0, iy, ix));
              const colour: Rgb = values.every(Number.isFinite) ? [intensityToByte(values[0]!), intensityToByte(values[1]!), intensityToByte(values[2]!)] : NON_FINITE_PIXEL;
              for (let channel = 0; channel < 3; channel++) subgrid.set(iy, ix, channel, colour[channel]!);
            }
          }
        }
      }
    }
  });
  canvas.writePng(path);
  return layout;
}

interface Ticks {
  low: number;
  high: number;
  values: number[];
  format(value: number): string;
}

/**
 * Round tick values (1, 2 or 5 times a power of ten) covering [min, max] with about `target`
 * ticks; whole numbers only when `integer` (an axis of epochs has no epoch 0.5).
 */
export function niceTicks(min: number, max: number, target = 6, integer = false): Ticks {
  if (!(max > min)) {
    const pad = min === 0 || integer ? 1 : Math.abs(min) * 0.1;
    return niceTicks(min - pad, max + pad, target, integer);
  }
  const raw = (max - min) / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normalized = raw / magnitude;
  const round = (normalized < 1.5 ? 1 : normalized < 3 ? 2 : normalized < 7 ? 5 : 10) * magnitude;
  const step = integer ? Math.max(1, round) : round;
  const low = Math.floor(min / step + 1e-9) * step;
  const high = Math.ceil(max / step - 1e-9) * step;
  const values: number[] = [];
  for (let k = 0; low + k * step <= high + step * 1e-9; k++) values.push(low + k * step);
  const largest = Math.max(Math.abs(low), Math.abs(high));
  const stepExponent = Math.floor(Math.log10(step) + 1e-9);
  const format = (value: number): string => {
    if (Math.abs(value) < step * 1e-6) return '0';
    if (largest < 1e6 && step >= 1e-4) return value.toFixed(Math.max(0, -stepExponent));
    // Very large or small: just enough mantissa digits to tell neighbouring ticks apart.
    const digits = Math.floor(Math.log10(Math.abs(value)) + 1e-9) - stepExponent;
    return value.toExponential(Math.min(4, Math.max(0, digits)));
  };
  return { low, high, values, format };
}

export interface LineSeries {
  name: string;
  x: readonly number[];
  y: readonly number[];
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly LineSeries[];
  width?: number;
  height?: number;
}

interface PlotFrame {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Title, y axis with gridlines and labels, and the frame; returns a value-to-pixel map for y. */
function drawFrameAndYAxis(canvas: Canvas, frame: PlotFrame, title: string, yLabel: string, ticks: Ticks): (y: number) => number {
  const toPixelY = (y: number): number => frame.top + frame.height * (1 - (y - ticks.low) / (ticks.high - ticks.low));
  canvas.text(title, (canvas.width - textWidth(title, 2)) / 2, 12, BLACK, 2);
  for (const value of ticks.values) {
    const py = Math.round(toPixelY(value));
    canvas.fillRect(frame.left, py, frame.width, 1, GRIDLINE);
    const label = ticks.format(value);
    canvas.text(label, frame.left - 8 - textWidth(label), py - 3, AXIS);
    canvas.fillRect(frame.left - 4, py, 4, 1, AXIS);
  }
  canvas.textUpwards(yLabel, 12, frame.top + (frame.height + textWidth(yLabel)) / 2, AXIS);
  canvas.strokeRect(frame.left, frame.top, frame.width + 1, frame.height + 1, AXIS);
  return toPixelY;
}

/** Series split at NaN/Infinity, so a gap in the data shows as a gap in the line. */
function finiteRuns(series: LineSeries): { x: number[]; y: number[] }[] {
  const runs: { x: number[]; y: number[] }[] = [];
  let current: { x: number[]; y: number[] } = { x: [], y: [] };
  const length = Math.min(series.x.length, series.y.length);
  for (let i = 0; i <= length; i++) {
    if (i < length && Number.isFinite(series.x[i]) && Number.isFinite(series.y[i])) {
      current.x.push(series.x[i]!);
      current.y.push(series.y[i]!);
    } else if (current.x.length > 0) {
      runs.push(current);
      current = { x: [], y: [] };
    }
  }
  return runs;
}

/** A convergence plot: one coloured line per series, nice round ticks, legend on the right. */
export function writeLineChart(path: string, spec: LineChartSpec): void {
  const runsBySeries = spec.series.map(finiteRuns);
  const all = runsBySeries.flat();
  const xs = all.flatMap((run) => run.x);
  const ys = all.flatMap((run) => run.y);
  const xTicks = xs.length ? niceTicks(Math.min(...xs), Math.max(...xs), 6, xs.every(Number.isInteger)) : niceTicks(0, 1);
  const yTicks = ys.length ? niceTicks(Math.min(...ys), Math.max(...ys)) : niceTicks(0, 1);

  const width = spec.width ?? 860;
  const height = spec.height ?? 500;
  const legendWidth = Math.max(0, ...spec.series.map((s) => textWidth(s.name))) + 44;
  const yLabelsWidth = Math.max(...yTicks.values.map((v) => textWidth(yTicks.format(v))));
  const frame: PlotFrame = { left: 32 + yLabelsWidth, top: 40, width: 0, height: height - 40 - 44 };
  frame.width = width - frame.left - legendWidth - 16;
  const canvas = new Canvas(width, height, WHITE);
  const toPixelY = drawFrameAndYAxis(canvas, frame, spec.title, spec.yLabel, yTicks);
  const toPixelX = (x: number): number => frame.left + frame.width * ((x - xTicks.low) / (xTicks.high - xTicks.low));

  for (const value of xTicks.values) {
    const px = Math.round(toPixelX(value));
    canvas.fillRect(px, frame.top + 1, 1, frame.height - 1, GRIDLINE);
    canvas.fillRect(px, frame.top + frame.height + 1, 1, 4, AXIS);
    const label = xTicks.format(value);
    canvas.text(label, px - textWidth(label) / 2, frame.top + frame.height + 8, AXIS);
  }
  canvas.text(spec.xLabel, frame.left + (frame.width - textWidth(spec.xLabel)) / 2, height - 16, AXIS);
  if (all.length === 0) canvas.text('no finite data', frame.left + 12, frame.top + 12, AXIS);

  runsBySeries.forEach((runs, s) => {
    const colour = seriesColour(s);
    for (const run of runs) {
      const px = run.x.map(toPixelX);
      const py = run.y.map(toPixelY);
      if (run.x.length === 1) canvas.disc(px[0]!, py[0]!, 3.5, colour);
      else canvas.polyline(px, py, colour, 2.5);
    }
  });

  const legendLeft = frame.left + frame.width + 16;
  spec.series.forEach((series, s) => {
    const colour = seriesColour(s);
    const rowY = frame.top + 6 + s * 16;
    canvas.line(legendLeft, rowY + 4, legendLeft + 20, rowY + 4, colour, 2.5);
    canvas.text(series.name, legendLeft + 26, rowY, BLACK);
  });
  canvas.writePng(path);
}

export interface BarChartSpec {
  title: string;
  yLabel: string;
  bars: readonly { label: string; value: number }[];
  /** Text above each bar; defaults to one decimal and a percent sign. */
  valueFormat?: (value: number) => string;
  /** Minimum width; the chart grows to fit its labels and title. */
  width?: number;
  height?: number;
}

/** Labelled bars from zero, e.g. each estimator's share of the gradient variance in percent. */
export function writeBarChart(path: string, spec: BarChartSpec): void {
  const format = spec.valueFormat ?? ((value: number) => `${value.toFixed(1)}%`);
  const values = spec.bars.map((bar) => (Number.isFinite(bar.value) ? bar.value : 0));
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values) || 1);
  const widestText = Math.max(0, ...spec.bars.map((bar) => Math.max(textWidth(bar.label), textWidth(format(bar.value)))));
  const yLabelsWidth = Math.max(...ticks.values.map((v) => textWidth(ticks.format(v))));
  const height = spec.height ?? 420;
  const left = 32 + yLabelsWidth;
  const slotCount = Math.max(1, spec.bars.length);
  // Wide enough for every label and the title; bars then share whatever width there is.
  const width = Math.max(left + slotCount * Math.max(64, widestText + 16) + 24, textWidth(spec.title, 2) + 32, spec.width ?? 520);
  const frame: PlotFrame = { left, top: 48, width: width - left - 24, height: height - 48 - 32 };
  const slot = frame.width / slotCount;
  const canvas = new Canvas(width, height, WHITE);
  const toPixelY = drawFrameAndYAxis(canvas, frame, spec.title, spec.yLabel, ticks);
  const zeroY = toPixelY(0);
  spec.bars.forEach((bar, b) => {
    const slotLeft = frame.left + b * slot;
    const barWidth = Math.round(Math.min(slot * 0.6, 120));
    const barLeft = slotLeft + (slot - barWidth) / 2;
    const colour = seriesColour(b);
    const value = values[b]!; // values has one entry per bar
    const top = Math.min(zeroY, toPixelY(value));
    canvas.fillRect(barLeft, top, barWidth, Math.abs(toPixelY(value) - zeroY), colour);
    const valueText = format(bar.value);
    const valueY = value >= 0 ? top - 12 : toPixelY(value) + 4;
    canvas.text(valueText, slotLeft + (slot - textWidth(valueText)) / 2, valueY, BLACK);
    canvas.text(bar.label, slotLeft + (slot - textWidth(bar.label)) / 2, frame.top + frame.height + 10, AXIS);
  });
  canvas.fillRect(frame.left, Math.round(zeroY), frame.width, 1, AXIS);
  canvas.writePng(path);
}
