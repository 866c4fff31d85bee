// Item ids and metadata: manifests in every format (the Parquet ones written by an independent
// writer, see test/fixtures/manifest/PROVENANCE.md), `pairpick select --ids/--meta/--dataset-dir`
// in every output format, --labeled by id, and the refusals (row counts, columns, malformed files).
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { selectCommand } from '../src/cli/select.js';
import { openPool, readIds, readItems, readTable, writeNpy } from '../src/io/index.js';
import { select } from '../src/select/index.js';
import { rejectsWith } from './helpers/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';

const FIXTURES = join(__dirname, 'fixtures', 'manifest');
const ROWS = 120; // the fixtures' row count

// The fixtures' rows, as make-parquet.cjs defines them.
const keyOf = (i: number) => `k${i}-${((i * 2654435761) >>> 0).toString(36)}`;
const captionOf = (i: number) => `item ${i}, "quoted", café ${'ü'.repeat(i % 4)}`;
const urlOf = (i: number) => `https://example.org/img/${i}.jpg`;
const sizeOf = (i: number) => 1_000_000_000_000 + i * 7;

let dir: string;
const file = (name: string) => join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-items-'));
  const rng = testRng();
  await writeNpy(file('image.npy'), randomMatrix(rng, ROWS, 9), [ROWS, 9]);
  await writeNpy(file('text.npy'), randomMatrix(rng, ROWS, 6), [ROWS, 6]);
  const rows = Array.from({ length: ROWS }, (_, i) => i);
  await writeFile(file('ids.txt'), rows.map((i) => `${keyOf(i)}\n`).join(''));
  const csvField = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  await writeFile(file('items.csv'), `url,key,caption\r\n${rows.map((i) => [urlOf(i), keyOf(i), captionOf(i)].map(csvField).join(',')).join('\r\n')}\r\n`);
  await writeFile(file('items.jsonl'), rows.map((i) => `${JSON.stringify({ key: keyOf(i), caption: captionOf(i), size: sizeOf(i) })}\n`).join(''));
  await writeFile(file('short.txt'), rows.slice(1).map((i) => `${keyOf(i)}\n`).join(''));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  let out = '';
  let err = '';
  return { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s), text: () => out, errors: () => err, stderrIsTTY: false };
}

const modalities = () => ['--modality', `image=${file('image.npy')}`, '--modality', `text=${file('text.npy')}`];

async function apiPicks(labeled?: number[]): Promise<number[]> {
  const pool = await openPool({ image: file('image.npy'), text: file('text.npy') });
  try {
    return Array.from((await select(pool, { budget: 9, backend: 'js', labeled })).indices);
  } finally {
    await pool.close();
  }
}

async function selectJson(...flags: string[]) {
  const io = capture();
  await selectCommand([...modalities(), '--budget', '9', '--backend', 'js', '--json', '-q', ...flags], io);
  return JSON.parse(io.text());
}

describe('manifests', () => {
  it('every format reads the same ids; Parquet with row groups and GZIP/SNAPPY/BROTLI columns; shards in natural order', async () => {
    const expected = Array.from({ length: ROWS }, (_, i) => keyOf(i));
    for (const [path, column] of [
      [file('ids.txt'), undefined],
      [file('items.csv'), undefined], // 'key' found among the id columns
      [file('items.jsonl'), 'key'],
      [join(FIXTURES, 'items.parquet'), 'key'],
      [join(FIXTURES, 'shards'), undefined],
    ] as const) {
      const r = await readIds(path, { column });
      expect(r.ids, path).toEqual(expected);
    }
    const t = await readTable(join(FIXTURES, 'shards'), { columns: ['caption', 'size', 'url'] });
    expect(t.files.map((f) => f.split('/').pop())).toEqual(['part_1.parquet', 'part_2.parquet', 'part_10.parquet']);
    expect(t.columns.caption).toEqual(Array.from({ length: ROWS }, (_, i) => captionOf(i)));
    expect(t.columns.size).toEqual(Array.from({ length: ROWS }, (_, i) => sizeOf(i)));
    expect(t.columns.url[77]).toBe(urlOf(77));
    const csv = await readTable(file('items.csv'));
    expect(csv.columnNames).toEqual(['url', 'key', 'caption']);
    expect(csv.columns.caption).toEqual(t.columns.caption);
  });

  it('CSV: a BOM, CRLF lines, quoted fields holding commas, quotes and line breaks, empty fields', async () => {
    await writeFile(file('edge.csv'), '\uFEFFid,note\r\n"a,1","say ""hi""\r\nthere"\r\nb,\r\n"",x\r\n');
    const t = await readTable(file('edge.csv'));
    expect(t.columnNames).toEqual(['id', 'note']);
    expect(t.columns.id).toEqual(['a,1', 'b', '']);
    expect(t.columns.note).toEqual(['say "hi"\r\nthere', '', 'x']);
    await rejectsWith(readIds(file('edge.csv')), 'E_FORMAT', /row 2 has no id/);
  });

  it('malformed manifests are E_FORMAT naming the file and line; a missing column is E_OPTION listing the columns', async () => {
    await writeFile(file('ragged.csv'), 'a,b\n1,2\n3\n');
    await rejectsWith(readTable(file('ragged.csv')), 'E_FORMAT', /ragged\.csv:3: 1 fields, the header has 2/);
    await writeFile(file('open.csv'), 'a,b\n1,"two\n3,4\n');
    await rejectsWith(readTable(file('open.csv')), 'E_FORMAT', /open\.csv:2: a quoted field is never closed/);
    await writeFile(file('bad.jsonl'), '{"a":1}\n[1]\n');
    await rejectsWith(readTable(file('bad.jsonl')), 'E_FORMAT', /bad\.jsonl:2: expected a JSON object/);
    await writeFile(file('gap.txt'), 'a\n\nb\n');
    await rejectsWith(readTable(file('gap.txt')), 'E_FORMAT', /gap\.txt:2: empty line/);
    await writeFile(file('not.parquet'), 'PAR1 this is not parquet');
    await rejectsWith(readTable(file('not.parquet')), 'E_FORMAT', /not\.parquet: not a readable Parquet file/);
    await rejectsWith(readIds(join(FIXTURES, 'items.parquet'), { column: 'id' }), 'E_OPTION', /no column 'id' \(its columns: key, caption, url, size\)/);
    await writeFile(file('two.jsonl'), '{"a":1,"b":"x"}\n');
    await rejectsWith(readIds(file('two.jsonl')), 'E_OPTION', /which column holds the ids\? It has a, b; name one as two\.jsonl:COLUMN/);
    execFileSync('mkfifo', [file('pipe.csv')]);
    await rejectsWith(readTable(file('pipe.csv')), 'E_IO', /pipe\.csv: is a named pipe, not a regular file/);
    await mkdir(file('mixed'));
    await writeFile(file('mixed/a.csv'), 'id\n1\n');
    await writeFile(file('mixed/b.txt'), '2\n');
    await rejectsWith(readTable(file('mixed')), 'E_FORMAT', /mixes manifest kinds/);
  });

  it('readItems: a row-count mismatch is E_SHAPE naming the manifest and the pool; ids are looked up by value', async () => {
    await rejectsWith(readItems({ ids: { path: file('short.txt') } }, ROWS, 'the pool (image=x.npy)'), 'E_SHAPE', /short\.txt has 119 rows, but the pool \(image=x\.npy\) has 120/);
    const items = await readItems({ ids: { path: file('ids.txt') }, meta: { path: file('items.jsonl'), columns: ['size'] } }, ROWS, 'pool');
    expect(Array.from(items.rowsOf([keyOf(17), keyOf(3)], 'labeled'))).toEqual([17, 3]);
    expect(() => items.rowsOf(['nope'], 'labeled')).toThrow(/id 'nope' \(entry 0\) is not one of the items' ids/);
    expect(items.describe([5, 2])).toEqual({ ids: [keyOf(5), keyOf(2)], columns: { size: [sizeOf(5), sizeOf(2)] } });
  });
});

describe('pairpick select with ids and metadata', () => {
  it('--ids in each format gives the ids of the picks (the picks themselves unchanged)', async () => {
    const picks = await apiPicks();
    for (const spec of [file('ids.txt'), `${file('items.csv')}:key`, `${file('items.jsonl')}:key`, `${join(FIXTURES, 'items.parquet')}:key`, join(FIXTURES, 'shards')]) {
      const doc = await selectJson('--ids', spec);
      expect(doc.indices, spec).toEqual(picks);
      expect(doc.ids, spec).toEqual(picks.map(keyOf));
    }
  });

  it('--meta with --meta-columns reports those columns in JSON, CSV, record .npy and stdout lines', async () => {
    const picks = await apiPicks();
    const flags = ['--ids', join(FIXTURES, 'items.parquet'), '--meta', join(FIXTURES, 'shards'), '--meta-columns', 'caption,size'];
    const doc = await selectJson(...flags);
    expect(doc.meta).toEqual({ caption: picks.map(captionOf), size: picks.map(sizeOf) });

    const run = async (...more: string[]) => {
      const io = capture();
      await selectCommand([...modalities(), '--budget', '9', '--backend', 'js', '-q', ...flags, ...more], io);
      return io.text();
    };
    await run('--out', file('picks.csv'));
    const csv = await readTable(file('picks.csv'));
    expect(csv.columnNames).toEqual(['index', 'id', 'caption', 'size']);
    expect(csv.columns.index).toEqual(picks.map(String));
    expect(csv.columns.id).toEqual(picks.map(keyOf));
    expect(csv.columns.caption).toEqual(picks.map(captionOf));
    expect((await readFile(file('picks.csv'), 'utf8')).split('\n')[1]).toBe(`${picks[0]},${keyOf(picks[0])},"${captionOf(picks[0]).replace(/"/g, '""')}",${sizeOf(picks[0])}`);

    const lines = (await run()).trimEnd().split('\n');
    expect(lines).toEqual(picks.map((i) => [i, keyOf(i), captionOf(i), sizeOf(i)].join('\t')));

    await run('--out', file('picks.npy'));
    let python = true;
    try {
      execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    } catch {
      python = false;
    }
    if (python) {
      const script = `import json, numpy as np\na = np.load(${JSON.stringify(file('picks.npy'))})\nprint(json.dumps({"names": list(a.dtype.names), "index": a["index"].tolist(), "id": a["id"].tolist(), "caption": a["caption"].tolist(), "size": a["size"].tolist()}))`;
      const got = JSON.parse(execFileSync('python3', ['-c', script], { encoding: 'utf8' }));
      expect(got).toEqual({ names: ['index', 'id', 'caption', 'size'], index: picks, id: picks.map(keyOf), caption: picks.map(captionOf), size: picks.map(sizeOf) });
    } else {
      const bytes = await readFile(file('picks.npy'));
      expect(bytes.subarray(0, 128).toString('latin1')).toMatch(/'descr': \[\('index', '<i4'\), \('id', '<U\d+'\), \('caption', '<U\d+'\), \('size', '<f8'\)\]/);
    }
  });

  it('--labeled lists ids when --ids is given (.json and .txt), and the picks equal the API with those rows labelled', async () => {
    const labeledRows = [4, 61, 100];
    const expected = await apiPicks(labeledRows);
    await writeFile(file('labeled.json'), JSON.stringify(labeledRows.map(keyOf)));
    await writeFile(file('labeled.txt'), labeledRows.map((i) => `${keyOf(i)}\n`).join(''));
    for (const labeled of ['labeled.json', 'labeled.txt']) {
      const doc = await selectJson('--ids', `${file('items.csv')}:key`, '--labeled', file(labeled));
      expect(doc.indices, labeled).toEqual(expected);
      for (const i of labeledRows) expect(doc.indices).not.toContain(i);
    }
    await writeFile(file('unknown.json'), JSON.stringify([keyOf(1), 'k999-zz']));
    await rejectsWith(selectJson('--ids', file('ids.txt'), '--labeled', file('unknown.json')), 'E_OPTION', /--labeled .*unknown\.json: id 'k999-zz' \(entry 1\) is not one of the items' ids/);
  });

  it('refuses mismatched row counts naming both files, unknown columns, and --meta-columns without --meta', async () => {
    await rejectsWith(selectJson('--ids', file('short.txt')), 'E_SHAPE', /--ids .*short\.txt has 119 rows, but the pool \(image=.*image\.npy, text=.*text\.npy\) has 120/);
    await rejectsWith(selectJson('--meta', join(FIXTURES, 'shards', 'part_2.parquet')), 'E_SHAPE', /--meta .*part_2\.parquet has 40 rows, but the pool/);
    await rejectsWith(selectJson('--ids', `${file('items.csv')}:nope`), 'E_OPTION', /no column 'nope' \(its columns: url, key, caption\)/);
    await rejectsWith(selectJson('--meta-columns', 'caption'), 'E_OPTION', /--meta-columns needs --meta/);
  });

  it('--dataset-dir reads the LAION layout: img_emb/ and text_emb/ shards, ids from metadata/ key, its caption and url', async () => {
    const ds = file('laion');
    for (const sub of ['img_emb', 'text_emb', 'metadata']) await mkdir(join(ds, sub), { recursive: true });
    const rng = testRng();
    const image = randomMatrix(rng, ROWS, 5);
    const text = randomMatrix(rng, ROWS, 4);
    // Shards named as LAION names them; 2 before 10 only in natural order.
    const cuts = [0, 50, 90, ROWS];
    for (const [k, n] of [1, 2, 10].entries()) {
      await writeNpy(join(ds, 'img_emb', `img_emb_${n}.npy`), image.subarray(cuts[k] * 5, cuts[k + 1] * 5), [cuts[k + 1] - cuts[k], 5]);
      await writeNpy(join(ds, 'text_emb', `text_emb_${n}.npy`), text.subarray(cuts[k] * 4, cuts[k + 1] * 4), [cuts[k + 1] - cuts[k], 4]);
      await copyFile(join(FIXTURES, 'shards', `part_${n}.parquet`), join(ds, 'metadata', `metadata_${n}.parquet`));
    }
    const io = capture();
    await selectCommand(['--dataset-dir', ds, '--budget', '7', '--backend', 'js', '--json', '-q'], io);
    const doc = JSON.parse(io.text());
    const api = await select({ image: { data: image, dim: 5 }, text: { data: text, dim: 4 } }, { budget: 7, backend: 'js' });
    expect(doc.indices).toEqual(Array.from(api.indices));
    expect(doc.ids).toEqual(doc.indices.map(keyOf));
    expect(doc.meta).toEqual({ caption: doc.indices.map(captionOf), url: doc.indices.map(urlOf) });
    await rejectsWith(selectCommand(['--dataset-dir', ds, '--modality', `a=${file('image.npy')}`, '--budget', '2'], capture()), 'E_OPTION', /--dataset-dir and --modality/);
  });
});
