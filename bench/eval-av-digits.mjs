#!/usr/bin/env node
// The AV-Digits active-learning experiment through `pairpick eval`, once per downstream model:
// cold mmcsal, typiclust, kmeans, facility, kcenter, random; warm from 20 random labels bmmal,
// badge, entropy, random (bmmal reads late fusion's per-modality fused input, so the MLA run has
// no bmmal arm); budgets 20, 50, 100; seeds 0, 1, 2. Records each run's command and wall time and
// copies its results.json to bench/results/eval-av-digits-<model>-<machine>.json.
//   npx tsup && node bench/eval-av-digits.mjs [--models late-fusion,mla] [--out-dir /tmp/pairpick-eval]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { flag, machineSlug, root, writeJson } from './common.mjs';

const models = flag('models', 'late-fusion,mla').split(',');
const base = flag('out-dir', '/tmp/pairpick-eval');
const WARM = { 'late-fusion': 'bmmal,badge,entropy,random', mla: 'badge,entropy,random', ridge: 'random' };

for (const model of models) {
  const outDir = `${base}-${model}`;
  const argv = ['eval', '--dataset', 'av-digits', '--cold', 'mmcsal,typiclust,kmeans,facility,kcenter,random', '--warm', WARM[model], '--budgets', '20,50,100', '--seeds', '0,1,2', '--model', model, '--out-dir', outDir, '--quiet'];
  spawnSync('rm', ['-rf', outDir]);
  const t0 = performance.now();
  const run = spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const wall = (performance.now() - t0) / 1000;
  if (run.status !== 0) {
    console.error(`pairpick eval --model ${model} exited with ${run.status}`);
    process.exit(1);
  }
  console.log(`pairpick ${argv.join(' ')}\nwall ${wall.toFixed(0)} s\n${run.stdout}`);
  const results = JSON.parse(readFileSync(join(outDir, 'results.json'), 'utf8'));
  writeJson(join(root, 'bench', 'results', `eval-av-digits-${model}-${machineSlug}.json`), { ...results, wallSeconds: wall });
}
