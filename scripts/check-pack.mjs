#!/usr/bin/env node
// The install a user with blocked install scripts gets: packs pairpick (npm prepack builds the
// prebuilt CPU addon), installs the tarball into an empty project with --ignore-scripts, then
// checks that `npx pairpick info` finds the cpu backend in the prebuilt addon and that
// `npx pairpick demo` runs on it. Prints the time of each step. Linux-x64 (glibc) only.
//
//   node scripts/check-pack.mjs            (npm run check:pack)
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'pairpick-check-pack-'));

function step(label, cmd, args, cwd) {
  const started = performance.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stderr.write(`check-pack: ${label}: ${seconds} s\n`);
  if (r.status !== 0) {
    process.stderr.write(`${r.stdout}\n${r.stderr}\ncheck-pack: ${label} failed (exit status ${r.status})\n`);
    process.exit(1);
  }
  return r.stdout;
}

function fail(message) {
  process.stderr.write(`check-pack: ${message}\n`);
  process.exit(1);
}

if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the prebuilt addon is made for linux-x64 only (this is ${process.platform}-${process.arch})`);
try {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  step('npm pack (prepack builds the prebuilt CPU addon)', npm, ['pack', '--pack-destination', work], root);
  const tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz')));
  const project = join(work, 'project');
  mkdirSync(project);
  step('npm init -y', npm, ['init', '-y'], project);
  step('npm install --ignore-scripts <tarball>', npm, ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball], project);
  const info = JSON.parse(step('npx pairpick info --json', 'npx', ['pairpick', 'info', '--json'], project));
  const cpu = info.backends.find((b) => b.name === 'cpu');
  if (!cpu?.available) fail(`the cpu backend is not available: ${cpu?.reason}`);
  if (!/prebuilds\/linux-x64\//.test(info.addon ?? '')) fail(`the addon did not come from prebuilds/: ${info.addon}`);
  const demo = step('npx pairpick demo --epochs 2 --budget 20', 'npx', ['pairpick', 'demo', '--epochs', '2', '--budget', '20', '--json', '-q'], project);
  const result = JSON.parse(demo);
  if (!Array.isArray(result.results) || result.results.length === 0) fail('the demo printed no results');
  process.stderr.write(`check-pack: ok (cpu backend from ${info.addon})\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
