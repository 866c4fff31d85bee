#!/usr/bin/env node
// Selection at GPU scale (issue 4): N = 1,000,000 pairs × 2 modalities × 512 dims stored as fp16
// .npy files, budget B = 10,000, on the cuda backend:
//   * kcenter (target ≤ 5 s) — per-pick time against the memory-bandwidth floor of one pass over
//     the pool (bytes of the rows / measured device copy bandwidth) and against a PyTorch
//     implementation of the same greedy on the same GPU (bench/peers/torch_kcenter.py);
//   * mmcsal with exact kNN density, k = 20 (target ≤ 20 s), with its phase times.
// Each run is a child process. Results go to bench/results/select-gpu-<machine>.json.
//
//   npm run build   (with nvcc: the CUDA backend must be built)
//   node bench/select-gpu.mjs [--rows 1000000] [--dim 512] [--budget 10000] [--skip-mmcsal]
//        [--skip-torch] [--data DIR] [--machine NAME] [--out FILE] [--check-args]
//
// Data (generated once under /tmp/pairpick-bench-gpu/, seeded): 1000 classes; a sample is its
// class centre (per modality) plus a within-class offset in an 8-D latent subspace shared by the
// modalities, plus isotropic noise — clustered like real embeddings (see bench/select-scale.mjs).
// Note: the GPU machine needs Node ≥ 20 and this package built there (npm run build) before the
// run; PyTorch is only needed for the peer.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { gaussian, importDist, root, runJson, timedSelection, writeJson } from './common.mjs';

const { values: opt } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    dim: { type: 'string', default: '512' },
    budget: { type: 'string', default: '10000' },
    'skip-mmcsal': { type: 'boolean', default: false },
    'skip-torch': { type: 'boolean', default: false },
    data: { type: 'string' },
    machine: { type: 'string' },
    out: { type: 'string' },
    child: { type: 'string' },
    files: { type: 'string' },
    strategy: { type: 'string' },
    picks: { type: 'string' },
    'check-args': { type: 'boolean', default: false },
  },
});
const ROWS = Number(opt.rows);
const DIM = Number(opt.dim);
const BUDGET = Number(opt.budget);
for (const [flag, v] of [['--rows', ROWS], ['--dim', DIM], ['--budget', BUDGET]])
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${flag} must be a positive integer, got ${opt[flag.slice(2)]}`);
if (BUDGET > ROWS) throw new Error(`--budget (${BUDGET}) must be at most --rows (${ROWS})`);
const PEER = join(dirname(fileURLToPath(import.meta.url)), 'peers', 'torch_kcenter.py');
if (!existsSync(PEER)) throw new Error(`the PyTorch peer is missing: ${PEER}`);
// --check-args: the plan, without generating data or touching a GPU (checked on any machine).
if (opt['check-args']) {
  process.stdout.write(JSON.stringify({ rows: ROWS, dim: DIM, budget: BUDGET, bytesPerPass: ROWS * 2 * DIM * 2, peer: PEER, mmcsal: !opt['skip-mmcsal'], torch: !opt['skip-torch'] }) + '\n');
  process.exit(0);
}

// ---- child: one selection on the cuda backend, reported as a JSON line ----
if (opt.child) {
  const pp = await importDist();
  const cuda = pp.backends().find((b) => b.name === 'cuda');
  if (!cuda?.available) throw new Error(`the cuda backend is not available: ${cuda?.reason}`);
  const { sel, seconds, phases } = await timedSelection(pp, opt.files.split(','), { strategy: opt.strategy, budget: BUDGET, backend: 'cuda' });
  writeFileSync(opt.picks, JSON.stringify(Array.from(sel.indices)));
  process.stdout.write(
    JSON.stringify({
      seconds,
      selectSeconds: sel.seconds,
      phases,
      device: cuda.device,
      params: sel.params,
      maxRssKb: process.resourceUsage().maxRSS,
      picks: Array.from(sel.indices.slice(0, 20)),
    }) + '\n',
  );
  process.exit(0);
}

// ---- data ----

async function ensureData() {
  const dir = opt.data ?? join('/tmp', 'pairpick-bench-gpu', `clustered-${ROWS}x${DIM}-f16`);
  const files = [join(dir, 'a.npy'), join(dir, 'b.npy')];
  if (files.every((f) => existsSync(f))) return files;
  mkdirSync(dir, { recursive: true });
  const { openNpyWriter } = await importDist();
  const t0 = performance.now();
  const r = gaussian(99);
  const classes = 1000;
  const latent = 8;
  const centres = [0, 1].map(() => Float32Array.from({ length: classes * DIM }, () => r.normal()));
  const maps = [0, 1].map(() => Float32Array.from({ length: DIM * latent }, () => r.normal() * 0.25));
  const writers = await Promise.all(files.map((f) => openNpyWriter(f, { dim: DIM, dtype: 'float16', rows: ROWS })));
  const block = 16384;
  const z = new Float32Array(latent);
  for (let r0 = 0; r0 < ROWS; r0 += block) {
    const n = Math.min(block, ROWS - r0);
    const out = [new Float32Array(n * DIM), new Float32Array(n * DIM)];
    for (let i = 0; i < n; i++) {
      const c = Math.floor(r.next() * classes);
      for (let t = 0; t < latent; t++) z[t] = r.normal();
      for (let m = 0; m < 2; m++) {
        const C = centres[m];
        const W = maps[m];
        const x = out[m];
        for (let j = 0; j < DIM; j++) {
          let s = C[c * DIM + j] + r.normal() * 0.15;
          for (let t = 0; t < latent; t++) s += W[j * latent + t] * z[t];
          x[i * DIM + j] = s;
        }
      }
    }
    await Promise.all(writers.map((w, m) => w.append(out[m])));
  }
  await Promise.all(writers.map((w) => w.close()));
  process.stderr.write(`generated ${ROWS}×${DIM}×2 fp16 in ${((performance.now() - t0) / 1000).toFixed(0)} s → ${dir}\n`);
  return files;
}

function child(strategy, files, picks) {
  return runJson(process.execPath, [fileURLToPath(import.meta.url), '--child', '1', '--strategy', strategy, '--files', files.join(','), '--budget', String(BUDGET), '--picks', picks]);
}

const files = await ensureData();
const dir = dirname(files[0]);
const bytesPerPass = ROWS * 2 * DIM * 2;
const results = {
  bench: 'select-gpu',
  date: new Date().toISOString(),
  machine: { name: opt.machine, cpu: cpus()[0]?.model?.trim(), cores: cpus().length, node: process.version },
  setup: { rows: ROWS, modalities: 2, dim: DIM, dtype: 'float16', budget: BUDGET, bytesPerPass },
};

const kc = child('kcenter', files, join(dir, 'kcenter-ours.json'));
results.machine.gpu = kc.device;
results.kcenter = kc;
process.stderr.write(`kcenter: ${kc.seconds.toFixed(2)} s (greedy ${kc.phases.select?.toFixed(2)} s) on ${kc.device}\n`);
if (!opt['skip-torch']) {
  let t;
  try {
    t = runJson('python3', [PEER, ...files, '--budget', String(BUDGET), '--out', join(dir, 'kcenter-torch.json')]);
  } catch (e) {
    results.torch = { error: e.message.slice(-2000) };
  }
  if (t) {
    const ours = JSON.parse(readFileSync(join(dir, 'kcenter-ours.json'), 'utf8'));
    const theirs = JSON.parse(readFileSync(join(dir, 'kcenter-torch.json'), 'utf8'));
    let same = 0;
    while (same < ours.length && ours[same] === theirs[same]) same++;
    results.torch = t;
    const oursPerPick = (1000 * (kc.phases.select ?? kc.seconds)) / BUDGET;
    results.kcenterPerPick = {
      pairpickMs: +oursPerPick.toFixed(4),
      torchMs: +t.per_pick_ms.toFixed(4),
      // One unpruned pass reads every row once: its time at the measured copy bandwidth.
      floorMs: +t.floor_ms_per_pick.toFixed(4),
      vsFloor: +(oursPerPick / t.floor_ms_per_pick).toFixed(2),
      // Effective bandwidth: one pool's bytes per pick (pruning skips rows, so this can exceed
      // the copy bandwidth) against the measured device copy bandwidth.
      pairpickGBs: +(bytesPerPass / (oursPerPick * 1e6)).toFixed(1),
      copyGBs: +t.copy_bandwidth_gbs.toFixed(1),
      vsTorch: +(t.per_pick_ms / oursPerPick).toFixed(2),
      samePicksPrefix: same,
    };
    process.stderr.write(
      `per pick: pairpick ${oursPerPick.toFixed(3)} ms, torch ${t.per_pick_ms.toFixed(3)} ms, bandwidth floor ${t.floor_ms_per_pick.toFixed(3)} ms ` +
        `(copy ${t.copy_bandwidth_gbs.toFixed(0)} GB/s; pairpick ${results.kcenterPerPick.pairpickGBs} GB/s effective, ` +
        `${(results.kcenterPerPick.vsTorch).toFixed(1)}× torch); first ${same} picks identical\n`,
    );
  }
}
if (!opt['skip-mmcsal']) {
  const mm = child('mmcsal', files, join(dir, 'mmcsal-ours.json'));
  results.mmcsal = mm;
  process.stderr.write(`mmcsal: ${mm.seconds.toFixed(2)} s (density ${mm.phases.density?.toFixed(2)} s, greedy ${mm.phases.select?.toFixed(2)} s)\n`);
}
results.targets = {
  'kcenter ≤ 5 s': kc.seconds <= 5,
  'mmcsal (exact kNN density included) ≤ 20 s': results.mmcsal ? results.mmcsal.seconds <= 20 : 'skipped',
};
const machine = opt.machine ?? (kc.device ?? 'gpu').split(' (')[0].toLowerCase().replace(/[^a-z0-9]+/g, '-');
const out = opt.out ?? join(root, 'bench', 'results', `select-gpu-${machine}.json`);
writeJson(out, results);
process.stderr.write(`results → ${out}\n`);
