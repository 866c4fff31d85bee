#!/usr/bin/env node
// The cold-start protocol on both bundled datasets, clean and with 20 % mismatched pairs (train
// split): per seed, stage 1 on the train split, each strategy picks B samples, a ridge probe on
// the picks' raw features is scored on the TEST split. Every strategy at its defaults, MMCSAL's
// default and the paper's ablations (stage-1 β = 0, no alignment term, the distribution-term
// variants). Also the share of mismatched pairs each strategy picks. The default itself was chosen
// on validation parts of the train splits only (bench/mmcsal-search.mjs).
// Writes bench/results/coldstart-protocol.json and prints one markdown table per set.
//   npx tsup && node bench/coldstart-protocol.mjs [--seeds 5] [--epochs 20] [--sets av-digits:0,av-digits:0.2,clipart-it:0,clipart-it:0.2]
import { armTable, COLD_START_BUDGETS as budgets, coldStartArgs, importDist, runColdStart, writeColdStartReport } from './common.mjs';

const pp = await importDist();
const args = coldStartArgs('bench/results/coldstart-protocol.json', {
  sets: { type: 'string', default: 'av-digits:0,av-digits:0.2,clipart-it:0,clipart-it:0.2' },
  ablations: { type: 'string', default: 'yes' },
});
const { seeds, epochs, out } = args;
const sets = String(args.sets)
  .split(',')
  .map((s) => ({ dataset: s.split(':')[0], mismatch: Number(s.split(':')[1] ?? 0) }));
const ablations = args.ablations !== 'no';
// MMCSAL's default, coverage + alignment filter on the embedding joined with the input features
// stage 1 embedded (coldStartExperiment passes the raw pool as `inputs` to every mmcsal arm whose
// options resolve to space 'embedding+inputs'), and the paper's ablations, among them the previous
// default (coverage on the embedding alone); every baseline at its own defaults, plus two rows not
// counted as baselines: ProbCover told the number of classes, and facility location on the same
// joint space as the default (mmcsal coverage with no filter and every row a ground row: the same
// objective and greedy as `facility`, which reads the embedding only). In the results of
// 2026-12-02 the first row is labelled "(default: coverage + filter)" or "mmcsal, coverage +
// filter" (embedding only), "probcover" is the previous K = budget and "probcover, classes 2" the
// current default.
const COVERAGE = { distribution: 'coverage', alignment: 'filter' };
const DEFAULT_LABEL = 'mmcsal, coverage + filter on embedding + inputs';
const KNOWN_CLASSES = 'probcover, classes known';
const FACILITY_JOINT = 'facility on embedding + inputs';
// k-means as it seeded before greedy k-means++ became the default (the effect of that change).
const KMEANS_PLUS_PLUS = 'kmeans, one-draw k-means++ seeding (previous default)';
const NOT_BASELINES = [KNOWN_CLASSES, FACILITY_JOINT, KMEANS_PLUS_PLUS];
const arms = [
  { label: DEFAULT_LABEL, strategy: 'mmcsal', options: COVERAGE },
  ...(ablations
    ? [
        { label: 'mmcsal, embedding only (the previous default)', strategy: 'mmcsal', options: { ...COVERAGE, space: 'concat' } },
        { label: 'mmcsal, no alignment filter (λ_align = 0)', strategy: 'mmcsal', options: { ...COVERAGE, alignQuantile: 0 } },
        { label: 'mmcsal, stage 1 beta 0', strategy: 'mmcsal', options: COVERAGE, stage1: { beta: 0 } },
        { label: 'mmcsal, distribution clusters', strategy: 'mmcsal', options: { distribution: 'clusters', alignment: 'filter' } },
        { label: 'mmcsal, distribution density (filter)', strategy: 'mmcsal', options: { distribution: 'density', alignment: 'filter' } },
        { label: 'mmcsal, density + linear λ (previous default)', strategy: 'mmcsal', options: { distribution: 'density', alignment: 'linear' } },
      ]
    : []),
  { label: 'typiclust', strategy: 'typiclust' },
  { label: 'kmeans', strategy: 'kmeans' },
  ...(ablations ? [{ label: KMEANS_PLUS_PLUS, strategy: 'kmeans', options: { seeding: 'kmeans++' } }] : []),
  { label: 'facility', strategy: 'facility' },
  { label: FACILITY_JOINT, strategy: 'mmcsal', options: { distribution: 'coverage', alignQuantile: 0, coverageSample: 2 ** 30 } },
  { label: 'probcover', strategy: 'probcover' },
  // Both bundled datasets have 10 classes.
  { label: KNOWN_CLASSES, strategy: 'probcover', options: { classes: 10 } },
  { label: 'kcenter', strategy: 'kcenter' },
  { label: 'random', strategy: 'random' },
];

const report = { sets: [] };
let seconds = 0;
for (const set of sets) {
  const name = `${set.dataset}${set.mismatch ? ` (${Math.round(set.mismatch * 100)} % mismatched pairs)` : ''}`;
  console.error(name);
  const run = await runColdStart(pp, { arms, budgets, seeds, stage1: { epochs }, evaluate: 'test' }, set);
  seconds += run.seconds;
  const table = armTable(pp, run.results, budgets);
  const baselines = table.filter((r) => !r.label.startsWith('mmcsal') && !NOT_BASELINES.includes(r.label));
  const best = baselines.reduce((a, b) => (b.meanOverBudgets > a.meanOverBudgets ? b : a));
  const mm = table.find((r) => r.label === DEFAULT_LABEL);
  const fmt = (s) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
  console.log(`\n### ${name}\n`);
  console.log(`| strategy | ${budgets.map((b) => `B=${b}`).join(' | ')} | mean | mismatched picks |`);
  console.log(`|---|${budgets.map(() => '---:').join('|')}|---:|---:|`);
  for (const r of table) console.log(`| ${r.label} | ${budgets.map((b) => fmt(r.perBudget[b])).join(' | ')} | ${(100 * r.meanOverBudgets).toFixed(1)} | ${set.mismatch ? `${(100 * r.mismatchedPicks).toFixed(1)} %` : '–'} |`);
  console.log(`\n${DEFAULT_LABEL} − best baseline (${best.label}): ${(100 * (mm.meanOverBudgets - best.meanOverBudgets)).toFixed(1)} points`);
  report.sets.push({ ...set, name, table, bestBaseline: best.label, margin: mm.meanOverBudgets - best.meanOverBudgets, results: run.results });
  // Written after every set, so a long run leaves what it has measured.
  writeColdStartReport(pp, out, {
    what: 'Cold-start protocol: ridge probe on the picks, accuracy on the test split; both datasets, clean and with mismatched pairs',
    command: `node bench/coldstart-protocol.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    seconds,
    seeds,
    budgets,
    stage1: { epochs },
    ...report,
  });
}
