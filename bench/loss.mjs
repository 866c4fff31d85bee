#!/usr/bin/env node
// Micro-benchmark of the stage-1 ops (the `benchmark` package, on dist/ — run `npx tsup` first):
//   infoNCE        forward + backward, b = 4096 pairs, d = 128, τ = 0.07 (unit rows)
//   matmul         (1024×784)·(784×512) and (1024×512)·(512×128): the projection heads' first and
//                  second layer at the default batch; also with fp16 `a` (frozen features)
//   sinkhorn       4096 × 64 scores, 3 iterations
//   prototypeLoss  b = 4096, d = 128, K = 64
// on the JS fallback, the native cpu backend and cuda when available, plus numpy's sgemm on the
// same matmul shapes (and on 2000×256·256×20000, a big-GEMM throughput reference) when python3 +
// numpy exist. Prints a table and writes bench/results/loss-<machine>.json (machine, date, mean
// seconds per case, GFLOP/s, ratios). Target: native cpu ≥ 20× the JS fallback.
//
//   node bench/loss.mjs                    full run (the JS fallback takes a few minutes)
//   node bench/loss.mjs --quick            small sizes, nothing written (a smoke test)
//   node bench/loss.mjs --out file.json    write the results elsewhere
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';

import { args, describeMachine, flag, hasNumpy, importDist, machineLine, measure, normals, printTable, unitRows, writeResults } from './common.mjs';

const quick = args.includes('--quick');

const { kernels, backends, getBackend } = await importDist();

const NCE = quick ? { rows: 512, dim: 64, temperature: 0.07 } : { rows: 4096, dim: 128, temperature: 0.07 };
const MATMULS = quick
  ? [{ m: 128, inner: 98, n: 64 }]
  : [
      { m: 1024, inner: 784, n: 512 },
      { m: 1024, inner: 512, n: 128 },
    ];
const BIG_GEMM = quick ? { m: 200, inner: 64, n: 2000 } : { m: 2000, inner: 256, n: 20000 };
const PROTO = quick ? { rows: 512, dim: 64, k: 16, temperature: 0.1 } : { rows: 4096, dim: 128, k: 64, temperature: 0.1 };
const SEED = 20240612;
const loadAtStart = Number(loadavg()[0].toFixed(2));

// ---------------------------------------------------------------------------------------------
// Data: seeded standard normals.

function toHalf(src) {
  // Round-to-nearest fp16 through the library's own converter would need an extra export; values
  // here are N(0,1), where truncating the mantissa is close enough for a timing input.
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f[0] = src[i];
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = ((x >>> 23) & 0xff) - 127 + 15;
    out[i] = exp <= 0 ? sign : exp >= 31 ? sign | 0x7c00 : sign | (exp << 10) | ((x >>> 13) & 0x3ff);
  }
  return out;
}

const za = unitRows(NCE.rows, NCE.dim, SEED);
const zb = unitRows(NCE.rows, NCE.dim, SEED + 1);
for (let i = 0; i < za.length; i++) zb[i] = 0.7 * za[i] + 0.3 * zb[i]; // paired rows are related
const protoZ = unitRows(PROTO.rows, PROTO.dim, SEED + 2);
const prototypes = unitRows(PROTO.k, PROTO.dim, SEED + 3);
const protoScores = normals(PROTO.rows * PROTO.k, SEED + 4, 0.3);
const matmulData = MATMULS.map((s, i) => {
  const a = normals(s.m * s.inner, SEED + 10 + i);
  return { ...s, a, aHalf: toHalf(a), b: normals(s.inner * s.n, SEED + 20 + i, 0.05), c: new Float32Array(s.m * s.n) };
});
const big = { ...BIG_GEMM, a: normals(BIG_GEMM.m * BIG_GEMM.inner, SEED + 30), b: normals(BIG_GEMM.inner * BIG_GEMM.n, SEED + 31) };
big.c = new Float32Array(big.m * big.n);

// ---------------------------------------------------------------------------------------------
// Runs.

const available = backends().filter((b) => b.available);

const gemmFlops = (s) => 2 * s.m * s.n * s.inner;
// InfoNCE's matrix work: the logits twice (statistics pass, gradient pass) and the two gradient
// products, each 2·b²·d flops (the exponentials are not counted).
const nceFlops = 4 * 2 * NCE.rows * NCE.rows * NCE.dim;

const results = [];
function record(kind, name, backend, run, flops) {
  const rates = flops ? { gflops: flops / run.meanSeconds / 1e9, gflopsFastest: flops / run.minSeconds / 1e9 } : {};
  results.push({ case: kind, name, backend, ...run, ...rates });
}

const nceName = `infoNCE fwd+bwd b=${NCE.rows} d=${NCE.dim}`;
const sinkName = `sinkhorn ${PROTO.rows}×${PROTO.k} 3 iters`;
const protoName = `prototypeLoss b=${PROTO.rows} d=${PROTO.dim} K=${PROTO.k}`;
const mmName = (s, half) => `matmul (${s.m}×${s.inner})·(${s.inner}×${s.n})${half ? ' fp16 a' : ''}`;
const bigName = `matmul (${big.m}×${big.inner})·(${big.inner}×${big.n})`;

async function runBackend(b) {
  // The JS fallback is slow on the big cases: few samples, bounded time.
  const opts = b.name === 'js' ? { minSamples: 2, maxTime: 1 } : { minSamples: 10, maxTime: 4 };
  const backend = getBackend(b.name);
  process.stderr.write(`bench: ${nceName} on ${b.name}…\n`);
  record('infoNCE', nceName, b.name, await measure(nceName, () => kernels.infoNCE(za, zb, { ...NCE, backend: b.name }), opts), nceFlops);
  for (const s of matmulData) {
    for (const half of [false, true]) {
      const name = mmName(s, half);
      process.stderr.write(`bench: ${name} on ${b.name}…\n`);
      // The backend op directly: the public wrapper's NaN scan of 800k inputs is not the kernel.
      const p = { m: s.m, n: s.n, inner: s.inner, transA: false, transB: false, accumulate: false };
      const run = await measure(name, () => backend.matmul(half ? s.aHalf : s.a, s.b, s.c, p), opts);
      record(half ? 'matmulHalf' : 'matmul', name, b.name, run, gemmFlops(s));
    }
  }
  process.stderr.write(`bench: ${sinkName} on ${b.name}…\n`);
  record('sinkhorn', sinkName, b.name, await measure(sinkName, () => backend.sinkhorn(protoScores, { rows: PROTO.rows, k: PROTO.k, epsilon: 0.05, iterations: 3 }), opts));
  process.stderr.write(`bench: ${protoName} on ${b.name}…\n`);
  const targets = await backend.sinkhorn(protoScores, { rows: PROTO.rows, k: PROTO.k, epsilon: 0.05, iterations: 3 });
  record('prototypeLoss', protoName, b.name, await measure(protoName, () => backend.prototypeLoss(protoZ, prototypes, targets, PROTO), opts));
  if (b.name !== 'js') {
    process.stderr.write(`bench: ${bigName} on ${b.name}…\n`);
    const p = { m: big.m, n: big.n, inner: big.inner, transA: false, transB: false, accumulate: false };
    record('bigGemm', bigName, b.name, await measure(bigName, () => backend.matmul(big.a, big.b, big.c, p), { minSamples: 5, maxTime: 4 }), gemmFlops(big));
  }
}

// Native backends first, then the numpy peer, then the slow JS fallback: the timings that are
// compared with each other are taken as close together as possible.
for (const b of available) if (b.name !== 'js') await runBackend(b);

// ---------------------------------------------------------------------------------------------
// The numpy peer: sgemm on the same shapes (its own random data; only the time matters).

let numpy;
if (hasNumpy()) {
  process.stderr.write('bench: numpy sgemm peer…\n');
  const shapes = [...MATMULS, BIG_GEMM].map((s) => [s.m, s.inner, s.n]);
  const script = `
import json, sys, time
import numpy as np
shapes = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
out = []
for m, k, n in shapes:
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    a @ b
    times = []
    deadline = time.perf_counter() + 3
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 200):
        t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
    out.append({"m": m, "inner": k, "n": n, "meanSeconds": sum(times) / len(times), "minSeconds": min(times), "samples": len(times)})
cfg = np.__config__
blas = "unknown"
try:
    info = cfg.CONFIG["Build Dependencies"]["blas"]
    blas = f'{info.get("name")} {info.get("version", "")}'.strip()
except Exception:
    pass
print(json.dumps({"numpy": np.__version__, "blas": blas, "sgemm": out}))
`;
  const py = spawnSync('python3', ['-c', script, JSON.stringify(shapes)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (py.status === 0) {
    numpy = JSON.parse(py.stdout.trim().split('\n').at(-1));
    for (const s of numpy.sgemm) {
      s.gflops = gemmFlops(s) / s.meanSeconds / 1e9;
      s.gflopsFastest = gemmFlops(s) / s.minSeconds / 1e9;
    }
  } else {
    process.stderr.write(`bench: numpy peer failed: ${py.stderr}\n`);
  }
} else {
  process.stderr.write('bench: python3 with numpy not found — skipping the numpy peer\n');
}

const jsInfo = available.find((b) => b.name === 'js');
if (jsInfo) await runBackend(jsInfo);

// ---------------------------------------------------------------------------------------------
// Report.

const mean = (kind, backend) => results.find((r) => r.case === kind && r.backend === backend)?.meanSeconds;
const fastest = (kind, backend) => results.find((r) => r.case === kind && r.backend === backend)?.minSeconds;
const ratio = (a, b) => (a !== undefined && b !== undefined ? a / b : undefined);
const ratios = {};
// Ratios of means (the headline) and of fastest samples (less sensitive to other load).
const ratiosFastest = {};
for (const kind of ['infoNCE', 'matmul', 'matmulHalf', 'sinkhorn', 'prototypeLoss']) {
  ratios[`${kind}CpuVsJs`] = ratio(mean(kind, 'js'), mean(kind, 'cpu'));
  ratios[`${kind}CpuVsCuda`] = ratio(mean(kind, 'cpu'), mean(kind, 'cuda'));
  ratiosFastest[`${kind}CpuVsJs`] = ratio(fastest(kind, 'js'), fastest(kind, 'cpu'));
  ratiosFastest[`${kind}CpuVsCuda`] = ratio(fastest(kind, 'cpu'), fastest(kind, 'cuda'));
}
// Per matmul shape (the `matmul` ratio above is the first shape only).
for (const s of matmulData) {
  const name = mmName(s, false);
  const js = results.find((r) => r.name === name && r.backend === 'js');
  const cpu = results.find((r) => r.name === name && r.backend === 'cpu');
  const np = numpy?.sgemm.find((x) => x.m === s.m && x.n === s.n && x.inner === s.inner);
  ratios[`${name} cpu vs js`] = ratio(js?.meanSeconds, cpu?.meanSeconds);
  ratiosFastest[`${name} cpu vs js`] = ratio(js?.minSeconds, cpu?.minSeconds);
  ratios[`${name} cpu vs numpy`] = ratio(np?.meanSeconds, cpu?.meanSeconds);
  ratiosFastest[`${name} cpu vs numpy`] = ratio(np?.minSeconds, cpu?.minSeconds);
}
const npBig = numpy?.sgemm.find((x) => x.m === big.m && x.n === big.n);
ratios[`${bigName} cpu vs numpy`] = ratio(npBig?.meanSeconds, mean('bigGemm', 'cpu'));
ratiosFastest[`${bigName} cpu vs numpy`] = ratio(npBig?.minSeconds, fastest('bigGemm', 'cpu'));
for (const r of [ratios, ratiosFastest]) for (const key of Object.keys(r)) if (r[key] === undefined) delete r[key];

const machine = {
  ...describeMachine({ backends }),
  numpy: numpy ? `${numpy.numpy} (${numpy.blas})` : undefined,
  // Other work on the machine skews timings: the 1-minute load average at the start and the end.
  loadAverageAtStart: loadAtStart,
  loadAverage: Number(loadavg()[0].toFixed(2)),
};

const rows = [['case', 'backend', 'mean s', '± %', 'fastest s', 'samples', 'GFLOP/s (mean)', 'GFLOP/s (fastest)']];
for (const r of results) {
  rows.push([
    r.name,
    r.backend,
    r.meanSeconds.toFixed(4),
    r.rme.toFixed(1),
    r.minSeconds.toFixed(4),
    String(r.samples),
    r.gflops ? r.gflops.toFixed(1) : '',
    r.gflopsFastest ? r.gflopsFastest.toFixed(1) : '',
  ]);
}
for (const s of numpy?.sgemm ?? []) {
  const name = `matmul (${s.m}×${s.inner})·(${s.inner}×${s.n})`;
  rows.push([name, 'numpy', s.meanSeconds.toFixed(4), '', s.minSeconds.toFixed(4), String(s.samples), s.gflops.toFixed(1), s.gflopsFastest.toFixed(1)]);
}
console.log(`\n${machineLine(machine)}, load average ${machine.loadAverageAtStart} → ${machine.loadAverage}`);
printTable(rows);
console.log('');
console.log(`${'ratio'.padEnd(52)} ${'means'.padStart(8)} ${'fastest'.padStart(8)}`);
for (const [k, v] of Object.entries(ratios)) console.log(`${k.padEnd(52)} ${`${v.toFixed(1)}×`.padStart(8)} ${ratiosFastest[k] ? `${ratiosFastest[k].toFixed(1)}×`.padStart(8) : ''}`);

if (!quick || flag('out')) {
  writeResults('loss', {
    machine,
    cases: { infoNCE: NCE, matmul: MATMULS, bigGemm: BIG_GEMM, sinkhorn: { rows: PROTO.rows, k: PROTO.k, epsilon: 0.05, iterations: 3 }, prototypeLoss: PROTO, seed: SEED },
    results,
    numpy: numpy ?? null,
    ratios,
    ratiosFastest,
  });
}
