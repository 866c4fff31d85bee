// evaluate(): every cell of results.json against select() and an independent float64 ridge
// reference (primal normal equations, not the probe's dual form) with metrics recomputed from
// scratch; cancellation + resume giving byte-identical results (times aside); the plan's checks
// before any work.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { evaluate, roundSeed, type EvaluateResults } from '../src/eval/evaluate.js';
import type { EvaluateProgress } from '../src/eval/plan.js';
import { openPool } from '../src/io/pool.js';
import { registerStrategy, type AnyStrategy } from '../src/select/registry.js';
import { select } from '../src/select/select.js';
import { defineStrategy } from '../src/select/strategy.js';
import { rejectsWith } from './helpers/errors.js';
import { evalDataset, makeEvalData, zScored, type EvalData } from './helpers/eval-data.js';
import { testRng } from './helpers/random.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-eval-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const LAMBDA = 1;

/** Solves A X = B (n×n, n×m) by Gaussian elimination with partial pivoting, float64. */
function solve(a: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  const A = Float64Array.from(a);
  const X = Float64Array.from(b);
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(A[i * n + k]) > Math.abs(A[p * n + k])) p = i;
    for (let j = 0; j < n; j++) [A[k * n + j], A[p * n + j]] = [A[p * n + j], A[k * n + j]];
    for (let j = 0; j < m; j++) [X[k * m + j], X[p * m + j]] = [X[p * m + j], X[k * m + j]];
    for (let i = k + 1; i < n; i++) {
      const f = A[i * n + k] / A[k * n + k];
      for (let j = k; j < n; j++) A[i * n + j] -= f * A[k * n + j];
      for (let j = 0; j < m; j++) X[i * m + j] -= f * X[k * m + j];
    }
  }
  for (let k = n - 1; k >= 0; k--) {
    for (let j = 0; j < m; j++) {
      let s = X[k * m + j];
      for (let i = k + 1; i < n; i++) s -= A[k * n + i] * X[i * m + j];
      X[k * m + j] = s / A[k * n + k];
    }
  }
  return X;
}

/**
 * Reference ridge (one-vs-rest on one-hot targets minus the class prior, intercept by centring on
 * the training rows, penalty λ): W = (XᵀX + λI)⁻¹ XᵀY in the primal. Returns each test row's
 * predicted class and its top-2 score margin.
 */
function refRidge(d: EvalData, z: Float64Array[], modalities: number[], picks: number[]): { pred: number[]; margin: number[] } {
  const C = d.classes.length;
  const dims = modalities.map((m) => d.dims[m]);
  const D = dims.reduce((s, x) => s + x, 0);
  const row = (r: number) => {
    const v = new Float64Array(D);
    let o = 0;
    modalities.forEach((m, k) => {
      for (let j = 0; j < dims[k]; j++) v[o + j] = z[m][r * dims[k] + j];
      o += dims[k];
    });
    return v;
  };
  const B = picks.length;
  const mean = new Float64Array(D);
  const X = picks.map(row);
  for (const x of X) for (let j = 0; j < D; j++) mean[j] += x[j] / B;
  for (const x of X) for (let j = 0; j < D; j++) x[j] -= mean[j];
  const prior = new Float64Array(C);
  for (const p of picks) prior[d.labels[p]] += 1 / B;
  const A = new Float64Array(D * D);
  const rhs = new Float64Array(D * C);
  X.forEach((x, t) => {
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) A[i * D + j] += x[i] * x[j];
      for (let c = 0; c < C; c++) rhs[i * C + c] += x[i] * ((d.labels[picks[t]] === c ? 1 : 0) - prior[c]);
    }
  });
  for (let i = 0; i < D; i++) A[i * D + i] += LAMBDA;
  const W = solve(A, D, rhs, C);
  const pred: number[] = [];
  const margin: number[] = [];
  for (const r of d.split.test) {
    const x = row(r);
    const s = Array.from(prior);
    for (let j = 0; j < D; j++) for (let c = 0; c < C; c++) s[c] += (x[j] - mean[j]) * W[j * C + c];
    const order = s.map((v, c) => [v, c]).sort((a, b) => b[0] - a[0]);
    pred.push(order[0][1]);
    margin.push(order[0][0] - order[1][0]);
  }
  return { pred, margin };
}

function refScores(truth: number[], pred: number[], C: number) {
  const recall: number[] = [];
  let f1 = 0;
  for (let c = 0; c < C; c++) {
    const tp = truth.filter((t, i) => t === c && pred[i] === c).length;
    const support = truth.filter((t) => t === c).length;
    const predicted = pred.filter((p) => p === c).length;
    recall.push(support ? tp / support : 0);
    const precision = predicted ? tp / predicted : 0;
    const rec = support ? tp / support : 0;
    f1 += precision + rec > 0 ? (2 * precision * rec) / (precision + rec) : 0;
  }
  return { accuracy: truth.filter((t, i) => t === pred[i]).length / truth.length, macroF1: f1 / C, recall };
}

/** Reference gap and alignment of the picks on unit-normalised raw rows (equal dims). */
function refGeometry(d: EvalData, picks: number[]): { gap: number; alignment: number } {
  const dim = d.dims[0];
  const unit = (x: Float32Array, r: number) => {
    const v = Array.from(x.subarray(r * dim, (r + 1) * dim), Number);
    const n = Math.hypot(...v);
    return v.map((a) => a / n);
  };
  const diff = new Float64Array(dim);
  let align = 0;
  for (const p of picks) {
    const a = unit(d.image, p);
    const b = unit(d.audio, p);
    for (let j = 0; j < dim; j++) diff[j] += (a[j] - b[j]) / picks.length;
    align += a.reduce((s, v, j) => s + v * b[j], 0) / picks.length;
  }
  return { gap: Math.hypot(...diff), alignment: align };
}

const withoutTimes = (r: EvaluateResults) => JSON.stringify({ ...r, times: undefined });

describe('evaluate', () => {
  it('every cell equals select() on the train split + a float64 ridge reference, metrics recomputed', async () => {
    const rng = testRng();
    const d = makeEvalData(rng);
    const dataset = await evalDataset(d);
    const seeds = [rng.int(1000), 1000 + rng.int(1000)];
    const budgets = [8, 16, 28];
    const out = join(dir, 'reference');
    let results: EvaluateResults;
    try {
      results = await evaluate(dataset, { cold: ['kcenter', 'kmeans', 'random'], warm: ['random', 'kcenter'], budgets, seeds, model: 'ridge', stage1: false, outDir: out });
    } finally {
      await dataset.pool.close();
    }
    expect(results.cells).toHaveLength(5 * budgets.length * seeds.length);
    const z = zScored(d);
    const train = d.split.train;
    const rowsOf = (x: Float32Array) => Float32Array.from(Array.from(train).flatMap((r) => Array.from(x.subarray(r * 6, r * 6 + 6))));
    const pool = await openPool({ image: { data: rowsOf(d.image), dim: 6 }, audio: { data: rowsOf(d.audio), dim: 6 } });
    const truth = Array.from(d.split.test, (r) => d.labels[r]);
    const C = d.classes.length;
    try {
      for (const cell of results.cells) {
        // The picks: select() itself, on the train split's rows in split order.
        let expected: number[];
        if (cell.kind === 'cold') {
          expected = Array.from((await select(pool, { strategy: cell.strategy as 'kcenter', budget: cell.budget, seed: cell.seed })).indices, (p) => train[p]);
        } else {
          const previous = results.cells.find((c) => c.arm === cell.arm && c.seed === cell.seed && c.round === cell.round - 1);
          if (!previous) {
            expected = Array.from((await select(pool, { strategy: 'random', budget: cell.budget, seed: cell.seed })).indices, (p) => train[p]);
          } else {
            const labeled = previous.picks.map((r) => train.indexOf(r));
            const more = await select(pool, { strategy: cell.strategy as 'kcenter', budget: cell.budget - labeled.length, labeled, seed: roundSeed(cell.seed, cell.round) });
            expected = [...previous.picks, ...Array.from(more.indices, (p) => train[p])];
          }
        }
        expect(cell.picks, cell.id).toEqual(expected);
        expect(new Set(cell.picks).size).toBe(cell.budget);

        // The model's scores against the reference. A test row whose reference top-2 margin is
        // within float32 rounding of a tie may legitimately go either way: each such row can move
        // accuracy by 1/T (and a class's recall by 1/support); with none, the values agree to rounding.
        const fused = refRidge(d, z, [0, 1], cell.picks);
        const near = fused.margin.filter((m) => m < 1e-4).length;
        const ref = refScores(truth, fused.pred, C);
        expect(Math.abs(cell.accuracy - ref.accuracy), cell.id).toBeLessThanOrEqual(near / truth.length + 1e-12);
        if (near === 0) {
          expect(cell.macroF1).toBeCloseTo(ref.macroF1, 12);
          cell.recall.forEach((v, c) => expect(v).toBeCloseTo(ref.recall[c], 12));
        }
        (['image', 'audio'] as const).forEach((name, m) => {
          const alone = refRidge(d, z, [m], cell.picks);
          const k = alone.margin.filter((x) => x < 1e-4).length;
          expect(Math.abs(cell.perModality[name] - refScores(truth, alone.pred, C).accuracy)).toBeLessThanOrEqual(k / truth.length + 1e-12);
        });
        const histogram = new Array(C).fill(0);
        for (const p of cell.picks) histogram[d.labels[p]]++;
        expect(cell.histogram).toEqual(histogram);
        expect(cell.covered).toBe(histogram.filter((h) => h > 0).length);
        // Geometry: float32 unit rows summed in float64 vs float64 throughout: error ≲ dim · 2⁻²⁴ per term.
        const g = refGeometry(d, cell.picks);
        expect(Math.abs(cell.gap! - g.gap)).toBeLessThan(1e-5);
        expect(Math.abs(cell.alignment! - g.alignment)).toBeLessThan(1e-5);
      }
    } finally {
      await pool.close();
    }
    // The cell files hold the same cells, with their times.
    const files = (await readdir(join(out, 'cells'))).filter((f) => !f.startsWith('stage1'));
    expect(files).toHaveLength(results.cells.length);
    const one = JSON.parse(await readFile(join(out, 'cells', `${results.cells[3].id}.json`), 'utf8'));
    expect({ ...one, seconds: undefined }).toEqual({ ...results.cells[3], seconds: undefined });
    expect(one.seconds.selection).toBeGreaterThanOrEqual(0);
    expect(results.times.cells[results.cells[3].id]).toEqual(one.seconds);
    // results.json on disk is what evaluate() returned.
    expect(JSON.parse(await readFile(join(out, 'results.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(results)));

    // The summary from the cells: mean ± std over seeds, gain over random per seed.
    for (const s of results.summary) {
      s.points.forEach((p) => {
        const acc = results.cells.filter((c) => c.arm === s.arm && c.budget === p.budget).map((c) => c.accuracy);
        const mean = acc.reduce((a, b) => a + b, 0) / acc.length;
        expect(p.accuracy.mean).toBeCloseTo(mean, 12);
        expect(p.accuracy.std).toBeCloseTo(Math.sqrt(acc.reduce((a, b) => a + (b - mean) ** 2, 0) / (acc.length - 1)), 12);
      });
      const perSeed = (arm: string) => seeds.map((sd) => budgets.reduce((a, b) => a + results.cells.find((c) => c.arm === arm && c.seed === sd && c.budget === b)!.accuracy, 0) / budgets.length);
      const gains = perSeed(s.arm).map((v, i) => v - perSeed('cold:random')[i]);
      expect(s.gainOverRandom!.mean).toBeCloseTo((gains[0] + gains[1]) / 2, 12);
    }
    expect(results.reference).toBe('cold:random');
    expect(results.logX).toBe(false);
  });

  it('cancelled mid-way and resumed: results.json identical to an uninterrupted run (times aside), stage 1 included', async () => {
    const rng = testRng();
    const d = makeEvalData(rng, { perClass: 30 });
    const options = {
      cold: ['mmcsal', 'random'],
      warm: ['random', 'kcenter'],
      budgets: [6, 12, 20],
      seeds: [rng.int(500), 500 + rng.int(500)],
      model: 'ridge' as const,
      stage1: { epochs: 2, hidden: 16, dim: 8, prototypes: 4, batch: 32 },
    };
    const whole = join(dir, 'whole');
    const cut = join(dir, 'cut');
    let dataset = await evalDataset(d);
    let full: EvaluateResults;
    try {
      full = await evaluate(dataset, { ...options, outDir: whole });
      // Cells run seed by seed, arms in order: stop inside the second seed's last warm arm, after
      // its first round, so the resumed run restarts stage 1 and continues a warm arm from its file.
      const controller = new AbortController();
      const total = full.cells.length;
      const stopAt = total - 2;
      let seen: EvaluateProgress | undefined;
      await rejectsWith(
        evaluate(dataset, {
          ...options,
          outDir: cut,
          signal: controller.signal,
          onProgress: (p) => {
            seen = p;
            if (p.done >= stopAt) controller.abort();
          },
        }),
        'E_ABORTED',
      );
      expect(seen!.done).toBe(stopAt);
      expect(existsSync(join(cut, 'results.json'))).toBe(false);
      const kept = (await readdir(join(cut, 'cells'))).filter((f) => !f.startsWith('stage1'));
      expect(kept).toHaveLength(stopAt);
      expect((await readdir(join(cut, 'cells'))).some((f) => f.endsWith('.tmp'))).toBe(false);
      // Without resume the folder is refused; with another plan too.
      await rejectsWith(evaluate(dataset, { ...options, outDir: cut }), 'E_OPTION', 'already holds a run', 'resume');
      await rejectsWith(evaluate(dataset, { ...options, budgets: [6, 12, 21], outDir: cut, resume: true }), 'E_OPTION', "plan differs in 'options'");
      // Resume: the finished cells are skipped (progress starts at them).
      let first: EvaluateProgress | undefined;
      await dataset.pool.close();
      dataset = await evalDataset(d);
      const resumed = await evaluate(dataset, { ...options, outDir: cut, resume: true, onProgress: (p) => void (first ??= p) });
      expect(first!.skipped).toBe(stopAt);
      expect(withoutTimes(resumed)).toBe(withoutTimes(full));
      const onDisk = async (folder: string) => withoutTimes(JSON.parse(await readFile(join(folder, 'results.json'), 'utf8')));
      expect(await onDisk(cut)).toBe(await onDisk(whole));
      expect(full.stage1).toHaveLength(2);
      // MMCSAL's default ran on the embedding joined with the raw train rows stage 1 embedded.
      const spaces = full.cells.filter((c) => c.strategy === 'mmcsal').map((c) => c.space);
      expect(spaces).toEqual(Array(options.budgets.length * options.seeds.length).fill('embedding+inputs'));
    } finally {
      await dataset.pool.close();
    }
  });

  it('checks the whole plan before any work: bad labels, split, budgets, strategies, model', async () => {
    const rng = testRng();
    const d = makeEvalData(rng, { perClass: 10 });
    const dataset = await evalDataset(d);
    const none = join(dir, 'never-created');
    const run = (over: Record<string, unknown>, data = dataset) => evaluate(data, { cold: ['random'], budgets: [4, 8], seeds: [0], model: 'ridge', stage1: false, outDir: none, ...over });
    try {
      await rejectsWith(run({}, { ...dataset, labels: d.labels.subarray(1) }), 'E_SHAPE', `${d.rows - 1} rows`, `${d.rows}`);
      await rejectsWith(run({}, { ...dataset, labels: Int32Array.from(d.labels, (l, i) => (i === 7 ? 9 : l)) }), 'E_SHAPE', 'row 7');
      await rejectsWith(run({}, { ...dataset, split: { train: Int32Array.from({ length: d.rows }, (_, i) => i), test: new Int32Array(0) } }), 'E_SHAPE', 'empty test part');
      const noClass2 = d.split.train.filter((r) => d.labels[r] !== 2);
      await rejectsWith(run({}, { ...dataset, split: { train: noClass2, test: d.split.test } }), 'E_SHAPE', "class 'class2'", 'train part');
      await rejectsWith(run({}, { ...dataset, split: { train: d.split.train, test: Int32Array.of(d.split.train[0]) } }), 'E_SHAPE', 'both the train and the test');
      await rejectsWith(run({ budgets: [4, d.split.train.length + 1] }), 'E_BUDGET', `budget ${d.split.train.length + 1}`, `${d.split.train.length} rows`);
      await rejectsWith(run({ budgets: [8, 4] }), 'E_BUDGET', 'increase');
      await rejectsWith(run({ cold: ['random', 'nosuch'] }), 'E_OPTION', "option 'cold'", "'nosuch'");
      await rejectsWith(run({ warm: ['entropy'] }), 'E_OPTION', "option 'warm'", "'entropy'");
      await rejectsWith(run({ warm: ['random'], budgets: [8] }), 'E_BUDGET', 'two budgets');
      // Warm strategies read the classifier trained each round: not the ridge probe, and BMMAL
      // only a late-fusion one (its modality contributions).
      await rejectsWith(run({ warm: ['badge'] }), 'E_OPTION', "warm strategy 'badge'", "'late-fusion' or 'mla'", "not 'ridge'");
      await rejectsWith(run({ warm: ['bmmal'], model: 'mla' }), 'E_OPTION', "option 'warm'", "'bmmal' needs a late-fusion model", "'mla'");
      await rejectsWith(run({ model: 'forest' }), 'E_OPTION', "'model'", 'forest');
      await rejectsWith(run({ seeds: [1, 1] }), 'E_OPTION', 'seed 1');
      await rejectsWith(run({ budgets: [4], init: 4 }), 'E_OPTION', 'not both');
      await rejectsWith(run({ stage1: { seed: 3 } }), 'E_OPTION', "'seed'");
      await rejectsWith(run({ stage1: { epochs: 0 } }), 'E_OPTION', 'epochs');
      await rejectsWith(run({ cold: [] }), 'E_OPTION', 'no strategies');
      await rejectsWith(run({ frobnicate: 1 }), 'E_OPTION', 'frobnicate');
      // A warm strategy registered in the registry is known to evaluate() at once; it reads a
      // classifier, which the ridge model is not.
      const unregister = registerStrategy(
        defineStrategy({
          name: 'toywarm',
          kind: 'warm',
          doc: 'test toy: reads a classifier score per row',
          options: {},
          inputs: { scores: { doc: 'a score per row', dim: 1 } },
          weights: { select: 1 },
          readsPool: false,
          async run() {
            return { indices: new Int32Array(0) };
          },
        }) as AnyStrategy,
      );
      try {
        await rejectsWith(run({ warm: ['toywarm'] }), 'E_OPTION', "warm strategy 'toywarm' reads a trained classifier", "'ridge'");
        await rejectsWith(run({ cold: ['toywarm'] }), 'E_OPTION', "'toywarm' is a warm-start strategy", "'warm'");
      } finally {
        unregister();
      }
      expect(existsSync(none)).toBe(false);
      // init/step/rounds make the same budgets.
      const a = await run({ budgets: undefined, init: 4, step: 3, rounds: 2, outDir: join(dir, 'seq') });
      expect(a.options.budgets).toEqual([4, 7, 10]);
    } finally {
      await dataset.pool.close();
    }
  });

  it('a cell file that is not the cell it is named after is refused on resume, naming it', async () => {
    const rng = testRng();
    const d = makeEvalData(rng, { perClass: 10 });
    const dataset = await evalDataset(d);
    const out = join(dir, 'tampered');
    try {
      const opts = { cold: ['random'], budgets: [4, 8], seeds: [0], model: 'ridge' as const, stage1: false as const, outDir: out };
      const r = await evaluate(dataset, opts);
      await writeFile(join(out, 'cells', `${r.cells[1].id}.json`), '{"id":"other"}\n');
      await rejectsWith(evaluate(dataset, { ...opts, resume: true }), 'E_FORMAT', r.cells[1].id);
    } finally {
      await dataset.pool.close();
    }
  });
});
