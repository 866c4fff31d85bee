#!/usr/bin/env node
// Builds build/Release/pairpick.node from source. Tries, in order: CMake via cmake-js (with CUDA
// when nvcc works), CMake without CUDA, node-gyp (CPU only). If every attempt fails, pairpick still
// works through its prebuilt CPU addon (prebuilds/, in the published package) or its pure-JS
// backend; the reasons are kept in build/native-build.json for `pairpick info`.
//
//   node scripts/build-native.mjs            build from source (incremental); exit 0 even if only JS is left
//   node scripts/build-native.mjs --install  npm's install step: build CUDA from source when a GPU and
//                                            nvcc are both here; otherwise keep the prebuilt CPU addon
//                                            when it loads (no compiler run), else build from source
//   node scripts/build-native.mjs --require-cuda   fail unless the CUDA build succeeds (CI, `pairpick build --cuda`)
//   node scripts/build-native.mjs --prebuild  the CPU addon shipped in prebuilds/<platform>-<arch>/
//                                            (npm prepack): CMake, no CUDA, static C++ runtime, built in build-prebuild/
// CUDA is built for the GPU that is present (CMake's `native` architecture) when one is, else
// for Turing → Hopper plus PTX.
// Environment: PAIRPICK_SKIP_NATIVE=1 skips everything; PAIRPICK_BUILD_FROM_SOURCE=1 makes --install
// build even when the prebuilt addon loads; PAIRPICK_CUDA=OFF skips CUDA; PAIRPICK_BUILDER=node-gyp
// skips CMake; CUDAARCHS=90 picks GPU architectures; PAIRPICK_BUILD_VERBOSE=1 shows the compilers' output.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = new Set(process.argv.slice(2));
const requireCuda = args.has('--require-cuda');
const installing = args.has('--install');
const prebuilding = args.has('--prebuild');
const verbose = Boolean(process.env.PAIRPICK_BUILD_VERBOSE);
const buildDir = join(root, prebuilding ? 'build-prebuild' : 'build');
const reportPath = join(buildDir, 'native-build.json');
// The prebuilt addon's place in the package (the usual prebuild layout; loaded by src/native/addon.ts).
const prebuiltPath = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'pairpick.napi.glibc.node');
const jobs = String(Math.max(1, cpus().length));

function log(msg) {
  process.stderr.write(`pairpick: ${msg}\n`);
}

function run(cmd, argv, env = {}, { live = false } = {}) {
  // Verbose builds show the compilers' output as it comes (the reason of a failure is then above).
  const stdio = live && verbose ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'];
  const r = spawnSync(cmd, argv, { cwd: root, stdio, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  const output = live && verbose ? `error: failed (exit status ${r.status}; the output is above)` : `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { ok: r.status === 0, output, error: r.error };
}

/** Whether an NVIDIA GPU is visible (the driver lists one), so CUDA can be built for it. */
function gpuPresent() {
  const smi = run('nvidia-smi', ['-L']);
  if (smi.ok && /^GPU \d+/m.test(smi.output)) return true;
  try {
    return readdirSync('/proc/driver/nvidia/gpus').length > 0;
  } catch {
    return false;
  }
}

function nvccPresent() {
  if (run('nvcc', ['--version']).ok) return true;
  const dirs = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda', '/opt/cuda'].filter(Boolean).map((d) => join(d, 'bin', 'nvcc'));
  return dirs.some((p) => existsSync(p));
}

/** CUDA architectures when none are asked for: the present GPU's (CMake ≥ 3.24 `native`, else its compute capability). */
function cudaArchitectures() {
  if (process.env.CUDAARCHS || !gpuPresent()) return undefined;
  const version = /cmake version (\d+)\.(\d+)/.exec(run('cmake', ['--version']).output);
  if (version && (Number(version[1]) > 3 || Number(version[2]) >= 24)) return 'native';
  const cap = run('nvidia-smi', ['--query-gpu=compute_cap', '--format=csv,noheader']);
  const first = cap.ok ? cap.output.trim().split('\n')[0].trim() : '';
  return /^\d+\.\d+$/.test(first) ? first.replace('.', '') : undefined;
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

function loads(file = join(buildDir, 'Release', 'pairpick.node')) {
  const r = run(process.execPath, ['-e', `require(${JSON.stringify(file)})`]);
  return r.ok ? null : firstError(r.output);
}

function cmakeAttempt(cuda) {
  // A failed or different earlier configure must not leak into this one.
  rmSync(join(buildDir, 'CMakeCache.txt'), { force: true });
  rmSync(join(buildDir, 'CMakeFiles'), { recursive: true, force: true });
  const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const argv = [cmakeJs, 'build', '--out', relative(root, buildDir), '--parallel', jobs, '--log-level', 'warn', `--CDPAIRPICK_CUDA=${cuda}`];
  // The shipped addon carries its C++ runtime, so it loads on distributions with an older libstdc++.
  if (prebuilding) argv.push('--CDCMAKE_SHARED_LINKER_FLAGS=-static-libstdc++ -static-libgcc');
  const archs = cuda === 'OFF' ? undefined : cudaArchitectures();
  if (archs) log(`  CUDA for the GPU present (CUDAARCHS=${archs})`);
  const r = run(process.execPath, argv, archs ? { CUDAARCHS: archs } : {}, { live: true });
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
  const r = run(process.execPath, [gyp, 'rebuild', '--jobs', jobs, `--nodedir=${nodedir}`], {}, { live: true });
  return r.ok ? { tool: 'node-gyp', ok: true } : { tool: 'node-gyp', ok: false, reason: firstError(r.output), log: lastLines(r.output, 30) };
}

function haveCmake() {
  return run('cmake', ['--version']).ok;
}

/** npm prepack: the CPU addon the package ships, built from these sources into prebuilds/. */
function prebuild() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    log(`prebuilt addons are made on linux-x64 only (this is ${process.platform}-${process.arch}); packing without one`);
    return 0;
  }
  if (!haveCmake()) {
    log('the prebuilt addon needs CMake (cmake on PATH); install it, then pack again');
    return 1;
  }
  const a = withLock(() => cmakeAttempt('OFF'));
  const built = join(buildDir, 'Release', 'pairpick.node');
  const loadError = a.ok ? loads(built) : a.reason;
  if (loadError) {
    if (a.log) process.stderr.write(`${a.log}\n`);
    log(`the prebuilt CPU addon failed: ${loadError}`);
    return 1;
  }
  mkdirSync(dirname(prebuiltPath), { recursive: true });
  const tmp = `${prebuiltPath}.${process.pid}.tmp`;
  copyFileSync(built, tmp);
  renameSync(tmp, prebuiltPath);
  log(`prebuilt CPU addon → ${relative(root, prebuiltPath)}`);
  return 0;
}

function main() {
  if (prebuilding) return prebuild();
  if (process.env.PAIRPICK_SKIP_NATIVE === '1') {
    log('PAIRPICK_SKIP_NATIVE=1: skipping the native build; the prebuilt CPU addon (if any) or the pure-JS backend will be used');
    return 0;
  }
  // npm install: a compile only pays off for CUDA on a GPU that is here; otherwise the prebuilt CPU
  // addon (same C++ core, SIMD chosen at run time) is what a source build would give, minutes sooner.
  // In pairpick's own checkout (npm ci there) the sources are what is being worked on: always build them.
  const ownCheckout = process.env.INIT_CWD !== undefined && resolve(process.env.INIT_CWD) === resolve(root);
  if (installing && !ownCheckout && process.env.PAIRPICK_BUILD_FROM_SOURCE !== '1' && existsSync(prebuiltPath)) {
    const wantCuda = (process.env.PAIRPICK_CUDA ?? 'AUTO').toUpperCase() !== 'OFF' && gpuPresent() && nvccPresent();
    const loadError = wantCuda ? 'a GPU and nvcc are present' : loads(prebuiltPath);
    if (!loadError) {
      log(`using the prebuilt CPU addon (${relative(root, prebuiltPath)}); \`npx pairpick build\` builds from source${nvccPresent() ? ' (--cuda for the GPU backend)' : ''}`);
      return 0;
    }
    log(`building from source (${loadError === 'a GPU and nvcc are present' ? 'a GPU and nvcc are present: building the CUDA backend' : `the prebuilt addon does not load: ${loadError}`})`);
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
