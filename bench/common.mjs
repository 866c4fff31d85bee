// Shared by the bench scripts: loading the built package, command line flags, seeded synthetic
// data, timing a selection or a case, the machine description and writing results atomically.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Imports dist/index.js, or exits with a hint when dist/ has not been built. */
export async function importDist() {
  const entry = join(root, 'dist', 'index.js');
  if (!existsSync(entry)) {
    console.error('bench: dist/ is missing — build it first with `npx tsup` (or `npm run build`)');
    process.exit(1);
  }
  return import(pathToFileURL(entry).href);
}

/** The command line after `node bench/x.mjs`. */
export const args = process.argv.slice(2);

/** The value after `--name` on the command line, else `fallback`. */
export function flag(name, fallback) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
}

// ---- seeded data ---------------------------------------------------------------------------------

/** A xorshift32 stream (seed 0 counts as 1): each call returns the next state, an unsigned 32-bit integer. */
export function xorshift32(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Seeded uniforms in (0, 1) (`next`) and standard normals (`normal`, Box–Muller, both values of a pair used). */
export function gaussian(seed) {
  const bits = xorshift32(seed);
  const next = () => (bits() + 0.5) / 4294967296;
  let spare;
  const normal = () => {
    if (spare !== undefined) {
      const v = spare;
      spare = undefined;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
  return { next, normal };
}

/** n seeded standard normals × scale. */
export function normals(n, seed, scale = 1) {
  const { normal } = gaussian(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = normal() * scale;
  return out;
}

/** rows × dim seeded normal rows scaled to unit length. */
export function unitRows(rows, dim, seed) {
  return normalizeRows(normals(rows * dim, seed), rows, dim);
}

/** Scales each of the `rows` rows of `x` (row-major, `dim` wide) to unit length, in place. */
export function normalizeRows(x, rows, dim) {
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let t = 0; t < dim; t++) ss += x[i * dim + t] ** 2;
    const inv = 1 / Math.sqrt(ss);
    for (let t = 0; t < dim; t++) x[i * dim + t] *= inv;
  }
  return x;
}

// ---- running and timing --------------------------------------------------------------------------

/** Runs a command that prints a JSON line last (a bench child, a Python peer), with `env` added to the environment; returns it parsed. */
export function runJson(command, argv, env) {
  const r = spawnSync(command, argv, { encoding: 'utf8', maxBuffer: 1 << 26, ...(env && { env: { ...process.env, ...env } }) });
  if (r.status !== 0) throw new Error(`${[command, ...argv].join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/**
 * One selection on a pool of .npy files (modalities a, b, …), as a bench child process runs it:
 * the selection, the wall time from opening the pool, the seconds of each progress phase and
 * the CPU time of this process.
 */
export async function timedSelection(pp, files, options) {
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const pool = await pp.openPool(Object.fromEntries(files.map((f, m) => [String.fromCharCode(97 + m), f])));
  const phases = {};
  let phase;
  let last = performance.now();
  try {
    const sel = await pp.select(pool, {
      ...options,
      onProgress: (p) => {
        if (p.phase !== phase) {
          const now = performance.now();
          if (phase) phases[phase] = (phases[phase] ?? 0) + (now - last) / 1000;
          phase = p.phase;
          last = now;
        }
      },
    });
    if (phase) phases[phase] = (phases[phase] ?? 0) + (performance.now() - last) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { sel, seconds: (performance.now() - started) / 1000, phases, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  } finally {
    await pool.close();
  }
}

/**
 * Runs one async case with Benchmark.js; resolves { meanSeconds, minSeconds, rme, samples,
 * cpuSecondsPerOp }. The fastest sample and the CPU time this process spent per call (all
 * threads) show, on a machine shared with other work, what the wall-clock mean cannot.
 */
export async function measure(name, fn, options) {
  const { default: Benchmark } = await import('benchmark');
  return new Promise((resolveRun, reject) => {
    let calls = 0;
    let cpuMicros = 0;
    const timed = () => {
      const start = process.cpuUsage();
      return fn().then(() => {
        const used = process.cpuUsage(start);
        cpuMicros += used.user + used.system;
        calls++;
      });
    };
    const bench = new Benchmark(name, {
      defer: true,
      ...options,
      fn: (deferred) => timed().then(() => deferred.resolve(), reject),
      onComplete: () =>
        resolveRun({
          meanSeconds: bench.stats.mean,
          minSeconds: Math.min(...bench.stats.sample),
          rme: bench.stats.rme,
          samples: bench.stats.sample.length,
          cpuSecondsPerOp: cpuMicros / 1e6 / Math.max(1, calls),
        }),
      onError: (e) => reject(e.target?.error ?? e),
    });
    bench.run({ async: true });
  });
}

/** Whether python3 with numpy is here (the peers of the micro-benchmarks). */
export function hasNumpy() {
  return spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
}

// ---- the report ----------------------------------------------------------------------------------

/** The CPU model, as the OS names it. */
export const cpuModel = cpus()[0]?.model?.trim() ?? 'unknown cpu';

/** Names a results file after the machine: CPU model and core count, e.g. amd-epyc-7763-2c. */
export const machineSlug = `${cpuModel.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}-${cpus().length}c`;

/** The machine a bench ran on: CPU, cores, the native addon's threads and SIMD, the GPU, platform, Node. */
export function describeMachine(pp) {
  const info = pp.backends();
  const cpu = info.find((b) => b.name === 'cpu' && b.available);
  return {
    cpu: cpuModel,
    cores: cpus().length,
    threads: cpu?.threads,
    simd: cpu?.simd,
    cuda: info.find((b) => b.name === 'cuda' && b.available)?.device,
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
  };
}

/** The commit of this checkout (short), when it is one. */
export function gitCommit() {
  try {
    return spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Writes `report` as JSON to `file` atomically (a reader never sees half a file), creating its folder. */
export function writeJson(file, report, indent = 2) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(report, null, indent)}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * Writes the report of bench/<name>.mjs to --out FILE, else to bench/results/<name>-<machine>.json:
 * its `machine`, the date, the commit and the command line, then the rest of `report`.
 */
export function writeResults(name, { machine, ...rest }, script = name) {
  const file = resolve(flag('out', join(root, 'bench', 'results', `${name}-${machineSlug}.json`)));
  writeJson(file, { machine, date: new Date().toISOString(), commit: gitCommit(), command: `node bench/${script}.mjs ${args.join(' ')}`.trim(), ...rest });
  console.log(`\nwrote ${file}`);
}

/** One line on the machine a report describes (see describeMachine). */
export function machineLine(machine) {
  return `${machine.cpu}, ${machine.cores} cores, ${machine.simd ?? 'no native addon'}${machine.cuda ? `, ${machine.cuda}` : ''}`;
}

/** Prints rows of cells as a table: the first two columns left-aligned, the others right-aligned. */
export function printTable(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((v, c) => (c >= 2 ? v.padStart(widths[c]) : v.padEnd(widths[c]))).join('  '));
}

// ---- the cold-start experiment benches -----------------------------------------------------------

/** Budgets of the cold-start benches. */
export const COLD_START_BUDGETS = [10, 20, 50, 100];

/** Their command line: --seeds N (seeds 0 … N−1, default 5), --epochs E of stage 1 (default 20), --out FILE. */
export function coldStartArgs(defaultOut, extra = {}) {
  const { values } = parseArgs({
    options: { seeds: { type: 'string', default: '5' }, epochs: { type: 'string', default: '20' }, out: { type: 'string', default: defaultOut }, ...extra },
  });
  return { ...values, seeds: Array.from({ length: Number(values.seeds) }, (_, i) => i), epochs: Number(values.epochs), out: values.out };
}

/** Writes a cold-start bench's results to `out`: what it measured, its command, the machine, the date, then `fields`. */
export function writeColdStartReport(pp, out, { what, command, ...fields }) {
  writeJson(out, { what, command, machine: { cpu: cpuModel, cores: cpus().length, backend: pp.getBackend().name }, date: new Date().toISOString(), ...fields }, 1);
  console.error(`wrote ${out}${fields.seconds === undefined ? '' : ` in ${fields.seconds.toFixed(0)} s`}`);
}

/**
 * Runs a cold-start experiment on AV-Digits (pp = the imported package) with a progress line
 * on stderr. Returns the per-selection results and the wall time.
 */
export async function runColdStart(pp, options, { dataset: name = 'av-digits', mismatch = 0 } = {}) {
  const dataset = await pp.loadDataset(name, mismatch ? { mismatch } : {});
  const started = Date.now();
  try {
    const results = await pp.coldStartExperiment(dataset, {
      ...options,
      onProgress: (done, total, what) => process.stderr.write(`\r${done}/${total} ${what}\x1b[K`),
    });
    process.stderr.write('\n');
    return { results, seconds: (Date.now() - started) / 1000 };
  } finally {
    await dataset.pool.close();
  }
}

/** One row per arm (first-seen order): accuracy mean ± std per budget, the mean over budgets and
 * the classes covered at the largest budget (mean over seeds). */
export function armTable(pp, results, budgets) {
  const summary = pp.summarise(results);
  const largest = Math.max(...budgets);
  const labels = [...new Set(results.map((r) => r.label))];
  return labels.map((label) => {
    const perBudget = Object.fromEntries(budgets.map((b) => [b, summary.find((s) => s.label === label && s.budget === b)]));
    const atLargest = results.filter((r) => r.label === label && r.budget === largest);
    const mine = results.filter((r) => r.label === label);
    return {
      label,
      perBudget,
      meanOverBudgets: budgets.reduce((t, b) => t + perBudget[b].mean, 0) / budgets.length,
      classesAtLargest: atLargest.reduce((t, r) => t + r.covered, 0) / atLargest.length,
      mismatchedPicks: mine.reduce((t, r) => t + r.mismatched, 0) / mine.length,
    };
  });
}

/** armTable rows as a markdown table (accuracy in %). */
export function markdownTable(rows, budgets, firstColumn) {
  const largest = Math.max(...budgets);
  const fmt = (s) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
  return [
    `| ${firstColumn} | ${budgets.map((b) => `B=${b}`).join(' | ')} | mean | classes at B=${largest} |`,
    `|---|${budgets.map(() => '---:').join('|')}|---:|---:|`,
    ...rows.map((r) => `| ${r.label} | ${budgets.map((b) => fmt(r.perBudget[b])).join(' | ')} | ${(100 * r.meanOverBudgets).toFixed(1)} | ${r.classesAtLargest.toFixed(1)} |`),
  ].join('\n');
}
