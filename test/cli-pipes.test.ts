// dist/cli.js writing into pipes whose reader goes away early (`pairpick select … | head -c 10`):
// the output ends quietly — exit 0, no stack trace, no unhandled 'error' event — on stdout and on
// stderr alike.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeNpy } from '../src/io/index.js';
import { randomMatrix, testRng } from './helpers/random.js';

const root = join(__dirname, '..');
const cli = join(root, 'dist', 'cli.js');
let dir: string;
// Enough picks that the --json document (~100 KB) outgrows a pipe's buffer (64 KiB on Linux).
const ROWS = 30_000;
const BUDGET = 20_000;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-cli-pipes-'));
  await writeNpy(join(dir, 'a.npy'), randomMatrix(testRng(), ROWS, 3), [ROWS, 3]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const selectArgs = () => ['select', '--modality', `a=${join(dir, 'a.npy')}`, '--budget', String(BUDGET), '--strategy', 'random'];
const NOISE = /EPIPE|Unhandled|Error|at \S+ \(|internal error/;

function waitClose(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve) => child.on('close', (code) => resolve(code)));
}

describe('closed pipes', () => {
  it('`pairpick select … --json | head -c 10`: exit 0 and nothing on stderr but progress', () => {
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const command = `${q(process.execPath)} ${q(cli)} ${selectArgs().map(q).join(' ')} --json 2>${q(join(dir, 'err.txt'))} | head -c 10; echo " status=\${PIPESTATUS[0]}"`;
    const r = spawnSync('bash', ['-c', command], { encoding: 'utf8' });
    expect(r.stdout).toMatch(/^\{"strategy status=0\n$/);
    const err = spawnSync('cat', [join(dir, 'err.txt')], { encoding: 'utf8' }).stdout;
    expect(err).not.toMatch(NOISE);
  });

  it('stdout closed before the result is written: exit 0, stderr clean', async () => {
    const child = spawn(process.execPath, [cli, ...selectArgs(), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.destroy(); // the reader goes away at once
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const code = await waitClose(child);
    expect(stderr).not.toMatch(NOISE);
    expect(code, stderr).toBe(0);
  });

  it('stderr closed early: progress is dropped quietly and stdout still gets every pick', async () => {
    const child = spawn(process.execPath, [cli, ...selectArgs()], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr!.destroy();
    let stdout = '';
    child.stdout!.on('data', (d) => (stdout += d));
    const code = await waitClose(child);
    expect(code).toBe(0);
    const picks = stdout.trim().split('\n').map(Number);
    expect(picks).toHaveLength(BUDGET);
    expect(new Set(picks).size).toBe(BUDGET);
  });
});
