// Progress on stderr: the bar (terminal) with percent, elapsed time and ETA; plain lines when
// stderr is not a terminal (one per phase, then one per interval); nothing with --quiet; stdout
// untouched. The reporter runs on a fake clock; the commands run as child processes (dist/cli.js)
// with stderr a pipe, i.e. not a terminal.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createProgress, etaMs, formatDuration, type ProgressMode } from '../src/cli/progress.js';
import { writeNpy } from '../src/io/index.js';
import { syntheticPairs } from './helpers/pairs.js';
import { randomMatrix, testRng } from './helpers/random.js';

const root = join(__dirname, '..');
const cli = join(root, 'dist', 'cli.js');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-cli-progress-'));
  const rng = testRng();
  const rows = 1200;
  await writeNpy(join(dir, 'a.npy'), randomMatrix(rng, rows, 16), [rows, 16]);
  await writeNpy(join(dir, 'b.npy'), randomMatrix(rng, rows, 16), [rows, 16]);
  const s = syntheticPairs(rng, 300, [10, 6]);
  await writeNpy(join(dir, 'x.npy'), s.data[0], [300, 10]);
  await writeNpy(join(dir, 'y.npy'), s.data[1], [300, 6]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A reporter on a fake clock, collecting what it writes. */
function fake(mode: ProgressMode, intervalMs = 10_000) {
  let now = 0;
  const writes: string[] = [];
  const progress = createProgress({ mode, label: 'pairpick test', write: (t) => void writes.push(t), intervalMs, now: () => now });
  return { progress, writes, at: (ms: number) => void (now = ms) };
}

describe('progress reporter', () => {
  it('durations and the ETA (linear extrapolation)', () => {
    expect(formatDuration(4230)).toBe('4.2s');
    expect(formatDuration(42_900)).toBe('42s');
    expect(formatDuration(7 * 60_000 + 5_400)).toBe('7m05s');
    expect(formatDuration(2 * 3_600_000 + 3 * 60_000)).toBe('2h03m');
    expect(etaMs(6000, 0.2, 0.2)).toBeCloseTo(24_000, 9);
    expect(etaMs(6000, 0.1, 0.5)).toBeCloseTo(30_000, 9);
    expect(etaMs(500, 0.5, 0.5)).toBeUndefined(); // too early to say
    expect(etaMs(5000, 0, 0.3)).toBeUndefined();
    expect(etaMs(5000, 0.5, 1)).toBeUndefined();
  });

  it('lines: one when a phase starts, then one per interval, each with percent, elapsed time and ETA', () => {
    const { progress, writes, at } = fake('lines');
    at(0);
    progress.update(0.1, 'prepare', '10/10');
    at(5_000);
    progress.update(0.15, 'prepare'); // same phase, within the interval: no line
    at(6_000);
    progress.update(0.2, 'kNN density', '5/100');
    at(15_000);
    progress.update(0.3, 'kNN density', '40/100');
    at(16_500);
    progress.update(0.4, 'kNN density', '55/100');
    expect(writes).toEqual([
      'pairpick test:  10% prepare 10/10 (0.0s elapsed)\n',
      `pairpick test:  20% kNN density 5/100 (6.0s elapsed, ETA ${formatDuration((6_000 * 0.8) / 0.2)})\n`,
      `pairpick test:  40% kNN density 55/100 (16s elapsed, ETA ${formatDuration((16_500 * 0.6) / 0.4)})\n`,
    ]);
    expect(writes[1]).toContain('ETA 24s');
    progress.note('done');
    expect(writes.at(-1)).toBe('done\n');
  });

  it('bar: redrawn in place with a bar, percent, elapsed and ETA; erased before notes', () => {
    const { progress, writes, at } = fake('bar');
    at(2_000);
    progress.update(0.25, 'kNN density', '25/100');
    at(2_050);
    progress.update(0.26, 'kNN density', '26/100'); // within the redraw interval: skipped
    at(3_000);
    progress.update(0.5, 'kNN density', '50/100');
    expect(writes).toHaveLength(2);
    expect(writes[0]).toBe(`\rpairpick test [${'#'.repeat(6)}${'-'.repeat(18)}]  25% 2.0s ETA 6.0s  kNN density 25/100\x1b[K`);
    expect(writes[1]).toBe(`\rpairpick test [${'#'.repeat(12)}${'-'.repeat(12)}]  50% 3.0s ETA 3.0s  kNN density 50/100\x1b[K`);
    progress.note('a note');
    expect(writes.slice(2)).toEqual(['\r\x1b[K', 'a note\n']);
    progress.clear(); // nothing shown any more: nothing to erase
    expect(writes).toHaveLength(4);
  });

  it('the ETA follows the rate of the last 30 s, not of the whole run', () => {
    // A fast first phase (half the bar in 1 s), then a slow one: 2 % every 3 s.
    const { progress, writes, at } = fake('lines', 60_000);
    at(1_000);
    progress.update(0.5, 'fast');
    for (let t = 4_000, f = 0.52; t <= 61_000; t += 3_000, f += 0.02) {
      at(t);
      progress.update(f, 'slow');
    }
    at(61_000); // the last line: 0.5 + 0.02 · 20 = 0.9 done, the last 30 s gained 0.2
    progress.update(0.9, 'slower');
    const fromStart = formatDuration((61_000 * 0.1) / 0.9);
    const recent = formatDuration((30_000 * 0.1) / 0.2);
    expect(writes.at(-1)).toContain(`ETA ${recent})`);
    expect(recent).not.toBe(fromStart);
  });

  it('off (--quiet): nothing', () => {
    const { progress, writes, at } = fake('off');
    at(20_000);
    progress.update(0.5, 'x');
    progress.note('y');
    progress.clear();
    expect(writes).toEqual([]);
  });
});

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const LINE = /^pairpick (\w+): +(\d+)% (.+) \((\S+) elapsed(?:, ETA (\S+))?\)$/;

describe('progress of the commands when stderr is not a terminal', () => {
  it('select: a line per phase and per interval, percent never going back; --json stays clean on stdout', () => {
    const args = ['select', '--modality', `a=${join(dir, 'a.npy')}`, '--modality', `b=${join(dir, 'b.npy')}`, '--budget', '300', '--distribution', 'density', '--backend', 'js', '--json'];
    const r = run(args, { PAIRPICK_PROGRESS_SECONDS: '0.05' });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).indices).toHaveLength(300);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe('pairpick select: mmcsal, budget 300, 1200 rows (a 16-D, b 16-D)');
    const progress = lines.slice(1).map((l) => LINE.exec(l));
    for (const [i, m] of progress.entries()) expect(m, lines[i + 1]).not.toBeNull();
    const phases = progress.map((m) => m![3].replace(/ \d+\/\d+$/, ''));
    expect([...new Set(phases)]).toEqual(['reading and normalising', 'kNN density', 'picking']);
    const percents = progress.map((m) => Number(m![2]));
    for (let i = 1; i < percents.length; i++) expect(percents[i]).toBeGreaterThanOrEqual(percents[i - 1]);
  });

  it('fit: lines for checking, the initial gap and each epoch; --quiet prints nothing on stderr', () => {
    const args = ['fit', '--modality', `x=${join(dir, 'x.npy')}`, '--modality', `y=${join(dir, 'y.npy')}`, '--out', join(dir, 'm.safetensors')];
    const small = ['--epochs', '2', '--dim', '4', '--hidden', '8', '--prototypes', '3', '--batch', '64', '--backend', 'js'];
    const r = run([...args, ...small]);
    expect(r.code, r.stderr).toBe(0);
    const phases = r.stderr
      .trimEnd()
      .split('\n')
      .map((l) => LINE.exec(l)?.[3].replace(/^(epoch \d+\/\d+) .*$/, '$1'));
    expect([...new Set(phases)]).toEqual(['checking inputs', 'initial gap', 'epoch 1/2', 'epoch 2/2']);
    expect(r.stdout).toMatch(/^pairpick fit: 300 samples/);

    const quiet = run([...args, ...small, '--quiet']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
    const sel = run(['select', '--modality', `x=${join(dir, 'x.npy')}`, '--budget', '5', '-q']);
    expect(sel.stderr).toBe('');
    expect(sel.stdout.trim().split('\n')).toHaveLength(5);
  });
});
