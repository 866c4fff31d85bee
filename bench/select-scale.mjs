#!/usr/bin/env node
// Selection at scale on the CPU (issue 4): N pairs × 2 modalities × D dims (float32 .npy files
// generated under /tmp), budget B.
//   * kcenter on the cpu backend vs the numpy implementation of the same greedy
//     (bench/peers/numpy_kcenter.py: matrix-vector product + minimum + argmax per pick), same files;
//   * mmcsal with exact kNN density (k = 20) on the cpu backend;
//   * peak RSS of each run (process.resourceUsage().maxRSS in a child process) against the
//     bound input bytes + 512 MB.
// Every measurement runs in its own child process. Results go to bench/results/select-<machine>.json.
//
//   npm run build && node bench/select-scale.mjs [--rows 100000] [--dim 128] [--budget 1000]
//        [--data clustered|isotropic|both] [--skip-mmcsal] [--machine NAME] [--out FILE]
//
// Data (generated once, seeded): `clustered` models paired embeddings — 200 classes whose centres
// live in a 16-D latent space; a sample is its class centre plus a within-class latent offset,
// mapped into each modality by its own random linear map, plus isotropic noise in the full
// dimension (within-class cosine ≈ 0.6–0.8, between classes ≈ 0). `isotropic` is i.i.d. Gaussian
// rows (no structure at all: the worst case for the greedy's triangle-inequality pruning).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { gaussian, importDist, machineSlug, root, runJson, timedSelection, writeJson } from './common.mjs';

const { values: opt } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    dim: { type: 'string', default: '128' },
    budget: { type: 'string', default: '1000' },
    data: { type: 'string', default: 'both' },
    'skip-mmcsal': { type: 'boolean', default: false },
    machine: { type: 'string' },
    out: { type: 'string' },
    child: { type: 'string' },
    files: { type: 'string' },
    strategy: { type: 'string' },
    backend: { type: 'string', default: 'cpu' },
  },
});

// ---- child: one selection, reported as a JSON line ----
if (opt.child) {
  const pp = await importDist();
  const { sel, seconds, phases, cpuSeconds } = await timedSelection(pp, opt.files.split(','), { strategy: opt.strategy, budget: Number(opt.budget), backend: opt.backend });
  writeFileSync(opt.out, JSON.stringify(Array.from(sel.indices)));
  process.stdout.write(
    JSON.stringify({
      seconds,
      selectSeconds: sel.seconds,
      cpuSeconds,
      phases,
      maxRssKb: process.resourceUsage().maxRSS,
      backend: sel.backend,
      params: sel.params,
      picks: Array.from(sel.indices.slice(0, 20)),
    }) + '\n',
  );
  process.exit(0);
}

// ---- data ----
const ROWS = Number(opt.rows);
const DIM = Number(opt.dim);
const BUDGET = Number(opt.budget);

function generate(kind, rows, dim) {
  const r = gaussian(kind === 'clustered' ? 20240601 : 777);
  const out = [new Float32Array(rows * dim), new Float32Array(rows * dim)];
  if (kind === 'isotropic') {
    for (const x of out) for (let i = 0; i < x.length; i++) x[i] = r.normal();
    return out;
  }
  const classes = 200;
  const latent = 16;
  const centres = Float64Array.from({ length: classes * latent }, () => r.normal() * 2);
  const maps = out.map(() => Float64Array.from({ length: dim * latent }, () => r.normal() / Math.sqrt(latent)));
  const z = new Float64Array(latent);
  for (let i = 0; i < rows; i++) {
    const c = Math.floor(r.next() * classes);
    for (let t = 0; t < latent; t++) z[t] = centres[c * latent + t] + r.normal() * 0.8;
    for (let m = 0; m < 2; m++) {
      const W = maps[m];
      const x = out[m];
      for (let j = 0; j < dim; j++) {
        let s = 0;
        for (let t = 0; t < latent; t++) s += W[j * latent + t] * z[t];
        x[i * dim + j] = s + r.normal() * 0.35;
      }
    }
  }
  return out;
}

async function ensureData(kind) {
  const dir = join('/tmp', 'pairpick-bench-select', `${kind}-${ROWS}x${DIM}`);
  const files = [join(dir, 'a.npy'), join(dir, 'b.npy')];
  if (files.every((f) => existsSync(f))) return files;
  mkdirSync(dir, { recursive: true });
  const { writeNpy } = await importDist();
  const t = performance.now();
  const [a, b] = generate(kind, ROWS, DIM);
  await writeNpy(files[0], a, [ROWS, DIM]);
  await writeNpy(files[1], b, [ROWS, DIM]);
  process.stderr.write(`generated ${kind} data in ${((performance.now() - t) / 1000).toFixed(1)} s → ${dir}\n`);
  return files;
}

function runChild(strategy, files, picksOut) {
  return runJson(process.execPath, [fileURLToPath(import.meta.url), '--child', '1', '--strategy', strategy, '--files', files.join(','), '--budget', String(BUDGET), '--out', picksOut, '--backend', opt.backend]);
}

function runNumpy(files, picksOut) {
  return runJson('python3', [join(root, 'bench', 'peers', 'numpy_kcenter.py'), ...files, '--budget', String(BUDGET), '--out', picksOut]);
}

function commonPrefix(a, b) {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

const inputBytes = 2 * ROWS * DIM * 4;
const rssBoundKb = (inputBytes + 512 * 2 ** 20) / 1024;
const kinds = opt.data === 'both' ? ['clustered', 'isotropic'] : [opt.data];
// Named like the other results files: CPU model and core count (e.g. amd-epyc-2c).
const machine = opt.machine ?? machineSlug;
const results = {
  bench: 'select-scale',
  date: new Date().toISOString(),
  machine: { name: machine, cpu: cpus()[0]?.model?.trim(), cores: cpus().length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version },
  loadAverageAtStart: (() => {
    try {
      return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
    } catch {
      return undefined;
    }
  })(),
  setup: { rows: ROWS, modalities: 2, dim: DIM, dtype: 'float32', budget: BUDGET, inputBytes, rssBoundKb: Math.round(rssBoundKb), backend: opt.backend },
  runs: [],
};

for (const kind of kinds) {
  const files = await ensureData(kind);
  const dir = dirname(files[0]);
  const ours = runChild('kcenter', files, join(dir, 'kcenter-ours.json'));
  const peer = runNumpy(files, join(dir, 'kcenter-numpy.json'));
  const a = JSON.parse(readFileSync(join(dir, 'kcenter-ours.json'), 'utf8'));
  const b = JSON.parse(readFileSync(join(dir, 'kcenter-numpy.json'), 'utf8'));
  const run = {
    data: kind,
    kcenter: {
      pairpick: ours,
      numpy: peer,
      // Whole runs (open + normalise + greedy) and greedy loops alone.
      speedupTotal: +(peer.seconds / ours.seconds).toFixed(2),
      // CPU time of each process (both use 2 threads): steadier than wall time on a shared machine.
      speedupCpu: +(peer.cpu_seconds / ours.cpuSeconds).toFixed(2),
      speedupGreedy: ours.phases.select ? +(peer.greedy_seconds / ours.phases.select).toFixed(2) : undefined,
      samePicks: commonPrefix(a, b),
      rssWithinBound: ours.maxRssKb <= rssBoundKb,
    },
  };
  process.stderr.write(
    `${kind}: kcenter pairpick ${ours.seconds.toFixed(2)} s (greedy ${ours.phases.select?.toFixed(2)} s, RSS ${(ours.maxRssKb / 1024).toFixed(0)} MB) ` +
      `vs numpy ${peer.seconds.toFixed(2)} s (greedy ${peer.greedy_seconds.toFixed(2)} s, RSS ${(peer.max_rss_kb / 1024).toFixed(0)} MB): ` +
      `×${run.kcenter.speedupTotal} total, ×${run.kcenter.speedupGreedy} greedy, ×${run.kcenter.speedupCpu} CPU time; first ${run.kcenter.samePicks}/${BUDGET} picks identical\n`,
  );
  if (!opt['skip-mmcsal'] && kind === kinds[0]) {
    const mm = runChild('mmcsal', files, join(dir, 'mmcsal-ours.json'));
    run.mmcsal = { pairpick: mm, rssWithinBound: mm.maxRssKb <= rssBoundKb };
    process.stderr.write(
      `${kind}: mmcsal (exact kNN density, k = 20, γ = ${mm.params.gamma}) ${mm.seconds.toFixed(1)} s ` +
        `(density ${mm.phases.density?.toFixed(1)} s, greedy ${mm.phases.select?.toFixed(2)} s, RSS ${(mm.maxRssKb / 1024).toFixed(0)} MB)\n`,
    );
  }
  results.runs.push(run);
}

const primary = results.runs[0];
results.targets = {
  'kcenter ≥ 1.5× numpy (whole run, first data set)': primary.kcenter.speedupTotal >= 1.5,
  'mmcsal with exact density finishes': primary.mmcsal ? true : 'skipped',
  'peak RSS ≤ input bytes + 512 MB (every run)': results.runs.every((r) => r.kcenter.rssWithinBound && (r.mmcsal?.rssWithinBound ?? true)),
};
const out = opt.out ?? join(root, 'bench', 'results', `select-${machine}.json`);
writeJson(out, results);
process.stderr.write(`results → ${out}\n`);

