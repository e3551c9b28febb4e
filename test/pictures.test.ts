import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadMnist, pixelBatch } from '../experiments/data/mnist.js';
import { niceTicks, seriesColour, writeBarChart, writeImageGrid, writeLineChart } from '../experiments/pictures.js';

const dir = mkdtempSync(join(tmpdir(), 'silentgrad-pictures-'));

function readPng(path: string): PNG {
  return PNG.sync.read(readFileSync(path));
}

function pixelAt(png: PNG, x: number, y: number): [number, number, number] {
  const at = (y * png.width + x) * 4;
  return [png.data[at]!, png.data[at + 1]!, png.data[at + 2]!];
}

function countColour(png: PNG, colour: readonly number[]): number {
  let count = 0;
  for (let at = 0; at < png.data.length; at += 4) {
    if (png.data[at] === colour[0] && png.data[at + 1] === colour[1] && png.data[at + 2] === colour[2]) count++;
  }
  return count;
}

test('image grid places the original pixels exactly, upscaled, after a label margin', () => {
  const mnist = loadMnist('test', { limit: 4 });
  const originals = pixelBatch(mnist, [0, 1, 2, 3]);
  // Multiples of 1/256 are exact in float32, so the inverted bytes are exactly 255 - raw.
  const inverted = originals.map((value) => 255 / 256 - value);
  const path = join(dir, 'grid.png');
  const rows = [
    { label: 'Original', images: originals },
    { label: 'Inverted', images: inverted.subarray(0, 2 * 784) },
  ];
  const layout = writeImageGrid(path, rows, 28, 28, { scale: 3, gap: 2 });
  const png = readPng(path);
  assert.is(png.width, layout.width);
  assert.is(png.height, layout.height);
  assert.is(layout.scale, 3);
  for (const [row, image] of [[0, 0], [0, 3], [1, 1]] as const) {
    const origin = layout.imageOrigin(row, image);
    for (let iy = 0; iy < 28; iy++) {
      for (let ix = 0; ix < 28; ix++) {
        const raw = mnist.images[image * 784 + iy * 28 + ix]!;
        const expected = row === 0 ? raw : 255 - raw;
        for (const [dx, dy] of [[0, 0], [2, 2]] as const) {
          const [r, g, b] = pixelAt(png, origin.x + 3 * ix + dx, origin.y + 3 * iy + dy);
          assert.equal([r, g, b], [expected, expected, expected], `row ${row} image ${image} pixel (${ix}, ${iy})`);
        }
      }
    }
  }
  // The label margin holds dark text pixels; the missing third cell of row 1 stays white.
  const firstImage = layout.imageOrigin(0, 0);
  let darkInMargin = 0;
  for (let y = firstImage.y; y < firstImage.y + 84; y++) {
    for (let x = 0; x < firstImage.x; x++) if (pixelAt(png, x, y)[0] < 128) darkInMargin++;
  }
  assert.ok(darkInMargin > 20, `label text pixels: ${darkInMargin}`);
  const empty = layout.imageOrigin(1, 2);
  assert.equal(pixelAt(png, empty.x + 40, empty.y + 40), [255, 255, 255]);
  assert.not.ok(existsSync(`${path}.tmp`), 'temporary file renamed away');
});

test('image grid rejects rows whose length is not whole images', () => {
  assert.throws(() => writeImageGrid(join(dir, 'bad.png'), [{ label: 'x', images: new Float32Array(10) }], 28, 28), /multiple of 28x28/);
});

test('colour images: three channel-major planes become each pixel\'s red, green and blue', () => {
  // Two 2x2 images; image i's pixel (y, x) has red = i/4 + y/8, green = x/4, blue = 1/2.
  const images = new Float32Array(2 * 3 * 4);
  for (let i = 0; i < 2; i++) for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) {
    const base = i * 12 + y * 2 + x;
    images[base] = i / 4 + y / 8;
    images[base + 4] = x / 4;
    images[base + 8] = 0.5;
  }
  const path = join(dir, 'colour.png');
  const layout = writeImageGrid(path, [{ label: 'RGB', images }], 2, 2, { scale: 1, channels: 3 });
  const png = readPng(path);
  for (let i = 0; i < 2; i++) for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) {
    const origin = layout.imageOrigin(0, i);
    assert.equal(pixelAt(png, origin.x + x, origin.y + y), [Math.floor((i / 4 + y / 8) * 256), Math.floor((x / 4) * 256), 128], `image ${i} (${y}, ${x})`);
  }
  assert.throws(() => writeImageGrid(path, [{ label: 'short', images: new Float32Array(11) }], 2, 2, { channels: 3 }), /multiple of 3x2x2/);
});

test('non-finite pixels are drawn magenta rather than hidden', () => {
  const images = new Float32Array(4).fill(0.5);
  images[1] = Number.NaN;
  const path = join(dir, 'nan.png');
  const layout = writeImageGrid(path, [{ label: 'a', images }], 2, 2, { scale: 1 });
  const origin = layout.imageOrigin(0, 0);
  const png = readPng(path);
  assert.equal(pixelAt(png, origin.x, origin.y), [128, 128, 128]);
  assert.equal(pixelAt(png, origin.x + 1, origin.y), [255, 0, 255]);
});

test('line chart draws every series in its own colour and skips non-finite points', () => {
  const path = join(dir, 'line.png');
  const x = Array.from({ length: 50 }, (_, i) => i * 10);
  writeLineChart(path, {
    title: 'Negative ELBO',
    xLabel: 'iteration',
    yLabel: 'nats',
    series: [
      { name: 'silent', x, y: x.map((v) => 100 + 200 / (1 + v)) },
      { name: 'reparam', x, y: x.map((v, i) => (i % 7 === 3 ? Number.NaN : 120 + 200 / (1 + v))) },
      { name: 'diverged', x: [0, 10, 20], y: [150, Infinity, -Infinity] },
      { name: 'one point', x: [250], y: [200] },
    ],
  });
  const png = readPng(path);
  assert.is(png.width, 860);
  assert.is(png.height, 500);
  // The legend swatches alone give each colour a few pixels; the lines give many more.
  assert.ok(countColour(png, seriesColour(0)) > 300, 'series 0 line');
  assert.ok(countColour(png, seriesColour(1)) > 300, 'series 1 line');
  assert.ok(countColour(png, seriesColour(2)) > 20, 'series 2 marker and legend');
  assert.ok(countColour(png, seriesColour(3)) > 20, 'single point marker and legend');
  assert.is(countColour(png, seriesColour(4)), 0);
  assert.ok(countColour(png, [255, 255, 255]) > 0.5 * 860 * 500, 'white background');
  assert.equal(readdirSync(dir).filter((name) => name.endsWith('.tmp')), []);
});

test('line chart with no finite data still renders axes', () => {
  const path = join(dir, 'empty.png');
  writeLineChart(path, { title: 'empty', xLabel: 'x', yLabel: 'y', series: [{ name: 'nan', x: [0, 1], y: [NaN, NaN] }] });
  assert.is(readPng(path).width, 860);
});

test('bar chart draws one coloured bar per entry', () => {
  const path = join(dir, 'bars.png');
  writeBarChart(path, {
    title: 'Share of gradient variance',
    yLabel: 'percent',
    bars: [
      { label: 'silent', value: 5 },
      { label: 'reparam', value: 60 },
      { label: 'reinforce', value: 35 },
    ],
  });
  const png = readPng(path);
  assert.is(png.height, 420);
  const heights = [0, 1, 2].map((b) => countColour(png, seriesColour(b)));
  assert.ok(heights.every((pixels) => pixels > 0), `bar pixels ${heights}`);
  // Bars have equal width, so their areas are in proportion to their values.
  assert.ok(heights[1]! > heights[2]! && heights[2]! > heights[0]!, `bar pixels ${heights}`);
});

test('nice ticks are round numbers covering the data', () => {
  const ticks = niceTicks(0.13, 0.87);
  assert.ok(ticks.low <= 0.13 && ticks.high >= 0.87);
  assert.equal(ticks.values.map(ticks.format), ['0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9']);
  const big = niceTicks(0, 98000, 5);
  assert.equal(big.values.map(big.format), ['0', '20000', '40000', '60000', '80000', '100000']);
  const flat = niceTicks(5, 5);
  assert.ok(flat.low < 5 && flat.high > 5);
});

test('an axis of whole numbers (epochs) gets whole-number ticks only', () => {
  assert.equal(niceTicks(0, 3).values.map(String), ['0', '0.5', '1', '1.5', '2', '2.5', '3']);
  const epochs = niceTicks(0, 3, 6, true);
  assert.equal(epochs.values.map(epochs.format), ['0', '1', '2', '3']);
  const one = niceTicks(1, 1, 6, true);
  assert.equal(one.values.map(one.format), ['0', '1', '2']);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
