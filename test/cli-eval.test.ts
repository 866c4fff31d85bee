// `pairpick eval` end to end on .npy files with labels and split files: --json equals the
// results.json written, label names, the stratified --test-fraction split, bad input, and a real
// Ctrl-C then kill -9 of dist/cli.js mid-run, resumed to results byte-identical (times aside) to
// an uninterrupted run.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { demoCommand } from '../src/cli/demo.js';
import { evalCommand, stratifiedSplit } from '../src/cli/eval.js';
import { writeNpy } from '../src/io/write.js';
import { rejectsWith } from './helpers/errors.js';
import { makeEvalData, type EvalData } from './helpers/eval-data.js';
import { testRng } from './helpers/random.js';

const root = join(__dirname, '..');
let dir: string;
let small: EvalData;
let big: EvalData;
const NAMES = ['kiwi', 'apple', 'mango', 'fig'];

async function writeData(d: EvalData, prefix: string): Promise<void> {
  await writeNpy(join(dir, `${prefix}-image.npy`), d.image, [d.rows, d.dims[0]]);
  await writeNpy(join(dir, `${prefix}-audio.npy`), d.audio, [d.rows, d.dims[1]]);
  await writeFile(join(dir, `${prefix}-labels.txt`), Array.from(d.labels, (l) => NAMES[l]).join('\n') + '\n');
  await writeFile(join(dir, `${prefix}-split.json`), JSON.stringify(Array.from({ length: d.rows }, (_, i) => (d.split.test.includes(i) ? 'test' : 'train'))));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-cli-eval-'));
  const rng = testRng();
  small = makeEvalData(rng, { perClass: 20, dims: [6, 5] });
  big = makeEvalData(rng, { perClass: 150, dims: [24, 24] });
  await writeData(small, 'small');
  await writeData(big, 'big');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  let out = '';
  let err = '';
  return { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s), text: () => out, errors: () => err, stderrIsTTY: false };
}

const inputs = (p: string) => ['--modality', `image=${join(dir, `${p}-image.npy`)}`, '--modality', `audio=${join(dir, `${p}-audio.npy`)}`];

describe('pairpick eval', () => {
  it('--json prints the results.json it writes; label names become classes; the split file is used', async () => {
    const out = join(dir, 'run-json');
    const c = capture();
    await evalCommand([...inputs('small'), '--labels', join(dir, 'small-labels.txt'), '--split', join(dir, 'small-split.json'), '--cold', 'kcenter,random', '--warm', 'random', '--budgets', '4,8,16', '--seeds', '3,4', '--raw-features', '--out-dir', out, '--json'], c);
    const written = await readFile(join(out, 'results.json'), 'utf8');
    expect(JSON.parse(c.text())).toEqual(JSON.parse(written));
    const r = JSON.parse(written);
    expect(r.dataset.classes).toEqual([...NAMES].sort());
    expect(r.dataset.test).toBe(small.split.test.length);
    expect(r.cells).toHaveLength(3 * 3 * 2);
    // A cell's histogram counts the picks' true classes (ids in sorted-name order).
    const sorted = [...NAMES].sort();
    for (const cell of r.cells) {
      const h = new Array(4).fill(0);
      for (const p of cell.picks) h[sorted.indexOf(NAMES[small.labels[p]])]++;
      expect(cell.histogram).toEqual(h);
    }
    expect(r.command).toContain('--cold kcenter,random');
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    // Without --json: the ranked table.
    const t = capture();
    await evalCommand([...inputs('small'), '--labels', join(dir, 'small-labels.txt'), '--cold', 'random', '--budgets', '4,8', '--seeds', '0', '--raw-features', '--out-dir', join(dir, 'run-table')], t);
    expect(t.text()).toMatch(/^#\s+strategy\s+mean acc %\s+AUC %\s+vs random\s+B=4\s+B=8\n1\s+random/);
  });

  it('--test-fraction splits each class by the fraction (stratified)', async () => {
    const c = capture();
    await evalCommand([...inputs('small'), '--labels', join(dir, 'small-labels.txt'), '--test-fraction', '0.3', '--cold', 'random', '--budgets', '4,8', '--seeds', '0', '--raw-features', '--out-dir', join(dir, 'run-frac'), '--json'], c);
    const r = JSON.parse(c.text());
    expect(r.dataset.test).toBe(4 * Math.round(20 * 0.3));
    const split = stratifiedSplit(small.labels, 4, 0.3);
    for (let k = 0; k < 4; k++) expect(Array.from(split.test).filter((i) => small.labels[i] === k)).toHaveLength(6);
    expect(new Set([...split.train, ...split.test]).size).toBe(small.rows);
  });

  it('bad input: label count, missing labels, unknown strategies, clashing flags', async () => {
    const base = (extra: string[]) => evalCommand([...inputs('small'), '--budgets', '4,8', '--seeds', '0', '--raw-features', '--out-dir', join(dir, 'never'), ...extra], capture());
    const short = join(dir, 'short.txt');
    await writeFile(short, Array.from(small.labels.subarray(1), String).join('\n'));
    await rejectsWith(base(['--labels', short]), 'E_SHAPE', `${small.rows - 1} labels`, `${small.rows} rows`);
    const hole = join(dir, 'hole.json');
    await writeFile(hole, JSON.stringify(Array.from(small.labels, (l, i) => (i === 5 ? -1 : l))));
    await rejectsWith(base(['--labels', hole]), 'E_FORMAT', 'row 5 has no label');
    // Split files: one entry per row, 0/train or 1/test only.
    const badSplit = join(dir, 'bad-split.txt');
    const wrong = 3 + testRng().int(small.rows - 3);
    await writeFile(badSplit, Array.from({ length: small.rows }, (_, i) => (i === wrong ? 'val' : small.split.test.includes(i) ? '1' : '0')).join('\n'));
    await rejectsWith(base(['--labels', join(dir, 'small-labels.txt'), '--split', badSplit]), 'E_FORMAT', `row ${wrong} is 'val'`, '0/train or 1/test');
    const shortSplit = join(dir, 'short-split.json');
    await writeFile(shortSplit, JSON.stringify(Array.from({ length: small.rows - 2 }, () => 'train')));
    await rejectsWith(base(['--labels', join(dir, 'small-labels.txt'), '--split', shortSplit]), 'E_SHAPE', `${small.rows - 2} entries`, `${small.rows} rows`);
    await rejectsWith(base(['--labels', join(dir, 'small-labels.txt'), '--cold', 'random,bogus']), 'E_OPTION', '--cold', "'bogus'");
    await rejectsWith(base(['--labels', join(dir, 'small-labels.txt'), '--warm', 'badge', '--model', 'ridge']), 'E_OPTION', '--warm', "'badge'", "'late-fusion' or 'mla'");
    await rejectsWith(base(['--labels', join(dir, 'small-labels.txt'), '--budgets', `4,${small.rows}`]), 'E_BUDGET', `budget ${small.rows}`);
    await rejectsWith(base(['--labels', join(dir, 'small-labels.txt'), '--warm', 'bmmal', '--model', 'mla']), 'E_OPTION', '--warm', "'bmmal' needs a late-fusion model");
    await rejectsWith(base(['--dataset', 'av-digits']), 'E_OPTION', '--modality does not go with --dataset');
    await rejectsWith(base(['--labels', join(dir, 'small-labels.txt'), '--split', join(dir, 'small-split.json'), '--test-fraction', '0.2']), 'E_OPTION', 'do not go together');
    await rejectsWith(base([]), 'E_OPTION', '--labels');
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('Ctrl-C, then kill -9 of the resumed run, then --resume: results.json as an uninterrupted run (times aside)', async () => {
    const out = join(dir, 'run-kill');
    const args = [...inputs('big'), '--labels', join(dir, 'big-labels.txt'), '--split', join(dir, 'big-split.json'), '--cold', 'mmcsal,kcenter,random', '--warm', 'random', '--budgets', '5,10,20,40', '--seeds', '0,1,2', '--epochs', '3', '--model', 'ridge', '--out-dir', out];
    const strip = (text: string) => JSON.stringify({ ...JSON.parse(text), times: undefined });
    await evalCommand(args, capture());
    const whole = strip(await readFile(join(out, 'results.json'), 'utf8'));
    await rm(out, { recursive: true });

    const cells = async () => (existsSync(join(out, 'cells')) ? (await readdir(join(out, 'cells'))).filter((f) => !f.startsWith('stage1') && f.endsWith('.json')).length : 0);
    /** Runs dist/cli.js and sends `signal` once `atLeast` cells exist; resolves with its exit code and stderr. */
    const runAndStop = (extra: string[], atLeast: number, signal: NodeJS.Signals) =>
      new Promise<{ code: number | null; stderr: string; cellsAtStop: number }>((resolve, reject) => {
        const child = spawn(process.execPath, [join(root, 'dist', 'cli.js'), 'eval', ...args, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        let cellsAtStop = -1;
        child.stderr.on('data', (b) => (stderr += b));
        const timer = setInterval(async () => {
          const n = await cells();
          if (n >= atLeast && cellsAtStop < 0) {
            cellsAtStop = n;
            child.kill(signal);
          }
        }, 15);
        child.on('error', reject);
        child.on('close', (code) => {
          clearInterval(timer);
          resolve({ code, stderr, cellsAtStop });
        });
      });
    const total = 4 * 4 * 3;
    const first = await runAndStop([], 3, 'SIGINT');
    expect(first.cellsAtStop, first.stderr).toBeGreaterThanOrEqual(3);
    expect(first.code, first.stderr).toBe(130);
    expect(first.stderr).toMatch(/--resume/);
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    const afterFirst = await cells();
    expect(afterFirst).toBeLessThan(total);
    const second = await runAndStop(['--resume'], afterFirst + 5, 'SIGKILL');
    expect(second.code).toBe(null); // killed
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    expect(await cells()).toBeLessThan(total);
    const c = capture();
    await evalCommand([...args, '--resume'], c);
    expect(strip(await readFile(join(out, 'results.json'), 'utf8'))).toBe(whole);
  });

  it('pairpick demo --report DIR writes the same run folder and report for the demo run', async () => {
    const out = join(dir, 'demo-report');
    const c = capture();
    await demoCommand(['--report', out, '--epochs', '1', '--budget', '30', '--seed', '5', '--quiet'], c);
    const r = JSON.parse(await readFile(join(out, 'results.json'), 'utf8'));
    expect(r.arms.map((a: { key: string }) => a.key)).toEqual(['cold:mmcsal', 'cold:kcenter', 'cold:typiclust', 'cold:random']);
    expect(r.options).toMatchObject({ budgets: [30], seeds: [5], model: 'ridge', stage1: { epochs: 1 } });
    expect(r.command).toBe(`pairpick demo --report ${out} --epochs 1 --budget 30 --seed 5 --quiet`);
    // The demo's table shows the run's cells; mmcsal's row names the space it covered (its default:
    // the embedding joined with the input features).
    expect(r.cells.find((cell: { strategy: string }) => cell.strategy === 'mmcsal').space).toBe('embedding+inputs');
    const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    for (const cell of r.cells) {
      const label = cell.space ? `${cell.strategy} (${cell.space})` : cell.strategy;
      expect(c.text()).toMatch(new RegExp(`${escape(label)}\\s+${cell.covered}/10 .* ${(100 * cell.accuracy).toFixed(1)}%`));
    }
    expect(c.text()).toContain(`report: ${out}/report.html`);
    expect(await readFile(join(out, 'report.html'), 'utf8')).toMatch(/^<!DOCTYPE html>/);
  });
});
