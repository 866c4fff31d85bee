// One pairpick contender of bench/peers.mjs, in its own process: prints one JSON line.
//   node bench/peers/pairpick_child.mjs facility X.npy K lazy|stochastic SEED
//   node bench/peers/pairpick_child.mjs kmeans X.npy K ITERATIONS SEEDING SEED
//   node bench/peers/pairpick_child.mjs epoch ROWS DIM_A DIM_B EPOCHS
//   node bench/peers/pairpick_child.mjs knn Q.npy R.npy K
//   node bench/peers/pairpick_child.mjs kcenter X.npy BUDGET
//   node bench/peers/pairpick_child.mjs infonce B DIM REPEAT
import { importDist, normals, timedSelection } from '../common.mjs';

const pp = await importDist();
const [workload, ...a] = process.argv.slice(2);
const rss = () => process.resourceUsage().maxRSS * 1024;
let out;
if (workload === 'facility') {
  const [file, k, optimizer, seed] = a;
  const r = await timedSelection(pp, [file], { strategy: 'facility', budget: Number(k), optimizer, seed: Number(seed), backend: 'cpu' });
  out = { seconds: r.seconds, phases: r.phases, picks: Array.from(r.sel.indices), cached: r.sel.params.cached, tableBytes: r.sel.params.peakBytes, memoryBudgetMiB: r.sel.params.memoryBudget, maxRssBytes: rss() };
} else if (workload === 'kmeans') {
  const [file, k, iterations, seeding, seed] = a;
  const r = await timedSelection(pp, [file], { strategy: 'kmeans', budget: Number(k), iterations: Number(iterations), seeding, seed: Number(seed), backend: 'cpu' });
  out = { seconds: r.seconds, phases: r.phases, objective: r.sel.params.objective, iterations: r.sel.params.iterations, maxRssBytes: rss() };
} else if (workload === 'epoch') {
  const [rows, da, db, epochs] = a.map(Number);
  const pool = await pp.openPool({ a: { data: normals(rows * da, 1), dim: da }, b: { data: normals(rows * db, 2), dim: db } });
  const proj = await pp.fitProjection(pool, { epochs, backend: 'cpu' });
  const seconds = proj.history.map((h) => h.seconds);
  out = { seconds: seconds[seconds.length - 1], epochs: seconds, maxRssBytes: rss() };
} else if (workload === 'knn') {
  const [qFile, rFile, k] = a;
  const q = await pp.readNpy(qFile);
  const r = await pp.readNpy(rFile);
  const [rowsQ, dim] = q.shape;
  const started = performance.now();
  const res = await pp.kernels.knn(q.data, r.data, { rowsQ, rowsR: r.shape[0], dim, k: Number(k), metric: 'sqeuclidean', backend: 'cpu' });
  out = { seconds: (performance.now() - started) / 1000, indices: Array.from(res.indices.subarray(0, 200 * Number(k))), maxRssBytes: rss() };
} else if (workload === 'kcenter') {
  const [file, budget] = a;
  const r = await timedSelection(pp, [file], { strategy: 'kcenter', budget: Number(budget), backend: 'cpu' });
  out = { seconds: r.seconds, phases: r.phases, picks: Array.from(r.sel.indices.subarray(0, 20)), maxRssBytes: rss() };
} else if (workload === 'infonce') {
  const [b, dim, repeat] = a.map(Number);
  const unit = (seed) => {
    const z = normals(b * dim, seed);
    for (let i = 0; i < b; i++) {
      let s = 0;
      for (let t = 0; t < dim; t++) s += z[i * dim + t] ** 2;
      for (let t = 0; t < dim; t++) z[i * dim + t] /= Math.sqrt(s);
    }
    return z;
  };
  const za = unit(1);
  const zb = unit(2);
  let best = Infinity;
  let loss;
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    loss = (await pp.kernels.infoNCE(za, zb, { rows: b, dim, temperature: 0.07, backend: 'cpu' })).loss;
    best = Math.min(best, (performance.now() - started) / 1000);
  }
  out = { seconds: best, loss, maxRssBytes: rss() };
} else {
  throw new Error(`unknown workload ${workload}`);
}
console.log(JSON.stringify(out));
