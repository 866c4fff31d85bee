#!/usr/bin/env node
// Per-modality difficulty of the bundled datasets: a ridge probe (λ = 1, z-scored features, the
// cold-start experiment's probe) and a 1-nearest-neighbour classifier (cosine), each trained on
// the whole train split and scored on the test split; per modality and on both concatenated.
//   npx tsup && node bench/dataset-probes.mjs [--dataset clipart-it]
import { flag, importDist } from './common.mjs';

const pp = await importDist();
const name = flag('dataset', 'clipart-it');
const ds = await pp.loadDataset(name);
const { train, test } = ds.split;
const parts = [];
for (const m of ds.pool.modalities) parts.push({ name: m, dim: ds.pool.source(m).dim, data: await ds.pool.source(m).read(0, ds.pool.rows) });
const views = [...parts.map((p) => [p]), parts];
console.log(`${name}: ${ds.pool.rows} rows (${train.length} train / ${test.length} test), ${ds.classes.length} classes\n`);
console.log('| features | ridge | 1-NN (cosine) |\n|---|---:|---:|');
for (const view of views) {
  const dim = view.reduce((s, p) => s + p.dim, 0);
  const raw = new Float32Array(ds.pool.rows * dim);
  for (let r = 0; r < ds.pool.rows; r++) {
    let o = 0;
    for (const p of view) {
      raw.set(p.data.subarray(r * p.dim, (r + 1) * p.dim), r * dim + o);
      o += p.dim;
    }
  }
  const features = zscore(raw, ds.pool.rows, dim);
  // The dual ridge needs a train × train Gram matrix: fine at these sizes.
  const ridge = pp.ridgeProbeAccuracy({ features, dim, labels: ds.labels, classes: ds.classes.length }, train, test);
  console.log(`| ${view.map((p) => `${p.name} (${p.dim}-D)`).join(' + ')} | ${(100 * ridge).toFixed(1)} % | ${(100 * nearest(features, dim)).toFixed(1)} % |`);
}
await ds.pool.close();

function zscore(x, rows, dim) {
  const out = new Float32Array(rows * dim);
  for (let j = 0; j < dim; j++) {
    let mu = 0;
    for (let r = 0; r < rows; r++) mu += x[r * dim + j];
    mu /= rows;
    let v = 0;
    for (let r = 0; r < rows; r++) v += (x[r * dim + j] - mu) ** 2;
    const s = v > 0 ? 1 / Math.sqrt(v / rows) : 0;
    for (let r = 0; r < rows; r++) out[r * dim + j] = (x[r * dim + j] - mu) * s;
  }
  return out;
}

function nearest(f, dim) {
  const norm = (r) => Math.sqrt(f.subarray(r * dim, (r + 1) * dim).reduce((s, v) => s + v * v, 0)) || 1;
  const trainNorm = Float64Array.from(train, norm);
  let correct = 0;
  for (const q of test) {
    const nq = norm(q);
    let best = -Infinity;
    let label = -1;
    train.forEach((t, k) => {
      let s = 0;
      for (let j = 0; j < dim; j++) s += f[q * dim + j] * f[t * dim + j];
      s /= nq * trainNorm[k];
      if (s > best) {
        best = s;
        label = ds.labels[t];
      }
    });
    if (label === ds.labels[q]) correct++;
  }
  return correct / test.length;
}
