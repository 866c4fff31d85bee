#!/usr/bin/env node
// Warm-start selection at scale on the CPU: N pairs × 2 modalities × D dims (float32 .npy files
// generated under /tmp), a late-fusion classifier (hidden H per modality, C classes), budget B.
//   * badge and bmmal through select() on the cpu backend (one forward pass in chunks, then
//     k-means++ seeding on the factorised gradient embeddings), each in its own child process:
//     wall time, its phases (forward = 'prepare', picks = 'select') and peak RSS against the bound
//     input bytes + 512 MB;
//   * bench/peers/numpy_badge.py on the same files, weights and uniforms (LabelBench-style: per
//     pick one pass over r and h — two matrix-vector products, a minimum, a cumulative sum and a
//     search), and how many of its picks equal ours.
// Results go to bench/results/warm-scale-<data>[-cuda]-<machine>.json.
//
//   npx tsup && node bench/warm-scale.mjs [--rows 100000] [--dim 256] [--hidden 256] [--classes 101]
//        [--budget 1000] [--seed 1] [--data clustered|isotropic] [--machine NAME] [--out FILE]
//        [--backend cpu|cuda] [--half] [--peer numpy|none] [--bandwidth-gbs 4800]
//
// --backend cuda times the device seeding (cuda/warm.cu; the forward pass runs on the host) and
// prints the time per pick against the memory-bandwidth floor: an unpruned pick reads every
// row's stored factors, N · (C + M·H) float32 (rows padded to 8 floats), at --bandwidth-gbs
// (default 4800, an H200's HBM3e). --half stores the pool as fp16. The GPU scale run of the
// warm-start issue (1,000,000 × 2 × 512 fp16, C = 309, B = 2,000) is
//   node bench/warm-scale.mjs --backend cuda --half --data isotropic --rows 1000000 --dim 512 \
//        --hidden 512 --classes 309 --budget 2000 --peer none
// (test/gpu/device-check.sh runs it).
//
// The classifier has random encoders (h^m = ReLU(x W_mᵀ + b_m), W_m ~ N(0, 1/D)) and a head that
// is not trained but built in closed form so that its predictions look like a trained model's:
// `clustered` data has C classes (x^m = class centre + noise), and the head's row c is the class's
// mean encoder output (centred, scaled to a typical top probability of ~0.6); `isotropic` data is
// i.i.d. Gaussian rows with a random Gaussian head (no structure: the worst case for the pruning).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { describeMachine, gaussian, hasNumpy, importDist, machineLine, printTable, root, runJson, timedSelection, writeResults } from './common.mjs';

const { values: opt } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    dim: { type: 'string', default: '256' },
    hidden: { type: 'string', default: '256' },
    classes: { type: 'string', default: '101' },
    budget: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    data: { type: 'string', default: 'clustered' },
    machine: { type: 'string' },
    out: { type: 'string' },
    child: { type: 'string' },
    dir: { type: 'string' },
    strategy: { type: 'string' },
    backend: { type: 'string', default: 'cpu' },
    half: { type: 'boolean', default: false },
    peer: { type: 'string', default: 'numpy' },
    'bandwidth-gbs': { type: 'string', default: '4800' },
  },
});
const BACKEND = opt.backend;
const N = Number(opt.rows);
const D = Number(opt.dim);
const H = Number(opt.hidden);
const C = Number(opt.classes);
const B = Number(opt.budget);
const SEED = Number(opt.seed);
const M = 2;

/** select()'s uniforms: pairpick's seeded Rng (xoshiro128** seeded through splitmix32, src/util/rng.ts), next() in [0, 1). */
function pairpickUniforms(seed, n) {
  let x = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
  const split = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let [s0, s1, s2, s3] = [split(), split(), split(), split()];
  const rotl = (v, k) => ((v << k) | (v >>> (32 - k))) >>> 0;
  const u32 = () => {
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    s0 >>>= 0;
    s1 >>>= 0;
    s2 >>>= 0;
    s3 >>>= 0;
    return result;
  };
  return Float64Array.from({ length: n }, () => {
    const hi = u32() >>> 5;
    const lo = u32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  });
}

/** A late-fusion Classifier over the weights in `dir` whose forward runs the encoders and head with the backend's matmul. */
async function benchClassifier(pp, dir) {
  const load = async (name) => (await pp.readNpy(join(dir, `${name}.npy`))).data;
  const enc = [];
  for (let m = 0; m < M; m++) enc.push({ w: await load(`enc${m}_w`), b: await load(`enc${m}_b`) });
  const head = { w: await load('head_w'), b: await load('head_b') };
  const backend = pp.getBackend('cpu');
  const modalities = [
    { name: 'a', dim: D },
    { name: 'b', dim: D },
  ];
  return {
    model: 'late-fusion',
    modalities,
    classes: C,
    hidden: H,
    options: {},
    history: [],
    head: () => ({ model: 'late-fusion', classes: C, hidden: H, modalities: M, weight: head.w, bias: head.b }),
    async forward(pool, range) {
      const { start, count } = range;
      const features = [];
      for (let m = 0; m < M; m++) {
        const x = await pool.source(modalities[m].name).read(start, count);
        const h = new Float32Array(count * H);
        await backend.matmul(x, enc[m].w, h, { m: count, n: H, inner: D, transA: false, transB: true, accumulate: false });
        for (let i = 0; i < count; i++) for (let j = 0; j < H; j++) h[i * H + j] = Math.max(0, h[i * H + j] + enc[m].b[j]);
        features.push(h);
      }
      // Fused logits (not read by badge/bmmal, which take the head's blocks; kept for the contract).
      const logits = new Float32Array(count * C);
      for (let i = 0; i < count; i++) logits.set(head.b, i * C);
      return { start, rows: count, classes: C, logits, features, present: new Uint8Array(count * M).fill(1), modalityLogits: [], fusionWeights: new Float32Array(count * M).fill(1) };
    },
    predict: () => Promise.reject(new Error('bench model: forward only')),
    features: () => Promise.reject(new Error('bench model: forward only')),
    save: () => Promise.reject(new Error('bench model: forward only')),
  };
}

// ---- child: one selection, reported as a JSON line ----
if (opt.child) {
  const pp = await importDist();
  const model = await benchClassifier(pp, opt.dir);
  const files = ['a', 'b'].map((m) => join(opt.dir, `${m}.npy`));
  const { sel, seconds, phases, cpuSeconds } = await timedSelection(pp, files, { strategy: opt.strategy, budget: B, backend: BACKEND, seed: SEED, model });
  writeFileSync(opt.out, JSON.stringify(Array.from(sel.indices)));
  process.stdout.write(JSON.stringify({ seconds, selectSeconds: sel.seconds, cpuSeconds, phases, maxRssKb: process.resourceUsage().maxRSS, picks: Array.from(sel.indices.slice(0, 10)) }) + '\n');
  process.exit(0);
}

// ---- parent ----
const pp = await importDist();
const machine = { ...describeMachine(pp), ...(opt.machine && { name: opt.machine }) };
const dir = `/tmp/pairpick-warm-${opt.data}-${N}x${D}${opt.half ? 'h' : ''}-h${H}-c${C}`;
if (!existsSync(join(dir, 'head_b.npy'))) {
  mkdirSync(dir, { recursive: true });
  console.log(`generating ${opt.data} data in ${dir} …`);
  const g = gaussian(20261202);
  const normal = (n, scale) => Float32Array.from({ length: n }, () => g.normal() * scale);
  const label = Int32Array.from({ length: N }, () => Math.floor(g.next() * C));
  const xs = [];
  for (let m = 0; m < M; m++) {
    const centres = normal(C * D, 1);
    const x = normal(N * D, opt.data === 'clustered' ? 1.2 : 1);
    if (opt.data === 'clustered') for (let i = 0; i < N; i++) for (let t = 0; t < D; t++) x[i * D + t] += centres[label[i] * D + t];
    xs.push(x);
    await pp.writeNpy(join(dir, `${'ab'[m]}.npy`), x, [N, D], { dtype: opt.half ? 'float16' : 'float32' });
    await pp.writeNpy(join(dir, `enc${m}_w.npy`), normal(H * D, 1 / Math.sqrt(D)), [H, D]);
    await pp.writeNpy(join(dir, `enc${m}_b.npy`), normal(H, 0.1), [H]);
  }
  let headW;
  if (opt.data === 'clustered') {
    // Row c of the head: the class's mean encoder output, centred, per modality block.
    const encs = [];
    for (let m = 0; m < M; m++) encs.push({ w: (await pp.readNpy(join(dir, `enc${m}_w.npy`))).data, b: (await pp.readNpy(join(dir, `enc${m}_b.npy`))).data });
    const sums = new Float64Array(C * M * H);
    const counts = new Float64Array(C);
    const backend = pp.getBackend('cpu');
    const step = 8192;
    for (let s = 0; s < N; s += step) {
      const n = Math.min(step, N - s);
      for (let m = 0; m < M; m++) {
        const h = new Float32Array(n * H);
        await backend.matmul(xs[m].subarray(s * D, (s + n) * D), encs[m].w, h, { m: n, n: H, inner: D, transA: false, transB: true, accumulate: false });
        for (let i = 0; i < n; i++) for (let j = 0; j < H; j++) sums[label[s + i] * M * H + m * H + j] += Math.max(0, h[i * H + j] + encs[m].b[j]);
      }
      for (let i = 0; i < n; i++) counts[label[s + i]]++;
    }
    const mean = new Float64Array(M * H);
    for (let c = 0; c < C; c++) for (let f = 0; f < M * H; f++) mean[f] += sums[c * M * H + f] / counts[c] / C;
    headW = new Float32Array(C * M * H);
    for (let c = 0; c < C; c++) {
      let ss = 0;
      for (let f = 0; f < M * H; f++) ss += (sums[c * M * H + f] / counts[c] - mean[f]) ** 2;
      for (let f = 0; f < M * H; f++) headW[c * M * H + f] = (0.5 * (sums[c * M * H + f] / counts[c] - mean[f])) / Math.sqrt(ss);
    }
  } else {
    headW = normal(C * M * H, 3 / Math.sqrt(M * H));
  }
  await pp.writeNpy(join(dir, 'head_w.npy'), headW, [C, M * H]);
  await pp.writeNpy(join(dir, 'head_b.npy'), normal(C, 0.1), [C]);
}
// JSON numbers round-trip float64 exactly (shortest repr), so numpy draws with the very same uniforms.
const uniformsFile = join(dir, `uniforms-${SEED}-${B}.json`);
writeFileSync(uniformsFile, JSON.stringify(Array.from(pairpickUniforms(SEED, B))));

const loadAtStart = loadavg();
const inputBytes = N * D * (opt.half ? 2 : 4) * M;
const pad8 = (n) => Math.ceil(n / 8) * 8;
// Bytes an unpruned pick reads on the device: every row's r (C) and x̂ (M·H) floats, padded.
const pickBytes = N * (pad8(C) + pad8(M * H)) * 4;
const bandwidth = Number(opt['bandwidth-gbs']) * 1e9;
const results = {};
for (const strategy of ['badge', 'bmmal']) {
  const picksFile = join(dir, `picks-${strategy}.json`);
  console.log(`${strategy} (${BACKEND}) …`);
  const r = runJson(process.execPath, [join(root, 'bench', 'warm-scale.mjs'), '--child', '1', '--dir', dir, '--strategy', strategy, '--out', picksFile, '--rows', `${N}`, '--dim', `${D}`, '--hidden', `${H}`, '--classes', `${C}`, '--budget', `${B}`, '--seed', `${SEED}`, '--backend', BACKEND]);
  const ours = JSON.parse(readFileSync(picksFile, 'utf8'));
  const entry = { pairpick: { ...r, rssBoundKb: Math.round((inputBytes + 512 * 2 ** 20) / 1024), withinBound: r.maxRssKb * 1024 <= inputBytes + 512 * 2 ** 20 } };
  if (BACKEND === 'cuda') {
    const perPick = (r.phases.select ?? r.seconds) / B;
    entry.device = { perPickMs: perPick * 1e3, floorMsUnpruned: (pickBytes / bandwidth) * 1e3, bandwidthGBs: bandwidth / 1e9, pickBytesUnpruned: pickBytes };
    console.log(`  ${(perPick * 1e3).toFixed(3)} ms a pick; an unpruned pick reads ${(pickBytes / 1e9).toFixed(2)} GB: ${((pickBytes / bandwidth) * 1e3).toFixed(3)} ms at ${bandwidth / 1e9} GB/s`);
  }
  if (opt.peer === 'numpy' && hasNumpy()) {
    console.log(`${strategy} (numpy) …`);
    const numpyPicks = join(dir, `numpy-picks-${strategy}.json`);
    // OpenBLAS with 1 and with every core (its threads spin, which loses on a busy 2-core machine):
    // the faster run is the one compared.
    const runs = [1, cpus().length].map((threads) => ({
      threads,
      ...runJson('python3', [join(root, 'bench', 'peers', 'numpy_badge.py'), dir, '--mode', strategy, '--uniforms', uniformsFile, '--budget', `${B}`, '--out', numpyPicks], { OPENBLAS_NUM_THREADS: `${threads}` }),
    }));
    const n = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const theirs = JSON.parse(readFileSync(numpyPicks, 'utf8'));
    let prefix = 0;
    while (prefix < B && ours[prefix] === theirs[prefix]) prefix++;
    const common = theirs.filter((i) => new Set(ours).has(i)).length;
    entry.numpy = n;
    entry.numpyRuns = runs.map(({ threads, seconds, forward_seconds, pick_seconds }) => ({ threads, seconds, forward_seconds, pick_seconds }));
    entry.samePicks = { identicalPrefix: prefix, inBoth: common, of: B };
    entry.speedup = n.seconds / r.seconds;
    entry.pickSpeedup = n.pick_seconds / (r.phases.select ?? r.seconds);
  }
  results[strategy] = entry;
}

console.log(`\n${machineLine(machine)}; ${N} pairs × ${M} × ${D}, hidden ${H}, C = ${C}, B = ${B}, ${opt.data} data`);
const rows = [['strategy', 'who', 'total s', 'forward s', 'picks s', 'peak RSS MB', 'vs numpy', 'same picks']];
for (const [s, e] of Object.entries(results)) {
  const p = e.pairpick;
  rows.push([s, `pairpick ${BACKEND}`, p.seconds.toFixed(2), (p.phases.prepare ?? 0).toFixed(2), (p.phases.select ?? 0).toFixed(2), (p.maxRssKb / 1024).toFixed(0), e.speedup ? `${e.speedup.toFixed(1)}×` : '-', e.samePicks ? `${e.samePicks.identicalPrefix}/${B} in order` : '-']);
  if (e.numpy) rows.push([s, `numpy (${e.numpy.threads} thr)`, e.numpy.seconds.toFixed(2), e.numpy.forward_seconds.toFixed(2), e.numpy.pick_seconds.toFixed(2), (e.numpy.max_rss_kb / 1024).toFixed(0), '', `${e.samePicks.inBoth}/${B} in both`]);
}
printTable(rows);
const load = { start: loadAtStart, end: loadavg() };
console.log(`load average (1, 5, 15 min): ${load.start.map((v) => v.toFixed(1)).join(', ')} at the start, ${load.end.map((v) => v.toFixed(1)).join(', ')} at the end`);
writeResults(`warm-scale-${opt.data}${BACKEND === 'cpu' ? '' : `-${BACKEND}`}`, { machine, backend: BACKEND, half: opt.half, rows: N, modalities: M, dim: D, hidden: H, classes: C, budget: B, seed: SEED, data: opt.data, inputBytes, load, results }, 'warm-scale');
