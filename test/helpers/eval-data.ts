// A small labelled two-modality dataset for the evaluation tests: C classes with random class
// means far apart (so classes are learnable) plus unit noise, fresh for every run.
import { openPool } from '../../src/io/pool.js';
import type { Dataset } from '../../src/eval/datasets.js';
import type { Rng } from '../../src/util/rng.js';

export interface EvalData {
  rows: number;
  dims: [number, number];
  image: Float32Array;
  audio: Float32Array;
  labels: Int32Array;
  split: { train: Int32Array; test: Int32Array };
  classes: string[];
}

/** `perClass` rows of each of `classes` classes, shuffled; every `testEvery`-th row of a class is a test row. */
export function makeEvalData(rng: Rng, o: { classes?: number; perClass?: number; dims?: [number, number]; testEvery?: number } = {}): EvalData {
  const C = o.classes ?? 4;
  const perClass = o.perClass ?? 40;
  const dims = o.dims ?? [6, 6];
  const testEvery = o.testEvery ?? 5;
  const rows = C * perClass;
  const order = rng.permutation(rows);
  const means = dims.map((d) => Array.from({ length: C }, () => Float64Array.from({ length: d }, () => 2.5 * rng.normal())));
  const mods = dims.map((d) => new Float32Array(rows * d));
  const labels = new Int32Array(rows);
  const isTest = new Uint8Array(rows);
  for (let k = 0; k < rows; k++) {
    const row = order[k];
    const c = k % C;
    labels[row] = c;
    isTest[row] = Math.floor(k / C) % testEvery === 0 ? 1 : 0;
    dims.forEach((d, m) => {
      for (let j = 0; j < d; j++) mods[m][row * d + j] = means[m][c][j] + rng.normal();
    });
  }
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < rows; i++) (isTest[i] ? test : train).push(i);
  return {
    rows,
    dims,
    image: mods[0],
    audio: mods[1],
    labels,
    split: { train: Int32Array.from(train), test: Int32Array.from(test) },
    classes: Array.from({ length: C }, (_, c) => `class${c}`),
  };
}

/** The data as an evaluate() Dataset (an in-memory pool; close it when done). */
export async function evalDataset(d: EvalData): Promise<Dataset> {
  const pool = await openPool({ image: { data: d.image, dim: d.dims[0] }, audio: { data: d.audio, dim: d.dims[1] } });
  return { name: 'synthetic', pool, labels: d.labels, split: d.split, classes: d.classes };
}

/** What evaluate() trains on: each modality z-scored per feature with the train rows' statistics, float64 (rows in dataset order). */
export function zScored(d: EvalData): Float64Array[] {
  return [d.image, d.audio].map((x, m) => {
    const dim = d.dims[m];
    const out = new Float64Array(x.length);
    for (let j = 0; j < dim; j++) {
      let mean = 0;
      for (const r of d.split.train) mean += x[r * dim + j];
      mean /= d.split.train.length;
      let v = 0;
      for (const r of d.split.train) v += (x[r * dim + j] - mean) ** 2;
      const scale = v > 0 ? 1 / Math.sqrt(v / d.split.train.length) : 0;
      for (let r = 0; r < d.rows; r++) out[r * dim + j] = (x[r * dim + j] - mean) * scale;
    }
    return out;
  });
}
