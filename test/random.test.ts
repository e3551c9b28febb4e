import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sg from '../silentgrad.js';
import { philox4x32 } from '../engine/random.js';

const hex = (w: Uint32Array): string => [...w].map((x) => x.toString(16).padStart(8, '0')).join(' ');

test('Philox-4x32-10 matches the Random123 known-answer vectors', () => {
  const out = new Uint32Array(4);
  philox4x32(0, 0, 0, 0, out);
  assert.is(hex(out), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  philox4x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, out, 0xffffffff, 0xffffffff);
  assert.is(hex(out), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  philox4x32(0x243f6a88, 0x85a308d3, 0xa4093822, 0x299f31d0, out, 0x13198a2e, 0x03707344);
  assert.is(hex(out), 'd16cfe09 94fdcceb 5001e420 24126ea1');
});

/** Kolmogorov-Smirnov statistic of sorted samples against a CDF. */
function ksStatistic(samples: Float64Array, cdf: (x: number) => number): number {
  const sorted = Float64Array.from(samples).sort();
  let d = 0;
  sorted.forEach((x, i) => {
    const f = cdf(x);
    d = Math.max(d, Math.abs(f - i / sorted.length), Math.abs(f - (i + 1) / sorted.length));
  });
  return d;
}

const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), enough for a KS check at n = 1e5.
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
};

const n = 100_000;
const ksCritical = 1.63 / Math.sqrt(n); // 1% level

test('uniform draws: moments and Kolmogorov-Smirnov', () => {
  const u = Float64Array.from(sg.uniform([n], new sg.RandomStream(7), { dtype: 'float64' }).dataSync());
  const mean = u.reduce((a, b) => a + b) / n;
  const variance = u.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  assert.ok(Math.abs(mean - 0.5) < 4 * Math.sqrt(1 / 12 / n), `mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / 12) < 0.002, `variance ${variance}`);
  assert.ok(u.every((x) => x > 0 && x < 1), 'in (0, 1)');
  assert.ok(ksStatistic(u, (x) => x) < ksCritical);
});

test('normal draws: moments and Kolmogorov-Smirnov', () => {
  const z = Float64Array.from(sg.normal([n], new sg.RandomStream(8), { dtype: 'float64' }).dataSync());
  const mean = z.reduce((a, b) => a + b) / n;
  const m2 = z.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  const m4 = z.reduce((a, b) => a + (b - mean) ** 4, 0) / n;
  assert.ok(Math.abs(mean) < 4 / Math.sqrt(n), `mean ${mean}`);
  assert.ok(Math.abs(m2 - 1) < 0.02, `variance ${m2}`);
  assert.ok(Math.abs(m4 / (m2 * m2) - 3) < 0.1, `kurtosis ${m4 / (m2 * m2)}`);
  assert.ok(ksStatistic(z, (x) => 0.5 * (1 + erf(x / Math.SQRT2))) < ksCritical);
});

test('Bernoulli and Gumbel draws have the right means', () => {
  const p = sg.full([n], 0.3, { dtype: 'float64' });
  const b = Array.from(sg.bernoulli(p, new sg.RandomStream(9)).dataSync());
  assert.ok(Math.abs(b.reduce((a, x) => a + x) / n - 0.3) < 4 * Math.sqrt(0.21 / n));
  const g = Array.from(sg.gumbel([n], new sg.RandomStream(10), { dtype: "float64" }).dataSync());
  assert.ok(Math.abs(g.reduce((a, x) => a + x) / n - 0.5772156649) < 4 * Math.sqrt(Math.PI ** 2 / 6 / n));
});

test('streams are reproducible and draws do not overlap', () => {
  const s1 = new sg.RandomStream(42), s2 = new sg.RandomStream(42);
  const a = sg.normal([10], s1).dataSync(), b = sg.normal([10], s2).dataSync();
  assert.equal([...a], [...b]);
  const next = sg.normal([10], s1).dataSync();
  assert.not.equal([...next], [...a]);
  assert.is(s1.offset, 6, 'two draws of 10 take 3 counters each');
  const resumed = new sg.RandomStream(42, 3);
  assert.equal([...sg.normal([10], resumed).dataSync()], [...next]);
  assert.not.equal(s1.fork(1).seed, s1.fork(2).seed);
});

test.run();
