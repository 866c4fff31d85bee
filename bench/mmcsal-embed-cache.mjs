#!/usr/bin/env node
// Caches what the MMCSAL stage-2 search (bench/mmcsal_search.py) needs, so that the search itself
// is cheap numpy: per dataset, mismatch rate and seed, the stage-1 embeddings of a validation pool
// (a seeded, stratified 80 % of the TRAIN split; the other 20 % scores the probe; the test split
// is never touched), plus the raw features and labels the probe trains on.
//   npx tsup && node bench/mmcsal-embed-cache.mjs [--seeds 5] [--epochs 20] [--beta 1] [--out bench/cache]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { flag, importDist, root } from './common.mjs';

const pp = await importDist();
const seeds = Number(flag('seeds', 5));
const epochs = Number(flag('epochs', 20));
const beta = Number(flag('beta', 1));
const temperature = flag('temperature', undefined);
const out = join(root, flag('out', 'bench/cache'));
const datasets = String(flag('datasets', 'av-digits,clipart-it')).split(',');
const mismatches = String(flag('mismatch', '0,0.2')).split(',').map(Number);
mkdirSync(out, { recursive: true });

/** Seeded stratified hold-out of 20 % of the train rows (mulberry32, per class shuffle). */
function holdOut(train, labels, seed) {
  let a = (seed * 2654435761 + 12345) >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const byClass = new Map();
  for (const r of train) (byClass.get(labels[r]) ?? byClass.set(labels[r], []).get(labels[r])).push(r);
  const pool = [];
  const held = [];
  for (const [, members] of [...byClass].sort((x, y) => x[0] - y[0])) {
    for (let i = members.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [members[i], members[j]] = [members[j], members[i]];
    }
    const cut = Math.round(members.length * 0.2);
    held.push(...members.slice(0, cut));
    pool.push(...members.slice(cut));
  }
  return { poolRows: Int32Array.from(pool.sort((x, y) => x - y)), evalRows: Int32Array.from(held.sort((x, y) => x - y)) };
}

const tag = (name, mismatch) => `${name}-m${Math.round(mismatch * 100)}`;
for (const name of datasets) {
  for (const mismatch of mismatches) {
    const ds = await pp.loadDataset(name, { mismatch, mismatchSeed: 0 });
    const base = join(out, tag(name, mismatch));
    const parts = [];
    for (const m of ds.pool.modalities) parts.push({ dim: ds.pool.source(m).dim, data: await ds.pool.source(m).read(0, ds.pool.rows) });
    const dim = parts.reduce((s, p) => s + p.dim, 0);
    const raw = new Float32Array(ds.pool.rows * dim);
    for (let r = 0; r < ds.pool.rows; r++) {
      let o = 0;
      for (const p of parts) {
        raw.set(p.data.subarray(r * p.dim, (r + 1) * p.dim), r * dim + o);
        o += p.dim;
      }
    }
    await pp.writeNpy(`${base}-raw.npy`, raw, [ds.pool.rows, dim]);
    await pp.writeNpy(`${base}-labels.npy`, ds.labels, [ds.pool.rows]);
    await pp.writeNpy(`${base}-mismatched.npy`, Int32Array.from(ds.mismatched ?? new Uint8Array(ds.pool.rows)), [ds.pool.rows]);
    writeFileSync(`${base}-dims.json`, JSON.stringify(parts.map((p) => p.dim)));
    for (let seed = 0; seed < seeds; seed++) {
      const { poolRows, evalRows } = holdOut(ds.split.train, ds.labels, seed);
      const input = {};
      for (const [i, m] of ds.pool.modalities.entries()) input[m] = { data: await ds.pool.source(m).readRows(poolRows), dim: parts[i].dim };
      const pool = await pp.openPool(input);
      const t0 = Date.now();
      const stage1 = { seed, epochs, beta, ...(temperature ? { temperature: Number(temperature) } : {}) };
      const projection = await pp.fitProjection(pool, stage1);
      const embedded = await projection.embed(pool);
      const z = [];
      for (const m of embedded.modalities) z.push(await embedded.source(m).read(0, embedded.rows));
      const d = embedded.source(embedded.modalities[0]).dim;
      const emb = new Float32Array(embedded.rows * d * z.length);
      for (let r = 0; r < embedded.rows; r++) z.forEach((zm, m) => emb.set(zm.subarray(r * d, (r + 1) * d), (r * z.length + m) * d));
      const suffix = `b${beta}${temperature ? `-t${temperature}` : ''}-s${seed}`;
      await pp.writeNpy(`${base}-${suffix}-emb.npy`, emb, [embedded.rows, z.length, d]);
      await pp.writeNpy(`${base}-s${seed}-pool.npy`, poolRows, [poolRows.length]);
      await pp.writeNpy(`${base}-s${seed}-eval.npy`, evalRows, [evalRows.length]);
      console.log(`${tag(name, mismatch)} ${suffix}: ${embedded.rows} rows, gap ${projection.gap.toFixed(3)}, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await embedded.close();
      await pool.close();
    }
    await ds.pool.close();
  }
}
