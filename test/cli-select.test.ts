// `pairpick select` end to end on small .npy files in a temp folder: every output format, every
// labelled-file format, flag errors, and cancellation (API signal and a real Ctrl-C on dist/cli.js)
// leaving no output file.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { selectCommand } from '../src/cli/select.js';
import { openPool, readNpy, writeNpy } from '../src/io/index.js';
import { select } from '../src/select/index.js';
import { floatArrayToHalf } from '../src/util/half.js';
import { rejectsWith } from './helpers/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';

const root = join(__dirname, '..');
let dir: string;
const ROWS = 131;
const DIM = 12;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-cli-select-'));
  const rng = testRng();
  // One modality stored as float16, the other as float32.
  await writeNpy(join(dir, 'image.npy'), floatArrayToHalf(randomMatrix(rng, ROWS, DIM)), [ROWS, DIM]);
  await writeNpy(join(dir, 'text.npy'), randomMatrix(rng, ROWS, DIM), [ROWS, DIM]);
  await writeNpy(join(dir, 'odd.npy'), randomMatrix(rng, ROWS, 7), [ROWS, 7]);
  const bad = randomMatrix(rng, ROWS, DIM);
  bad[44 * DIM + 5] = Number.NaN;
  await writeNpy(join(dir, 'text-nan.npy'), bad, [ROWS, DIM]);
  const big = 3000;
  await writeNpy(join(dir, 'big-a.npy'), randomMatrix(rng, big, 64), [big, 64]);
  await writeNpy(join(dir, 'big-b.npy'), randomMatrix(rng, big, 64), [big, 64]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  let out = '';
  let err = '';
  return { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s), text: () => out, errors: () => err, stderrIsTTY: false };
}


const modalities = () => ['--modality', `image=${join(dir, 'image.npy')}`, '--modality', `text=${join(dir, 'text.npy')}`];

async function apiPicks(opts: Parameters<typeof select>[1]): Promise<number[]> {
  const pool = await openPool({ image: join(dir, 'image.npy'), text: join(dir, 'text.npy') });
  try {
    return Array.from((await select(pool, opts)).indices);
  } finally {
    await pool.close();
  }
}

describe('pairpick select', () => {
  it('--out .json holds strategy, budget, backend, seconds, indices and MMCSAL components (= the API picks)', async () => {
    const out = join(dir, 'picks.json');
    const c = capture();
    await selectCommand([...modalities(), '--budget', '9', '--distribution', 'density', '--alignment', 'linear', '--k', '6', '--backend', 'js', '--out', out], c);
    const doc = JSON.parse(await readFile(out, 'utf8'));
    expect(doc).toMatchObject({ strategy: 'mmcsal', budget: 9, backend: 'js' });
    expect(doc.seconds).toBeGreaterThan(0);
    expect(doc.indices).toEqual(await apiPicks({ budget: 9, distribution: 'density', alignment: 'linear', k: 6, backend: 'js' }));
    for (const key of ['density', 'diversity', 'alignment']) {
      expect(doc.components[key], key).toHaveLength(9);
      for (const v of doc.components[key]) expect(v).toBeGreaterThanOrEqual(0);
    }
    // Coverage has no density or diversity terms: null per pick; alignment â in [0, 1].
    const cov = capture();
    await selectCommand([...modalities(), '--budget', '9', '--distribution', 'coverage', '--alignment', 'filter', '--backend', 'js', '--json'], cov);
    const byDefault = JSON.parse(cov.text());
    expect(byDefault.indices).toEqual(await apiPicks({ budget: 9, distribution: 'coverage', alignment: 'filter', backend: 'js' }));
    expect(byDefault.components.density).toEqual(new Array(9).fill(null));
    expect(byDefault.components.diversity).toEqual(new Array(9).fill(null));
    for (const v of byDefault.components.alignment) expect(v >= 0 && v <= 1).toBe(true);
    expect(c.text()).toMatch(/picked 9 of 131 rows with mmcsal on js .* → .*picks\.json/);
    expect(c.errors()).toMatch(/pairpick select: mmcsal, budget 9, 131 rows \(image 12-D, text 12-D\)/);
  });

  it('--out .csv and .npy write the indices; --json prints the result; no --out prints one index per line', async () => {
    const flags = [...modalities(), '--budget', '11', '--strategy', 'kcenter'];
    const want = await apiPicks({ strategy: 'kcenter', budget: 11 });
    await selectCommand([...flags, '--out', join(dir, 'k.csv')], capture());
    expect((await readFile(join(dir, 'k.csv'), 'utf8')).trim().split('\n').map(Number)).toEqual(want);
    await selectCommand([...flags, '--out', join(dir, 'k.npy')], capture());
    const npy = await readNpy(join(dir, 'k.npy'));
    expect(npy.dtype).toBe('int32');
    expect(npy.shape).toEqual([11]);
    expect(Array.from(npy.data)).toEqual(want);
    const j = capture();
    await selectCommand([...flags, '--json'], j);
    expect(JSON.parse(j.text()).indices).toEqual(want);
    const plain = capture();
    await selectCommand(flags, plain);
    expect(plain.text().trim().split('\n').map(Number)).toEqual(want);
  });

  it('--labeled reads .json, .csv, .txt and .npy; labelled rows are excluded', async () => {
    const labeled = [3, 77, 120, 5];
    await writeFile(join(dir, 'l.json'), JSON.stringify(labeled));
    await writeFile(join(dir, 'l.csv'), labeled.join('\n') + '\n');
    await writeFile(join(dir, 'l.txt'), `\n${labeled.join('\r\n')}\n\n`);
    await writeNpy(join(dir, 'l.npy'), Int32Array.from(labeled), [labeled.length]);
    const want = await apiPicks({ strategy: 'facility', budget: 6, labeled, seed: 3 });
    for (const f of ['l.json', 'l.csv', 'l.txt', 'l.npy']) {
      const c = capture();
      await selectCommand([...modalities(), '--budget', '6', '--strategy', 'facility', '--seed', '3', '--labeled', join(dir, f), '--json'], c);
      const got = JSON.parse(c.text()).indices as number[];
      expect(got, f).toEqual(want);
      for (const l of labeled) expect(got).not.toContain(l);
    }
  });

  it('strategy flags reach the strategy (probcover --radius, facility --optimizer, mmcsal --gamma/--lambda-align/--w-*)', async () => {
    const pc = capture();
    await selectCommand([...modalities(), '--budget', '5', '--strategy', 'probcover', '--radius', '0.9', '--json'], pc);
    expect(JSON.parse(pc.text()).params.radius).toBe(0.9);
    expect(JSON.parse(pc.text()).indices).toEqual(await apiPicks({ strategy: 'probcover', budget: 5, radius: 0.9 }));
    const fl = capture();
    await selectCommand([...modalities(), '--budget', '5', '--strategy', 'facility', '--optimizer', 'stochastic', '--seed', '2', '--json'], fl);
    expect(JSON.parse(fl.text()).indices).toEqual(await apiPicks({ strategy: 'facility', budget: 5, optimizer: 'stochastic', seed: 2 }));
    const mm = capture();
    const flags = ['--distribution', 'density', '--alignment', 'linear', '--gamma', '0', '--lambda-align', '2', '--w-density', '0.5', '--w-diversity', '3', '--density-sample', '50', '--seed', '4'];
    await selectCommand([...modalities(), '--budget', '7', ...flags, '--json'], mm);
    const doc = JSON.parse(mm.text());
    expect(doc.params).toMatchObject({ distribution: 'density', alignment: 'linear', gamma: 0, lambdaAlign: 2, wDensity: 0.5, wDiversity: 3, densitySample: 50 });
    const density = { distribution: 'density', alignment: 'linear', gamma: 0, lambdaAlign: 2, wDensity: 0.5, wDiversity: 3, densitySample: 50, seed: 4 } as const;
    expect(doc.indices).toEqual(await apiPicks({ budget: 7, ...density }));
    const cov = capture();
    await selectCommand([...modalities(), '--budget', '7', '--distribution', 'clusters', '--alignment', 'filter', '--align-quantile', '0.3', '--json'], cov);
    expect(JSON.parse(cov.text()).params).toMatchObject({ distribution: 'clusters', space: 'concat', alignment: 'filter', alignQuantile: 0.3 });
    expect(JSON.parse(cov.text()).indices).toEqual(await apiPicks({ budget: 7, distribution: 'clusters', alignment: 'filter', alignQuantile: 0.3 }));
  });

  it('--input NAME=PATH passes the input features to mmcsal (= the API with inputs); refused by other strategies, with mismatched rows, NaN, or as --out', async () => {
    const rng = testRng();
    await writeNpy(join(dir, 'raw-image.npy'), randomMatrix(rng, ROWS, 9, 3), [ROWS, 9]);
    await writeNpy(join(dir, 'raw-text.npy'), randomMatrix(rng, ROWS, 5, 0.5), [ROWS, 5]);
    await writeNpy(join(dir, 'raw-short.npy'), randomMatrix(rng, ROWS - 1, 5), [ROWS - 1, 5]);
    const bad = randomMatrix(rng, ROWS, 5);
    bad[12 * 5 + 3] = Number.NaN;
    await writeNpy(join(dir, 'raw-nan.npy'), bad, [ROWS, 5]);
    const input = (text = 'raw-text.npy') => ['--input', `image=${join(dir, 'raw-image.npy')}`, '--input', `text=${join(dir, text)}`];
    const c = capture();
    await selectCommand([...modalities(), ...input(), '--budget', '9', '--seed', '3', '--json'], c);
    const doc = JSON.parse(c.text());
    expect(doc.params).toMatchObject({ distribution: 'coverage', space: 'embedding+inputs' });
    const inputs = await openPool({ image: join(dir, 'raw-image.npy'), text: join(dir, 'raw-text.npy') });
    try {
      const want = await apiPicks({ budget: 9, seed: 3, inputs });
      expect(doc.indices).toEqual(want);
    } finally {
      await inputs.close();
    }
    await rejectsWith(selectCommand([...modalities(), ...input(), '--budget', '3', '--strategy', 'kcenter'], c), 'E_OPTION', /--input applies only to --strategy mmcsal/);
    await rejectsWith(selectCommand([...modalities(), ...input(), '--budget', '3', '--distribution', 'density'], c), 'E_OPTION', /--input is read by space 'embedding\+inputs'/);
    await rejectsWith(selectCommand([...modalities(), ...input('raw-short.npy'), '--budget', '3'], c), 'E_SHAPE', /--input.*131.*130/);
    await rejectsWith(selectCommand([...modalities(), ...input('raw-nan.npy'), '--budget', '3'], c), 'E_NAN', /--input: modality 'text' .*raw-nan\.npy.*row 12 \(column 3\)/);
    await rejectsWith(selectCommand([...modalities(), '--input', 'image', '--budget', '3'], c), 'E_OPTION', /--input expects NAME=PATH/);
    await rejectsWith(selectCommand([...modalities(), ...input(), '--budget', '3', '--out', join(dir, 'raw-text.npy')], c), 'E_OPTION', /--out .* is the same file as the input --input text=/);
  });

  it('bad flags and files → PairpickError naming the culprit', async () => {
    const c = capture();
    await rejectsWith(selectCommand(['--budget', '3'], c), 'E_OPTION', /--modality/);
    await rejectsWith(selectCommand(modalities(), c), 'E_OPTION', /--budget B is required/);
    await rejectsWith(selectCommand([...modalities(), '--budget', 'ten'], c), 'E_OPTION', /--budget must be an integer/);
    await rejectsWith(selectCommand([...modalities(), '--budget', '0'], c), 'E_BUDGET', /≥ 1/);
    await rejectsWith(selectCommand([...modalities(), '--budget', '132'], c), 'E_BUDGET', /132 exceeds the 131 selectable/);
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--strategy', 'coreset'], c), 'E_OPTION', /--strategy must be one of mmcsal, .*; got 'coreset'/);
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--bogus'], c), 'E_OPTION', /bogus/);
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--strategy', 'kcenter', '--radius', '0.3'], c), 'E_OPTION', /--radius does not apply to strategy 'kcenter'/);
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--w-diversity', '2', '--strategy', 'random'], c), 'E_OPTION', /--w-diversity does not apply/);
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--out', join(dir, 'x.parquet')], c), 'E_OPTION', /unknown extension '.parquet'/);
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--out', join(dir, 'nowhere', 'x.json')], c), 'E_IO', /does not exist/);
    await rejectsWith(
      selectCommand(['--modality', `image=${join(dir, 'image.npy')}`, '--modality', `odd=${join(dir, 'odd.npy')}`, '--budget', '3', '--gamma', '1'], c),
      'E_SHAPE',
      /--gamma 1 needs every modality in one dimension/,
    );
    await rejectsWith(
      selectCommand(['--modality', `image=${join(dir, 'image.npy')}`, '--modality', `text=${join(dir, 'text-nan.npy')}`, '--budget', '3'], c),
      'E_NAN',
      /modality 'text'.*text-nan\.npy.*row 44/,
    );
    await writeFile(join(dir, 'bad.csv'), '1\n2\nthree\n');
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--labeled', join(dir, 'bad.csv')], c), 'E_FORMAT', /bad\.csv:3: 'three' is not an integer/);
    await writeFile(join(dir, 'bad.json'), '{"a": 1}');
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--labeled', join(dir, 'bad.json')], c), 'E_FORMAT', /JSON array/);
    await writeFile(join(dir, 'dup.json'), '[4, 9, 4]');
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--labeled', join(dir, 'dup.json')], c), 'E_OPTION', /labeled index 4 appears twice/);
    await writeFile(join(dir, 'neg.txt'), '-2\n');
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--labeled', join(dir, 'neg.txt')], c), 'E_OPTION', /--labeled entry 0 = -2 is negative/);
    await writeNpy(join(dir, 'lf.npy'), Float32Array.of(1, 2), [2]);
    await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--labeled', join(dir, 'lf.npy')], c), 'E_FORMAT', /must be integers/);
  });

  it('a cancelled selection rejects with E_ABORTED and writes no output file', async () => {
    const sub = join(dir, 'cancel');
    await mkdir(sub);
    const ac = new AbortController();
    const c = capture();
    const p = selectCommand(
      ['--modality', `a=${join(dir, 'big-a.npy')}`, '--modality', `b=${join(dir, 'big-b.npy')}`, '--budget', '500', '--backend', 'js', '--distribution', 'density', '--out', join(sub, 'p.json')],
      { ...c, signal: ac.signal },
    );
    // The density greedy on js takes seconds here, so the abort lands mid-selection.
    setTimeout(() => ac.abort(), 300);
    await rejectsWith(p, 'E_ABORTED');
    expect(await readdir(sub)).toEqual([]);
  });

  it.skipIf(!existsSync(join(root, 'dist', 'cli.js')))('Ctrl-C (SIGINT) stops dist/cli.js select with exit code 130 and no output file', async () => {
    const sub = join(dir, 'sigint');
    await mkdir(sub);
    const out = join(sub, 'picks.npy');
    const cli = join(root, 'dist', 'cli.js');
    const args = ['select', '--modality', `a=${join(dir, 'big-a.npy')}`, '--modality', `b=${join(dir, 'big-b.npy')}`, '--budget', '800', '--backend', 'js', '--distribution', 'density', '--out', out];
    const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    // Ctrl-C once the selection runs: after its header line on stderr.
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        if (/pairpick select: mmcsal/.test(stderr)) resolve();
      });
      child.on('close', () => reject(new Error(`select ended before it was interrupted: ${stderr}`)));
    });
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/E_ABORTED/);
    expect(await readdir(sub)).toEqual([]);
  });

  it('--out naming an input — a modality file, a shard of a folder, the --labeled file; by path, relative path or symlink — is refused naming both', async () => {
    const image = join(dir, 'image.npy');
    const before = await readFile(image);
    await symlink(image, join(dir, 'image-alias.npy'));
    const c = capture();
    for (const out of [image, join(dir, 'sub', '..', 'image.npy'), join(dir, 'image-alias.npy')]) {
      await rejectsWith(selectCommand([...modalities(), '--budget', '3', '--out', out], c), 'E_OPTION', `--out ${out} is the same file as the input --modality image=${image}`);
    }
    // A symlinked input and a relative --out.
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      await rejectsWith(
        selectCommand(['--modality', 'image=image-alias.npy', '--budget', '3', '--out', 'image.npy'], c),
        'E_OPTION',
        '--out image.npy is the same file as the input --modality image=image-alias.npy',
      );
    } finally {
      process.chdir(cwd);
    }
    expect((await readFile(image)).equals(before)).toBe(true);

    // A shard inside a folder given as the modality.
    const shards = join(dir, 'shards');
    await mkdir(shards);
    const rng = testRng();
    await writeNpy(join(shards, 'part-0.npy'), randomMatrix(rng, 60, DIM), [60, DIM]);
    await writeNpy(join(shards, 'part-1.npy'), randomMatrix(rng, 71, DIM), [71, DIM]);
    await rejectsWith(
      selectCommand(['--modality', `s=${shards}`, '--modality', `text=${join(dir, 'text.npy')}`, '--budget', '3', '--out', join(shards, 'part-1.npy')], c),
      'E_OPTION',
      `--modality s=${shards} (its file ${join(shards, 'part-1.npy')})`,
    );
    // Overwriting the labelled list with the new picks would lose it.
    await writeFile(join(dir, 'done.json'), '[1, 2, 3]');
    await rejectsWith(
      selectCommand([...modalities(), '--budget', '3', '--labeled', join(dir, 'done.json'), '--out', join(dir, 'done.json')], c),
      'E_OPTION',
      `--labeled ${join(dir, 'done.json')}`,
    );
    expect(await readFile(join(dir, 'done.json'), 'utf8')).toBe('[1, 2, 3]');
  });

  it('raw .f32/.f16 files and multi-tensor safetensors select like the API with { dim, dtype, tensor }', async () => {
    const sub = await mkdtemp(join(dir, 'raw-'));
    const rng = testRng();
    const x = randomMatrix(rng, ROWS, DIM);
    const y = floatArrayToHalf(randomMatrix(rng, ROWS, DIM));
    await writeFile(join(sub, 'x.f32'), new Uint8Array(x.buffer));
    await writeFile(join(sub, 'y.f16'), new Uint8Array(y.buffer));
    const { writeSafetensors } = await import('../src/io/index.js');
    await writeSafetensors(join(sub, 'xy.safetensors'), { x: { data: x, shape: [ROWS, DIM] }, y: { data: y, shape: [ROWS, DIM] } });

    const pool = await openPool({ x: { path: join(sub, 'x.f32'), dim: DIM }, y: { path: join(sub, 'xy.safetensors'), tensor: 'y' } });
    const want = Array.from((await select(pool, { budget: 8, backend: 'js' })).indices);
    await pool.close();
    const c = capture();
    await selectCommand(
      ['--modality', `x=${join(sub, 'x.f32')}`, '--input-dim', `x=${DIM}`, '--modality', `y=${join(sub, 'xy.safetensors')}`, '--input-tensor', 'y=y', '--budget', '8', '--backend', 'js', '--json'],
      c,
    );
    expect(JSON.parse(c.text()).indices).toEqual(want);
    const c2 = capture();
    await selectCommand(['--modality', `x=${join(sub, 'x.f32')}`, '--input-dim', `x=${DIM}`, '--modality', `y=${join(sub, 'y.f16')}`, '--input-dim', `y=${DIM}`, '--budget', '8', '--backend', 'js', '--json'], c2);
    expect(JSON.parse(c2.text()).indices).toEqual(want);

    await rejectsWith(selectCommand(['--modality', `x=${join(sub, 'x.f32')}`, '--budget', '3'], c), 'E_OPTION', /x\.f32.*--input-dim x=D/);
    await rejectsWith(selectCommand(['--modality', `x=${join(sub, 'xy.safetensors')}`, '--budget', '3'], c), 'E_OPTION', /xy\.safetensors.*--input-tensor x=TENSOR/);
    await rejectsWith(selectCommand(['--modality', `x=${join(sub, 'x.f32')}`, '--input-dim', 'x=5', '--budget', '3'], c), 'E_FORMAT', /x\.f32/);
    await rejectsWith(selectCommand([...modalities(), '--input-dim', `image=${DIM + 1}`, '--budget', '3'], c), 'E_SHAPE', /--input-dim image=/);
    await rejectsWith(selectCommand([...modalities(), '--input-dtype', 'image=int8', '--budget', '3'], c), 'E_OPTION', /--input-dtype image= must be float32 or float16/);
    await rejectsWith(selectCommand([...modalities(), '--input-tensor', 'image', '--budget', '3'], c), 'E_OPTION', /--input-tensor expects NAME=TENSOR/);
  });
});

