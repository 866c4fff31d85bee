#!/usr/bin/env node
// Downstream classifiers on AV-Digits (image 784-D + audio 60-D, 10 classes; train split 6,880,
// test split 1,720), on dist/ (`npx tsup` first). For each seed and each number of train labels
// (a seeded random subset of the train split, or all of it):
//   * test accuracy of late fusion, MLA, MLA without the head projection, and a late-fusion
//     model trained on one modality alone;
//   * each modality alone: late fusion's auxiliary head of that modality (joint training) and
//     MLA's shared head on that modality's encoder;
//   * missing modalities: 50 % of the test rows without audio, the other 50 % without the image
//     (all-NaN rows): MLA dynamic fusion vs late fusion zero-filled;
// and the forgetting measurement: during MLA training (500 labels), the shared head's accuracy on
// image features (500 test rows) just before and just after each audio step, projection on vs off.
// Writes bench/results/classifiers.json (mean ± std over seeds, and every run).
//
//   node bench/classifiers.mjs [--seeds 5] [--labels 100,500,all] [--all-epochs 20] [--epochs 100] [--backend cpu]
import { describeMachine, flag, importDist, root, writeJson } from './common.mjs';
import { join } from 'node:path';

const pp = await importDist();
const seeds = Number(flag('seeds', 5));
const labelCounts = flag('labels', '100,500,all').split(',');
const epochs = Number(flag('epochs', 100));
const allEpochs = Number(flag('all-epochs', 20));
const backend = flag('backend', 'cpu');
const out = flag('out', join(root, 'bench', 'results', 'classifiers.json'));

const dataset = await pp.loadDataset('av-digits');
const names = dataset.pool.modalities;
const read = async (rows) => Object.fromEntries(await Promise.all(names.map(async (n) => [n, { data: await dataset.pool.source(n).readRows(rows), dim: dataset.pool.source(n).dim }])));
const trainData = await read(dataset.split.train);
const testData = await read(dataset.split.test);
await dataset.pool.close();
const trainPool = await pp.openPool(trainData);
const testPool = await pp.openPool(testData);
const trainLabels = Int32Array.from(dataset.split.train, (r) => dataset.labels[r]);
const testLabels = Int32Array.from(dataset.split.test, (r) => dataset.labels[r]);
const T = testLabels.length;

// Test rows with a missing modality: even positions of a seeded order lose audio, odd ones the image.
function seededOrder(n, seed) {
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
const dropOrder = seededOrder(T, 99);
const missingData = Object.fromEntries(names.map((n) => [n, { data: Float32Array.from(testData[n].data), dim: testData[n].dim }]));
dropOrder.forEach((row, k) => {
  const n = k % 2 === 0 ? 'audio' : 'image';
  const D = missingData[n].dim;
  missingData[n].data.fill(NaN, row * D, (row + 1) * D);
});
const missingPool = await pp.openPool(missingData);

const accuracyOf = (pred) => pred.reduce((s, p, i) => s + (p === testLabels[i] ? 1 : 0), 0) / T;
const argmaxAccuracy = (probs, C) => {
  let correct = 0;
  for (let i = 0; i < T; i++) {
    let best = 0;
    for (let k = 1; k < C; k++) if (probs[i * C + k] > probs[i * C + best]) best = k;
    if (best === testLabels[i]) correct++;
  }
  return correct / T;
};

const runs = [];
const started = performance.now();
for (let seed = 0; seed < seeds; seed++) {
  const order = seededOrder(trainLabels.length, 1000 + seed);
  for (const count of labelCounts) {
    const n = count === 'all' ? trainLabels.length : Number(count);
    const labeled = order.slice(0, n).sort((a, b) => a - b);
    const ep = count === 'all' ? allEpochs : epochs;
    const common = { labeled, epochs: ep, seed, backend };
    const row = { seed, labels: count, epochs: ep };
    const t0 = performance.now();
    const lf = await pp.trainClassifier(trainPool, trainLabels, { ...common, model: 'late-fusion' });
    const mla = await pp.trainClassifier(trainPool, trainLabels, { ...common, model: 'mla' });
    const mlaOff = await pp.trainClassifier(trainPool, trainLabels, { ...common, model: 'mla', headProjection: false });
    for (const [key, clf] of [['lateFusion', lf], ['mla', mla], ['mlaNoProjection', mlaOff]]) {
      const p = await clf.predict(testPool);
      row[key] = accuracyOf(p.pred);
      names.forEach((m, k) => (row[`${key}:${m}`] = argmaxAccuracy(p.perModality[k].probs, p.classes)));
      row[`${key}:missing`] = accuracyOf((await clf.predict(missingPool)).pred);
    }
    for (const m of names) {
      const single = await pp.openPool({ [m]: trainData[m] });
      const alone = await pp.trainClassifier(single, trainLabels, { ...common, model: 'late-fusion' });
      row[`alone:${m}`] = accuracyOf((await alone.predict({ [m]: testPool.source(m) })).pred);
    }
    row.seconds = (performance.now() - t0) / 1000;
    runs.push(row);
    console.log(JSON.stringify(row));
  }
}

// Forgetting: image-only accuracy of the shared head just before and after each audio step.
const probeRows = dropOrder.slice(0, 500).sort((a, b) => a - b);
const probePool = await pp.openPool({ image: { data: (await testPool.source('image').readRows(probeRows)), dim: testData.image.dim } });
const probeLabels = probeRows.map((r) => testLabels[r]);
const forgetting = [];
for (let seed = 0; seed < seeds; seed++) {
  const labeled = seededOrder(trainLabels.length, 1000 + seed).slice(0, 500).sort((a, b) => a - b);
  for (const headProjection of [true, false]) {
    let before;
    let drops = 0;
    let dropSum = 0;
    let steps = 0;
    await pp.trainClassifier(trainPool, trainLabels, {
      labeled,
      epochs,
      seed,
      backend,
      model: 'mla',
      headProjection,
      onStep: async ({ modality, classifier }) => {
        if (modality !== 'image' && modality !== 'audio') return;
        const p = await classifier.predict(probePool, { backend });
        const acc = p.pred.reduce((s, c, i) => s + (c === probeLabels[i] ? 1 : 0), 0) / probeLabels.length;
        if (modality === 'image') before = acc;
        else if (before !== undefined) {
          dropSum += before - acc;
          drops += before - acc > 0 ? 1 : 0;
          steps++;
        }
      },
    });
    const r = { seed, headProjection, audioSteps: steps, meanImageAccuracyDrop: dropSum / steps, stepsWithADrop: drops / steps };
    forgetting.push(r);
    console.log(JSON.stringify(r));
  }
}

const stat = (xs) => {
  const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std };
};
const summary = {};
for (const count of labelCounts) {
  const rs = runs.filter((r) => r.labels === count);
  summary[count] = Object.fromEntries(Object.keys(rs[0]).filter((k) => !['seed', 'labels', 'epochs', 'seconds'].includes(k)).map((k) => [k, stat(rs.map((r) => r[k]))]));
}
const forgettingSummary = Object.fromEntries([true, false].map((on) => [on ? 'projectionOn' : 'projectionOff', stat(forgetting.filter((f) => f.headProjection === on).map((f) => f.meanImageAccuracyDrop))]));
writeJson(out, {
  machine: describeMachine(pp),
  date: new Date().toISOString(),
  command: `node bench/classifiers.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  backend,
  seeds,
  epochs: { labelled: epochs, all: allEpochs },
  summary,
  forgetting: { summary: forgettingSummary, runs: forgetting },
  runs,
  seconds: (performance.now() - started) / 1000,
});
console.log(`wrote ${out}`);
