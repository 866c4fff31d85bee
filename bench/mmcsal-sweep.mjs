#!/usr/bin/env node
// Calibrates MMCSAL's weights on AV-Digits in the cold-start setting (issue: "calibrated MMCSAL
// defaults"): stage 1 per seed, then every (wDiversity, k, lambdaAlign) of the grid, budgets
// 10/20/50/100, scored by the ridge probe on a held-out 20 % of the TRAIN split (the test split
// is never touched). Writes bench/results/mmcsal-sweep.json and prints a markdown table.
//   npx tsup && node bench/mmcsal-sweep.mjs [--seeds 5] [--epochs 20] [--out FILE]
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';

import { coldStartExperiment, getBackend, loadDataset, summarise } from '../dist/index.js';

const { values } = parseArgs({
  options: { seeds: { type: 'string', default: '5' }, epochs: { type: 'string', default: '20' }, out: { type: 'string', default: 'bench/results/mmcsal-sweep.json' } },
});
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => i);
const budgets = [10, 20, 50, 100];
const grid = { wDiversity: [0.5, 1, 2, 4], k: [10, 20, 50], lambdaAlign: [0, 0.25, 0.5, 1] };

const arms = [];
for (const wDiversity of grid.wDiversity)
  for (const k of grid.k)
    for (const lambdaAlign of grid.lambdaAlign)
      arms.push({ label: `wDiversity=${wDiversity} k=${k} lambdaAlign=${lambdaAlign}`, strategy: 'mmcsal', options: { wDiversity, k, lambdaAlign } });
arms.push({ label: 'random', strategy: 'random' }, { label: 'kcenter', strategy: 'kcenter' }, { label: 'typiclust', strategy: 'typiclust' });

const dataset = await loadDataset('av-digits');
const started = Date.now();
const results = await coldStartExperiment(dataset, {
  arms,
  budgets,
  seeds,
  stage1: { epochs: Number(values.epochs) },
  evaluate: 'validation',
  onProgress: (done, total, what) => process.stderr.write(`\r${done}/${total} ${what}\x1b[K`),
});
process.stderr.write('\n');
await dataset.pool.close();

const summary = summarise(results);
const byArm = new Map();
for (const s of summary) {
  if (!byArm.has(s.label)) byArm.set(s.label, { label: s.label, perBudget: {} });
  byArm.get(s.label).perBudget[s.budget] = s;
}
const table = [...byArm.values()].map((a) => ({ ...a, meanOverBudgets: budgets.reduce((t, b) => t + a.perBudget[b].mean, 0) / budgets.length }));
table.sort((a, b) => b.meanOverBudgets - a.meanOverBudgets);

const fmt = (s) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
const lines = [
  `| setting | ${budgets.map((b) => `B=${b}`).join(' | ')} | mean |`,
  `|---|${budgets.map(() => '---:').join('|')}|---:|`,
  ...table.map((a) => `| ${a.label} | ${budgets.map((b) => fmt(a.perBudget[b])).join(' | ')} | ${(100 * a.meanOverBudgets).toFixed(1)} |`),
];
console.log(lines.join('\n'));

writeFileSync(
  values.out,
  JSON.stringify(
    {
      what: 'MMCSAL calibration sweep on AV-Digits (validation part of the train split), ridge probe accuracy',
      command: 'node bench/mmcsal-sweep.mjs',
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, backend: getBackend().name },
      date: new Date().toISOString(),
      seconds: (Date.now() - started) / 1000,
      seeds,
      budgets,
      grid,
      stage1: { epochs: Number(values.epochs) },
      ranking: table.map((a) => ({ label: a.label, meanOverBudgets: a.meanOverBudgets, perBudget: a.perBudget })),
      results,
    },
    null,
    1,
  ),
);
console.error(`wrote ${values.out} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
