// One pairpick contender of bench/peers.mjs, in its own process: prints one JSON line.
//   node bench/peers/pairpick_child.mjs facility X.npy K lazy|stochastic SEED
//   node bench/peers/pairpick_child.mjs kmeans X.npy K ITERATIONS SEEDING SEED
//   node bench/peers/pairpick_child.mjs epoch ROWS DIM_A DIM_B EPOCHS
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
} else {
  throw new Error(`unknown workload ${workload}`);
}
console.log(JSON.stringify(out));
