// `pairpick train` and `pairpick predict` end to end on small .npy files in a temp folder: the
// model and predictions written (every output format), class names kept, missing modalities,
// cancellation (AbortSignal and Ctrl-C) leaving no file, bad flags and labels.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { predictCommand } from '../src/cli/predict.js';
import { trainCommand } from '../src/cli/train.js';
import { readNpy, writeNpy } from '../src/io/index.js';
import { loadClassifier } from '../src/train/index.js';
import { rejectsWith } from './helpers/errors.js';
import { testRng } from './helpers/random.js';

const root = join(__dirname, '..');
const ROWS = 150;
const DIMS = [12, 8];
const NAMES = ['cat', 'dog', 'emu'];
let dir: string;
let y: Int32Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-cli-train-'));
  const rng = testRng();
  y = Int32Array.from({ length: ROWS }, (_, i) => (i < 3 ? i : rng.int(3)));
  const means = DIMS.map((D) => Array.from({ length: 3 * D }, () => rng.normal() * 3));
  const data = DIMS.map((D, m) => Float32Array.from({ length: ROWS * D }, (_, t) => means[m][y[Math.floor(t / D)] * D + (t % D)] + rng.normal()));
  await writeNpy(join(dir, 'image.npy'), data[0], [ROWS, DIMS[0]]);
  await writeNpy(join(dir, 'audio.npy'), data[1], [ROWS, DIMS[1]]);
  const missing = data[1].slice();
  for (let i = 0; i < ROWS; i += 5) missing.fill(NaN, i * DIMS[1], (i + 1) * DIMS[1]);
  await writeNpy(join(dir, 'audio-missing.npy'), missing, [ROWS, DIMS[1]]);
  // Rows 100… are unlabelled (empty lines).
  await writeFile(join(dir, 'labels.csv'), Array.from(y, (c, i) => (i < 100 ? NAMES[c] : '')).join('\n') + '\n');
  await writeFile(join(dir, 'picks.json'), JSON.stringify({ strategy: 'random', indices: Array.from({ length: 60 }, (_, i) => i) }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  let text = '';
  return { stdout: (s: string) => void (text += s), stderr: () => undefined, text: () => text, stderrIsTTY: false };
}

const modalities = (audio = 'audio.npy') => ['--modality', `image=${join(dir, 'image.npy')}`, '--modality', `audio=${join(dir, audio)}`];
const small = ['--epochs', '8', '--hidden', '16', '--batch', '20', '--lr', '0.01', '--backend', 'js'];

describe('pairpick train / predict', () => {
  it('train --json writes a model with class names; predict writes .json, .csv and .npy', async () => {
    const out = join(dir, 'clf.safetensors');
    const io = capture();
    await trainCommand([...modalities(), '--labels', join(dir, 'labels.csv'), '--out', out, ...small, '--json'], io);
    const summary = JSON.parse(io.text());
    expect(summary).toMatchObject({ model: 'late-fusion', rows: ROWS, classes: 3, classNames: NAMES });
    expect(summary.options.labeled).toBe(100);
    expect(summary.history).toHaveLength(8);
    expect(summary.history[7].trainAccuracy).toBeGreaterThan(0.9);
    const clf = await loadClassifier(out);
    expect(clf.classNames).toEqual(NAMES);

    await predictCommand(['--model', out, ...modalities(), '--out', join(dir, 'p.json')], capture());
    const doc = JSON.parse(await readFile(join(dir, 'p.json'), 'utf8'));
    expect(doc.rows).toBe(ROWS);
    const correct = doc.class.filter((c: string, i: number) => i >= 100 && c === NAMES[y[i]]).length;
    expect(correct / 50).toBeGreaterThan(0.85);
    expect(Object.keys(doc.modalities)).toEqual(['image', 'audio']);

    await predictCommand(['--model', out, ...modalities(), '--out', join(dir, 'p.csv')], capture());
    const lines = (await readFile(join(dir, 'p.csv'), 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('row,class,probability,entropy:image,entropy:audio,weight:image,weight:audio');
    expect(lines).toHaveLength(ROWS + 1);
    expect(lines[1].split(',')[1]).toBe(doc.class[0]);

    await predictCommand(['--model', out, ...modalities(), '--out', join(dir, 'p.npy')], capture());
    const table = await readNpy(join(dir, 'p.npy'));
    expect(table.shape).toEqual([ROWS, 6]);
    expect(NAMES[(table.data as Float32Array)[0]]).toBe(doc.class[0]);
    expect((table.data as Float32Array)[1]).toBeCloseTo(doc.probability[0], 6);

    const stdout = capture();
    await predictCommand(['--model', out, ...modalities()], stdout);
    expect(stdout.text()).toBe(await readFile(join(dir, 'p.csv'), 'utf8'));
  });

  it('MLA on a modality with missing (all-NaN) rows, --labeled from a selection document', async () => {
    const out = join(dir, 'mla.safetensors');
    const io = capture();
    await trainCommand([...modalities('audio-missing.npy'), '--labels', join(dir, 'labels.csv'), '--labeled', join(dir, 'picks.json'), '--model', 'mla', '--fusion', 'mean', '--out', out, ...small], io);
    expect(io.text()).toMatch(/mla on 60 labelled rows, 3 classes/);
    await predictCommand(['--model', out, ...modalities('audio-missing.npy'), '--out', join(dir, 'm.json')], capture());
    const doc = JSON.parse(await readFile(join(dir, 'm.json'), 'utf8'));
    expect(doc.modalities.audio.weight[0]).toBe(0);
    expect(doc.modalities.audio.entropy[0]).toBeNull();
    expect(doc.modalities.image.weight[0]).toBe(1);
    expect(doc.modalities.image.weight[1]).toBeCloseTo(0.5, 6);
  });

  it('bad flags and labels are refused naming them; an aborted train leaves no file', async () => {
    const sub = await mkdtemp(join(dir, 'bad-'));
    const out = join(sub, 'clf.safetensors');
    const labels = join(dir, 'labels.csv');
    await rejectsWith(trainCommand([...modalities(), '--labels', labels, '--out', out, '--fusion', 'mean'], capture()), 'E_OPTION', '--fusion', 'mla');
    await rejectsWith(trainCommand([...modalities(), '--labels', labels, '--out', out, '--model', 'svm'], capture()), 'E_OPTION', '--model');
    await writeFile(join(sub, 'short.txt'), '0\n1\n');
    await rejectsWith(trainCommand([...modalities(), '--labels', join(sub, 'short.txt'), '--out', out], capture()), 'E_SHAPE', 'short.txt', '2 labels');
    await rejectsWith(trainCommand([...modalities(), '--labels', labels, '--out', join(dir, 'image.npy')], capture()), 'E_OPTION', 'same file');
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 200);
    await rejectsWith(trainCommand([...modalities(), '--labels', labels, '--out', out, ...small, '--epochs', '100000'], { ...capture(), signal: controller.signal }), 'E_ABORTED');
    clearTimeout(timer);
    expect(await readdir(sub)).toEqual(['short.txt']);
  });

  it('Ctrl-C (SIGINT) stops `pairpick train` with exit code 130 and no model file', async () => {
    const cli = join(root, 'dist', 'cli.js');
    expect(existsSync(cli), 'dist/cli.js is built by the global test setup').toBe(true);
    const sub = await mkdtemp(join(dir, 'sigint-'));
    const out = join(sub, 'clf.safetensors');
    const child = spawn(process.execPath, [cli, 'train', ...modalities(), '--labels', join(dir, 'labels.csv'), '--out', out, ...small, '--epochs', '100000'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise<void>((resolve, reject) => {
      let stdout = '';
      child.stdout.on('data', (d) => {
        stdout += d;
        if (/^\s+1\s+\d/m.test(stdout)) resolve();
      });
      child.on('close', () => reject(new Error(`train ended before it was interrupted: ${stderr}`)));
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/E_ABORTED/);
    expect(await readdir(sub)).toEqual([]);
  });
});
