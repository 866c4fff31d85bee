#!/usr/bin/env node
// Stage-1 quality on AV-Digits (on dist/ — run `npx tsup` first). Trains the projection heads on
// the train split (6,880 image/audio pairs, no labels) with β = 1 and with β = 0 (same seed, same
// epochs), and reports:
//   * the modality gap ‖mean z_image − mean z_audio‖ before (random init) and after training;
//   * the leave-one-out 10-NN label accuracy (majority vote, ties → the nearest tied label) of the
//     concatenated embeddings [z_image; z_audio] after training, of the same heads at random
//     initialisation, and of the raw features for reference.
// Prints a table and writes bench/results/stage1-quality-<machine>.json.
//
//   node bench/stage1-quality.mjs [--epochs 20] [--seeds 0,1,2] [--backend cpu] [--out file.json]
import { describeMachine, flag, importDist, writeResults } from './common.mjs';

const pp = await importDist();

const epochs = Number(flag('epochs', 20));
const seeds = flag('seeds', '0,1,2').split(',').map(Number);
const backend = flag('backend', pp.getBackend().name);
const K = 10;

const dataset = await pp.loadDataset('av-digits');
const train = dataset.split.train;
const labels = Int32Array.from(train, (i) => dataset.labels[i]);
const rows = train.length;
// The train split as an in-memory pool (21 MB of pixels); the full dataset stays mapped.
const poolInput = {};
const raw = {};
for (const name of dataset.pool.modalities) {
  const source = dataset.pool.source(name);
  raw[name] = { data: await source.readRows(train), dim: source.dim };
  poolInput[name] = raw[name];
}
const pool = await pp.openPool(poolInput);

/** Leave-one-out k-NN label accuracy of rows × dim features (exact kNN through kernels.knn). */
async function looKnnAccuracy(data, dim, metric = 'sqeuclidean') {
  const { indices, distances } = await pp.kernels.knn(data, data, { rowsQ: rows, rowsR: rows, dim, k: K, metric, excludeSelf: true, backend });
  let correct = 0;
  const votes = new Int32Array(10);
  for (let q = 0; q < rows; q++) {
    votes.fill(0);
    for (let j = 0; j < K; j++) votes[labels[indices[q * K + j]]]++;
    const best = Math.max(...votes);
    // Tie: the label of the nearest neighbour among the tied labels.
    let predicted = -1;
    for (let j = 0; j < K && predicted < 0; j++) {
      const l = labels[indices[q * K + j]];
      if (votes[l] === best) predicted = l;
    }
    if (predicted === labels[q]) correct++;
    void distances;
  }
  return correct / rows;
}

async function concatenated(projection) {
  const embedded = await projection.embed(pool, { backend });
  const names = embedded.modalities;
  const d = projection.dim;
  const out = new Float32Array(rows * d * names.length);
  for (let m = 0; m < names.length; m++) {
    const z = await embedded.source(names[m]).read(0, rows);
    for (let r = 0; r < rows; r++) out.set(z.subarray(r * d, (r + 1) * d), (r * names.length + m) * d);
  }
  return { data: out, dim: d * names.length, perModality: await Promise.all(names.map((n) => embedded.source(n).read(0, rows))) };
}

function standardised(data, dim) {
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let i = 0; i < data.length; i++) {
    mean[i % dim] += data[i] / rows;
    sq[i % dim] += (data[i] * data[i]) / rows;
  }
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const j = i % dim;
    out[i] = (data[i] - mean[j]) / Math.sqrt(Math.max(sq[j] - mean[j] ** 2, 1e-12));
  }
  return out;
}

const results = { rows, epochs, seeds, backend, k: K, raw: {}, perSeed: [], summary: {} };
console.log(`AV-Digits train split: ${rows} pairs (${dataset.pool.modalities.map((n) => `${n} ${raw[n].dim}-D`).join(', ')}), ${epochs} epochs, seeds ${seeds.join(', ')}, backend ${backend}`);

for (const name of dataset.pool.modalities) {
  results.raw[name] = await looKnnAccuracy(standardised(raw[name].data, raw[name].dim), raw[name].dim);
}
{
  const dims = dataset.pool.modalities.map((n) => raw[n].dim);
  const total = dims.reduce((a, b) => a + b, 0);
  const both = new Float32Array(rows * total);
  let offset = 0;
  for (const name of dataset.pool.modalities) {
    const s = standardised(raw[name].data, raw[name].dim);
    const D = raw[name].dim;
    // Each modality scaled to the same total variance, so the 784 pixels do not drown the audio.
    const scale = 1 / Math.sqrt(D);
    for (let r = 0; r < rows; r++) for (let j = 0; j < D; j++) both[r * total + offset + j] = s[r * D + j] * scale;
    offset += D;
  }
  results.raw.concatenated = await looKnnAccuracy(both, total);
}

for (const seed of seeds) {
  const init = await pp.initProjection(pool, { seed, backend });
  const initEmb = await concatenated(init);
  const entry = { seed, randomInit: { gap: init.gap, knn: await looKnnAccuracy(initEmb.data, initEmb.dim) }, trained: [] };
  for (const beta of [1, 0]) {
    const started = performance.now();
    const projection = await pp.fitProjection(pool, { epochs, seed, beta, backend });
    const seconds = (performance.now() - started) / 1000;
    const emb = await concatenated(projection);
    const perModality = {};
    for (let m = 0; m < projection.modalities.length; m++) perModality[projection.modalities[m]] = await looKnnAccuracy(emb.perModality[m], projection.dim);
    entry.trained.push({
      beta,
      gapBefore: projection.gapBefore,
      gap: projection.gap,
      knn: await looKnnAccuracy(emb.data, emb.dim),
      knnPerModality: perModality,
      history: projection.history,
      seconds,
    });
  }
  results.perSeed.push(entry);
  const [b1, b0] = entry.trained;
  console.log(`seed ${seed}: gap init ${init.gap.toFixed(3)}, β=1 ${b1.gap.toFixed(3)}, β=0 ${b0.gap.toFixed(3)}; 10-NN init ${(100 * entry.randomInit.knn).toFixed(1)}%, β=1 ${(100 * b1.knn).toFixed(1)}%, β=0 ${(100 * b0.knn).toFixed(1)}%`);
}

const stats = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std };
};
const pick = (f) => stats(results.perSeed.map(f));
results.summary = {
  randomInit: { gap: pick((e) => e.randomInit.gap), knn: pick((e) => e.randomInit.knn) },
  beta1: { gap: pick((e) => e.trained[0].gap), knn: pick((e) => e.trained[0].knn), image: pick((e) => e.trained[0].knnPerModality.image), audio: pick((e) => e.trained[0].knnPerModality.audio) },
  beta0: { gap: pick((e) => e.trained[1].gap), knn: pick((e) => e.trained[1].knn), image: pick((e) => e.trained[1].knnPerModality.image), audio: pick((e) => e.trained[1].knnPerModality.audio) },
};

const pct = (x) => `${(100 * x.mean).toFixed(1)} ± ${(100 * x.std).toFixed(1)}%`;
const num = (x) => `${x.mean.toFixed(3)} ± ${x.std.toFixed(3)}`;
console.log(`\nmean ± std over ${seeds.length} seeds               modality gap       LOO 10-NN accuracy (concat)`);
for (const [name, acc] of Object.entries(results.raw)) console.log(`raw ${name.padEnd(38)} —                  ${(100 * acc).toFixed(1)}%`);
const S = results.summary;
console.log(`heads at random init                       ${num(S.randomInit.gap)}      ${pct(S.randomInit.knn)}`);
console.log(`trained, β = 1 (InfoNCE + prototypes)      ${num(S.beta1.gap)}      ${pct(S.beta1.knn)}   (image ${pct(S.beta1.image)}, audio ${pct(S.beta1.audio)})`);
console.log(`trained, β = 0 (contrastive only)          ${num(S.beta0.gap)}      ${pct(S.beta0.knn)}   (image ${pct(S.beta0.image)}, audio ${pct(S.beta0.audio)})`);

writeResults('stage1-quality', { machine: { ...describeMachine(pp), backend }, bench: 'stage1-quality', ...results });
await pool.close();
await dataset.pool.close();
