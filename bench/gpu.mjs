#!/usr/bin/env node
// GPU micro-benchmark of pairpick's custom CUDA kernels, run on a GPU machine against dist/
// (packed with ../shared/gpu/pack.sh, see its README). Every case is checked for correctness
// first, then timed after a warm-up: the median wall time of several runs of one public call,
// which includes the host ↔ device copies (the C ABI takes host memory). Each case prints its
// FLOP and byte counts and the floors they imply on this device: the compute floor (FLOP at the
// device's peak), the memory floor (bytes at HBM bandwidth) and the transfer floor (bytes at a
// nominal PCIe rate), so the timing can be read against what is physically possible.
//
//   knn-2k        2,000 queries × 20,000 refs × 256, fp32, k = 20 (sqeuclidean)
//   knn-100k      100,000 × 1,000,000 × 512, fp16, k = 20 (scaled by --scale; one backend call
//                 on the whole problem, and the public kernels.knn with its blocking)
//   minUpdate     1,000,000 × 1,024 fp32 (the fused greedy step; falls back to fewer rows if
//                 this Node cannot allocate 4 GiB in one array) and the same in fp16
//   infoNCE       forward + backward, b = 4,096, d = 128, τ = 0.07
//
//   node bench/gpu.mjs --out results.json [--scale 0.1] [--quick] [--runs 7] [--backend cuda]
// The PyTorch peer for the same cases is bench/peers/torch_gpu.py.
import { cpus } from 'node:os';

import { args, flag, importDist, normalizeRows, writeJson, xorshift32 } from './common.mjs';

const quick = args.includes('--quick');
const scale = Number(flag('scale', quick ? '0.02' : '1'));
const runs = Number(flag('runs', quick ? '3' : '7'));
const outPath = flag('out');
// Another backend runs the same cases (for comparison, or to try the script without a GPU).
const backendName = flag('backend', 'cuda');
if (!(scale > 0 && scale <= 1) || !(runs >= 1)) {
  console.error('usage: node bench/gpu.mjs --out FILE [--scale 0<s≤1] [--runs N] [--quick]');
  process.exit(2);
}

const { kernels, backends, getBackend } = await importDist();
const cudaInfo = backends().find((b) => b.name === backendName);
if (!cudaInfo?.available) {
  console.error(`bench/gpu: the ${backendName} backend is not available here (${cudaInfo?.reason ?? 'not listed'})`);
  process.exit(1);
}
const cuda = getBackend(backendName);
const cpuAvailable = backends().find((b) => b.name === 'cpu')?.available === true;

// Nominal peaks (dense, no sparsity) by device name; PCIe is what a pageable host copy gets at
// best on these systems (Gen5 x16 ≈ 64 GB/s raw). Unknown devices print FLOP/bytes only.
const PEAKS = [
  { match: /H200/i, fp32: 67e12, fp16: 989e12, hbm: 4.8e12, pcie: 50e9 },
  { match: /H100.*PCIe/i, fp32: 51e12, fp16: 756e12, hbm: 2.0e12, pcie: 50e9 },
  { match: /H100/i, fp32: 67e12, fp16: 989e12, hbm: 3.35e12, pcie: 50e9 },
  { match: /A100/i, fp32: 19.5e12, fp16: 312e12, hbm: 2.0e12, pcie: 25e9 },
];
const deviceName = String(cudaInfo.device ?? `${backendName} backend (no GPU)`);
const peak = PEAKS.find((p) => p.match.test(deviceName));

// ---- data ----
function rng(seed) {
  const bits = xorshift32(seed);
  return () => bits() / 4294967296;
}
/** Approximately normal values (sum of uniforms): fast enough for a billion entries. */
function fill(array, seed, half) {
  const next = rng(seed);
  const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < array.length; i++) {
    const v = (next() + next() + next() + next() - 2) * 1.73;
    if (half) {
      // fp16 by truncation of the float32 bits (values are small and normal here)
      f32[0] = v;
      const b = u32[0];
      array[i] = ((b >>> 16) & 0x8000) | (((((b >>> 23) & 0xff) - 112) & 0x1f) << 10) | ((b >>> 13) & 0x3ff);
      if (Math.abs(v) < 6.2e-5) array[i] = 0;
    } else {
      array[i] = v;
    }
  }
  return array;
}
const HALF_VALUES = new Float32Array(65536);
for (let h = 0; h < 65536; h++) {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  HALF_VALUES[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? NaN : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
function unitRows(rows, dim, seed) {
  return normalizeRows(fill(new Float32Array(rows * dim), seed, false), rows, dim);
}
/** float64 squared distance between row i of a and row j of b (same dtype). */
function sqDist(a, i, b, j, dim) {
  let s = 0;
  if (a instanceof Uint16Array) {
    for (let k = 0; k < dim; k++) {
      const d = HALF_VALUES[a[i * dim + k]] - HALF_VALUES[b[j * dim + k]];
      s += d * d;
    }
  } else {
    for (let k = 0; k < dim; k++) {
      const d = a[i * dim + k] - b[j * dim + k];
      s += d * d;
    }
  }
  return s;
}

// ---- timing ----
async function time(fn, maxRuns = runs) {
  await fn(); // warm-up (also the first-call workspace allocation)
  const times = [];
  const n = Math.min(runs, maxRuns);
  for (let r = 0; r < n; r++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return { medianMs: times[Math.floor(times.length / 2)], minMs: times[0], maxMs: times[times.length - 1], runs: n };
}

function floors({ flop, precision, deviceBytes, hostBytes }) {
  const f = {};
  if (peak) {
    if (flop) f.computeMs = (flop / peak[precision]) * 1e3;
    if (deviceBytes) f.hbmMs = (deviceBytes / peak.hbm) * 1e3;
    if (hostBytes) f.pcieMs = (hostBytes / peak.pcie) * 1e3;
  }
  return f;
}

const results = [];
function report(name, shape, timing, counts, notes) {
  const fl = floors(counts);
  const entry = { name, shape, ...timing, ...counts, floors: fl, notes };
  if (counts.flop) entry.tflops = counts.flop / (timing.medianMs * 1e-3) / 1e12;
  results.push(entry);
  const floorText = Object.entries(fl)
    .map(([k, v]) => `${k.replace('Ms', '')} ${v.toFixed(3)} ms`)
    .join(', ');
  console.log(
    `${name.padEnd(22)} median ${timing.medianMs.toFixed(2)} ms` +
      (entry.tflops ? `  (${entry.tflops.toFixed(2)} TFLOP/s)` : '') +
      (floorText ? `  floors: ${floorText}` : '') +
      (notes ? `  — ${notes}` : ''),
  );
}

const check = (ok, message) => {
  if (!ok) throw new Error(`bench/gpu correctness check failed: ${message}`);
};

// ---- kNN ----
async function knnCase(name, rowsQ, rowsR, dim, k, half, wholeCall, maxRuns = runs) {
  const q = fill(half ? new Uint16Array(rowsQ * dim) : new Float32Array(rowsQ * dim), 11 + rowsQ, half);
  const r = fill(half ? new Uint16Array(rowsR * dim) : new Float32Array(rowsR * dim), 17 + rowsR, half);
  const opts = { rowsQ, rowsR, dim, k, metric: 'sqeuclidean', backend: backendName };
  const out = await kernels.knn(q, r, opts);
  // Spot check a few queries against a float64 brute force.
  for (const i of [0, Math.floor(rowsQ / 2), rowsQ - 1]) {
    const all = [];
    for (let j = 0; j < rowsR; j++) all.push([sqDist(q, i, r, j, dim), j]);
    all.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    for (let t = 0; t < k; t++) {
      const got = out.distances[i * k + t], want = all[t][0];
      check(Math.abs(got - want) <= (half ? 2e-3 : 1e-5) * want, `${name} query ${i} slot ${t}: ${got} vs ${want}`);
    }
  }
  const elem = half ? 2 : 4;
  const counts = {
    flop: 2 * rowsQ * rowsR * dim,
    precision: half ? 'fp16' : 'fp32',
    deviceBytes: (rowsQ + rowsR) * dim * elem,
    hostBytes: (rowsQ + rowsR) * dim * elem + rowsQ * k * 8 * 2,
  };
  report(`${name} kernels.knn`, { rowsQ, rowsR, dim, k, dtype: half ? 'fp16' : 'fp32' }, await time(() => kernels.knn(q, r, opts), maxRuns), counts,
    'public API (blocks the problem into backend calls)');
  if (wholeCall) {
    const state = { indices: new Int32Array(rowsQ * k), distances: new Float32Array(rowsQ * k) };
    const params = { rowsQ, rowsR, dim, k, metric: 'sqeuclidean', refOffset: 0, queryOffset: 0, excludeSelf: false };
    const one = async () => {
      state.indices.fill(-1);
      state.distances.fill(Infinity);
      await cuda.knnMerge(q, r, params, state);
    };
    await one();
    for (let t = 0; t < rowsQ * k; t++) check(state.indices[t] === out.indices[t] || state.distances[t] === out.distances[t], `${name}: one-call result differs`);
    report(`${name} one call`, { rowsQ, rowsR, dim, k, dtype: half ? 'fp16' : 'fp32' }, await time(one, maxRuns), counts, 'backend.knnMerge on the whole problem');
  }
}

// ---- minUpdate ----
function allocate(Type, rows, dim) {
  for (let n = rows; n >= 1024; n = Math.floor(n / 2)) {
    try {
      return { data: new Type(n * dim), rows: n };
    } catch {
      // RangeError: this Node cannot allocate that much in one typed array; halve
    }
  }
  throw new Error('cannot allocate the minUpdate points');
}

async function minUpdateCase(name, rows0, dim, half) {
  const { data: points, rows } = allocate(half ? Uint16Array : Float32Array, rows0, dim);
  fill(points, 23, half);
  const center = points.slice(7 * dim, 8 * dim);
  const minDist = new Float32Array(rows).fill(Infinity);
  const got = await kernels.minUpdate(points, center, minDist, { rows, dim, backend: backendName });
  // Check: the argmax's distance is the largest (float64 over every row).
  let best = -1, bestI = -1;
  for (let i = 0; i < rows; i += 1) {
    const d = sqDist(points, i, center, 0, dim);
    if (d > best) (best = d), (bestI = i);
    if (i % 100003 === 0) check(Math.abs(minDist[i] - d) <= (half ? 2e-3 : 1e-5) * Math.max(d, 1), `${name}: minDist[${i}]`);
  }
  check(Math.abs(sqDist(points, got.argmax, center, 0, dim) - best) <= 1e-5 * best, `${name}: argmax ${got.argmax} vs ${bestI}`);
  const elem = half ? 2 : 4;
  const counts = { flop: 3 * rows * dim, precision: 'fp32', deviceBytes: rows * dim * elem + rows * 8, hostBytes: rows * dim * elem + rows * 8 };
  const timing = await time(() => kernels.minUpdate(points, center, minDist, { rows, dim, backend: backendName }));
  report(name, { rows, dim, dtype: half ? 'fp16' : 'fp32' }, timing, counts,
    `${rows < rows0 ? `${rows} rows (Node could not allocate ${rows0}); ` : ''}host pointers: every call uploads the points, so PCIe bounds it`);
}

// ---- InfoNCE ----
async function infoNCECase(b, dim) {
  const za = unitRows(b, dim, 31), zb = unitRows(b, dim, 37);
  const opts = { rows: b, dim, temperature: 0.07, backend: backendName };
  const got = await kernels.infoNCE(za, zb, opts);
  if (cpuAvailable) {
    const ref = await kernels.infoNCE(za, zb, { ...opts, backend: 'cpu' });
    check(Math.abs(got.loss - ref.loss) <= 1e-5 * Math.max(1, Math.abs(ref.loss)), `infoNCE loss ${got.loss} vs cpu ${ref.loss}`);
    let num = 0, den = 0;
    for (let i = 0; i < ref.gradA.length; i++) (num += (got.gradA[i] - ref.gradA[i]) ** 2), (den += ref.gradA[i] ** 2);
    check(Math.sqrt(num / den) <= 1e-5, 'infoNCE gradA vs cpu');
  }
  const minimal = 3 * 2 * b * b * dim; // logits, G·zb, Gᵀ·za
  const executed = 6 * 2 * b * b * dim; // logits recomputed in 4 passes + the 2 products
  const counts = { flop: minimal, executedFlop: executed, precision: 'fp32', deviceBytes: 4 * b * dim * 4, hostBytes: 4 * b * dim * 4 };
  report('infoNCE fwd+bwd', { rows: b, dim, temperature: 0.07 }, await time(() => kernels.infoNCE(za, zb, opts)), counts,
    'flop = the 3 GEMMs a materialising implementation needs; the fused kernels execute 2× that');
}

console.log(`bench/gpu: ${backendName} on ${deviceName} (scale ${scale}, ${runs} runs per case)`);
await knnCase('knn-2k', Math.max(64, Math.round(2000 * Math.sqrt(scale))), Math.max(256, Math.round(20000 * Math.sqrt(scale))), 256, 20, false, true);
await knnCase('knn-100k', Math.max(256, Math.round(100000 * scale)), Math.max(1024, Math.round(1000000 * scale)), 512, 20, true, true, 3);
await minUpdateCase('minUpdate fp32', Math.max(1024, Math.round(1000000 * scale)), 1024, false);
await minUpdateCase('minUpdate fp16', Math.max(1024, Math.round(1000000 * scale)), 1024, true);
await infoNCECase(quick ? 512 : 4096, 128);

const summary = {
  backend: backendName,
  machine: { device: deviceName, cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
  date: new Date().toISOString(),
  scale,
  method: 'median wall time of one public call after a warm-up; includes host↔device copies',
  peaks: peak ? { fp32: peak.fp32, fp16: peak.fp16, hbm: peak.hbm, pcie: peak.pcie } : null,
  cases: results,
};
if (outPath) {
  writeJson(outPath, summary);
  console.log(`wrote ${outPath}`);
}
