// AV-Digits (loadDataset) and the audio front end it is built with (readWav, mfcc, mfccSummary).
// The MFCC is checked against a float64 reference written here from the definition: a direct DFT
// per frame (no FFT), its own mel triangles, its own DCT-II.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PairpickError } from '../src/errors.js';
import { datasetNames, loadDataset, type Dataset } from '../src/eval/datasets.js';
import { mfcc, mfccSummary, mfccSummaryDim, readWav, type MfccOptions } from '../src/eval/audio.js';
import { packageRoot } from '../src/util/root.js';
import type { Rng } from '../src/util/rng.js';
import { testRng } from './helpers/random.js';

// ---------------------------------------------------------------------------------------------
// float64 reference MFCC

interface RefOptions {
  frameMs: number;
  hopMs: number;
  fftSize?: number;
  melBands: number;
  coefficients: number;
  minHz: number;
  maxHz: number;
  preEmphasis: number;
  logFloor: number;
}

const mel = (hz: number) => 2595 * Math.log10(1 + hz / 700);
const hz = (m: number) => 700 * (Math.pow(10, m / 2595) - 1);

/** Log mel energies per frame (frames × melBands), straight from the definition. */
function referenceLogMel(x: ArrayLike<number>, sr: number, o: RefOptions): number[][] {
  const N = Math.round((sr * o.frameMs) / 1000);
  const H = Math.round((sr * o.hopMs) / 1000);
  const nfft = o.fftSize ?? 2 ** Math.ceil(Math.log2(N));
  const y = Array.from({ length: x.length }, (_, i) => x[i] - (i > 0 ? o.preEmphasis * x[i - 1] : 0));
  const T = x.length <= N ? 1 : 1 + Math.ceil((x.length - N) / H);
  const edges = Array.from({ length: o.melBands + 2 }, (_, j) => hz(mel(o.minHz) + ((mel(o.maxHz) - mel(o.minHz)) * j) / (o.melBands + 1)));
  const out: number[][] = [];
  for (let t = 0; t < T; t++) {
    const frame = Array.from({ length: N }, (_, i) => (t * H + i < y.length ? y[t * H + i] : 0) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N)));
    const power: number[] = [];
    for (let k = 0; k <= nfft / 2; k++) {
      let re = 0;
      let im = 0;
      for (let i = 0; i < N; i++) {
        const a = (-2 * Math.PI * ((i * k) % nfft)) / nfft;
        re += frame[i] * Math.cos(a);
        im += frame[i] * Math.sin(a);
      }
      power.push(re * re + im * im);
    }
    const row: number[] = [];
    for (let m = 0; m < o.melBands; m++) {
      const [l, c, r] = [edges[m], edges[m + 1], edges[m + 2]];
      let e = 0;
      for (let k = 0; k <= nfft / 2; k++) {
        const f = (k * sr) / nfft;
        e += Math.max(0, Math.min((f - l) / (c - l), (r - f) / (r - c))) * power[k];
      }
      row.push(Math.log(e + o.logFloor));
    }
    out.push(row);
  }
  return out;
}

function referenceMfcc(x: ArrayLike<number>, sr: number, o: RefOptions): number[][] {
  const M = o.melBands;
  return referenceLogMel(x, sr, o).map((logMel) =>
    Array.from({ length: o.coefficients }, (_, j) => {
      let s = 0;
      for (let m = 0; m < M; m++) s += logMel[m] * Math.cos((Math.PI * j * (2 * m + 1)) / (2 * M));
      return s * Math.sqrt((j === 0 ? 1 : 2) / M);
    }),
  );
}

/** A chirp plus a tone plus a little noise: energy in many bands, never silent. */
function testSignal(rng: Rng, sr: number, length: number): Float64Array {
  const f0 = 100 + rng.next() * 500;
  const f1 = 1000 + rng.next() * (sr / 2 - 1500);
  const tone = 200 + rng.next() * (sr / 2 - 400);
  const seconds = length / sr;
  const x = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const t = i / sr;
    const phase = 2 * Math.PI * (f0 * t + ((f1 - f0) * t * t) / (2 * seconds));
    x[i] = 0.6 * Math.sin(phase) + 0.3 * Math.sin(2 * Math.PI * tone * t + 1) + 0.01 * rng.normal();
  }
  return x;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, relTol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i]));
    if (!(err <= worst)) [worst, at] = [err, i];
  }
  expect(worst, `${what}: worst relative error at ${at} (${actual[at]} vs ${expected[at]})`).toBeLessThanOrEqual(relTol);
}

describe('mfcc', () => {
  it('matches a float64 direct-DFT reference on random chirps, rates and settings', () => {
    const rng = testRng();
    for (let trial = 0; trial < 4; trial++) {
      const sr = [8000, 11025, 16000, 22050][rng.int(4)];
      const melBands = 20 + rng.int(29);
      const options: RefOptions = {
        frameMs: [20, 25, 32][rng.int(3)],
        hopMs: [7, 10, 12.5][rng.int(3)],
        melBands,
        coefficients: 1 + rng.int(melBands),
        minHz: rng.next() * 200,
        maxHz: sr / 2 - rng.next() * 1000,
        preEmphasis: rng.next() * 0.97,
        logFloor: 1e-10,
      };
      const N = Math.round((sr * options.frameMs) / 1000);
      if (rng.next() < 0.5) options.fftSize = 2 ** (Math.ceil(Math.log2(N)) + 1);
      const length = Math.round(sr * (0.04 + rng.next() * 0.12)) + 1;
      const x = testSignal(rng, sr, length);
      const got = mfcc(x, sr, options);
      const ref = referenceMfcc(x, sr, options);
      expect(got.frames).toBe(ref.length);
      expect(got.coefficients).toBe(options.coefficients);
      expectClose(got.data, ref.flat(), 2e-5, `trial ${trial} (sr ${sr}, ${JSON.stringify(options)})`);
    }
  });

  it('uses the documented defaults (25 ms / 10 ms, 40 bands, 20 coefficients, 20 Hz–8 kHz, α = 0.97)', () => {
    const rng = testRng();
    const sr = 16000 + rng.int(8000);
    const x = testSignal(rng, sr, Math.round(sr * 0.05) + rng.int(100));
    const ref = referenceMfcc(x, sr, { frameMs: 25, hopMs: 10, melBands: 40, coefficients: 20, minHz: 20, maxHz: 8000, preEmphasis: 0.97, logFloor: 1e-10 });
    expectClose(mfcc(x, sr).data, ref.flat(), 2e-5, 'defaults');
  });

  it('gives one zero-padded frame for a signal shorter than a frame', () => {
    const rng = testRng();
    const x = testSignal(rng, 16000, 50 + rng.int(300));
    const o: RefOptions = { frameMs: 25, hopMs: 10, melBands: 26, coefficients: 13, minHz: 20, maxHz: 8000, preEmphasis: 0.97, logFloor: 1e-10 };
    const got = mfcc(x, 16000, { melBands: 26, coefficients: 13 });
    expect(got.frames).toBe(1);
    expectClose(got.data, referenceMfcc(x, 16000, o).flat(), 2e-5, 'short signal');
  });

  it('puts a pure tone in the mel band centred on it', () => {
    const rng = testRng();
    const sr = 16000;
    const melBands = 40;
    const edges = Array.from({ length: melBands + 2 }, (_, j) => hz(mel(20) + ((mel(8000) - mel(20)) * j) / (melBands + 1)));
    for (let trial = 0; trial < 3; trial++) {
      const band = 15 + rng.int(melBands - 17); // bands wide compared to the FFT bins and the Hann main lobe
      const f = edges[band + 1];
      const x = Float64Array.from({ length: 4000 + rng.int(2000) }, (_, i) => Math.sin((2 * Math.PI * f * i) / sr + 0.3));
      const { frames, data } = mfcc(x, sr, { melBands, coefficients: melBands, preEmphasis: 0 });
      // With all coefficients kept, the inverse orthonormal DCT gives back the log mel energies.
      for (const t of [0, frames >> 1, frames - 1]) {
        const logMel = Array.from({ length: melBands }, (_, m) => {
          let s = 0;
          for (let j = 0; j < melBands; j++) s += data[t * melBands + j] * Math.sqrt((j === 0 ? 1 : 2) / melBands) * Math.cos((Math.PI * j * (2 * m + 1)) / (2 * melBands));
          return s;
        });
        expect(logMel.indexOf(Math.max(...logMel)), `tone ${f.toFixed(1)} Hz, frame ${t}`).toBe(band);
      }
    }
  });

  it('rejects bad options and non-finite samples', () => {
    const x = new Float64Array(800).map((_, i) => Math.sin(i / 3));
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof PairpickError ? e.code : 'not a PairpickError';
      }
      return 'no error';
    };
    expect(code(() => mfcc(x, 16000, { melBand: 3 } as MfccOptions))).toBe('E_OPTION');
    expect(code(() => mfcc(x, 16000, { coefficients: 41 }))).toBe('E_OPTION');
    expect(code(() => mfcc(x, 16000, { fftSize: 300 }))).toBe('E_OPTION');
    expect(code(() => mfcc(x, 16000, { maxHz: 9000 }))).toBe('E_OPTION');
    expect(code(() => mfcc(x, 0))).toBe('E_OPTION');
    const bad = Float64Array.from(x);
    bad[123] = NaN;
    expect(code(() => mfcc(bad, 16000))).toBe('E_NAN');
    expect(() => mfcc(bad, 16000)).toThrow(/sample 123/);
  });
});

describe('mfccSummary', () => {
  it('is [mean, std, std of ±2-frame deltas] per coefficient', () => {
    const rng = testRng();
    for (const T of [1, 2, 3, 5 + rng.int(60)]) {
      const C = 1 + rng.int(24);
      const data = Float32Array.from({ length: T * C }, () => rng.normal() * 10 - 3);
      const got = mfccSummary({ frames: T, coefficients: C, data });
      expect(got.length).toBe(mfccSummaryDim(C));
      const at = (t: number, k: number) => data[Math.min(T - 1, Math.max(0, t)) * C + k];
      const expected: number[] = [];
      const stats = (v: number[]) => {
        const mean = v.reduce((s, a) => s + a, 0) / v.length;
        return { mean, std: Math.sqrt(v.reduce((s, a) => s + (a - mean) ** 2, 0) / v.length) };
      };
      const perK = Array.from({ length: C }, (_, k) => {
        const values = Array.from({ length: T }, (_, t) => at(t, k));
        const deltas = Array.from({ length: T }, (_, t) => (1 * (at(t + 1, k) - at(t - 1, k)) + 2 * (at(t + 2, k) - at(t - 2, k))) / (2 * (1 + 4)));
        return { v: stats(values), d: stats(deltas) };
      });
      expected.push(...perK.map((p) => p.v.mean), ...perK.map((p) => p.v.std), ...perK.map((p) => p.d.std));
      expectClose(got, expected, 1e-5, `T=${T}, C=${C}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// WAV reader

function wavBytes(opts: { format: number; channels: number; rate: number; bits: number; frames: number[][]; extensible?: boolean; streamed?: boolean; extraChunk?: boolean }): Uint8Array {
  const width = opts.bits / 8;
  const dataBytes = opts.frames.length * opts.channels * width;
  const fmtSize = opts.extensible ? 40 : 16;
  const extra = opts.extraChunk ? 8 + 5 + 1 : 0; // an odd-sized LIST chunk, padded
  const buf = new ArrayBuffer(12 + 8 + fmtSize + extra + 8 + dataBytes);
  const v = new DataView(buf);
  const u = new Uint8Array(buf);
  const tag = (at: number, s: string) => [...s].forEach((c, i) => (u[at + i] = c.charCodeAt(0)));
  tag(0, 'RIFF');
  v.setUint32(4, buf.byteLength - 8, true);
  tag(8, 'WAVE');
  let at = 12;
  if (opts.extraChunk) {
    tag(at, 'LIST');
    v.setUint32(at + 4, 5, true);
    at += 8 + 6;
  }
  tag(at, 'fmt ');
  v.setUint32(at + 4, fmtSize, true);
  v.setUint16(at + 8, opts.extensible ? 0xfffe : opts.format, true);
  v.setUint16(at + 10, opts.channels, true);
  v.setUint32(at + 12, opts.rate, true);
  v.setUint32(at + 16, opts.rate * opts.channels * width, true);
  v.setUint16(at + 20, opts.channels * width, true);
  v.setUint16(at + 22, opts.bits, true);
  if (opts.extensible) {
    v.setUint16(at + 24, 22, true);
    v.setUint16(at + 32, opts.format, true);
  }
  at += 8 + fmtSize;
  tag(at, 'data');
  v.setUint32(at + 4, opts.streamed ? 0x7fffffff : dataBytes, true);
  at += 8;
  for (const frame of opts.frames) {
    for (const s of frame) {
      if (opts.format === 3) {
        if (opts.bits === 32) v.setFloat32(at, s, true);
        else v.setFloat64(at, s, true);
      } else if (opts.bits === 8) v.setUint8(at, s + 128);
      else if (opts.bits === 16) v.setInt16(at, s, true);
      else if (opts.bits === 24) {
        v.setUint8(at, s & 0xff);
        v.setUint8(at + 1, (s >> 8) & 0xff);
        v.setInt8(at + 2, s >> 16);
      } else v.setInt32(at, s, true);
      at += width;
    }
  }
  return u;
}

describe('readWav', () => {
  const cases = [
    { format: 1, bits: 8, scale: 128 },
    { format: 1, bits: 16, scale: 32768 },
    { format: 1, bits: 24, scale: 8388608 },
    { format: 1, bits: 32, scale: 2147483648 },
    { format: 3, bits: 32, scale: 1 },
    { format: 3, bits: 64, scale: 1 },
  ];
  for (const c of cases) {
    it(`decodes ${c.format === 1 ? 'PCM' : 'float'} ${c.bits}-bit, channels averaged`, () => {
      const rng = testRng();
      const channels = 1 + rng.int(3);
      const rate = 8000 + rng.int(40000);
      const n = 17 + rng.int(200);
      const frames = Array.from({ length: n }, () =>
        Array.from({ length: channels }, () => {
          const x = rng.next() * 1.98 - 0.99;
          return c.format === 3 ? (c.bits === 32 ? Math.fround(x) : x) : Math.round(x * (c.scale - 1));
        }),
      );
      for (const variant of [{}, { extensible: true }, { extraChunk: true }]) {
        const wav = readWav(wavBytes({ format: c.format, channels, rate, bits: c.bits, frames, ...variant }));
        expect(wav.sampleRate).toBe(rate);
        expect(wav.channels).toBe(channels);
        const expected = frames.map((f) => f.reduce((s, a) => s + a / c.scale, 0) / channels);
        expectClose(wav.samples, expected, 1e-6, `${JSON.stringify(variant)}`);
      }
    });
  }

  it('reads a streamed file (data size 0x7fffffff) up to its last whole frame', () => {
    const rng = testRng();
    const frames = Array.from({ length: 50 + rng.int(50) }, () => [rng.int(60000) - 30000, rng.int(60000) - 30000]);
    const bytes = wavBytes({ format: 1, channels: 2, rate: 22050, bits: 16, frames, streamed: true });
    const cut = bytes.subarray(0, bytes.length - 3); // last frame incomplete
    const wav = readWav(cut);
    expect(wav.samples.length).toBe(frames.length - 1);
    expectClose(wav.samples, frames.slice(0, -1).map((f) => (f[0] + f[1]) / 65536), 1e-6, 'streamed');
  });

  it('rejects malformed files with E_FORMAT naming them', () => {
    const good = wavBytes({ format: 1, channels: 1, rate: 16000, bits: 16, frames: [[1], [2], [3]] });
    const notRiff = Uint8Array.from(good);
    notRiff[0] = 0x58;
    const alaw = Uint8Array.from(good);
    new DataView(alaw.buffer).setUint16(20, 6, true);
    const bits12 = Uint8Array.from(good);
    new DataView(bits12.buffer).setUint16(34, 12, true);
    for (const [bytes, why] of [
      [notRiff, /RIFF/],
      [good.subarray(0, 30), /fmt|no data/],
      [good.subarray(0, 44 - 8), /no data/],
      [alaw, /sample format 6/],
      [bits12, /12 bits/],
    ] as const) {
      let err: unknown;
      try {
        readWav(bytes, 'clip.wav');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PairpickError);
      expect((err as PairpickError).code).toBe('E_FORMAT');
      expect((err as Error).message).toMatch(/clip\.wav/);
      expect((err as Error).message).toMatch(why);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// AV-Digits

describe("loadDataset('av-digits')", () => {
  let ds: Dataset;
  const dataDir = join(packageRoot(), 'data', 'av-digits');
  beforeAll(async () => {
    ds = await loadDataset('av-digits');
  });
  afterAll(async () => {
    await ds?.pool.close();
  });

  it('has two modalities of the documented shapes, one label per row', () => {
    expect(ds.name).toBe('av-digits');
    expect(ds.pool.modalities).toEqual(['image', 'audio']);
    expect(ds.pool.source('image').dim).toBe(784);
    expect(ds.pool.source('audio').dim).toBe(mfccSummaryDim(20));
    expect(ds.pool.source('audio').dtype).toBe('float16');
    expect(ds.labels.length).toBe(ds.pool.rows);
    expect(ds.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(ds.pool.rows).toBeGreaterThanOrEqual(5000);
  });

  it('has balanced classes and a stratified, disjoint, complete split', () => {
    const classes = ds.classes.length;
    const total = new Array(classes).fill(0);
    const inTest = new Array(classes).fill(0);
    for (const l of ds.labels) total[l]++;
    for (const i of ds.split.test) inTest[ds.labels[i]]++;
    expect(new Set(total).size, `class counts ${total}`).toBe(1);
    expect(new Set(inTest).size, `test counts per class ${inTest}`).toBe(1);
    expect(inTest[0] / total[0]).toBeCloseTo(0.2, 2);
    const seen = new Uint8Array(ds.pool.rows);
    for (const part of [ds.split.train, ds.split.test]) {
      let ascending = true;
      for (let j = 0; j < part.length; j++) {
        if (j > 0 && !(part[j] > part[j - 1])) ascending = false;
        seen[part[j]]++;
      }
      expect(ascending).toBe(true);
    }
    expect(seen.every((s) => s === 1)).toBe(true);
    // Rows are shuffled, not grouped by class.
    let changes = 0;
    for (let i = 1; i < ds.labels.length; i++) if (ds.labels[i] !== ds.labels[i - 1]) changes++;
    expect(changes).toBeGreaterThan(ds.labels.length / 2);
  });

  it('shows each row the MNIST image it names, each image at most once', async () => {
    const mnist = createRequire(import.meta.url)('mnist') as { get(k: number): number[]; length: number }[];
    const index = readIntNpy(join(dataDir, 'mnist_index.npy'));
    const used = new Set<string>();
    const twice: string[] = [];
    for (let i = 0; i < index.length; i++) {
      const key = `${ds.labels[i]}:${index[i]}`;
      if (used.has(key)) twice.push(key);
      used.add(key);
    }
    expect(twice, 'MNIST samples (digit:index) used by more than one row').toEqual([]);
    const rng = testRng();
    const rows = Array.from({ length: 25 }, () => rng.int(ds.pool.rows));
    const images = await ds.pool.source('image').readRows(rows);
    rows.forEach((r, j) => {
      const expected = mnist[ds.labels[r]].get(index[r]);
      expectClose(images.subarray(j * 784, (j + 1) * 784), expected, 1e-6, `row ${r}`);
    });
    let lo = Infinity;
    let hi = -Infinity;
    for await (const chunk of ds.pool.source('image').chunks(2000)) {
      for (const v of chunk.data) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    }
    expect(lo).toBe(0);
    expect(hi).toBeLessThanOrEqual(1);
    expect(hi).toBeGreaterThan(0.9);
  });

  it('has finite, varied audio features that carry the label (but not perfectly)', async () => {
    const audio = ds.pool.source('audio');
    const x = await audio.read(0, audio.rows);
    const dim = audio.dim;
    for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new Error(`audio row ${Math.floor(i / dim)} column ${i % dim} is ${x[i]}`);
    // Standardise with the train split, then nearest class centroid on the test split.
    const { train, test } = ds.split;
    const mean = new Float64Array(dim);
    const sd = new Float64Array(dim);
    for (const i of train) for (let j = 0; j < dim; j++) mean[j] += x[i * dim + j] / train.length;
    for (const i of train) for (let j = 0; j < dim; j++) sd[j] += (x[i * dim + j] - mean[j]) ** 2 / train.length;
    for (let j = 0; j < dim; j++) {
      sd[j] = Math.sqrt(sd[j]);
      expect(sd[j], `audio column ${j} is constant`).toBeGreaterThan(1e-3);
    }
    const z = (i: number, j: number) => (x[i * dim + j] - mean[j]) / sd[j];
    const k = ds.classes.length;
    const centroid = new Float64Array(k * dim);
    const count = new Float64Array(k);
    for (const i of train) {
      count[ds.labels[i]]++;
      for (let j = 0; j < dim; j++) centroid[ds.labels[i] * dim + j] += z(i, j);
    }
    for (let c = 0; c < k; c++) for (let j = 0; j < dim; j++) centroid[c * dim + j] /= count[c];
    let correct = 0;
    for (const i of test) {
      let best = 0;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        let d = 0;
        for (let j = 0; j < dim; j++) d += (z(i, j) - centroid[c * dim + j]) ** 2;
        if (d < bestD) [best, bestD] = [c, d];
      }
      if (best === ds.labels[i]) correct++;
    }
    const accuracy = correct / test.length;
    expect(accuracy).toBeGreaterThan(0.4);
    expect(accuracy).toBeLessThan(0.99);
  });

  it('agrees with its provenance table pairs.csv', () => {
    const lines = readFileSync(join(dataDir, 'pairs.csv'), 'utf8').trim().split('\n');
    const head = lines[0].split(',');
    expect(lines.length - 1).toBe(ds.pool.rows);
    const col = (name: string) => head.indexOf(name);
    const index = readIntNpy(join(dataDir, 'mnist_index.npy'));
    const isTest = new Uint8Array(ds.pool.rows);
    for (const i of ds.split.test) isTest[i] = 1;
    const mismatches: string[] = [];
    for (let i = 0; i < ds.pool.rows; i++) {
      const f = lines[i + 1].split(',');
      const snr = Number(f[col('snr_db')]);
      const ok =
        Number(f[col('row')]) === i &&
        Number(f[col('label')]) === ds.labels[i] &&
        Number(f[col('mnist_index')]) === index[i] &&
        f[col('split')] === (isTest[i] ? 'test' : 'train') &&
        Number.isFinite(snr);
      if (!ok) mismatches.push(lines[i + 1]);
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
  });

  it('rejects unknown names and options with E_OPTION', async () => {
    await expect(loadDataset('mnist-audio')).rejects.toMatchObject({ code: 'E_OPTION', message: expect.stringContaining('av-digits') });
    expect(datasetNames).toContain('av-digits');
    await expect(loadDataset('av-digits', { direcotry: '/tmp' } as never)).rejects.toMatchObject({ code: 'E_OPTION', message: expect.stringContaining('direcotry') });
  });

  it('reports missing and inconsistent files by name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pairpick-avd-'));
    try {
      for (const f of ['audio.npy', 'labels.npy', 'split.npy', 'mnist_index.npy']) copyFileSync(join(dataDir, f), join(dir, f));
      const ok = await loadDataset('av-digits', { dir });
      await ok.pool.close();
      rmSync(join(dir, 'split.npy'));
      await expect(loadDataset('av-digits', { dir })).rejects.toMatchObject({ code: 'E_IO', message: expect.stringContaining('split.npy') });
      copyFileSync(join(dataDir, 'split.npy'), join(dir, 'split.npy'));
      const labels = readFileSync(join(dataDir, 'labels.npy'));
      const bad = Uint8Array.from(labels);
      const rng = testRng();
      const row = rng.int(ds.pool.rows);
      const headerEnd = labels.length - ds.pool.rows * 4;
      new DataView(bad.buffer).setInt32(headerEnd + 4 * row, 10 + rng.int(100), true);
      writeFileSync(join(dir, 'labels.npy'), bad);
      await expect(loadDataset('av-digits', { dir })).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(new RegExp(`labels\\.npy.*row ${row}\\b`)) });
      writeFileSync(join(dir, 'labels.npy'), labels.subarray(0, labels.length - 4));
      await expect(loadDataset('av-digits', { dir })).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringContaining('labels.npy') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Minimal reader for the test's own cross-checks: a 1-D '<i4' .npy. */
function readIntNpy(path: string): Int32Array {
  const bytes = readFileSync(path);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  expect(header).toContain("'descr': '<i4'");
  const data = bytes.subarray(10 + headerLength);
  return new Int32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

describe("loadDataset('clipart-it')", () => {
  let ds: Dataset;
  const dataDir = join(packageRoot(), 'data', 'clipart-it');
  beforeAll(async () => {
    ds = await loadDataset('clipart-it');
  });
  afterAll(async () => {
    await ds?.pool.close();
  });

  it('has image and text features of the documented shapes, ten classes, a stratified split', async () => {
    expect(ds.pool.modalities).toEqual(['image', 'text']);
    expect(ds.pool.source('image').dim).toBe(1280);
    expect(ds.pool.source('text').dim).toBe(512);
    expect(ds.classes.length).toBe(10);
    expect(ds.labels.length).toBe(ds.pool.rows);
    expect(ds.split.train.length + ds.split.test.length).toBe(ds.pool.rows);
    const total = new Array(10).fill(0);
    const inTest = new Array(10).fill(0);
    for (const l of ds.labels) total[l]++;
    for (const i of ds.split.test) inTest[ds.labels[i]]++;
    for (let c = 0; c < 10; c++) expect(Math.abs(inTest[c] - 0.2 * total[c]), ds.classes[c]).toBeLessThanOrEqual(0.5);
    // Text rows are unit vectors (L2-normalised TF-IDF, fp16 on disk), image rows finite and not constant.
    const text = await ds.pool.source('text').read(0, ds.pool.rows);
    const image = await ds.pool.source('image').read(0, ds.pool.rows);
    const rng = testRng();
    for (let t = 0; t < 20; t++) {
      const r = rng.int(ds.pool.rows);
      let s = 0;
      for (let j = 0; j < 512; j++) s += text[r * 512 + j] ** 2;
      expect(Math.sqrt(s)).toBeCloseTo(1, 2);
      const row = image.subarray(r * 1280, (r + 1) * 1280);
      expect(row.every(Number.isFinite)).toBe(true);
      expect(Math.max(...row)).toBeGreaterThan(Math.min(...row));
    }
  });

  it('agrees with its provenance table items.csv, whose words never name a category', () => {
    const lines = readFileSync(join(dataDir, 'items.csv'), 'utf8').trim().split('\n');
    expect(lines.length - 1).toBe(ds.pool.rows);
    const words = new Set(['animal', 'animals', 'building', 'buildings', 'food', 'people', 'plant', 'plants', 'tool', 'tools', 'transportation', 'office', 'geography', 'recreation']);
    const isTest = new Uint8Array(ds.pool.rows);
    for (const i of ds.split.test) isTest[i] = 1;
    for (let i = 0; i < ds.pool.rows; i++) {
      const f = lines[i + 1].split(',');
      expect(Number(f[0])).toBe(i);
      expect(f[1]).toBe(ds.classes[ds.labels[i]]);
      expect(f[2]).toBe(isTest[i] ? 'test' : 'train');
      const last = f[f.length - 1].split(' ');
      expect(last.filter((w) => words.has(w)), `row ${i}`).toEqual([]);
    }
  });
});

describe('loadDataset mismatch option', () => {
  it('re-pairs a seeded share of the train rows: second modality from another chosen row, labels and test rows untouched', async () => {
    const rng = testRng();
    const fraction = 0.05 + 0.3 * rng.next();
    const seed = rng.int(1000);
    const clean = await loadDataset('clipart-it');
    const noisy = await loadDataset('clipart-it', { mismatch: fraction, mismatchSeed: seed });
    const again = await loadDataset('clipart-it', { mismatch: fraction, mismatchSeed: seed });
    try {
      const d = 512;
      const cleanText = await clean.pool.source('text').read(0, clean.pool.rows);
      const noisyText = await noisy.pool.source('text').read(0, noisy.pool.rows);
      const againText = await again.pool.source('text').read(0, again.pool.rows);
      expect(Array.from(againText)).toEqual(Array.from(noisyText));
      expect(Array.from(await noisy.pool.source('image').read(0, noisy.pool.rows))).toEqual(Array.from(await clean.pool.source('image').read(0, clean.pool.rows)));
      expect(noisy.labels).toEqual(clean.labels);
      const moved = noisy.mismatched!;
      const chosen: number[] = [];
      for (let i = 0; i < moved.length; i++) if (moved[i]) chosen.push(i);
      expect(chosen.length).toBe(Math.round(fraction * clean.split.train.length));
      const train = new Set(clean.split.train);
      const rowOf = (x: Float32Array, r: number) => Array.from(x.subarray(r * d, (r + 1) * d)).join();
      // Some items share their text (same title and keywords): compare as multisets.
      const copies = new Map<string, number>();
      for (const r of chosen) copies.set(rowOf(cleanText, r), (copies.get(rowOf(cleanText, r)) ?? 0) + 1);
      for (let i = 0; i < noisy.pool.rows; i++) {
        if (!moved[i]) {
          expect(rowOf(noisyText, i), `row ${i} kept`).toBe(rowOf(cleanText, i));
          continue;
        }
        expect(train.has(i), `row ${i} is a train row`).toBe(true);
        // A text no other chosen row has must have left its row.
        if (copies.get(rowOf(cleanText, i)) === 1) expect(rowOf(noisyText, i), `row ${i} moved`).not.toBe(rowOf(cleanText, i));
      }
      const texts = (x: Float32Array) => chosen.map((r) => rowOf(x, r)).sort();
      expect(texts(noisyText)).toEqual(texts(cleanText));
      await expect(loadDataset('av-digits', { mismatch: 1 })).rejects.toMatchObject({ code: 'E_OPTION', message: expect.stringContaining('mismatch') });
      await expect(loadDataset('av-digits', { mismatch: -0.1 })).rejects.toMatchObject({ code: 'E_OPTION' });
    } finally {
      for (const x of [clean, noisy, again]) await x.pool.close();
    }
  });
});
