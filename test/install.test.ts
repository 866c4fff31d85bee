// How an installed package finds its native backend, on copies of the package laid out as npm
// leaves them: the prebuilt CPU addon (prebuilds/linux-x64/) is loaded when there is no build from
// source; the install step keeps it instead of compiling when no GPU wants CUDA; without any addon
// the work falls back to pure JS and says once how to build the native one.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { prebuiltAddonPath } from '../src/native/addon.js';

const root = join(__dirname, '..');
const builtAddon = join(root, 'build', 'Release', 'pairpick.node');
const canPrebuild = prebuiltAddonPath(root) !== undefined && existsSync(builtAddon);
const gpuHere = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).stdout?.includes('GPU ') ?? false;

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A copy of the package as npm installs it (no build/), with or without the prebuilt addon. */
function installedCopy(withPrebuilt: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'pairpick-installed-'));
  made.push(dir);
  for (const entry of ['package.json', 'dist', 'scripts', 'data']) cpSync(join(root, entry), join(dir, entry), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  if (withPrebuilt) {
    mkdirSync(join(dir, 'prebuilds', 'linux-x64'), { recursive: true });
    cpSync(builtAddon, join(dir, 'prebuilds', 'linux-x64', 'pairpick.napi.glibc.node'));
  }
  return dir;
}

function cli(dir: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const clean = { ...process.env, ...env };
  delete clean.PAIRPICK_BACKEND;
  delete clean.PAIRPICK_NO_ADDON;
  return spawnSync(process.execPath, [join(dir, 'dist', 'cli.js'), ...args], { cwd: dir, encoding: 'utf8', env: clean });
}

describe.skipIf(!canPrebuild)('the prebuilt CPU addon', () => {
  it('is loaded when there is no build from source: info shows cpu available from prebuilds/, select runs on it', () => {
    const dir = installedCopy(true);
    const info = JSON.parse(cli(dir, ['info', '--json']).stdout);
    expect(info.addon).toBe(join(dir, 'prebuilds', 'linux-x64', 'pairpick.napi.glibc.node'));
    expect(info.build).toMatch(/\(prebuilt\)$/);
    expect(info.backends.find((b: { name: string }) => b.name === 'cpu').available).toBe(true);
    expect(info.hint).toMatch(/npx pairpick build --cuda/);
    const text = cli(dir, ['info']).stdout;
    expect(text).toMatch(/^native: {3}this is the prebuilt CPU addon/m);
    const script = `import { select } from ${JSON.stringify(join(dir, 'dist', 'index.js'))};
      const a = new Float32Array(90).map((_, i) => Math.sin(i * 1.37) + i / 90);
      const s = await select({ a: { data: a, dim: 3 } }, { budget: 4, backend: 'cpu', strategy: 'kcenter' });
      console.log(s.backend, s.indices.length);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8' });
    expect(r.stdout.trim(), r.stderr).toBe('cpu 4');
  });

  it.skipIf(gpuHere)('the install step keeps it (no compiler run, no build/) when no GPU wants CUDA', () => {
    const dir = installedCopy(true);
    const started = performance.now();
    const r = spawnSync(process.execPath, [join(dir, 'scripts', 'build-native.mjs'), '--install'], { cwd: dir, encoding: 'utf8', env: { ...process.env, INIT_CWD: tmpdir() } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/using the prebuilt CPU addon \(prebuilds\/linux-x64\/pairpick\.napi\.glibc\.node\)/);
    expect(existsSync(join(dir, 'build', 'Release', 'pairpick.node'))).toBe(false);
    expect(performance.now() - started).toBeLessThan(30_000);
  });
});

describe('without any native addon', () => {
  it('info says how to build one, and the first call that falls back to pure JS says it once', () => {
    const dir = installedCopy(false);
    const info = cli(dir, ['info']);
    expect(info.stdout).toMatch(/^build: {4}js only \(native addon not built from source/m);
    expect(info.stdout).toMatch(/^native: {3}`npx pairpick build` builds the native backend from source/m);
    const run = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { kernels } from ${JSON.stringify(join(dir, 'dist', 'index.js'))};
         const a = new Float32Array([1, 2, 3, 4]);
         for (let i = 0; i < 3; i++) await kernels.distances(a, a, { rowsA: 2, rowsB: 2, dim: 2 });`,
      ],
      { cwd: dir, encoding: 'utf8', env: { ...process.env, PAIRPICK_BACKEND: '' } },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr.match(/\[PAIRPICK_JS_FALLBACK\]/g)?.length).toBe(1);
    expect(run.stderr).toMatch(/pure-JS backend, tens of times slower .*`npx pairpick build`/);
  });
});
