// `pairpick fit` and `pairpick embed` end to end on small synthetic .npy files in a temp folder.
// Most cases call the command functions directly; one spawns dist/cli.js (built by the global
// setup) to check that Ctrl-C (SIGINT) stops a fit cleanly without leaving a model file.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { embedCommand } from '../src/cli/embed.js';
import { fitCommand } from '../src/cli/fit.js';
import { openPool, readNpy, writeNpy } from '../src/io/index.js';
import { initProjection, loadProjection } from '../src/ssl/index.js';
import { floatArrayToHalf } from '../src/util/half.js';
import { syntheticPairs } from './helpers/pairs.js';
import { rejectsWith } from './helpers/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';

const root = join(__dirname, '..');
const cli = join(root, 'dist', 'cli.js');
let dir: string;
const ROWS = 173;
const DIMS = [21, 9];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-cli-fit-'));
  const s = syntheticPairs(testRng(), ROWS, DIMS);
  // One modality stored as float16, the other as float32.
  await writeNpy(join(dir, 'image.npy'), floatArrayToHalf(s.data[0]), [ROWS, DIMS[0]]);
  await writeNpy(join(dir, 'audio.npy'), s.data[1], [ROWS, DIMS[1]]);
  await writeNpy(join(dir, 'short.npy'), s.data[1].subarray(0, 100 * DIMS[1]), [100, DIMS[1]]);
  const bad = s.data[1].slice();
  bad[77 * DIMS[1] + 3] = Number.NaN;
  await writeNpy(join(dir, 'audio-nan.npy'), bad, [ROWS, DIMS[1]]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  let text = '';
  return { stdout: (s: string) => void (text += s), stderr: () => undefined, text: () => text, stderrIsTTY: false };
}


const modalities = () => ['--modality', `image=${join(dir, 'image.npy')}`, '--modality', `audio=${join(dir, 'audio.npy')}`];
const smallFlags = ['--epochs', '3', '--dim', '8', '--hidden', '16', '--prototypes', '5', '--batch', '40', '--seed', '7', '--backend', 'js'];

describe('pairpick fit / embed', () => {
  it('fit --json trains, writes the model and prints gapBefore, gap and per-epoch losses; embed writes unit-norm float32 .npy files', async () => {
    const out = join(dir, 'model.safetensors');
    const io = capture();
    await fitCommand([...modalities(), '--out', out, ...smallFlags, '--json'], io);
    const summary = JSON.parse(io.text());
    expect(summary.rows).toBe(ROWS);
    expect(summary.modalities).toEqual(['image', 'audio']);
    expect(summary.inputDims).toEqual({ image: DIMS[0], audio: DIMS[1] });
    expect(summary.options).toMatchObject({ epochs: 3, dim: 8, hidden: 16, prototypes: 5, batch: 40, seed: 7, backend: 'js', beta: 1 });
    expect(summary.history).toHaveLength(3);
    for (const h of summary.history) for (const key of ['loss', 'infoNCE', 'proto', 'gap', 'seconds']) expect(Number.isFinite(h[key])).toBe(true);
    expect(summary.gapBefore).toBeGreaterThan(0);
    expect(summary.gap).toBe(summary.history[2].gap);

    const model = await loadProjection(out);
    expect(model.history).toEqual(summary.history);

    const outDir = join(dir, 'embedded');
    const io2 = capture();
    await embedCommand(['--model', out, ...modalities(), '--out-dir', outDir, '--backend', 'js', '--chunk-rows', '50'], io2);
    expect(io2.text()).toMatch(/image: 173 × 8 float32/);
    const pool = await openPool({ image: join(dir, 'image.npy'), audio: join(dir, 'audio.npy') });
    const expected = await model.embed(pool, { backend: 'js' });
    for (const name of ['image', 'audio']) {
      const arr = await readNpy(join(outDir, `${name}.npy`));
      expect(arr.shape).toEqual([ROWS, 8]);
      expect(arr.dtype).toBe('float32');
      const z = arr.data as Float32Array;
      for (let r = 0; r < ROWS; r++) {
        let s = 0;
        for (let j = 0; j < 8; j++) s += z[r * 8 + j] ** 2;
        expect(Math.sqrt(s)).toBeCloseTo(1, 5);
      }
      expect(Array.from(z)).toEqual(Array.from(await expected.source(name).read(0, ROWS)));
    }
    await pool.close();
    expect((await readdir(outDir)).sort()).toEqual(['audio.npy', 'image.npy']);
  });

  it('fit without --json prints a readable summary', async () => {
    const io = capture();
    await fitCommand([...modalities(), '--out', join(dir, 'plain.safetensors'), ...smallFlags, '--hidden', 'linear'], io);
    expect(io.text()).toMatch(/modality gap [\d.]+ \(random init\) → [\d.]+/);
    expect(io.text()).toMatch(/model written to .*plain\.safetensors/);
    expect((await loadProjection(join(dir, 'plain.safetensors'))).heads[0].hidden).toBe(0);
  });

  it('bad input: flags, row counts, NaN rows, a model that does not fit the inputs', async () => {
    const out = join(dir, 'never.safetensors');
    const io = capture();
    await rejectsWith(fitCommand([...modalities(), ...smallFlags], io), 'E_OPTION', '--out');
    await rejectsWith(fitCommand(['--modality', `image=${join(dir, 'image.npy')}`, '--out', out], io), 'E_OPTION', /at least 2 --modality/);
    await rejectsWith(fitCommand([...modalities(), '--out', out, '--epochs', '0'], io), 'E_OPTION', '--epochs');
    await rejectsWith(fitCommand([...modalities(), '--out', out, '--dim', '0'], io), 'E_OPTION', '--dim');
    await rejectsWith(fitCommand([...modalities(), '--out', out, '--batch', 'big'], io), 'E_OPTION', '--batch');
    await rejectsWith(fitCommand([...modalities(), '--out', out, '--frobnicate'], io), 'E_OPTION', 'frobnicate');
    await rejectsWith(fitCommand([...modalities(), '--out', join(dir, 'no', 'such', 'dir', 'm.safetensors')], io), 'E_IO', 'does not exist');
    await rejectsWith(
      fitCommand(['--modality', `image=${join(dir, 'image.npy')}`, '--modality', `audio=${join(dir, 'short.npy')}`, '--out', out, ...smallFlags], io),
      'E_SHAPE',
      'short.npy',
    );
    await rejectsWith(
      fitCommand(['--modality', `image=${join(dir, 'image.npy')}`, '--modality', `audio=${join(dir, 'audio-nan.npy')}`, '--out', out, ...smallFlags], io),
      'E_NAN',
      "'audio'",
      'row 77',
    );
    expect(existsSync(out)).toBe(false);

    const model = join(dir, 'model.safetensors');
    const outDir = join(dir, 'bad-embed');
    await rejectsWith(embedCommand(['--model', model, '--modality', `image=${join(dir, 'audio.npy')}`, '--out-dir', outDir], io), 'E_SHAPE', 'image', String(DIMS[0]));
    await rejectsWith(embedCommand(['--model', model, '--modality', `video=${join(dir, 'audio.npy')}`, '--out-dir', outDir], io), 'E_SHAPE', 'video');
    await rejectsWith(embedCommand(['--model', join(dir, 'audio.npy'), '--modality', `audio=${join(dir, 'audio.npy')}`, '--out-dir', outDir], io), 'E_FORMAT', 'audio.npy');
    await rejectsWith(embedCommand(['--model', model, '--modality', `audio=${join(dir, 'audio-nan.npy')}`, '--out-dir', outDir, '--backend', 'js'], io), 'E_NAN', 'row 77');
    await rejectsWith(embedCommand(['--model', model, '--modality', `audio=${join(dir, 'audio.npy')}`], io), 'E_OPTION', '--out-dir');
    // No partial output from the failed embed.
    expect(existsSync(join(outDir, 'audio.npy'))).toBe(false);
    if (existsSync(outDir)) expect(await readdir(outDir)).toEqual([]);
  });

  it('an aborted fit leaves no model file (and no temporary file)', async () => {
    const sub = await mkdtemp(join(dir, 'abort-'));
    const out = join(sub, 'model.safetensors');
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 300);
    await rejectsWith(fitCommand([...modalities(), '--out', out, ...smallFlags, '--epochs', '100000'], { ...capture(), signal: controller.signal }), 'E_ABORTED');
    clearTimeout(timer);
    expect(await readdir(sub)).toEqual([]);
  });

  it('Ctrl-C (SIGINT) stops `pairpick fit` with exit code 130 and no model file', async () => {
    const cli = join(root, 'dist', 'cli.js');
    expect(existsSync(cli), 'dist/cli.js is built by the global test setup').toBe(true);
    const sub = await mkdtemp(join(dir, 'sigint-'));
    const out = join(sub, 'model.safetensors');
    const child = spawn(process.execPath, [cli, 'fit', ...modalities(), '--out', out, ...smallFlags, '--epochs', '100000'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // Ctrl-C once training runs: after the first epoch line on stdout.
    await new Promise<void>((resolve, reject) => {
      let stdout = '';
      child.stdout.on('data', (d) => {
        stdout += d;
        if (/^\s+1\s+\d/m.test(stdout)) resolve();
      });
      child.on('close', () => reject(new Error(`fit ended before it was interrupted: ${stderr}`)));
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/E_ABORTED/);
    expect(await readdir(sub)).toEqual([]);
  });

  it('--out naming an input (same path, relative path or symlink) is refused naming both; the input is untouched', async () => {
    const image = join(dir, 'image.npy');
    const before = await readFile(image);
    await symlink(image, join(dir, 'image-link.npy'));
    const io = capture();
    for (const out of [image, join(dir, '.', 'sub', '..', 'image.npy'), join(dir, 'image-link.npy')]) {
      await rejectsWith(fitCommand([...modalities(), '--out', out, ...smallFlags], io), 'E_OPTION', `--out ${out}`, `--modality image=${image}`);
    }
    // Through a symlinked input, and an output given relative to the working directory.
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      await rejectsWith(
        fitCommand(['--modality', 'image=image-link.npy', '--modality', `audio=${join(dir, 'audio.npy')}`, '--out', 'image.npy', ...smallFlags], io),
        'E_OPTION',
        '--out image.npy',
        '--modality image=image-link.npy',
      );
    } finally {
      process.chdir(cwd);
    }
    expect((await readFile(image)).equals(before)).toBe(true);
  });

  it('embed refuses an --out-dir whose NAME.npy is an input, before writing anything', async () => {
    const model = join(dir, 'model.safetensors');
    const audio = join(dir, 'audio.npy');
    const before = await readFile(audio);
    await rejectsWith(
      embedCommand(['--model', model, '--modality', `audio=${audio}`, '--out-dir', dir, '--backend', 'js'], capture()),
      'E_OPTION',
      '--out-dir',
      'audio.npy',
      `--modality audio=${audio}`,
    );
    expect((await readFile(audio)).equals(before)).toBe(true);
    expect((await readdir(dir)).filter((f) => f.endsWith('.part') || f.endsWith('.tmp'))).toEqual([]);
  });

  it('raw .f32/.f16 inputs and multi-tensor safetensors work with --input-dim / --input-dtype / --input-tensor', async () => {
    const sub = await mkdtemp(join(dir, 'raw-'));
    const pool = await openPool({ image: join(dir, 'image.npy'), audio: join(dir, 'audio.npy') });
    const image = await pool.source('image').read(0, ROWS);
    const audio = await pool.source('audio').read(0, ROWS);
    await pool.close();
    // image.npy holds fp16 values: the raw .f16 file gets the same bits; audio goes to a raw
    // float32 file whose extension says nothing (so it needs --input-dtype).
    const imageHalf = floatArrayToHalf(image);
    await writeFile(join(sub, 'image.f16'), new Uint8Array(imageHalf.buffer, imageHalf.byteOffset, imageHalf.byteLength));
    await writeFile(join(sub, 'audio.bin'), new Uint8Array(audio.buffer, audio.byteOffset, audio.byteLength));
    const { writeSafetensors } = await import('../src/io/index.js');
    await writeSafetensors(join(sub, 'both.safetensors'), { image: { data: imageHalf, shape: [ROWS, DIMS[0]] }, audio: { data: audio, shape: [ROWS, DIMS[1]] } });

    const io = capture();
    await rejectsWith(
      fitCommand(['--modality', `image=${join(sub, 'image.f16')}`, '--modality', `audio=${join(dir, 'audio.npy')}`, '--out', join(sub, 'm.safetensors'), ...smallFlags], io),
      'E_OPTION',
      'image.f16',
      '--input-dim image=D',
    );
    await rejectsWith(
      fitCommand(['--modality', `image=${join(sub, 'both.safetensors')}`, '--modality', `audio=${join(dir, 'audio.npy')}`, '--out', join(sub, 'm.safetensors'), ...smallFlags], io),
      'E_OPTION',
      '--input-tensor image=TENSOR',
    );
    await rejectsWith(
      fitCommand([...modalities(), '--input-dim', `video=4`, '--out', join(sub, 'm.safetensors'), ...smallFlags], io),
      'E_OPTION',
      '--input-dim video=4: there is no --modality video',
    );
    await rejectsWith(fitCommand([...modalities(), '--input-dim', `image=2x`, '--out', join(sub, 'm.safetensors')], io), 'E_OPTION', '--input-dim image=', '2x');

    // The same rows given as raw files / tensors train the same model as the .npy files.
    const rawInputs = [
      '--modality', `image=${join(sub, 'image.f16')}`, '--input-dim', `image=${DIMS[0]}`,
      '--modality', `audio=${join(sub, 'audio.bin')}`, '--input-dim', `audio=${DIMS[1]}`, '--input-dtype', 'audio=float32',
    ];
    await fitCommand([...rawInputs, '--out', join(sub, 'raw.safetensors'), ...smallFlags], capture());
    const tensors = ['--modality', `image=${join(sub, 'both.safetensors')}`, '--input-tensor', 'image=image', '--modality', `audio=${join(sub, 'both.safetensors')}`, '--input-tensor', 'audio=audio'];
    await fitCommand([...tensors, '--out', join(sub, 'tensors.safetensors'), ...smallFlags], capture());
    await fitCommand([...modalities(), '--out', join(sub, 'npy.safetensors'), ...smallFlags], capture());
    const npyModel = await loadProjection(join(sub, 'npy.safetensors'));
    const tensorModel = await loadProjection(join(sub, 'tensors.safetensors'));
    // The same values in every form: identical inputs, identical training.
    expect(tensorModel.history.map((h) => h.loss)).toEqual(npyModel.history.map((h) => h.loss));
    const rawModel = await loadProjection(join(sub, 'raw.safetensors'));
    expect(rawModel.history.map((h) => h.loss)).toEqual(npyModel.history.map((h) => h.loss));

    // embed takes the same flags.
    const io2 = capture();
    await embedCommand(['--model', join(sub, 'raw.safetensors'), ...rawInputs, '--out-dir', join(sub, 'emb'), '--backend', 'js'], io2);
    expect((await readdir(join(sub, 'emb'))).sort()).toEqual(['audio.npy', 'image.npy']);
  });

  it('Ctrl-C during the second modality of `pairpick embed` leaves the output folder as it was (all or nothing)', async () => {
    // A cheap first modality and an expensive second one, so the interrupt lands inside the second.
    const sub = await mkdtemp(join(dir, 'embed-sigint-'));
    const rows = 16_000;
    const rng = testRng();
    await writeNpy(join(sub, 'a.npy'), randomMatrix(rng, rows, 4), [rows, 4]);
    await writeNpy(join(sub, 'b.npy'), randomMatrix(rng, rows, 128), [rows, 128]);
    const pool = await openPool({ a: join(sub, 'a.npy'), b: join(sub, 'b.npy') });
    const model = await initProjection(pool, { dim: 8, hidden: 128, prototypes: 2, seed: 1 });
    await pool.close();
    await model.save(join(sub, 'model.safetensors'));
    const outDir = join(sub, 'out');
    await mkdir(outDir);
    await writeFile(join(outDir, 'keep.txt'), 'earlier output');

    const args = ['embed', '--model', join(sub, 'model.safetensors'), '--modality', `a=${join(sub, 'a.npy')}`, '--modality', `b=${join(sub, 'b.npy')}`];
    const child = spawn(process.execPath, [cli, ...args, '--out-dir', outDir, '--backend', 'js', '--chunk-rows', '500'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    // Non-TTY progress prints a line when each modality starts: the first is complete by then.
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        if (/pairpick embed: .* b \(2\/2\)/.test(stderr)) resolve();
      });
      child.on('close', () => reject(new Error(`embed ended before it was interrupted: ${stderr}`)));
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/\(E_ABORTED\)/);
    expect(await readdir(outDir)).toEqual(['keep.txt']);
  });
});

