// A minimal RGBA raster for the experiment figures: rectangles, anti-aliased thick lines, round
// markers and bitmap-font text, written to PNG atomically so a crashed or concurrent run never
// leaves a half-written picture behind.
import { writeFileAtomic } from '../engine/safetensors.js';
import { PNG } from 'pngjs';
import { GLYPH_ADVANCE, GLYPH_ROWS, glyphColumns, textWidthInFontPixels } from './pictures-font.js';

export type Rgb = readonly [number, number, number];

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];

export class Canvas {
  readonly rgba: Uint8Array;

  constructor(readonly width: number, readonly height: number, background: Rgb = WHITE) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
      throw new RangeError(`Canvas: bad size ${width}x${height}`);
    }
    this.rgba = new Uint8Array(width * height * 4);
    this.fillRect(0, 0, width, height, background);
  }

  setPixel(x: number, y: number, colour: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const at = (y * this.width + x) * 4;
    this.rgba[at] = colour[0];
    this.rgba[at + 1] = colour[1];
    this.rgba[at + 2] = colour[2];
    this.rgba[at + 3] = 255;
  }

  /** Mixes `colour` over the pixel with weight `coverage` in [0, 1]; full coverage paints it exactly. */
  blendPixel(x: number, y: number, colour: Rgb, coverage: number): void {
    if (coverage <= 0 || x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    if (coverage >= 1) return this.setPixel(x, y, colour);
    const at = (y * this.width + x) * 4;
    for (let channel = 0; channel < 3; channel++) {
      const old = this.rgba[at + channel]!;
      this.rgba[at + channel] = Math.round(old + (colour[channel]! - old) * coverage);
    }
  }

  fillRect(x: number, y: number, w: number, h: number, colour: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let py = y0; py < y1; py++) for (let px = x0; px < x1; px++) this.setPixel(px, py, colour);
  }

  strokeRect(x: number, y: number, w: number, h: number, colour: Rgb): void {
    this.fillRect(x, y, w, 1, colour);
    this.fillRect(x, y + h - 1, w, 1, colour);
    this.fillRect(x, y, 1, h, colour);
    this.fillRect(x + w - 1, y, 1, h, colour);
  }

  /** A single segment; see `polyline`. */
  line(x0: number, y0: number, x1: number, y1: number, colour: Rgb, thickness = 2): void {
    this.polyline([x0, x1], [y0, y1], colour, thickness);
  }

  /**
   * Connected segments `thickness` pixels wide with round caps and joins. Each pixel's coverage
   * comes from the distance of its centre to the nearest segment, which anti-aliases the edge
   * over about one pixel. Coverage is the maximum over segments and is blended once, so joints
   * where segments overlap don't come out darker than the rest of the line.
   */
  polyline(xs: readonly number[], ys: readonly number[], colour: Rgb, thickness = 2): void {
    if (ys.length !== xs.length) throw new RangeError(`Canvas.polyline: ${xs.length} x values but ${ys.length} y values`);
    const coverage = new Map<number, number>();
    const reach = thickness / 2 + 0.5;
    // A single point is a zero-length segment, which draws as a disc.
    const segmentCount = xs.length === 1 ? 1 : xs.length - 1;
    for (let i = 0; i < segmentCount; i++) {
      const next = Math.min(i + 1, xs.length - 1);
      const [x0, y0, x1, y1] = [xs[i]!, ys[i]!, xs[next]!, ys[next]!];
      const dx = x1 - x0;
      const dy = y1 - y0;
      const lengthSquared = dx * dx + dy * dy;
      const top = Math.max(0, Math.floor(Math.min(y0, y1) - reach));
      const bottom = Math.min(this.height - 1, Math.ceil(Math.max(y0, y1) + reach));
      const left = Math.max(0, Math.floor(Math.min(x0, x1) - reach));
      const right = Math.min(this.width - 1, Math.ceil(Math.max(x0, x1) + reach));
      for (let py = top; py <= bottom; py++) {
        for (let px = left; px <= right; px++) {
          const cx = px + 0.5 - x0;
          const cy = py + 0.5 - y0;
          const along = lengthSquared === 0 ? 0 : Math.max(0, Math.min(1, (cx * dx + cy * dy) / lengthSquared));
          const cover = Math.min(1, reach - Math.hypot(cx - along * dx, cy - along * dy));
          const key = py * this.width + px;
          if (cover > (coverage.get(key) ?? 0)) coverage.set(key, cover);
        }
      }
    }
    for (const [key, cover] of coverage) this.blendPixel(key % this.width, Math.floor(key / this.width), colour, cover);
  }

  /** A filled, anti-aliased disc: the marker for isolated points. */
  disc(cx: number, cy: number, radius: number, colour: Rgb): void {
    this.polyline([cx], [cy], colour, 2 * radius);
  }

  /** Text with its top-left corner at (x, y); `scale` enlarges each font pixel to a square. */
  text(text: string, x: number, y: number, colour: Rgb, scale = 1): void {
    let penX = Math.round(x);
    const top = Math.round(y);
    for (const char of text) {
      const columns = glyphColumns(char);
      for (let c = 0; c < columns.length; c++) {
        for (let r = 0; r < GLYPH_ROWS; r++) {
          if (columns[c]! & (1 << r)) this.fillRect(penX + c * scale, top + r * scale, scale, scale, colour);
        }
      }
      penX += GLYPH_ADVANCE * scale;
    }
  }

  /** Text turned 90 degrees anticlockwise, reading bottom to top, with its bottom-left at (x, y). */
  textUpwards(text: string, x: number, y: number, colour: Rgb, scale = 1): void {
    let penY = Math.round(y);
    const left = Math.round(x);
    for (const char of text) {
      const columns = glyphColumns(char);
      for (let c = 0; c < columns.length; c++) {
        for (let r = 0; r < GLYPH_ROWS; r++) {
          if (columns[c]! & (1 << r)) this.fillRect(left + r * scale, penY - (c + 1) * scale, scale, scale, colour);
        }
      }
      penY -= GLYPH_ADVANCE * scale;
    }
  }

  writePng(path: string): void {
    const png = new PNG({ width: this.width, height: this.height });
    png.data.set(this.rgba);
    writeFileAtomic(path, [PNG.sync.write(png)]);
  }
}

export function textWidth(text: string, scale = 1): number {
  return textWidthInFontPixels(text) * scale;
}

/** Height of one line of text including descenders. */
export function textHeight(scale = 1): number {
  return GLYPH_ROWS * scale;
}
