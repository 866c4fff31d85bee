// Records what every strategy picks on every available backend (and what the kernels return) on
// fixed seeded pools, so that a refactoring of the backends can be shown to change nothing:
//
//   node bench/check-picks.mjs --write before.json        # on the code before the change
//   node bench/check-picks.mjs --against before.json      # after: exit 1 listing any difference
//
// Needs dist/ (`npx tsup`) and, for the cpu/cuda rows, the native addon. Picks, MMCSAL/k-center
// components, raw terms and resolved params are compared exactly (float64 values round-trip
// through JSON); kernel outputs by a SHA-256 of their bytes.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { importDist, normals, root } from './common.mjs';

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const writeTo = flag('--write');
const against = flag('--against');
if (!writeTo && !against) {
  console.error('usage: node bench/check-picks.mjs (--write FILE | --against FILE) [--backends js,cpu]');
  process.exit(2);
}

const pp = await importDist();
const available = pp.backends().filter((b) => b.available).map((b) => b.name);
const wanted = flag('--backends')?.split(',') ?? ['js', 'cpu', 'cuda'];
const BACKENDS = wanted.filter((b) => available.includes(b));

/** Rows around `clusters` centres shared by the modalities (as test/select.test.ts builds them). */
function clustered(seed, rows, dims, clusters) {
  const of = Int32Array.from({ length: rows }, (_, i) => (i * 7919 + seed) % clusters);
  return dims.map((d, m) => {
    const centres = normals(clusters * d, seed * 31 + m);
    const x = normals(rows * d, seed * 37 + m, 0.12);
    for (let i = 0; i < rows; i++) for (let t = 0; t < d; t++) x[i * d + t] += centres[of[i] * d + t];
    return x;
  });
}

function scattered(seed, rows, dims) {
  return dims.map((d, m) => normals(rows * d, seed * 41 + m, 1 + m / 3));
}

/** float32 → binary16 bits, round to nearest even (normals and subnormals; no overflow here). */
function toHalf(src) {
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f[0] = src[i];
    const bits = u[0], sign = (bits >>> 16) & 0x8000, abs = bits & 0x7fffffff;
    let h;
    if (abs < 0x38800000) {
      const shift = 126 - (abs >>> 23);
      if (shift > 24) h = 0;
      else {
        const m = (abs & 0x7fffff) | 0x800000;
        h = m >>> shift;
        const rem = m & ((1 << shift) - 1), mid = 1 << (shift - 1);
        if (rem > mid || (rem === mid && h & 1)) h++;
      }
    } else {
      h = (abs - 0x38000000) >>> 13;
      const rem = abs & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
    }
    out[i] = sign | h;
  }
  return out;
}

const POOLS = [
  { name: 'clustered-600x[24,24]', rows: 600, dims: [24, 24], data: () => clustered(11, 600, [24, 24], 12) },
  { name: 'clustered-600x[24,24]-fp16', rows: 600, dims: [24, 24], half: true, data: () => clustered(11, 600, [24, 24], 12) },
  { name: 'scattered-500x[16,40,8]', rows: 500, dims: [16, 40, 8], data: () => scattered(23, 500, [16, 40, 8]) },
  { name: 'clustered-2500x[64,48]', rows: 2500, dims: [64, 48], data: () => clustered(37, 2500, [64, 48], 30) },
  { name: 'scattered-1800x[32,32]-fp16', rows: 1800, dims: [32, 32], half: true, data: () => scattered(41, 1800, [32, 32]) },
];

const RUNS = [
  { strategy: 'mmcsal' },
  { strategy: 'mmcsal', densitySample: 150, seed: 3 },
  { strategy: 'kcenter' },
  { strategy: 'kmeans', seed: 5 },
  { strategy: 'typiclust', seed: 2 },
  { strategy: 'probcover', seed: 1 },
  { strategy: 'facility', optimizer: 'lazy' },
  { strategy: 'facility', optimizer: 'stochastic', seed: 4 },
  { strategy: 'random', seed: 9 },
];

/** JSON-safe copy: typed arrays to arrays, non-finite numbers to strings. */
function plain(v) {
  if (v === undefined || v === null) return v ?? null;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (ArrayBuffer.isView(v)) return Array.from(v, plain);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

const hash = (a) => createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)).digest('hex').slice(0, 24);

async function selections() {
  const out = {};
  for (const spec of POOLS) {
    const raw = spec.data();
    const input = {};
    raw.forEach((x, m) => (input[`m${m}`] = { data: spec.half ? toHalf(x) : x, dim: spec.dims[m] }));
    const pool = await pp.openPool(input);
    const labeledSets = { none: undefined, labeled: Array.from({ length: 15 }, (_, i) => (i * 37 + 5) % spec.rows) };
    try {
      for (const [labelName, labeled] of Object.entries(labeledSets)) {
        for (const run of RUNS) {
          for (const backend of BACKENDS) {
            const key = `${spec.name} | ${labelName} | ${JSON.stringify(run)} | ${backend}`;
            const started = performance.now();
            const s = await pp.select(pool, { ...run, budget: 24, labeled, backend });
            out[key] = { indices: plain(s.indices), components: plain(s.components), raw: plain(s.raw), params: plain(s.params) };
            process.stderr.write(`${key}: ${(performance.now() - started).toFixed(0)} ms\n`);
          }
        }
      }
    } finally {
      await pool.close();
    }
  }
  return out;
}

async function kernelOutputs() {
  const out = {};
  const k = pp.kernels;
  for (const backend of BACKENDS) {
    for (const half of [false, true]) {
      const [rowsA, rowsB, dim] = [157, 333, 45];
      const a32 = normals(rowsA * dim, 100), b32 = normals(rowsB * dim, 101);
      const a = half ? toHalf(a32) : a32, b = half ? toHalf(b32) : b32;
      for (const metric of ['sqeuclidean', 'euclidean', 'cosine']) {
        const tag = `${backend} ${half ? 'fp16' : 'fp32'} ${metric}`;
        out[`distances ${tag}`] = hash(await k.distances(a, b, { rowsA, rowsB, dim, metric, backend }));
        const nn = await k.knn(a, b, { rowsQ: rowsA, rowsR: rowsB, dim, k: 7, metric, backend });
        out[`knn ${tag}`] = [hash(nn.indices), hash(nn.distances)];
        const self = await k.knn(b, b, { rowsQ: rowsB, rowsR: rowsB, dim, k: 5, metric, excludeSelf: true, backend });
        out[`knn-self ${tag}`] = [hash(self.indices), hash(self.distances)];
        const minDist = new Float32Array(rowsB).fill(Infinity);
        const exclude = Uint8Array.from({ length: rowsB }, (_, i) => (i % 7 === 0 ? 1 : 0));
        const center = a.subarray(dim, 2 * dim);
        const m = await k.minUpdate(b, center, minDist, { rows: rowsB, dim, metric, exclude, backend });
        out[`minUpdate ${tag}`] = [plain(m), hash(minDist)];
      }
    }
    const [rows, dim, kk] = [96, 40, 17];
    const unit = (x, n, d) => {
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let t = 0; t < d; t++) s += x[i * d + t] ** 2;
        for (let t = 0; t < d; t++) x[i * d + t] /= Math.sqrt(s);
      }
      return x;
    };
    const za = unit(normals(rows * dim, 200), rows, dim), zb = unit(normals(rows * dim, 201), rows, dim);
    const inf = await k.infoNCE(za, zb, { rows, dim, backend });
    out[`infoNCE ${backend}`] = [plain(inf.loss), hash(inf.gradA), hash(inf.gradB)];
    const scores = normals(rows * kk, 202, 0.3);
    const codes = await k.sinkhorn(scores, { rows, k: kk, backend });
    out[`sinkhorn ${backend}`] = hash(codes);
    const protos = unit(normals(kk * dim, 203), kk, dim);
    const pl = await k.prototypeLoss(za, protos, codes, { rows, dim, k: kk, backend });
    out[`prototypeLoss ${backend}`] = [plain(pl.loss), hash(pl.gradZ), hash(pl.gradPrototypes)];
    let seed = 300;
    for (const [transA, transB, accumulate, half] of [
      [false, false, false, false],
      [true, false, true, false],
      [false, true, false, true],
      [true, true, true, true],
    ]) {
      const [m, n, inner] = [67, 53, 41];
      const A32 = normals(m * inner, seed++), B = normals(inner * n, seed++);
      const c = normals(m * n, seed++);
      const res = await k.matmul(half ? toHalf(A32) : A32, B, c, { m, n, inner, transA, transB, accumulate, backend });
      out[`matmul ${backend} ${transA}${transB}${accumulate}${half}`] = hash(res);
    }
  }
  return out;
}

const started = performance.now();
const result = { backends: BACKENDS, selections: await selections(), kernels: await kernelOutputs() };
process.stderr.write(`check-picks: ${Object.keys(result.selections).length} selections, ${Object.keys(result.kernels).length} kernel outputs on ${BACKENDS.join(', ')} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);

if (writeTo) {
  writeFileSync(writeTo, JSON.stringify(result, null, 1) + '\n');
  console.log(`wrote ${writeTo}`);
}
if (against) {
  const before = JSON.parse(readFileSync(against.startsWith('/') ? against : join(process.cwd(), against), 'utf8'));
  const diffs = [];
  let compared = 0;
  for (const part of ['selections', 'kernels']) {
    for (const [key, value] of Object.entries(before[part])) {
      if (!(key in result[part])) {
        if (result.backends.some((b) => key.endsWith(`| ${b}`) || key.includes(` ${b}`))) diffs.push(`${part}: ${key} is missing now`);
        continue;
      }
      compared++;
      if (JSON.stringify(value) !== JSON.stringify(result[part][key])) diffs.push(`${part}: ${key} differs`);
    }
  }
  if (diffs.length) {
    console.log(`check-picks: ${diffs.length} of ${compared} results differ from ${against}:\n  ${diffs.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`check-picks: all ${compared} results identical to ${against} (${root})`);
}
