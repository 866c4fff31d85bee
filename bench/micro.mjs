#!/usr/bin/env node
// Micro-benchmark of the distance core (the `benchmark` package, on dist/ — run `npx tsup` first):
//   knn        2,000 queries × 20,000 refs × 256 dims, k = 20, sqeuclidean
//   distances  1,000 × 2,000 × 256 dense matrix, sqeuclidean
// on the JS fallback, the native cpu backend and cuda when available, plus numpy's matrix-product
// distance (+ argpartition for knn) on the same data when python3 + numpy exist. Prints a table and
// writes bench/results/micro-<machine>.json (machine, date, mean seconds per case, ratios).
//
//   npm run bench                        full run (the JS fallback takes about a minute)
//   npm run bench -- --quick             small sizes, nothing written (a smoke test)
//   npm run bench -- --out file.json     write the results elsewhere
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { args, describeMachine, flag, hasNumpy, importDist, machineLine, measure, normals, printTable, root, writeResults } from './common.mjs';

const quick = args.includes('--quick');

const { kernels, backends } = await importDist();

const KNN = quick ? { rowsQ: 200, rowsR: 2000, dim: 64, k: 20 } : { rowsQ: 2000, rowsR: 20000, dim: 256, k: 20 };
const DENSE = quick ? { rowsA: 100, rowsB: 200, dim: 64 } : { rowsA: 1000, rowsB: 2000, dim: 256 };
const SEED = 20240611;

// ---------------------------------------------------------------------------------------------
// Data: seeded standard normals (the same arrays go to numpy through .npy files).

function writeNpy(file, data, rows, cols) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

function readNpyInt32(file) {
  const buf = readFileSync(file);
  const headerLen = buf[6] === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (buf[6] === 1 ? 10 : 12) + headerLen;
  return new Int32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
}

const knnRef = normals(KNN.rowsR * KNN.dim, SEED);
const knnQuery = normals(KNN.rowsQ * KNN.dim, SEED + 1);
const denseA = normals(DENSE.rowsA * DENSE.dim, SEED + 2);
const denseB = normals(DENSE.rowsB * DENSE.dim, SEED + 3);

// ---------------------------------------------------------------------------------------------
// The pairpick cases.

const available = backends().filter((b) => b.available);
const knnName = `knn ${KNN.rowsQ}×${KNN.rowsR}×${KNN.dim} k=${KNN.k}`;
const denseName = `distances ${DENSE.rowsA}×${DENSE.rowsB}×${DENSE.dim}`;

const results = [];
let cpuKnnIndices;
for (const b of available) {
  // The JS fallback is slow on the big case: few samples, bounded time.
  const opts = b.name === 'js' ? { minSamples: 2, maxTime: 1 } : { minSamples: 8, maxTime: 4 };
  process.stderr.write(`bench: ${knnName} on ${b.name}…\n`);
  const knnRun = await measure(`${knnName} ${b.name}`, () => kernels.knn(knnQuery, knnRef, { ...KNN, backend: b.name }), opts);
  results.push({ case: 'knn', name: knnName, backend: b.name, ...knnRun });
  process.stderr.write(`bench: ${denseName} on ${b.name}…\n`);
  const denseRun = await measure(`${denseName} ${b.name}`, () => kernels.distances(denseA, denseB, { ...DENSE, backend: b.name }), opts);
  results.push({ case: 'distances', name: denseName, backend: b.name, ...denseRun });
  if (b.name === 'cpu') cpuKnnIndices = (await kernels.knn(knnQuery, knnRef, { ...KNN, backend: 'cpu' })).indices;
}

// ---------------------------------------------------------------------------------------------
// The numpy peer, on the same data.

let numpy;
if (hasNumpy()) {
  process.stderr.write('bench: numpy peer…\n');
  const dir = mkdtempSync(join(tmpdir(), 'pairpick-bench-'));
  try {
    writeNpy(join(dir, 'q.npy'), knnQuery, KNN.rowsQ, KNN.dim);
    writeNpy(join(dir, 'r.npy'), knnRef, KNN.rowsR, KNN.dim);
    writeNpy(join(dir, 'a.npy'), denseA, DENSE.rowsA, DENSE.dim);
    writeNpy(join(dir, 'b.npy'), denseB, DENSE.rowsB, DENSE.dim);
    // argv, not a shell string: paths are passed through untouched.
    const py = spawnSync(
      'python3',
      [
        join(root, 'bench', 'peers', 'numpy_knn.py'),
        '--knn-q', join(dir, 'q.npy'),
        '--knn-r', join(dir, 'r.npy'),
        '--k', String(KNN.k),
        '--dist-a', join(dir, 'a.npy'),
        '--dist-b', join(dir, 'b.npy'),
        '--repeat', quick ? '3' : '6',
        '--out-idx', join(dir, 'idx.npy'),
      ],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    if (py.status !== 0) throw new Error(`numpy peer failed: ${py.stderr}`);
    numpy = JSON.parse(py.stdout.trim().split('\n').at(-1));
    if (cpuKnnIndices) {
      // Parity: the neighbour sets should agree (up to exact ties and fp32 rounding order).
      const np = readNpyInt32(join(dir, 'idx.npy'));
      let same = 0;
      for (let i = 0; i < KNN.rowsQ; i++) {
        const a = new Set(cpuKnnIndices.subarray(i * KNN.k, (i + 1) * KNN.k));
        for (let s = 0; s < KNN.k; s++) if (a.has(np[i * KNN.k + s])) same++;
      }
      numpy.knnAgreement = same / (KNN.rowsQ * KNN.k);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  process.stderr.write('bench: python3 with numpy not found — skipping the numpy peer\n');
}

// ---------------------------------------------------------------------------------------------
// Report.

const mean = (c, backend) => results.find((r) => r.case === c && r.backend === backend)?.meanSeconds;
const ratio = (a, b) => (a !== undefined && b !== undefined ? a / b : undefined);
const ratios = {
  knnCpuVsJs: ratio(mean('knn', 'js'), mean('knn', 'cpu')),
  distancesCpuVsJs: ratio(mean('distances', 'js'), mean('distances', 'cpu')),
  knnNumpyVsCpu: ratio(numpy?.knn.meanSeconds, mean('knn', 'cpu')),
  distancesNumpyVsCpu: ratio(numpy?.distances.meanSeconds, mean('distances', 'cpu')),
  knnCpuVsCuda: ratio(mean('knn', 'cpu'), mean('knn', 'cuda')),
  distancesCpuVsCuda: ratio(mean('distances', 'cpu'), mean('distances', 'cuda')),
};
for (const key of Object.keys(ratios)) if (ratios[key] === undefined) delete ratios[key];

const machine = {
  ...describeMachine({ backends }),
  numpy: numpy ? `${numpy.numpy} (${numpy.blas})` : undefined,
  // Other work on the machine skews timings: the 1-minute load average when the run ended.
  loadAverage: Number(loadavg()[0].toFixed(2)),
};

const rows = [['case', 'backend', 'mean s', '± %', 'samples', 'cpu s/op']];
for (const r of results) rows.push([r.name, r.backend, r.meanSeconds.toFixed(4), r.rme.toFixed(1), String(r.samples), r.cpuSecondsPerOp.toFixed(4)]);
if (numpy) {
  rows.push([knnName, 'numpy full matrix + argpartition', numpy.knn.meanSeconds.toFixed(4), '', String(numpy.knn.samples), '']);
  rows.push([`  (numpy sgemm Q·Rᵀ alone)`, 'numpy', numpy.sgemm.meanSeconds.toFixed(4), '', String(numpy.sgemm.samples), '']);
  rows.push([denseName, 'numpy', numpy.distances.meanSeconds.toFixed(4), '', String(numpy.distances.samples), '']);
}
console.log(`\n${machineLine(machine)}, load average ${machine.loadAverage}`);
printTable(rows);
console.log('');
for (const [k, v] of Object.entries(ratios)) console.log(`${k.padEnd(22)} ${v.toFixed(1)}×`);
if (numpy?.knnAgreement !== undefined) console.log(`knn neighbours shared with numpy: ${(numpy.knnAgreement * 100).toFixed(2)}%`);

if (!quick || flag('out')) {
  writeResults('micro', { machine, cases: { knn: KNN, distances: DENSE, metric: 'sqeuclidean', seed: SEED }, results, numpy: numpy ?? null, ratios });
}
