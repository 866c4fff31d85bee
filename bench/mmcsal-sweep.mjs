#!/usr/bin/env node
// Calibrates MMCSAL's weights on AV-Digits in the cold-start setting (issue: "calibrated MMCSAL
// defaults"): stage 1 per seed, then every (wDiversity, k, lambdaAlign) of the grid, budgets
// 10/20/50/100, scored by the ridge probe on a held-out 20 % of the TRAIN split (the test split
// is never touched). Writes bench/results/mmcsal-sweep.json and prints a markdown table.
//   npx tsup && node bench/mmcsal-sweep.mjs [--seeds 5] [--epochs 20] [--out FILE]
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';

import { armTable, importDist, markdownTable, runColdStart } from './common.mjs';

const pp = await importDist();

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

const { results, seconds } = await runColdStart(pp, { arms, budgets, seeds, stage1: { epochs: Number(values.epochs) }, evaluate: 'validation' });
const table = armTable(pp, results, budgets).sort((x, y) => y.meanOverBudgets - x.meanOverBudgets);
console.log(markdownTable(table, budgets, 'setting'));

writeFileSync(
  values.out,
  JSON.stringify(
    {
      what: 'MMCSAL calibration sweep on AV-Digits (validation part of the train split), ridge probe accuracy',
      command: 'node bench/mmcsal-sweep.mjs',
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, backend: pp.getBackend().name },
      date: new Date().toISOString(),
      seconds,
      seeds,
      budgets,
      grid,
      stage1: { epochs: Number(values.epochs) },
      ranking: table,
      results,
    },
    null,
    1,
  ),
);
console.error(`wrote ${values.out} in ${seconds.toFixed(0)} s`);
