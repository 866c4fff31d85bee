// trainClassifier / loadClassifier (spec §4 late fusion, §6 MLA): learning on separable data,
// backends agreeing, determinism, the forward()/head() contract the warm strategies rely on,
// missing modalities, save/load, cancellation, labels files and bad inputs.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../src/backend/index.js';
import { loadClassifier, openPool, readLabels, trainClassifier, writeNpy, type Pool } from '../src/index.js';
import type { Rng } from '../src/util/rng.js';
import { rejectsWith } from './helpers/errors.js';
import { testRng } from './helpers/random.js';

const NATIVE = backends().filter((b) => b.available && b.name !== 'js').map((b) => b.name);
const ALL = ['js' as const, ...NATIVE];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-train-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Distance between the closest two of C class means (rows of a C × D matrix). */
function closestMeans(means: number[], C: number, D: number): number {
  let best = Infinity;
  for (let a = 0; a < C; a++) for (let b = a + 1; b < C; b++) best = Math.min(best, Math.hypot(...Array.from({ length: D }, (_, j) => means[a * D + j] - means[b * D + j])));
  return best;
}

/** Gaussian class clusters in two modalities: class means 3σ apart per coordinate on average, and
 * (redrawn until) at least 9σ apart in every modality, so no two classes overlap on any seed. */
function clusters(rng: Rng, N: number, C: number, dims = [10, 7]) {
  const means = dims.map((D) => {
    let m: number[];
    do m = Array.from({ length: C * D }, () => rng.normal() * 3);
    while (closestMeans(m, C, D) < 9);
    return m;
  });
  const y = Int32Array.from({ length: N }, (_, i) => (i < C ? i : rng.int(C)));
  const data = dims.map((D, m) => {
    const x = new Float32Array(N * D);
    for (let i = 0; i < N; i++) for (let j = 0; j < D; j++) x[i * D + j] = means[m][y[i] * D + j] + rng.normal();
    return x;
  });
  return { y, data, dims };
}

async function poolOf(data: Float32Array[], dims: number[]): Promise<Pool> {
  return openPool({ a: { data: data[0], dim: dims[0] }, b: { data: data[1], dim: dims[1] } });
}

const accuracy = (pred: Int32Array, y: Int32Array) => pred.reduce((s, p, i) => s + (p === y[i] ? 1 : 0), 0) / y.length;

describe('trainClassifier', () => {
  it.each(['late-fusion', 'mla'] as const)('%s learns separable clusters, the same on every backend, deterministically', async (model) => {
    const rng = testRng();
    const { y, data, dims } = clusters(rng, 240, 4);
    const pool = await poolOf(data, dims);
    const runs = [];
    for (const backend of ALL) runs.push(await trainClassifier(pool, y, { model, epochs: 6, hidden: 16, batch: 32, backend, seed: 3 }));
    // It learns: with the class means ≥ 9σ apart the clusters barely touch; 6 epochs (the backend
    // comparison below) can still be short of fitting them, 40 epochs are not.
    const learned = await trainClassifier(pool, y, { model, epochs: 40, hidden: 16, batch: 32, seed: 3 });
    expect(accuracy((await learned.predict(pool)).pred, y)).toBeGreaterThan(0.9);
    expect(runs[0].history).toHaveLength(6);
    // js accumulates in float64, cpu in fp32: after 6 epochs of ~8 steps the losses agree closely.
    for (const r of runs.slice(1)) for (let e = 0; e < 6; e++) expect(Math.abs(r.history[e].loss - runs[0].history[e].loss)).toBeLessThan(1e-4);
    const again = await trainClassifier(pool, y, { model, epochs: 6, hidden: 16, batch: 32, backend: 'js', seed: 3 });
    expect(again.head().weight).toEqual(runs[0].head().weight);
    const other = await trainClassifier(pool, y, { model, epochs: 1, hidden: 16, batch: 32, backend: 'js', seed: 4 });
    expect(other.head().weight).not.toEqual(runs[0].head().weight);
    expect(Object.keys(runs[0].history[0].parts).sort()).toEqual(model === 'mla' ? ['ce:a', 'ce:b'] : ['aux:a', 'aux:b', 'fused']);
  });

  it.each(['late-fusion', 'mla'] as const)('%s: forward() logits equal head() applied to the features (the contract of OutputLayer)', async (model) => {
    const rng = testRng();
    const { y, data, dims } = clusters(rng, 60, 3);
    const pool = await poolOf(data, dims);
    const clf = await trainClassifier(pool, y, { model, epochs: 2, hidden: 8, backend: 'js' });
    const f = await clf.forward(pool, { start: 10, count: 30 });
    const { weight, bias, classes: C, hidden: h, modalities: M } = clf.head();
    for (let i = 0; i < f.rows; i++) {
      for (let k = 0; k < C; k++) {
        let v = bias[k];
        for (let m = 0; m < M; m++) {
          for (let j = 0; j < h; j++) {
            const hm = f.features[m][i * h + j];
            v += model === 'late-fusion' ? weight[k * M * h + m * h + j] * hm : weight[k * h + j] * f.fusionWeights[i * M + m] * hm;
          }
        }
        expect(Math.abs(v - f.logits[i * C + k])).toBeLessThan(1e-4 * (1 + Math.abs(v)));
      }
    }
    const p = await clf.predict(pool);
    for (let k = 0; k < C; k++) expect(p.probs[10 * C + k]).toBeCloseTo(Math.exp(f.logits[k]) / Array.from(f.logits.subarray(0, C)).reduce((s, v) => s + Math.exp(v), 0), 5);
  });

  it('missing modalities: all-NaN rows and the mask train the same model; predict fuses only what is present', async () => {
    const rng = testRng();
    const { y, data, dims } = clusters(rng, 120, 3);
    const missingA = new Uint8Array(120);
    const missingB = new Uint8Array(120);
    for (let i = 0; i < 120; i++) {
      const u = rng.next();
      if (u < 0.2) missingA[i] = 1;
      else if (u < 0.4) missingB[i] = 1;
    }
    const withNaN = data.map((x) => Float32Array.from(x));
    for (let i = 0; i < 120; i++) {
      if (missingA[i]) withNaN[0].fill(NaN, i * dims[0], (i + 1) * dims[0]);
      if (missingB[i]) withNaN[1].fill(NaN, i * dims[1], (i + 1) * dims[1]);
    }
    const nanPool = await poolOf(withNaN, dims);
    const maskPool = await poolOf(data, dims);
    for (const model of ['late-fusion', 'mla'] as const) {
      const a = await trainClassifier(nanPool, y, { model, epochs: 3, hidden: 8, backend: 'js' });
      const b = await trainClassifier(maskPool, y, { model, epochs: 3, hidden: 8, backend: 'js', missing: { a: missingA, b: missingB } });
      expect(b.head().weight).toEqual(a.head().weight);
      const p = await a.predict(nanPool);
      for (let i = 0; i < 120; i++) {
        const w = [p.fusionWeights[i * 2], p.fusionWeights[i * 2 + 1]];
        if (missingA[i]) {
          expect(w).toEqual([0, 1]);
          expect(p.perModality[0].entropy[i]).toBeNaN();
          expect(p.perModality[0].probs[i * 3]).toBeNaN();
        } else if (missingB[i]) {
          expect(w).toEqual([1, 0]);
        } else if (model === 'mla') {
          expect(w[0] + w[1]).toBeCloseTo(1, 6);
          expect(Math.min(...w)).toBeGreaterThan(0);
        } else {
          expect(w).toEqual([1, 1]);
        }
      }
      // Only one modality given: the other is missing on every row.
      const audioOnly = await a.predict({ a: maskPool.source('a') });
      expect(Array.from(audioOnly.fusionWeights.filter((_, t) => t % 2 === 1)).every((v) => v === 0)).toBe(true);
    }
  });

  it('save → loadClassifier gives the same predictions, options, history and class names', async () => {
    const rng = testRng();
    const { y, data, dims } = clusters(rng, 80, 3);
    const pool = await poolOf(data, dims);
    for (const model of ['late-fusion', 'mla'] as const) {
      const clf = await trainClassifier(pool, { ids: y, classNames: ['cat', 'dog', 'emu'] }, { model, epochs: 2, hidden: 8, backend: 'js', ...(model === 'mla' ? { fusion: 'mean' as const } : {}) });
      const path = join(dir, `${model}.safetensors`);
      await clf.save(path);
      const back = await loadClassifier(path);
      expect(back.model).toBe(model);
      expect(back.classNames).toEqual(['cat', 'dog', 'emu']);
      expect(back.options).toEqual(clf.options);
      expect(back.history).toEqual(clf.history);
      const [p, q] = [await clf.predict(pool), await back.predict(pool)];
      expect(q.probs).toEqual(p.probs);
      expect(q.fusionWeights).toEqual(p.fusionWeights);
    }
    await writeFile(join(dir, 'junk.safetensors'), 'not a model');
    await rejectsWith(loadClassifier(join(dir, 'junk.safetensors')), 'E_FORMAT', 'junk.safetensors');
  });

  it('cancel → E_ABORTED', async () => {
    const rng = testRng();
    const { y, data, dims } = clusters(rng, 100, 3);
    const pool = await poolOf(data, dims);
    const ac = new AbortController();
    let batches = 0;
    await rejectsWith(
      trainClassifier(pool, y, { epochs: 50, batch: 10, backend: 'js', signal: ac.signal, onProgress: (p) => p.phase === 'train' && ++batches === 5 && ac.abort() }),
      'E_ABORTED',
    );
    expect(batches).toBe(5);
  });

  it('bad inputs name the culprit', async () => {
    const rng = testRng();
    const { y, data, dims } = clusters(rng, 40, 3);
    const pool = await poolOf(data, dims);
    await rejectsWith(trainClassifier(pool, y.subarray(0, 39)), 'E_SHAPE', '39', '40 rows');
    await rejectsWith(trainClassifier(pool, Int32Array.from(y, (v, i) => (i === 7 ? 5 : v)), { classes: 3 }), 'E_OPTION', 'labels[7] = 5');
    await rejectsWith(trainClassifier(pool, Int32Array.from(y, (v, i) => (i === 4 ? -2 : v))), 'E_OPTION', 'labels[4] = -2');
    await rejectsWith(trainClassifier(pool, Int32Array.from(y, (_, i) => (i < 20 ? 1 : -1))), 'E_OPTION', '1 distinct class');
    await rejectsWith(trainClassifier(pool, y, { model: 'svm' as never }), 'E_OPTION', "'model'");
    await rejectsWith(trainClassifier(pool, y, { epoch: 3 } as never), 'E_OPTION', "unknown option 'epoch'");
    await rejectsWith(trainClassifier(pool, y, { headProjection: false }), 'E_OPTION', "'headProjection' applies to model 'mla'");
    await rejectsWith(trainClassifier(pool, y, { labeled: [0, 1, 1] }), 'E_OPTION', 'twice');
    const partial = data.map((x) => Float32Array.from(x));
    partial[1][13 * dims[1] + 2] = NaN;
    await rejectsWith(trainClassifier(await poolOf(partial, dims), y, { backend: 'js' }), 'E_NAN', "modality 'b'", 'row 13');
    const none = data.map((x) => Float32Array.from(x));
    none[0].fill(NaN, 9 * dims[0], 10 * dims[0]);
    none[1].fill(NaN, 9 * dims[1], 10 * dims[1]);
    await rejectsWith(trainClassifier(await poolOf(none, dims), y, { backend: 'js' }), 'E_NAN', 'row 9');
    const clf = await trainClassifier(pool, y, { epochs: 1, hidden: 4, backend: 'js' });
    await rejectsWith(clf.predict(await poolOf(none, dims)), 'E_NAN', 'row 9', 'no modality');
    await rejectsWith(clf.predict({ c: pool.source('a') } as never), 'E_SHAPE', "no modality 'c'");
  });
});

describe('readLabels', () => {
  it('reads .npy, .json, .csv and .txt labels; strings become sorted class names; −1 / empty / null = unlabelled', async () => {
    await writeNpy(join(dir, 'l.npy'), Int32Array.of(2, -1, 0, 1), [4]);
    expect(await readLabels(join(dir, 'l.npy'))).toEqual({ ids: Int32Array.of(2, -1, 0, 1) });
    await writeFile(join(dir, 'l.json'), JSON.stringify([1, null, 0, -1]));
    expect((await readLabels(join(dir, 'l.json'))).ids).toEqual(Int32Array.of(1, -1, 0, -1));
    await writeFile(join(dir, 'l.csv'), 'dog\ncat\n\ndog\nemu\n');
    expect(await readLabels(join(dir, 'l.csv'))).toEqual({ ids: Int32Array.of(1, 0, -1, 1, 2), classNames: ['cat', 'dog', 'emu'] });
    await writeFile(join(dir, 'l.txt'), '3\r\n-1\r\n0\r\n');
    expect((await readLabels(join(dir, 'l.txt'))).ids).toEqual(Int32Array.of(3, -1, 0));
    await writeFile(join(dir, 'bad.json'), '{"a": 1}');
    await rejectsWith(readLabels(join(dir, 'bad.json')), 'E_FORMAT', 'bad.json', 'array');
    await writeFile(join(dir, 'mixed.json'), '["cat", 2.5]');
    await rejectsWith(readLabels(join(dir, 'mixed.json')), 'E_FORMAT', 'row 1');
    await writeNpy(join(dir, 'f.npy'), Float32Array.of(1, 2), [2]);
    await rejectsWith(readLabels(join(dir, 'f.npy')), 'E_FORMAT', 'integers');
    await writeFile(join(dir, 'l.xml'), '<a/>');
    await rejectsWith(readLabels(join(dir, 'l.xml')), 'E_FORMAT', '.xml');
    expect((await readdir(dir)).some((f) => f.includes('.tmp'))).toBe(false);
  });
});
