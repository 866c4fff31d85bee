// pairpick's k-means objective against scikit-learn's KMeans (greedy k-means++, n_init = 1, the
// same K, the same rows) on the bundled datasets' train splits, raw features: each modality
// L2-normalised and concatenated, as pairpick clusters them. For every dataset, K and seed it runs
// pairpick's kmeans strategy (cpu backend) once per seeding and scikit-learn once, and reports
// objective(pairpick) / objective(scikit-learn) − 1 (positive: pairpick's clustering is worse).
//   node bench/kmeans-sklearn.mjs [--datasets av-digits,clipart-it] [--ks 10,20,50,100]
//        [--seeds 0,1,2,3,4] [--seedings kmeans++,greedy-kmeans++] [--python /usr/bin/python3]
// Needs Debian's python3-sklearn. Results: bench/results/kmeans-sklearn.json.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeMachine, flag, importDist, root, writeResults } from './common.mjs';

const pp = await importDist();
const datasets = flag('datasets', 'av-digits,clipart-it').split(',');
const ks = flag('ks', '10,20,50,100').split(',').map(Number);
const seeds = flag('seeds', '0,1,2,3,4').split(',').map(Number);
const seedings = flag('seedings', 'kmeans++,greedy-kmeans++').split(',');
const python = flag('python', '/usr/bin/python3');
const ITERATIONS = 100;

/** The train rows of a dataset as pairpick clusters them: per modality L2-normalised (float64, then
 * float32), concatenated. */
async function trainRows(name) {
  const ds = await pp.loadDataset(name);
  try {
    const train = ds.split.train;
    const parts = [];
    for (const m of ds.pool.modalities) {
      const src = ds.pool.source(m);
      const all = await src.read(0, src.rows);
      const x = new Float32Array(train.length * src.dim);
      train.forEach((i, r) => {
        let s = 0;
        for (let t = 0; t < src.dim; t++) s += all[i * src.dim + t] ** 2;
        const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
        for (let t = 0; t < src.dim; t++) x[r * src.dim + t] = all[i * src.dim + t] * inv;
      });
      parts.push({ name: m, data: x, dim: src.dim });
    }
    return { rows: train.length, parts };
  } finally {
    await ds.pool.close();
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'pairpick-kmeans-sklearn-'));
const results = [];
try {
  for (const name of datasets) {
    const { rows, parts } = await trainRows(name);
    const dim = parts.reduce((s, p) => s + p.dim, 0);
    const u = new Float32Array(rows * dim);
    for (let i = 0; i < rows; i++) {
      let o = 0;
      for (const p of parts) {
        u.set(p.data.subarray(i * p.dim, (i + 1) * p.dim), i * dim + o);
        o += p.dim;
      }
    }
    const file = join(tmp, `${name}.f32`);
    writeFileSync(file, Buffer.from(u.buffer, u.byteOffset, u.byteLength));
    const py = spawnSync(python, [join(root, 'bench', 'peers', 'sklearn_kmeans.py'), file, String(rows), String(dim), String(ITERATIONS), ks.join(','), seeds.join(',')], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '2' },
    });
    if (py.status !== 0) throw new Error(`sklearn_kmeans.py failed: ${py.stderr}`);
    const theirs = JSON.parse(py.stdout).runs;
    const pool = await pp.openPool(Object.fromEntries(parts.map((p) => [p.name, { data: p.data, dim: p.dim }])));
    try {
      for (const k of ks) {
        for (const seed of seeds) {
          const sk = theirs.find((r) => r.k === k && r.seed === seed);
          const row = { dataset: name, rows, dim, k, seed, sklearn: sk.objective, sklearnIterations: sk.iterations };
          for (const seeding of seedings) {
            const started = performance.now();
            const sel = await pp.select(pool, { strategy: 'kmeans', budget: k, seed, seeding, iterations: ITERATIONS, backend: 'cpu' });
            row[seeding] = { objective: sel.params.objective, iterations: sel.params.iterations, seconds: (performance.now() - started) / 1000, vsSklearn: sel.params.objective / sk.objective - 1 };
          }
          results.push(row);
          console.log(`${name} K=${k} seed=${seed} sklearn ${sk.objective.toFixed(3)} ` + seedings.map((s) => `${s} ${(100 * row[s].vsSklearn).toFixed(2)} %`).join('  '));
        }
      }
    } finally {
      await pool.close();
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const summary = {};
for (const seeding of seedings) {
  const gaps = results.map((r) => r[seeding].vsSklearn);
  summary[seeding] = {
    meanPercent: (100 * gaps.reduce((s, g) => s + g, 0)) / gaps.length,
    worstPercent: 100 * Math.max(...gaps),
    bestPercent: 100 * Math.min(...gaps),
    worseThanSklearn: gaps.filter((g) => g > 0).length,
    runs: gaps.length,
  };
  for (const name of datasets) {
    const g = results.filter((r) => r.dataset === name).map((r) => r[seeding].vsSklearn);
    summary[seeding][name] = { meanPercent: (100 * g.reduce((s, x) => s + x, 0)) / g.length, worstPercent: 100 * Math.max(...g) };
  }
}
console.log(JSON.stringify(summary, null, 2));
writeResults('kmeans-sklearn', { machine: describeMachine(pp), iterations: ITERATIONS, summary, results });
