#!/usr/bin/env node
// One stage-1 training epoch (on dist/ — run `npx tsup` first): the AV-Digits train split
// (6,880 pairs, image 784-D + audio 60-D; a synthetic pool of the same shape with --synthetic),
// default options (MLP 512 → 128, K = 64, batch 1024), on the JS fallback, the native cpu backend
// and cuda when available. The time is the epoch's optimisation steps (history[0].seconds; the gap
// passes are not included), with a breakdown per backend op and the JS glue around them
// (gathering rows, normalisation, the losses' bookkeeping). Target: cpu ≥ 20× the JS fallback.
// Prints a table and writes bench/results/train-<machine>.json.
//
//   node bench/train.mjs [--repeat 3] [--synthetic] [--backends js,cpu,cuda] [--out file.json]
import { args, describeMachine, flag, importDist, normals, writeResults } from './common.mjs';

const pp = await importDist();

const repeat = Number(flag('repeat', 3));
const synthetic = args.includes('--synthetic');
const available = pp.backends().filter((b) => b.available).map((b) => b.name);
const wanted = flag('backends', 'js,cpu,cuda').split(',').filter((b) => available.includes(b));

let pool;
let dataName;
if (synthetic) {
  const rows = 6880;
  pool = await pp.openPool({ image: { data: normals(rows * 784, 1), dim: 784 }, audio: { data: normals(rows * 60, 2), dim: 60 } });
  dataName = `synthetic ${rows} × (784 + 60)`;
} else {
  const dataset = await pp.loadDataset('av-digits');
  const input = {};
  for (const name of dataset.pool.modalities) {
    const source = dataset.pool.source(name);
    input[name] = { data: await source.readRows(dataset.split.train), dim: source.dim };
  }
  await dataset.pool.close();
  pool = await pp.openPool(input);
  dataName = `AV-Digits train split ${pool.rows} × (${pool.modalities.map((n) => pool.source(n).dim).join(' + ')})`;
}

/** The backend with every op timed (wall time of each awaited call). */
function timed(name) {
  const base = pp.getBackend(name);
  const totals = {};
  const wrapped = { ...base };
  for (const op of ['matmul', 'linearForward', 'linearBackward', 'adamwStep', 'infoNCE', 'sinkhorn', 'prototypeLoss']) {
    wrapped[op] = async (...a) => {
      const t = performance.now();
      try {
        return await base[op](...a);
      } finally {
        totals[op] = (totals[op] ?? 0) + (performance.now() - t) / 1000;
      }
    };
  }
  return { backend: wrapped, totals };
}

const results = [];
for (const name of wanted) {
  const runs = [];
  const n = name === 'js' ? 1 : repeat;
  for (let i = 0; i < n; i++) {
    const { backend, totals } = timed(name);
    const projection = await pp.fitProjection(pool, { epochs: 1, seed: 0, backend });
    runs.push({ seconds: projection.history[0].seconds, loss: projection.history[0].loss });
    void totals;
  }
  runs.sort((a, b) => a.seconds - b.seconds);
  const median = runs[Math.floor(runs.length / 2)];
  results.push({ backend: name, seconds: median.seconds, runs: runs.map((r) => r.seconds), loss: median.loss });
  console.log(`${name.padEnd(5)} epoch ${median.seconds.toFixed(2)} s  (runs: ${runs.map((r) => r.seconds.toFixed(2)).join(', ')}; loss ${median.loss.toFixed(4)})`);
}

// Per-op breakdown of the training steps (the scan and gap passes excluded): one more epoch per
// backend, with the op totals reset at every progress report until the first mini-batch is done.
const breakdown = {};
for (const name of wanted.filter((b) => b !== 'js' || args.includes('--js-breakdown'))) {
  const { backend, totals } = timed(name);
  let inTraining = false;
  const snapshot = {};
  await pp.fitProjection(pool, {
    epochs: 1,
    seed: 0,
    backend,
    onProgress: (p) => {
      // Ops before the first 'train' report belong to the scan and the initial gap pass.
      if (p.phase === 'train' && !inTraining) inTraining = true;
      if (p.phase === 'train' && p.batch === p.batches) Object.assign(snapshot, totals);
      if (!inTraining) for (const k of Object.keys(totals)) totals[k] = 0;
    },
  });
  const seconds = results.find((r) => r.backend === name).seconds;
  const opSeconds = Object.values(snapshot).reduce((a, b) => a + b, 0);
  breakdown[name] = { ...Object.fromEntries(Object.entries(snapshot).map(([k, v]) => [k, +v.toFixed(4)])), glue: +(seconds - opSeconds).toFixed(4) };
  console.log(`${name.padEnd(5)} breakdown: ${Object.entries(breakdown[name]).map(([k, v]) => `${k} ${v.toFixed(3)} s`).join(', ')}`);
}

const seconds = (b) => results.find((r) => r.backend === b)?.seconds;
const ratios = {};
if (seconds('js') && seconds('cpu')) ratios.cpuVsJs = seconds('js') / seconds('cpu');
if (seconds('cpu') && seconds('cuda')) ratios.cudaVsCpu = seconds('cpu') / seconds('cuda');
for (const [k, v] of Object.entries(ratios)) console.log(`${k.padEnd(10)} ${v.toFixed(1)}×`);

writeResults('train', {
  machine: describeMachine(pp),
  bench: 'stage-1 training epoch',
  data: dataName,
  options: 'defaults: hidden 512, dim 128, prototypes 64, batch 1024, beta 1, seed 0',
  results,
  breakdown,
  ratios,
});
await pool.close();
