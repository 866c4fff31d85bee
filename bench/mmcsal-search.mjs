#!/usr/bin/env node
// The MMCSAL stage-2 search: every variant of the grid (mmcsal's `distribution`, `space`,
// `alignment` switches and their weights) and the baselines, run by pairpick itself on the
// stage-1 embeddings cached by bench/mmcsal-embed-cache.mjs (validation pools of the TRAIN splits;
// the test splits are never touched), budgets 10/20/50/100, every cached seed. Each selection is
// scored by the cold-start experiment's ridge probe on the held-out 20 % of the train split.
// Ranks by the mean over the sets (datasets × clean/mismatched) and writes
// bench/results/mmcsal-search.json.
//   npx tsup && node bench/mmcsal-embed-cache.mjs && node bench/mmcsal-search.mjs [--seeds 5] [--grid small|full|probcover]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { COLD_START_BUDGETS as budgets, flag, importDist, root, writeJson } from './common.mjs';

const pp = await importDist();
const cache = join(root, flag('cache', 'bench/cache'));
const seeds = Number(flag('seeds', 5));
const stage1 = flag('stage1', 'b1');
const sets = String(flag('sets', 'av-digits-m0,av-digits-m20,clipart-it-m0,clipart-it-m20')).split(',');
const out = join(root, flag('out', 'bench/results/mmcsal-search.json'));
const gridName = flag('grid', 'small');

const probcoverGrid = [
  { label: 'probcover classes=budget', strategy: 'probcover' },
  ...[2, 5, 10, 20, 50].map((classes) => ({ label: `probcover classes=${classes}`, strategy: 'probcover', options: { classes } })),
];
const arms = gridName === 'probcover' ? probcoverGrid : [
  { label: 'mmcsal density (previous default)', strategy: 'mmcsal', options: { distribution: 'density', alignment: 'linear' } },
  { label: 'mmcsal density, lambdaAlign 0', strategy: 'mmcsal', options: { distribution: 'density', alignment: 'linear', lambdaAlign: 0 } },
  { label: 'facility', strategy: 'facility' },
  { label: 'kmeans', strategy: 'kmeans' },
  { label: 'typiclust', strategy: 'typiclust' },
  { label: 'probcover', strategy: 'probcover' },
  { label: 'kcenter', strategy: 'kcenter' },
  { label: 'random', strategy: 'random' },
];
const quantiles = gridName === 'full' ? [0.05, 0.1, 0.2, 0.3, 0.4] : gridName === 'small' ? [0.1, 0.2, 0.3] : [];
for (const q of quantiles) {
  arms.push({ label: `mmcsal coverage filter q=${q}`, strategy: 'mmcsal', options: { distribution: 'coverage', alignment: 'filter', alignQuantile: q } });
  arms.push({ label: `mmcsal clusters filter q=${q}`, strategy: 'mmcsal', options: { distribution: 'clusters', alignment: 'filter', alignQuantile: q } });
}
if (gridName === 'small' || gridName === 'full') arms.push({ label: 'mmcsal density filter q=0.2', strategy: 'mmcsal', options: { distribution: 'density', alignment: 'filter', alignQuantile: 0.2 } });
if (gridName === 'full') {
  for (const wDiversity of [1, 4]) {
    arms.push({ label: `mmcsal density concat wDiversity=${wDiversity} filter q=0.2`, strategy: 'mmcsal', options: { distribution: 'density', space: 'concat', wDiversity, alignment: 'filter', alignQuantile: 0.2 } });
    arms.push({ label: `mmcsal density gamma=0 wDiversity=${wDiversity} filter q=0.2`, strategy: 'mmcsal', options: { distribution: 'density', gamma: 0, wDiversity, alignment: 'filter', alignQuantile: 0.2 } });
  }
}
// Strategies whose picks for a smaller budget are a prefix of a larger one's.
const prefix = (arm) => arm.strategy === 'kcenter' || arm.strategy === 'facility' || (arm.strategy === 'mmcsal' && (arm.options.distribution ?? 'coverage') !== 'clusters');

const started = performance.now();
const acc = new Map(arms.map((a) => [a.label, {}]));
const mismatch = new Map(arms.map((a) => [a.label, {}]));
for (const set of sets) {
  const base = join(cache, set);
  const raw = await pp.readNpy(`${base}-raw.npy`);
  const labels = (await pp.readNpy(`${base}-labels.npy`)).data;
  const mismatched = (await pp.readNpy(`${base}-mismatched.npy`)).data;
  const probe = { ...standardise(raw.data, raw.shape[0], raw.shape[1]), labels, classes: Math.max(...labels) + 1 };
  for (let seed = 0; seed < seeds; seed++) {
    const embPath = `${base}-${stage1}-s${seed}-emb.npy`;
    if (!existsSync(embPath)) {
      console.error(`missing ${embPath}: run bench/mmcsal-embed-cache.mjs first`);
      process.exit(1);
    }
    const emb = await pp.readNpy(embPath);
    const [rows, m, d] = emb.shape;
    const input = {};
    for (let k = 0; k < m; k++) {
      const data = new Float32Array(rows * d);
      for (let r = 0; r < rows; r++) data.set(emb.data.subarray((r * m + k) * d, (r * m + k + 1) * d), r * d);
      input[`m${k}`] = { data, dim: d };
    }
    const pool = await pp.openPool(input);
    const poolRows = (await pp.readNpy(`${base}-s${seed}-pool.npy`)).data;
    const evalRows = (await pp.readNpy(`${base}-s${seed}-eval.npy`)).data;
    for (const arm of arms) {
      let shared;
      for (const budget of budgets) {
        let sel = shared;
        if (!sel) {
          sel = await pp.select(pool, { ...arm.options, strategy: arm.strategy, budget: prefix(arm) ? Math.max(...budgets) : budget, seed });
          if (prefix(arm)) shared = sel;
        }
        const picks = Array.from(sel.indices.subarray(0, budget), (i) => poolRows[i]);
        const a = pp.ridgeProbeAccuracy(probe, picks, evalRows);
        ((acc.get(arm.label)[set] ??= {})[budget] ??= []).push(a);
        ((mismatch.get(arm.label)[set] ??= {})[budget] ??= []).push(picks.filter((r) => mismatched[r]).length / budget);
      }
    }
    await pool.close();
    console.error(`${set} seed ${seed} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
}

const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
const ranking = arms
  .map((arm) => {
    const perSet = Object.fromEntries(sets.map((s) => [s, mean(budgets.map((b) => mean(acc.get(arm.label)[s][b])))]));
    return {
      label: arm.label,
      strategy: arm.strategy,
      options: arm.options ?? {},
      mean: mean(Object.values(perSet)),
      perSet,
      perBudget: Object.fromEntries(sets.map((s) => [s, Object.fromEntries(budgets.map((b) => [b, mean(acc.get(arm.label)[s][b])]))])),
      mismatchRate: Object.fromEntries(sets.map((s) => [s, mean(budgets.map((b) => mean(mismatch.get(arm.label)[s][b])))])),
    };
  })
  .sort((x, y) => y.mean - x.mean);
console.log(`| setting | mean | ${sets.join(' | ')} |\n|---|---|${sets.map(() => '---').join('|')}|`);
for (const r of ranking) console.log(`| ${r.label} | ${(100 * r.mean).toFixed(1)} | ${sets.map((s) => (100 * r.perSet[s]).toFixed(1)).join(' | ')} |`);
writeJson(out, {
  what: 'MMCSAL stage-2 search: ridge-probe accuracy on the validation part of the train splits, mean over budgets',
  command: `node bench/mmcsal-search.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  date: new Date().toISOString(),
  seconds: (performance.now() - started) / 1000,
  sets,
  seeds,
  budgets,
  stage1,
  ranking,
});

function standardise(data, rows, dim) {
  const features = new Float32Array(rows * dim);
  for (let j = 0; j < dim; j++) {
    let mu = 0;
    for (let r = 0; r < rows; r++) mu += data[r * dim + j];
    mu /= rows;
    let v = 0;
    for (let r = 0; r < rows; r++) v += (data[r * dim + j] - mu) ** 2;
    const scale = v > 0 ? 1 / Math.sqrt(v / rows) : 0;
    for (let r = 0; r < rows; r++) features[r * dim + j] = (data[r * dim + j] - mu) * scale;
  }
  return { features, dim };
}
