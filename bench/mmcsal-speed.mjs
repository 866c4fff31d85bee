#!/usr/bin/env node
// MMCSAL's coverage + alignment filter mode against its default (density + diversity + linear
// alignment, exact kNN) on the same pool: N pairs × 2 modalities × D dims of clustered paired embeddings (200
// classes in a 16-D latent space, one random linear map per modality, isotropic noise), budget B.
// Wall and CPU seconds of each, measured one after the other in this process.
//   npx tsup && node bench/mmcsal-speed.mjs [--rows 100000] [--dim 128] [--budget 1000] [--backend cpu] [--only default|coverage]
// (coverage is O(N²) time: at 100,000 rows it runs for many minutes; --only default skips it)
import { cpus } from 'node:os';

import { flag, gaussian, importDist, writeJson, root } from './common.mjs';
import { join } from 'node:path';

const pp = await importDist();
const rows = Number(flag('rows', 100000));
const dim = Number(flag('dim', 128));
const budget = Number(flag('budget', 1000));
const backend = flag('backend', 'cpu');
const out = flag('out', undefined);
const only = flag('only', undefined);

const g = gaussian(7).normal;
const latent = 16;
const centres = Float64Array.from({ length: 200 * latent }, () => g());
const maps = [0, 1].map(() => Float64Array.from({ length: latent * dim }, () => g() / Math.sqrt(latent)));
const data = [new Float32Array(rows * dim), new Float32Array(rows * dim)];
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
  }
}
const pool = await pp.openPool({ a: { data: data[0], dim }, b: { data: data[1], dim } });
const runs = {};
const arms = [
  ['coverage', 'coverage + alignment filter', { distribution: 'coverage', alignment: 'filter' }],
  ['default', 'default (density, linear alignment)', {}],
].filter(([key]) => only === undefined || only === key);
if (!arms.length) throw new Error(`--only ${only}: use default or coverage`);
for (const [, label, options] of arms) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const sel = await pp.select(pool, { strategy: 'mmcsal', budget, backend, ...options });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  runs[label] = { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, params: sel.params };
  console.log(`${label}: ${seconds.toFixed(1)} s wall, ${runs[label].cpuSeconds.toFixed(1)} s CPU`);
}
await pool.close();
if (out) writeJson(join(root, out), { bench: 'mmcsal-speed', date: new Date().toISOString(), cores: cpus().length, rows, dim, budget, backend, runs });
