#!/usr/bin/env node
// Cold-start quality on AV-Digits (issue: selection engine, "quality on real data"): stage 1 on
// the train split per seed, each strategy picks B samples, a ridge probe trained on the picks'
// raw features is scored on the TEST split. Includes the paper's ablations: MMCSAL without the
// alignment term (lambdaAlign 0) and MMCSAL on a contrastive-only stage 1 (beta 0).
// Writes bench/results/coldstart-quality.json and prints a markdown table.
//   npx tsup && node bench/coldstart-quality.mjs [--seeds 5] [--epochs 20]
import { armTable, COLD_START_BUDGETS as budgets, coldStartArgs, importDist, markdownTable, runColdStart, writeColdStartReport } from './common.mjs';

const pp = await importDist();
const { seeds, epochs, out } = coldStartArgs('bench/results/coldstart-quality.json');
const arms = [
  { label: 'mmcsal (defaults)', strategy: 'mmcsal' },
  { label: 'mmcsal, lambdaAlign 0', strategy: 'mmcsal', options: { lambdaAlign: 0 } },
  { label: 'mmcsal, stage 1 beta 0', strategy: 'mmcsal', stage1: { beta: 0 } },
  { label: 'kcenter', strategy: 'kcenter' },
  { label: 'typiclust', strategy: 'typiclust' },
  { label: 'kmeans', strategy: 'kmeans' },
  { label: 'facility', strategy: 'facility' },
  { label: 'probcover', strategy: 'probcover' },
  { label: 'random', strategy: 'random' },
];

const { results, seconds } = await runColdStart(pp, { arms, budgets, seeds, stage1: { epochs }, evaluate: 'test' });
const rows = armTable(pp, results, budgets);
console.log(markdownTable(rows, budgets, 'strategy'));
const gaps = {};
for (const r of results) (gaps[r.label.includes('beta 0') ? 'beta0' : 'beta1'] ??= new Set()).add(r.gap);
console.log(`\nmodality gap after stage 1 (mean over seeds): beta 1 ${mean([...gaps.beta1]).toFixed(3)}, beta 0 ${mean([...gaps.beta0]).toFixed(3)}`);

writeColdStartReport(pp, out, {
  what: 'Cold-start selection quality on AV-Digits: ridge probe on the picks, accuracy on the test split',
  command: 'node bench/coldstart-quality.mjs',
  seconds,
  seeds,
  budgets,
  stage1: { epochs },
  table: rows,
  gaps: { beta1: [...gaps.beta1], beta0: [...gaps.beta0] },
  results,
});

function mean(xs) {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
