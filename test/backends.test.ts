import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { PairpickError, backends, getBackend } from '../src/index.js';

const root = join(__dirname, '..');
const cli = join(root, 'dist', 'cli.js');

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });
}

describe('backends()', () => {
  it('lists cuda, cpu and js in preference order; js is always available', () => {
    const list = backends();
    expect(list.map((b) => b.name)).toEqual(['cuda', 'cpu', 'js']);
    expect(list.find((b) => b.name === 'js')!.available).toBe(true);
    for (const b of list) if (!b.available) expect(b.reason, `${b.name} must say why it is unavailable`).toMatch(/\w/);
  });

  it('auto picks the first available backend', () => {
    const first = backends().find((b) => b.available)!.name;
    expect(getBackend().name).toBe(first);
    expect(getBackend('auto').name).toBe(first);
    expect(getBackend('js').name).toBe('js');
  });

  it('refuses unknown and unavailable backends with a reason', () => {
    expect(() => getBackend('tpu' as never)).toThrow(PairpickError);
    try {
      getBackend('tpu' as never);
    } catch (e) {
      expect((e as PairpickError).code).toBe('E_OPTION');
      expect((e as Error).message).toContain('tpu');
    }
    const missing = backends().find((b) => !b.available);
    if (missing) {
      try {
        getBackend(missing.name);
        expect.unreachable();
      } catch (e) {
        expect((e as PairpickError).code).toBe('E_BACKEND');
        expect((e as Error).message).toContain(missing.name);
      }
    }
  });
});

describe('pairpick info', () => {
  it('prints every backend with availability, and the build flavour', () => {
    const r = run(['info']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pairpick \d+\.\d+\.\d+/);
    for (const name of ['cuda', 'cpu', 'js']) expect(r.stdout).toMatch(new RegExp(`^\\s+${name}\\s+(available|unavailable)`, 'm'));
  });

  it('--json reports the same backends as the library', () => {
    const r = run(['info', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.backends.map((b: { name: string; available: boolean }) => [b.name, b.available])).toEqual(
      backends().map((b) => [b.name, b.available]),
    );
    expect(typeof report.cpu.threads).toBe('number');
    expect(report.build).toMatch(/cmake|node-gyp|js only/);
  });

  it('PAIRPICK_BACKEND chooses the default backend', () => {
    const r = spawnSync(process.execPath, ['-e', `import(${JSON.stringify(join(root, 'dist', 'index.js'))}).then(m => console.log(m.getBackend().name))`], {
      encoding: 'utf8',
      env: { ...process.env, PAIRPICK_BACKEND: 'js' },
    });
    expect(r.stdout.trim()).toBe('js');
  });

  it('rejects unknown flags and commands with a clear message', () => {
    const r = run(['info', '--colour']);
    expect(r.status).toBe(2); // a bad command line, like an unknown command
    expect(r.stderr).toMatch(/^pairpick info: unknown option --colour \(E_OPTION\)/);
    const u = run(['frobnicate']);
    expect(u.status).toBe(2);
    expect(u.stderr).toContain("unknown command 'frobnicate'");
  });
});

describe('without the native addon (pure-JS install)', () => {
  it('reports cpu and cuda unavailable with the reason, and kNN and selection still work', () => {
    const env = { PAIRPICK_NO_ADDON: '1' };
    const info = JSON.parse(run(['info', '--json'], env).stdout);
    expect(info.backends.filter((b: { available: boolean }) => b.available).map((b: { name: string }) => b.name)).toEqual(['js']);
    for (const b of info.backends.filter((b: { available: boolean }) => !b.available)) expect(b.reason).toContain('PAIRPICK_NO_ADDON');
    // A tiny pool through the public API of the built package: kNN and a k-center selection.
    const script = `
      const m = await import(${JSON.stringify(join(root, 'dist', 'index.js'))});
      const rows = 40, dim = 3, data = new Float32Array(rows * dim).map((_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
      const { indices } = await m.kernels.knn(data, data, { rowsQ: rows, rowsR: rows, dim, k: 3, excludeSelf: true });
      const pool = await m.openPool({ a: { data, dim }, b: { data: data.map((v) => v * 2 + 1), dim } });
      const sel = await m.select(pool, { strategy: 'kcenter', budget: 5 });
      console.log(JSON.stringify({ backend: sel.backend, picks: sel.indices.length, knn: indices.length, self: indices[0] === 0 }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ backend: 'js', picks: 5, knn: 40 * 3, self: false });
  });
});

