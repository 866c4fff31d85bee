#!/usr/bin/env node
// Builds build/Release/pairpick.node. Tries, in order: CMake via cmake-js (with CUDA when nvcc
// works), CMake without CUDA, node-gyp (CPU only). If every attempt fails, pairpick still works
// through its pure-JS backend; the reasons are kept in build/native-build.json for `pairpick info`.
//
//   node scripts/build-native.mjs            build (incremental); exit 0 even if only JS is left
//   node scripts/build-native.mjs --install  the same (npm's install step)
//   node scripts/build-native.mjs --require-cuda   fail unless the CUDA build succeeds (CI)
// Environment: PAIRPICK_SKIP_NATIVE=1 skips everything; PAIRPICK_CUDA=OFF skips CUDA;
// PAIRPICK_BUILDER=node-gyp skips CMake; CUDAARCHS=90 picks GPU architectures.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = new Set(process.argv.slice(2));
const requireCuda = args.has('--require-cuda');
const buildDir = join(root, 'build');
const reportPath = join(buildDir, 'native-build.json');
const jobs = String(Math.max(1, cpus().length));

function log(msg) {
  process.stderr.write(`pairpick: ${msg}\n`);
}

function run(cmd, argv, env = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (process.env.PAIRPICK_BUILD_VERBOSE) process.stderr.write(output);
  return { ok: r.status === 0, output, error: r.error };
}

function lastLines(text, n = 12) {
  return text.split('\n').filter((l) => l.trim()).slice(-n).join('\n');
}

function firstError(text) {
  const lines = text.split('\n');
  let at = lines.findIndex((l) => /CMake Error|error:|fatal|ERR! stack Error|not found|No such/.test(l) && !/WARN/.test(l));
  if (at < 0) at = lines.findIndex((l) => /error|Error/.test(l) && !/WARN/.test(l));
  if (at < 0) return lastLines(text, 1).trim().slice(0, 300);
  // CMake puts the reason on the lines after "CMake Error at …:".
  const reason = /CMake Error at/.test(lines[at]) ? lines.slice(at + 1, at + 4).map((l) => l.trim()).filter(Boolean).join(' ') : lines[at];
  return reason.trim().slice(0, 300);
}

// Several builds at once (parallel shells, helpers) would clobber build/: take a lock.
function withLock(fn) {
  mkdirSync(buildDir, { recursive: true });
  const lock = join(buildDir, '.lock');
  const start = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      let stale = false;
      try {
        const pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
        process.kill(pid, 0);
      } catch (e) {
        stale = !e || e.code === 'ESRCH' || e.code === 'ENOENT';
      }
      if (stale || Date.now() - statSync(lock).mtimeMs > 3600e3) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - start > 1800e3) throw new Error('timed out waiting for another build (build/.lock)');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function loads() {
  const r = run(process.execPath, ['-e', `require(${JSON.stringify(join(buildDir, 'Release', 'pairpick.node'))})`]);
  return r.ok ? null : firstError(r.output);
}

function cmakeAttempt(cuda) {
  // A failed or different earlier configure must not leak into this one.
  rmSync(join(buildDir, 'CMakeCache.txt'), { force: true });
  rmSync(join(buildDir, 'CMakeFiles'), { recursive: true, force: true });
  const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const argv = [cmakeJs, 'build', '--out', 'build', '--parallel', jobs, '--log-level', 'warn', `--CDPAIRPICK_CUDA=${cuda}`];
  const r = run(process.execPath, argv);
  if (!r.ok) return { tool: `cmake (CUDA ${cuda})`, ok: false, reason: firstError(r.output), log: lastLines(r.output, 30) };
  return { tool: `cmake (CUDA ${cuda})`, ok: true };
}

// node-gyp needs Node's own headers (include/node/common.gypi). Use the ones installed next to
// this node binary, or npm's `nodedir`; never let node-gyp download them.
function nodeHeadersDir() {
  const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath))].filter(Boolean);
  return candidates.find((d) => existsSync(join(d, 'include', 'node', 'common.gypi')));
}

function gypAttempt() {
  const gyp = join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
  const nodedir = nodeHeadersDir();
  if (!nodedir) {
    return { tool: 'node-gyp', ok: false, reason: "Node's headers (include/node/common.gypi) are not installed next to node; skipped rather than downloading them" };
  }
  // node-gyp writes its own build/ tree: start from a clean one (keeping our lock).
  for (const entry of readdirSync(buildDir)) if (entry !== '.lock') rmSync(join(buildDir, entry), { recursive: true, force: true });
  const r = run(process.execPath, [gyp, 'rebuild', '--jobs', jobs, `--nodedir=${nodedir}`]);
  return r.ok ? { tool: 'node-gyp', ok: true } : { tool: 'node-gyp', ok: false, reason: firstError(r.output), log: lastLines(r.output, 30) };
}

function haveCmake() {
  return run('cmake', ['--version']).ok;
}

function main() {
  if (process.env.PAIRPICK_SKIP_NATIVE === '1') {
    log('PAIRPICK_SKIP_NATIVE=1: skipping the native build; the pure-JS backend will be used');
    return 0;
  }
  const attempts = [];
  const cudaPref = (process.env.PAIRPICK_CUDA ?? (requireCuda ? 'ON' : 'AUTO')).toUpperCase();
  const done = withLock(() => {
    if (process.env.PAIRPICK_BUILDER === 'node-gyp') {
      attempts.push({ tool: 'cmake', ok: false, reason: 'skipped (PAIRPICK_BUILDER=node-gyp)' });
    } else if (haveCmake()) {
      const order = cudaPref === 'OFF' ? ['OFF'] : cudaPref === 'ON' ? ['ON'] : ['AUTO', 'OFF'];
      for (const cuda of order) {
        log(`building the native addon with CMake (CUDA ${cuda})…`);
        const a = cmakeAttempt(cuda);
        attempts.push(a);
        if (a.ok) {
          const loadError = loads();
          if (!loadError) return true;
          a.ok = false;
          a.reason = `built but does not load: ${loadError}`;
        }
        log(`  failed: ${a.reason}`);
        if (requireCuda) return false;
      }
    } else {
      attempts.push({ tool: 'cmake', ok: false, reason: 'cmake not found on PATH' });
    }
    if (requireCuda) return false;
    log('building the native addon with node-gyp (CPU only)…');
    const g = gypAttempt();
    attempts.push(g);
    if (g.ok) {
      const loadError = loads();
      if (!loadError) return true;
      g.ok = false;
      g.reason = `built but does not load: ${loadError}`;
    }
    log(`  failed: ${g.reason}`);
    return false;
  });
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(reportPath, JSON.stringify({ ok: done, date: new Date().toISOString(), attempts: attempts.map(({ log: _l, ...a }) => a) }, null, 2));
  if (done) {
    log(`native addon ready (${attempts.at(-1).tool})`);
    return 0;
  }
  const failed = attempts.filter((a) => !a.ok);
  for (const a of failed) if (a.log) process.stderr.write(`--- ${a.tool} ---\n${a.log}\n`);
  if (requireCuda) {
    log('the CUDA build failed (--require-cuda)');
    return 1;
  }
  log('no native build succeeded; pairpick will use its pure-JS backend (slower, same results).');
  for (const a of failed) log(`  ${a.tool}: ${a.reason}`);
  return 0;
}

process.exitCode = main();
