#!/usr/bin/env node
// MMCSAL's default, coverage + alignment filter (coverage of a seeded ground sample of 8,192 rows)
// on the embedding alone and on the embedding joined with input features (`inputs`: 2 × --input-dim
// columns, another random map of the same latent, i.e. the features the embedding came from),
// against the previous default (density + diversity + linear alignment, exact kNN) on the same pool: N pairs × 2 modalities × D dims of clustered paired embeddings (200
// classes in a 16-D latent space, one random linear map per modality, isotropic noise), budget B.
// Wall and CPU seconds of each, measured one after the other in this process.
//   npx tsup && node bench/mmcsal-speed.mjs [--rows 100000] [--dim 128] [--input-dim 512] [--budget 1000] [--backend cpu] [--only coverage|inputs|density] [--coverage-sample N] [--memory-budget MIB]
// (dense coverage, --coverage-sample equal to --rows, is O(N²) time: many minutes at 100,000 rows)
import { cpus, loadavg } from 'node:os';

import { flag, gaussian, importDist, writeJson, root } from './common.mjs';
import { join } from 'node:path';

const pp = await importDist();
const rows = Number(flag('rows', 100000));
const dim = Number(flag('dim', 128));
const budget = Number(flag('budget', 1000));
const backend = flag('backend', 'cpu');
const out = flag('out', undefined);
const only = flag('only', undefined);
const coverageSample = flag('coverage-sample', undefined);
const inputDim = Number(flag('input-dim', 512));
const memoryBudget = flag('memory-budget', undefined);
// Options the coverage arms share: the ground sample and the MiB of kept similarity rows.
const coverageOptions = { ...(coverageSample ? { coverageSample: Number(coverageSample) } : {}), ...(memoryBudget ? { memoryBudget: Number(memoryBudget) } : {}) };

const g = gaussian(7).normal;
const latent = 16;
const centres = Float64Array.from({ length: 200 * latent }, () => g());
const maps = [0, 1].map(() => Float64Array.from({ length: latent * dim }, () => g() / Math.sqrt(latent)));
const inputMaps = [0, 1].map(() => Float64Array.from({ length: latent * inputDim }, () => g() / Math.sqrt(latent)));
const wanted = (key) => only === undefined || only === key;
const data = [new Float32Array(rows * dim), new Float32Array(rows * dim)];
const inputData = wanted('inputs') ? [new Float32Array(rows * inputDim), new Float32Array(rows * inputDim)] : undefined;
const z = new Float64Array(latent);
for (let i = 0; i < rows; i++) {
  const c = i % 200;
  for (let t = 0; t < latent; t++) z[t] = centres[c * latent + t] + 0.5 * g();
  for (let m = 0; m < 2; m++) {
    for (let j = 0; j < dim; j++) {
      let s = 0.3 * g();
      for (let t = 0; t < latent; t++) s += z[t] * maps[m][t * dim + j];
      data[m][i * dim + j] = s;
    }
    if (!inputData) continue;
    for (let j = 0; j < inputDim; j++) {
      let s = 0.3 * g();
      for (let t = 0; t < latent; t++) s += z[t] * inputMaps[m][t * inputDim + j];
      inputData[m][i * inputDim + j] = s;
    }
  }
}
const pool = await pp.openPool({ a: { data: data[0], dim }, b: { data: data[1], dim } });
const inputs = inputData && (await pp.openPool({ a: { data: inputData[0], dim: inputDim }, b: { data: inputData[1], dim: inputDim } }));
const runs = {};
const arms = [
  ['coverage', `coverage${coverageSample ? ` of ${coverageSample} ground rows` : ''} + alignment filter`, { distribution: 'coverage', alignment: 'filter', ...coverageOptions }],
  ['inputs', `coverage + alignment filter on embedding + inputs (2 × ${inputDim})`, { distribution: 'coverage', alignment: 'filter', inputs, ...coverageOptions }],
  ['density', 'density + linear alignment (previous default)', { distribution: 'density', alignment: 'linear' }],
].filter(([key]) => wanted(key));
if (!arms.length) throw new Error(`--only ${only}: use coverage, inputs or density`);
for (const [, label, options] of arms) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // Wall seconds from the start to each phase's first report.
  const phases = {};
  const onProgress = (p) => (phases[p.phase] ??= (performance.now() - t0) / 1000);
  const sel = await pp.select(pool, { strategy: 'mmcsal', budget, backend, onProgress, ...options });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  runs[label] = { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, phaseStarts: phases, params: sel.params };
  const starts = Object.entries(phases).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
  console.log(`${label}: ${seconds.toFixed(1)} s wall, ${runs[label].cpuSeconds.toFixed(1)} s CPU (phase starts, s: ${starts}); load ${loadavg()[0].toFixed(2)}`);
}
await pool.close();
await inputs?.close();
if (out) writeJson(join(root, out), { bench: 'mmcsal-speed', date: new Date().toISOString(), cores: cpus().length, rows, dim, inputDim, budget, backend, runs });
