#!/usr/bin/env node
// Runs the randomised test files N times, each run with a fresh PAIRPICK_TEST_SEED, and reports
// every failing test with the seed that replays it. A test that fails on some seed is a defect.
//
//   npm run test:seeds -- 30                     # 30 runs of every randomised file
//   npm run test:seeds -- 10 test/select.test.ts # 10 runs of the named files only
//   npm run test:seeds -- --seed 858437750       # replay given seeds (repeatable) instead
//
// One vitest process per run over all the files (the seed is read once per test file, so a run
// is replayed with `PAIRPICK_TEST_SEED=<seed> npx vitest run <file>`). dist/ is rebuilt once up
// front and the runs skip the rebuild (PAIRPICK_TEST_SKIP_BUILD). Results travel through a JSON
// report in a temporary folder that is removed afterwards. Exit code 1 when any run failed.
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const usage = 'usage: npm run test:seeds -- [runs (default 10)] [--seed <n>]… [test files…]';

function fail(message) {
  console.error(`test:seeds: ${message}\n${usage}`);
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  console.log(usage);
  process.exit(0);
}
const fixedSeeds = [];
for (let i = args.indexOf('--seed'); i >= 0; i = args.indexOf('--seed')) {
  const seed = args[i + 1];
  if (!/^\d+$/.test(seed ?? '') || Number(seed) >= 2 ** 32) fail(`--seed needs an integer in [0, 2^32), got ${seed ?? 'nothing'}`);
  fixedSeeds.push(Number(seed));
  args.splice(i, 2);
}
let runs = fixedSeeds.length || 10;
if (args.length && /^\d+$/.test(args[0])) {
  if (fixedSeeds.length) fail('give either a number of runs or --seed, not both');
  runs = Number(args.shift());
}
if (!(runs >= 1)) fail('the number of runs must be ≥ 1');
const unknown = args.find((a) => a.startsWith('-'));
if (unknown) fail(`unknown option ${unknown}`);

/** Test files that draw fresh random inputs (they import test/helpers/random.ts). */
function randomisedFiles() {
  const dir = join(root, 'test');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts') && readFileSync(join(dir, f), 'utf8').includes('helpers/random'))
    .sort()
    .map((f) => `test/${f}`);
}

const files = args.length ? args : randomisedFiles();
if (!files.length) {
  console.error('test:seeds: no randomised test files found');
  process.exit(2);
}

const build = spawnSync(process.execPath, [join(root, 'node_modules', 'tsup', 'dist', 'cli-default.js')], { cwd: root, encoding: 'utf8' });
if (build.status !== 0) {
  console.error(`test:seeds: tsup failed\n${build.stdout}\n${build.stderr}`);
  process.exit(2);
}

const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const work = mkdtempSync(join(tmpdir(), 'pairpick-seeds-'));
let interrupted = false;
let child;
process.on('SIGINT', () => {
  interrupted = true;
  child?.kill('SIGINT');
});

/** One vitest run of `files` with `seed`; resolves to its JSON report (or undefined) and output. */
function runOnce(seed, reportFile) {
  return new Promise((resolve) => {
    const out = [];
    child = spawn(process.execPath, [vitest, 'run', ...files, '--reporter=json', `--outputFile=${reportFile}`], {
      cwd: root,
      env: { ...process.env, PAIRPICK_TEST_SEED: String(seed), PAIRPICK_TEST_SKIP_BUILD: '1', FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    child.on('close', (code, signal) => {
      let report;
      try {
        report = JSON.parse(readFileSync(reportFile, 'utf8'));
      } catch {
        report = undefined;
      }
      rmSync(reportFile, { force: true });
      resolve({ code, signal, report, output: Buffer.concat(out).toString('utf8') });
    });
  });
}

function firstLine(text) {
  return (text ?? '').split('\n').find((l) => l.trim()) ?? '';
}

const failures = []; // { seed, file, test, message }
let failedRuns = 0;
const started = Date.now();
try {
  for (let run = 1; run <= runs && !interrupted; run++) {
    const seed = fixedSeeds[run - 1] ?? randomInt(2 ** 32);
    const t0 = Date.now();
    const { code, signal, report, output } = await runOnce(seed, join(work, `run-${run}.json`));
    const mine = [];
    for (const file of report?.testResults ?? []) {
      const name = relative(root, file.name);
      const failedTests = file.assertionResults.filter((t) => t.status === 'failed');
      for (const t of failedTests) mine.push({ seed, file: name, test: [...(t.ancestorTitles ?? []), t.title].join(' > '), message: firstLine(t.failureMessages?.[0]) });
      if (file.status === 'failed' && !failedTests.length) mine.push({ seed, file: name, test: '(file failed to run)', message: firstLine(file.message) });
    }
    if (!report || (code !== 0 && !mine.length)) {
      mine.push({ seed, file: files.join(' '), test: `(vitest exited with ${signal ?? code})`, message: output.trim().split('\n').slice(-5).join('\n    ') });
    }
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    const counts = report ? `${report.numPassedTests} passed, ${report.numFailedTests} failed` : 'no report';
    console.log(`run ${run}/${runs}  seed ${seed}  ${mine.length ? 'FAIL' : 'ok  '}  ${counts}  ${seconds} s`);
    for (const f of mine) {
      console.log(`  ✗ ${f.file} > ${f.test}\n    ${f.message}\n    replay: PAIRPICK_TEST_SEED=${f.seed} npx vitest run ${f.file.includes(' ') ? '' : f.file}`.trimEnd());
    }
    if (mine.length) failedRuns++;
    failures.push(...mine);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const done = interrupted ? 'interrupted' : `${runs} run${runs === 1 ? '' : 's'}`;
console.log(`\ntest:seeds: ${done} of ${files.length} files in ${((Date.now() - started) / 1000).toFixed(0)} s: ${failedRuns} failed`);
if (failures.length) {
  const byTest = new Map();
  for (const f of failures) {
    const key = `${f.file} > ${f.test}`;
    byTest.set(key, [...(byTest.get(key) ?? []), f.seed]);
  }
  for (const [key, seeds] of byTest) console.log(`  ${key}\n    seeds: ${seeds.join(', ')}`);
}
process.exit(failures.length || interrupted ? 1 : 0);
