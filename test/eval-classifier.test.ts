// evaluate() with the trained classifiers of src/train/ as its downstream model: every cell equals
// select() + trainClassifier() composed by hand for the same seeds (cold picks on the raw train
// rows; warm entropy, badge and bmmal picks on the z-scored train rows with the previous round's
// classifier), and activeLearningRound end to end (train → warm pick → grown labelled set) on
// every backend.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../src/backend/index.js';
import { evaluate, roundSeed } from '../src/eval/evaluate.js';
import { trainModel, type ModelData } from '../src/eval/model.js';
import { openPool, type Pool } from '../src/io/pool.js';
import { activeLearningRound } from '../src/select/rounds.js';
import { select } from '../src/select/select.js';
import { trainClassifier } from '../src/train/trainer.js';
import type { Classifier } from '../src/train/types.js';
import { evalDataset, makeEvalData, zScored, type EvalData } from './helpers/eval-data.js';
import { testRng } from './helpers/random.js';

const BACKENDS = backends()
  .filter((b) => b.available)
  .map((b) => b.name);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-eval-clf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The given rows of both modalities as a pool (float32), in the order given. */
function poolOf(d: EvalData, modalities: ArrayLike<number>[], rows: Int32Array): Promise<Pool> {
  const take = (x: ArrayLike<number>, dim: number) => {
    const out = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => {
      for (let j = 0; j < dim; j++) out[i * dim + j] = x[r * dim + j];
    });
    return out;
  };
  return openPool({ image: { data: take(modalities[0], d.dims[0]), dim: d.dims[0] }, audio: { data: take(modalities[1], d.dims[1]), dim: d.dims[1] } });
}

function argmax(probs: Float32Array, row: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) if (probs[row * classes + c] > probs[row * classes + best]) best = c;
  return best;
}

describe('evaluate with a late-fusion classifier', () => {
  it('every cell equals select() + trainClassifier() for the same seeds; warm entropy, badge and bmmal pick with the previous round’s classifier', async () => {
    const rng = testRng();
    // Six classes and at least 12 picks: a random set of one class only (which no classifier can
    // be trained on) has probability 6·6⁻¹² ≈ 3e-9.
    const d = makeEvalData(rng, { classes: 6, perClass: 20 });
    const seed = rng.int(1000);
    const budgets = [12, 18, 24];
    const dataset = await evalDataset(d);
    let results;
    try {
      results = await evaluate(dataset, { cold: ['kcenter', 'random'], warm: ['entropy', 'badge', 'bmmal'], budgets, seeds: [seed], model: 'late-fusion', stage1: false, outDir: join(dir, 'late-fusion') });
    } finally {
      await dataset.pool.close();
    }
    expect(results.cells).toHaveLength(5 * budgets.length);
    expect(results.options.model).toBe('late-fusion');

    const { train, test } = d.split;
    const raw = await poolOf(d, [d.image, d.audio], train);
    const z = zScored(d);
    const zTrain = await poolOf(d, z, train);
    const zTest = await poolOf(d, z, test);
    const trainLabels = Int32Array.from(train, (r) => d.labels[r]);
    const truth = Array.from(test, (r) => d.labels[r]);
    const C = d.classes.length;
    const position = (row: number) => train.indexOf(row);
    const classifierOn = (labeled: number[]) => trainClassifier(zTrain, trainLabels, { model: 'late-fusion', labeled, seed });
    try {
      for (const cell of results.cells) {
        let expected: number[];
        const previous = results.cells.find((c) => c.arm === cell.arm && c.round === cell.round - 1);
        if (cell.kind === 'cold') {
          expected = Array.from((await select(raw, { strategy: cell.strategy as 'kcenter', budget: cell.budget, seed })).indices, (p) => train[p]);
        } else if (!previous) {
          expected = Array.from((await select(raw, { strategy: 'random', budget: cell.budget, seed })).indices, (p) => train[p]);
        } else {
          const labeled = previous.picks.map(position);
          const model: Classifier = await classifierOn(labeled);
          const more = await select(zTrain, { strategy: cell.strategy as 'badge', budget: cell.budget - labeled.length, labeled, model, seed: roundSeed(seed, cell.round) });
          expected = [...previous.picks, ...Array.from(more.indices, (p) => train[p])];
        }
        expect(cell.picks, cell.id).toEqual(expected);
        expect(new Set(cell.picks).size).toBe(cell.budget);

        // The cell's scores: the same classifier (same seed, same labelled rows) on the test rows.
        const p = await (await classifierOn(cell.picks.map(position))).predict(zTest);
        const accuracy = (pred: (i: number) => number) => truth.filter((t, i) => pred(i) === t).length / truth.length;
        expect(cell.accuracy, cell.id).toBe(accuracy((i) => p.pred[i]));
        // The classifier knows the classes up to the largest label it saw (p.classes may be < C).
        for (const m of p.perModality) expect(cell.perModality[m.name], `${cell.id} ${m.name}`).toBe(accuracy((i) => argmax(m.probs, i, p.classes)));
        cell.recall.forEach((r, c) => {
          const rows = truth.flatMap((t, i) => (t === c ? [i] : []));
          expect(r).toBe(rows.filter((i) => p.pred[i] === c).length / rows.length);
        });
      }
    } finally {
      await Promise.all([raw.close(), zTrain.close(), zTest.close()]);
    }
    // The classifier learns the separable classes from 24 labels.
    const last = results.cells.filter((c) => c.budget === 24);
    expect(Math.min(...last.map((c) => c.accuracy))).toBeGreaterThan(1 / C);
  });
});

describe('trainModel with a labelled set of one class', () => {
  it('trains no classifier and predicts that class for every test row (fused and per modality)', async () => {
    const rng = testRng();
    const d = makeEvalData(rng, { perClass: 10 });
    const z = zScored(d);
    const part = (x: ArrayLike<number>, dim: number, rows: Int32Array) => Float32Array.from(Array.from(rows).flatMap((r) => Array.from({ length: dim }, (_, j) => x[r * dim + j])));
    const data: ModelData = {
      modalities: ['image', 'audio'],
      dims: d.dims,
      classes: d.classes.length,
      trainRaw: [part(d.image, 6, d.split.train), part(d.audio, 6, d.split.train)],
      testRaw: [part(d.image, 6, d.split.test), part(d.audio, 6, d.split.test)],
      train: z.map((x) => part(x, 6, d.split.train)),
      test: z.map((x) => part(x, 6, d.split.test)),
      trainLabels: Int32Array.from(d.split.train, (r) => d.labels[r]),
      testLabels: Int32Array.from(d.split.test, (r) => d.labels[r]),
    };
    const c = rng.int(d.classes.length);
    const ofClass = Int32Array.from(Array.from(data.trainLabels.keys()).filter((p) => data.trainLabels[p] === c).slice(0, 3));
    const one = await trainModel('late-fusion', data, ofClass, { seed: rng.int(100) });
    expect(one.classifier).toBeUndefined();
    expect(Array.from(one.pred)).toEqual(new Array(data.testLabels.length).fill(c));
    for (const m of data.modalities) expect(Array.from(one.perModality[m])).toEqual(new Array(data.testLabels.length).fill(c));
    const other = Array.from(data.trainLabels.keys()).find((p) => data.trainLabels[p] !== c)!;
    const two = await trainModel('late-fusion', data, Int32Array.from([...ofClass, other]), { seed: 1 });
    expect(two.classifier?.model).toBe('late-fusion');
  });
});

describe('activeLearningRound end to end', () => {
  for (const backend of BACKENDS.filter((b) => b === 'js' || b === 'cpu')) {
    it(`${backend}: trains late fusion on the labelled rows, picks with it (bmmal, then entropy), and the labelled set grows by the picks`, async () => {
      const rng = testRng();
      const d = makeEvalData(rng, { perClass: 20 });
      const rows = Int32Array.from({ length: d.rows }, (_, i) => i);
      const pool = await poolOf(d, zScored(d), rows);
      const seed = rng.int(1000);
      // Two random rows of each class are labelled, and two more; only their labels are known (−1
      // elsewhere): the round must not read the others.
      const order = Array.from(rng.permutation(d.rows));
      const perClass = [0, 1, 2, 3].flatMap((c) => order.filter((r) => d.labels[r] === c).slice(0, 2));
      const labeled0 = [...perClass, ...order.filter((r) => !perClass.includes(r)).slice(0, 2)].sort((a, b) => a - b);
      const labels = new Int32Array(d.rows).fill(-1);
      for (const r of labeled0) labels[r] = d.labels[r];
      try {
        let labeled = labeled0;
        for (const [round, strategy] of (['bmmal', 'entropy'] as const).entries()) {
          const budget = 5 + round;
          const r = await activeLearningRound({ pool, labels, labeled, strategy, budget, model: 'late-fusion', seed, backend });
          // The same as training, then selecting, by hand.
          const model = await trainClassifier(pool, labels, { model: 'late-fusion', labeled, seed, backend });
          expect(Array.from((await r.classifier.predict(pool)).probs)).toEqual(Array.from((await model.predict(pool)).probs));
          const direct = await select(pool, { strategy, budget, labeled, model, seed, backend });
          expect(Array.from(r.picks)).toEqual(Array.from(direct.indices));
          expect(r.picks).toHaveLength(budget);
          expect(r.picks.some((p) => labeled.includes(p))).toBe(false);
          expect(Array.from(r.labeled)).toEqual([...labeled, ...r.picks].sort((a, b) => a - b));
          for (const p of r.picks) labels[p] = d.labels[p]; // the user labels the picks
          labeled = Array.from(r.labeled);
        }
        expect(labeled).toHaveLength(10 + 5 + 6);
      } finally {
        await pool.close();
      }
    });
  }
});
