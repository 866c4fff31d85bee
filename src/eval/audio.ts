// Audio features for the AV-Digits demo data: a WAV reader and MFCCs (framing, Hann window, FFT,
// mel filterbank, log, DCT-II), written here so the dataset's audio features come from
// pairpick's own code and can be recomputed for new recordings.
import { PairpickError } from '../errors.js';
import { check, checkTensorSizes, count, matrix, number, numberList, OBJECT, readOptions, refuse, STRING, type Schema } from '../util/validate.js';

const NON_NEGATIVE = number({ min: 0 });

/** Audio samples (each checked to be finite by `mfcc`). */
const SAMPLES = numberList('an array or typed array of samples');

/** Decoded audio: mono samples in [-1, 1] (channels averaged) at `sampleRate` Hz. */
export interface WavAudio {
  sampleRate: number;
  /** Channels in the file (the samples are their average). */
  channels: number;
  samples: Float32Array;
}

const PCM = 1;
const IEEE_FLOAT = 3;
const EXTENSIBLE = 0xfffe;

/**
 * Decodes a RIFF/WAVE file: PCM 8/16/24/32-bit or IEEE float 32/64-bit, any channel count
 * (averaged to mono), WAVE_FORMAT_EXTENSIBLE included. A data chunk whose declared size runs past
 * the end of the file (streamed output such as `espeak-ng --stdout` writes 0x7fffffff) is read up
 * to the last whole frame. Malformed input → `PairpickError('E_FORMAT')` naming `name`.
 */
export function readWav(bytes: Uint8Array, name = 'WAV data'): WavAudio {
  if (!(bytes instanceof Uint8Array)) refuse("readWav: argument 'bytes'", 'a Uint8Array (or Buffer) of the file', bytes);
  check(STRING, name, "readWav: argument 'name'");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string): never => {
    throw new PairpickError('E_FORMAT', `${name}: not a readable WAV file (${why})`);
  };
  const tag = (at: number) => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') fail('missing RIFF/WAVE header');

  let format = -1;
  let channels = 0;
  let sampleRate = 0;
  let bits = 0;
  let at = 12;
  while (at + 8 <= bytes.length) {
    const id = tag(at);
    const declared = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (declared < 16 || body + 16 > bytes.length) fail('fmt chunk too short');
      format = view.getUint16(body, true);
      channels = view.getUint16(body + 2, true);
      sampleRate = view.getUint32(body + 4, true);
      bits = view.getUint16(body + 14, true);
      if (format === EXTENSIBLE) {
        if (declared < 40 || body + 26 > bytes.length) fail('extensible fmt chunk too short');
        format = view.getUint16(body + 24, true); // first two bytes of the sub-format GUID
      }
    } else if (id === 'data') {
      if (format < 0) fail('data chunk before fmt chunk');
      if (format !== PCM && format !== IEEE_FLOAT) fail(`unsupported sample format ${format}`);
      if (channels < 1) fail('zero channels');
      if (!(sampleRate > 0)) fail('zero sample rate');
      const okBits = format === PCM ? [8, 16, 24, 32] : [32, 64];
      if (!okBits.includes(bits)) fail(`unsupported ${format === PCM ? 'PCM' : 'float'} sample size ${bits} bits`);
      const bytesPerFrame = (bits / 8) * channels;
      const available = Math.min(declared, bytes.length - body);
      const frames = Math.floor(available / bytesPerFrame);
      return { sampleRate, channels, samples: decodeSamples(view, body, frames, channels, bits, format) };
    }
    at = body + declared + (declared & 1); // chunks are word-aligned
  }
  return fail(format < 0 ? 'no fmt chunk' : 'no data chunk');
}

function decodeSamples(view: DataView, start: number, frames: number, channels: number, bits: number, format: number): Float32Array {
  const out = new Float32Array(frames);
  const width = bits / 8;
  const read = (p: number): number => {
    if (format === IEEE_FLOAT) return bits === 32 ? view.getFloat32(p, true) : view.getFloat64(p, true);
    switch (bits) {
      case 8:
        return (view.getUint8(p) - 128) / 128; // 8-bit WAV is unsigned
      case 16:
        return view.getInt16(p, true) / 32768;
      case 24: {
        const v = view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getInt8(p + 2) << 16);
        return v / 8388608;
      }
      default:
        return view.getInt32(p, true) / 2147483648;
    }
  };
  for (let f = 0, p = start; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++, p += width) sum += read(p);
    out[f] = sum / channels;
  }
  return out;
}

/** MFCC settings; the defaults are the usual speech front end (25 ms frames every 10 ms). */
export interface MfccOptions {
  /** Frame length in milliseconds (default 25). */
  frameMs?: number;
  /** Hop between frame starts in milliseconds (default 10). */
  hopMs?: number;
  /** FFT size, a power of two ≥ the frame length (default: the smallest such). */
  fftSize?: number;
  /** Number of triangular mel filters (default 40). */
  melBands?: number;
  /** Cepstral coefficients kept, c0 included (default 20). */
  coefficients?: number;
  /** Lowest filter edge in Hz (default 20). */
  minHz?: number;
  /** Highest filter edge in Hz (default min(8000, sampleRate / 2)). */
  maxHz?: number;
  /** Pre-emphasis factor: y[n] = x[n] − α·x[n−1] (default 0.97; 0 turns it off). */
  preEmphasis?: number;
  /** Floor added to the mel energies before the log, so silence stays finite (default 1e-10). */
  logFloor?: number;
}

interface ResolvedMfcc {
  frameLength: number;
  hop: number;
  fftSize: number;
  melBands: number;
  coefficients: number;
  minHz: number;
  maxHz: number;
  preEmphasis: number;
  logFloor: number;
}

const MFCC_OPTIONS = {
  frameMs: number({ above: 0 }),
  hopMs: number({ above: 0 }),
  fftSize: count(2),
  melBands: count(1),
  coefficients: count(1),
  minHz: number({ min: 0 }),
  maxHz: number({ above: 0 }),
  preEmphasis: number({ min: 0, below: 1 }),
  logFloor: number({ above: 0 }),
} satisfies Schema;

/** Longest frame / FFT, in samples (2^24: 6 minutes at 44.1 kHz): longer ones are refused before allocating. */
const MAX_FRAME = 2 ** 24;

function resolveMfcc(sampleRate: number, options: MfccOptions = {}): ResolvedMfcc {
  const where = 'mfcc';
  const o = readOptions(options, MFCC_OPTIONS, where);
  check(number({ above: 0 }), sampleRate, `${where}: argument 'sampleRate'`);
  const bad = (what: string): never => {
    throw new PairpickError('E_OPTION', `${where}: ${what}`);
  };
  const frameLength = Math.round((sampleRate * (o.frameMs ?? 25)) / 1000);
  const hop = Math.round((sampleRate * (o.hopMs ?? 10)) / 1000);
  if (!(frameLength >= 2)) bad(`option 'frameMs' gives a frame of ${frameLength} samples (need ≥ 2)`);
  if (frameLength > MAX_FRAME) bad(`option 'frameMs' gives a frame of ${frameLength} samples (at most ${MAX_FRAME})`);
  if (!(hop >= 1)) bad(`option 'hopMs' gives a hop of ${hop} samples (need ≥ 1)`);
  let fftSize = 1;
  while (fftSize < frameLength) fftSize *= 2;
  if (o.fftSize !== undefined) {
    if (!(o.fftSize >= frameLength && o.fftSize <= MAX_FRAME && (o.fftSize & (o.fftSize - 1)) === 0)) {
      bad(`option 'fftSize' must be a power of two ≥ the frame length ${frameLength} and ≤ ${MAX_FRAME}, got ${o.fftSize}`);
    }
    fftSize = o.fftSize;
  }
  const melBands = o.melBands ?? 40;
  const coefficients = o.coefficients ?? 20;
  const minHz = o.minHz ?? 20;
  const maxHz = o.maxHz ?? Math.min(8000, sampleRate / 2);
  const preEmphasis = o.preEmphasis ?? 0.97;
  const logFloor = o.logFloor ?? 1e-10;
  if (coefficients > melBands) bad(`option 'coefficients' must be an integer in [1, melBands=${melBands}], got ${coefficients}`);
  if (!(maxHz > minHz && maxHz <= sampleRate / 2)) {
    bad(`options 'minHz' and 'maxHz' need 0 ≤ minHz < maxHz ≤ sampleRate/2 (${sampleRate / 2}), got minHz=${minHz}, maxHz=${maxHz}`);
  }
  checkTensorSizes(where, [
    [`the mel filterbank (option 'melBands' ${melBands} × ${fftSize / 2 + 1} FFT bins)`, melBands * (fftSize / 2 + 1)],
    [`the DCT (option 'coefficients' ${coefficients} × option 'melBands' ${melBands})`, coefficients * melBands],
  ]);
  return { frameLength, hop, fftSize, melBands, coefficients, minHz, maxHz, preEmphasis, logFloor };
}

/** HTK mel scale. */
export function hzToMel(hz: number): number {
  check(NON_NEGATIVE, hz, "hzToMel: argument 'hz'");
  return 2595 * Math.log10(1 + hz / 700);
}

export function melToHz(mel: number): number {
  check(NON_NEGATIVE, mel, "melToHz: argument 'mel'");
  return 700 * (10 ** (mel / 2595) - 1);
}

/**
 * Triangular filters over the `fftSize/2 + 1` power-spectrum bins: filter m rises linearly from
 * edge m to edge m+1 and falls to edge m+2, the melBands + 2 edges equally spaced in mel between
 * minHz and maxHz; each bin is weighted by where its centre frequency k·sampleRate/fftSize falls
 * (peak height 1, no area normalisation). Stored sparsely: filter m covers bins
 * [first[m], first[m] + weights[m].length).
 */
function melFilterbank(sampleRate: number, fftSize: number, melBands: number, minHz: number, maxHz: number) {
  const bins = fftSize / 2 + 1;
  const lo = hzToMel(minHz);
  const hi = hzToMel(maxHz);
  const edges = new Float64Array(melBands + 2);
  for (let i = 0; i < edges.length; i++) edges[i] = melToHz(lo + ((hi - lo) * i) / (melBands + 1));
  const first = new Int32Array(melBands);
  const weights: Float64Array[] = [];
  for (let m = 0; m < melBands; m++) {
    const left = edges[m];
    const centre = edges[m + 1];
    const right = edges[m + 2];
    const row: number[] = [];
    let start = -1;
    for (let k = 0; k < bins; k++) {
      const f = (k * sampleRate) / fftSize;
      let w = 0;
      if (f > left && f <= centre) w = (f - left) / (centre - left);
      else if (f > centre && f < right) w = (right - f) / (right - centre);
      if (w > 0) {
        if (start < 0) start = k;
        row.length = k - start + 1;
        row[k - start] = w;
      }
    }
    first[m] = Math.max(0, start);
    weights.push(Float64Array.from(row, (w) => w ?? 0));
  }
  return { first, weights };
}

/** Twiddle factors e^{−2πik/n}, k < n/2, for `fft`. */
function twiddles(n: number): { cos: Float64Array; sin: Float64Array } {
  const cos = new Float64Array(n / 2);
  const sin = new Float64Array(n / 2);
  for (let k = 0; k < n / 2; k++) {
    cos[k] = Math.cos((2 * Math.PI * k) / n);
    sin[k] = -Math.sin((2 * Math.PI * k) / n);
  }
  return { cos, sin };
}

/** In-place iterative radix-2 complex FFT (n a power of two, tw = twiddles(n)). */
function fft(re: Float64Array, im: Float64Array, tw: { cos: Float64Array; sin: Float64Array }): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i];
      re[i] = re[j];
      re[j] = t;
      t = im[i];
      im[i] = im[j];
      im[j] = t;
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const half = size >> 1;
    const stride = n / size;
    for (let k = 0; k < half; k++) {
      const wr = tw.cos[k * stride];
      const wi = tw.sin[k * stride];
      for (let start = 0; start < n; start += size) {
        const a = start + k;
        const b = a + half;
        const tr = re[b] * wr - im[b] * wi;
        const ti = re[b] * wi + im[b] * wr;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
      }
    }
  }
}

/** MFCCs of a signal, frame-major: `data[t * coefficients + k]` is coefficient k of frame t. */
export interface MfccFrames {
  frames: number;
  coefficients: number;
  data: Float32Array;
}

/**
 * Mel-frequency cepstral coefficients. Steps: pre-emphasis; frames of `frameMs` every `hopMs`
 * (frame t starts at t·hop; the last frame is zero-padded, a signal shorter than one frame gives
 * one frame); periodic Hann window; power spectrum |FFT|² over `fftSize` points; triangular mel
 * filterbank (HTK mel scale); natural log of (energy + logFloor); orthonormal DCT-II, keeping
 * c0 … c(coefficients−1). Computed in float64, returned as float32.
 */
export function mfcc(signal: ArrayLike<number>, sampleRate: number, options?: MfccOptions): MfccFrames {
  const o = resolveMfcc(sampleRate, options);
  check(SAMPLES, signal, "mfcc: argument 'signal'");
  const n = signal.length;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(signal[i])) throw new PairpickError('E_NAN', `mfcc: sample ${i} of the signal is ${signal[i]}`);
  }
  const emphasised = new Float64Array(n);
  for (let i = 0; i < n; i++) emphasised[i] = signal[i] - (i > 0 ? o.preEmphasis * signal[i - 1] : 0);

  const frames = n <= o.frameLength ? 1 : 1 + Math.ceil((n - o.frameLength) / o.hop);
  checkTensorSizes('mfcc', [[`the output (${frames} frames × ${o.coefficients} coefficients)`, frames * o.coefficients]], 'E_SHAPE');
  const bins = o.fftSize / 2 + 1;
  const window = new Float64Array(o.frameLength);
  for (let i = 0; i < o.frameLength; i++) window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / o.frameLength);
  const filters = melFilterbank(sampleRate, o.fftSize, o.melBands, o.minHz, o.maxHz);
  const tw = twiddles(o.fftSize);
  const dct = new Float64Array(o.coefficients * o.melBands);
  for (let k = 0; k < o.coefficients; k++) {
    const scale = Math.sqrt((k === 0 ? 1 : 2) / o.melBands);
    for (let m = 0; m < o.melBands; m++) dct[k * o.melBands + m] = scale * Math.cos((Math.PI * k * (m + 0.5)) / o.melBands);
  }

  const re = new Float64Array(o.fftSize);
  const im = new Float64Array(o.fftSize);
  const power = new Float64Array(bins);
  const logMel = new Float64Array(o.melBands);
  const out = new Float32Array(frames * o.coefficients);
  for (let t = 0; t < frames; t++) {
    re.fill(0);
    im.fill(0);
    const start = t * o.hop;
    const end = Math.min(o.frameLength, n - start);
    for (let i = 0; i < end; i++) re[i] = emphasised[start + i] * window[i];
    fft(re, im, tw);
    for (let k = 0; k < bins; k++) power[k] = re[k] * re[k] + im[k] * im[k];
    for (let m = 0; m < o.melBands; m++) {
      let e = 0;
      const w = filters.weights[m];
      const first = filters.first[m];
      for (let j = 0; j < w.length; j++) e += w[j] * power[first + j];
      logMel[m] = Math.log(e + o.logFloor);
    }
    for (let k = 0; k < o.coefficients; k++) {
      let c = 0;
      const row = k * o.melBands;
      for (let m = 0; m < o.melBands; m++) c += dct[row + m] * logMel[m];
      out[t * o.coefficients + k] = c;
    }
  }
  return { frames, coefficients: o.coefficients, data: out };
}

/** Length of the fixed-size summary `mfccSummary` returns for a given coefficient count. */
export function mfccSummaryDim(coefficients = 20): number {
  check(count(1), coefficients, "mfccSummaryDim: argument 'coefficients'");
  return 3 * coefficients;
}

/**
 * A fixed-length description of a whole utterance from its MFCC frames: per coefficient the mean
 * over frames, the standard deviation over frames (population), and the standard deviation of the
 * delta coefficients (regression over ±2 frames, edges repeated) — so `3 × coefficients` values,
 * laid out [means…, stds…, delta stds…]. Delta means are left out: they are ≈ 0 for any utterance.
 */
export function mfccSummary(frames: MfccFrames): Float32Array {
  const where = 'mfccSummary';
  check(OBJECT, frames, `${where}: argument 'frames'`);
  const { frames: T, coefficients: C, data } = frames;
  check(count(1), T, `${where}: frames.frames`);
  check(count(1), C, `${where}: frames.coefficients`);
  matrix(data, 'frames.data', where, T, C, { shape: 'frames × coefficients' });
  const out = new Float32Array(3 * C);
  const at = (t: number, k: number) => data[Math.min(T - 1, Math.max(0, t)) * C + k];
  const delta = new Float64Array(T);
  for (let k = 0; k < C; k++) {
    for (let t = 0; t < T; t++) delta[t] = (at(t + 1, k) - at(t - 1, k) + 2 * (at(t + 2, k) - at(t - 2, k))) / 10;
    let sum = 0;
    let dSum = 0;
    for (let t = 0; t < T; t++) {
      sum += data[t * C + k];
      dSum += delta[t];
    }
    const mean = sum / T;
    const dMean = dSum / T;
    let ss = 0;
    let dss = 0;
    for (let t = 0; t < T; t++) {
      ss += (data[t * C + k] - mean) ** 2;
      dss += (delta[t] - dMean) ** 2;
    }
    out[k] = mean;
    out[C + k] = Math.sqrt(ss / T);
    out[2 * C + k] = Math.sqrt(dss / T);
  }
  return out;
}
