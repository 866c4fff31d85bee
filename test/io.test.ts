// Embedding sources: .npy (v1–v3, f32/f16), .safetensors, raw, shards, pools, writeNpy, and every
// malformed input → PairpickError with a code and the file name. Each file-reading test runs on
// both access paths: the native mapping (when the addon is built) and positional file reads.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { PairpickError } from '../src/errors.js';
import {
  checkFinite,
  memorySource,
  naturalCompare,
  openNpyWriter,
  openPool,
  openSource,
  readNpy,
  writeNpy,
  writeSafetensors,
  type EmbeddingSource,
} from '../src/io/index.js';
import { nativeMmap } from '../src/io/mmap.js';
import { floatToHalf, halfToFloat } from '../src/util/half.js';
import { packageRoot } from '../src/util/root.js';
import { randomMatrix, testRng, TEST_SEED } from './helpers/random.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures', 'npy');
const EXPECTED = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'expected.json'), 'utf8')).files as Record<
  string,
  { shape: number[]; dtype: string; values: number[] }
>;
const fx = (name: string) => join(FIXTURES, name);

const tmp = mkdtempSync(join(tmpdir(), 'pairpick-io-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileCounter = 0;
const tmpFile = (name: string) => join(tmp, `${++fileCounter}-${name}`);

const hasMmap = nativeMmap() !== undefined;
const MODES = [
  { mode: 'mmap' as const, mmap: true, skip: !hasMmap },
  { mode: 'file' as const, mmap: false, skip: false },
];

/** Fails at the first differing value (exact comparison), naming its index. */
function expectValues(actual: ArrayLike<number>, expected: ArrayLike<number>, what = 'values'): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) expect(actual[i], `${what}[${i}]`).toBe(expected[i]);
  }
}

/** Asserts that `p` rejects with a PairpickError of `code` whose message contains every fragment. */
async function expectError(p: Promise<unknown> | (() => unknown), code: string, ...fragments: string[]): Promise<PairpickError> {
  let error: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error, `expected a PairpickError ${code}`).toBeInstanceOf(PairpickError);
  const err = error as PairpickError;
  expect(err.code, err.message).toBe(code);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

/** fp32 values rounded through fp16, as a reader of fp16 data returns them. */
function viaHalf(values: Float32Array): { bits: Uint16Array; values: Float32Array } {
  const bits = new Uint16Array(values.length);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    bits[i] = floatToHalf(values[i]);
    out[i] = halfToFloat(bits[i]);
  }
  return { bits, values: out };
}

/** Reference gather: rows of a row-major matrix. */
function gatherRef(values: ArrayLike<number>, dim: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) for (let j = 0; j < dim; j++) out[i * dim + j] = values[rows[i] * dim + j];
  return out;
}

describe('naturalCompare', () => {
  it('orders digit runs by value, then falls back to plain order', () => {
    const names = ['emb_10.npy', 'emb_2.npy', 'emb_1.npy', 'emb_02.npy', 'a.npy', 'emb_100.npy', 'emb_9.npy'];
    expect([...names].sort(naturalCompare)).toEqual(['a.npy', 'emb_1.npy', 'emb_02.npy', 'emb_2.npy', 'emb_9.npy', 'emb_10.npy', 'emb_100.npy']);
    expect(naturalCompare('x', 'x')).toBe(0);
    expect(naturalCompare('img_emb_12345678901234567890.npy', 'img_emb_9.npy')).toBeGreaterThan(0);
  });
});

describe.each(MODES)('sources over files ($mode)', ({ mode, mmap, skip }) => {
  const open = (p: string | string[], o: Record<string, unknown> = {}) => openSource(p, { mmap, ...o });

  it.skipIf(skip)('reads numpy-written .npy files (f32/f16, header v1/v2/v3) back exactly', async () => {
    for (const name of ['f32_v1.npy', 'f16_v1.npy', 'f32_v2.npy', 'f16_v3.npy']) {
      const e = EXPECTED[name];
      const s = await open(fx(name));
      try {
        expect(s.access).toBe(mode);
        expect([s.rows, s.dim]).toEqual(e.shape);
        expect(s.dtype).toBe(e.dtype === 'float16' ? 'float16' : 'float32');
        expect(s.name).toBe(fx(name));
        expectValues(await s.read(0, s.rows), e.values, name);
        // Partial ranges, row gathers with repeats and reversed order.
        const rng = testRng();
        const start = rng.int(s.rows);
        const count = rng.int(s.rows - start) + 1;
        expectValues(await s.read(start, count), e.values.slice(start * s.dim, (start + count) * s.dim), `${name} rows ${start}+${count}`);
        const idx = Array.from({ length: 2 * s.rows + 3 }, () => rng.int(s.rows));
        expectValues(await s.readRows(idx), gatherRef(e.values, s.dim, idx), `${name} readRows`);
        const v = s.view?.(start, count);
        if (mode === 'mmap') {
          expect(v).toBeDefined();
          const asF32 = v instanceof Uint16Array ? Float32Array.from(v, halfToFloat) : v!;
          expectValues(asF32, e.values.slice(start * s.dim, (start + count) * s.dim), `${name} view`);
        } else {
          expect(v).toBeUndefined();
        }
      } finally {
        await s.close();
      }
    }
  });

  it.skipIf(skip)('reads an empty (0, dim) array', async () => {
    const s = await open(fx('f32_empty.npy'));
    expect([s.rows, s.dim]).toEqual([0, 5]);
    expect((await s.read(0, 0)).length).toBe(0);
    expect((await s.readRows([])).length).toBe(0);
    const seen = [];
    for await (const c of s.chunks(4)) seen.push(c);
    expect(seen).toEqual([]);
    await s.close();
  });

  it.skipIf(skip)('concatenates a shard folder in natural order, skipping other files', async () => {
    const s = await open(fx('shards'));
    try {
      expect(s.files.map((f) => f.split('/').pop())).toEqual(['emb_1.npy', 'emb_2.npy', 'emb_10.npy']);
      const all = ['emb_1.npy', 'emb_2.npy', 'emb_10.npy'].flatMap((n) => EXPECTED[`shards/${n}`].values);
      expect([s.rows, s.dim]).toEqual([9, 6]);
      expectValues(await s.read(0, 9), all, 'whole folder');
      // Every range, including those straddling shard boundaries.
      for (let start = 0; start < 9; start++) {
        for (let count = 0; start + count <= 9; count++) expectValues(await s.read(start, count), all.slice(start * 6, (start + count) * 6), `rows ${start}+${count}`);
      }
      const rng = testRng();
      const idx = Array.from({ length: 40 }, () => rng.int(9));
      expectValues(await s.readRows(idx), gatherRef(all, 6, idx), 'readRows across shards');
      expect(s.view?.(2, 3)).toBeUndefined(); // rows 2..4 span two shards
      if (mode === 'mmap') expectValues(s.view!(3, 4)!, all.slice(18, 42), 'view inside one shard');
    } finally {
      await s.close();
    }
  });

  it.skipIf(skip)('keeps the order of an explicit list of shards', async () => {
    const s = await open([fx('shards/emb_10.npy'), fx('shards/emb_1.npy')]);
    const all = [...EXPECTED['shards/emb_10.npy'].values, ...EXPECTED['shards/emb_1.npy'].values];
    expectValues(await s.read(0, s.rows), all, 'list order');
    expect(s.name).toContain('2 files');
    await s.close();
  });

  it.skipIf(skip)('chunks() visits every row once, in order, with awkward chunk sizes', async () => {
    const s = await open(fx('shards'));
    const all = await s.read(0, s.rows);
    for (const size of [1, 2, 4, 5, 9, 100]) {
      const parts: number[] = [];
      let next = 0;
      for await (const c of s.chunks(size)) {
        expect(c.start).toBe(next);
        expect(c.count).toBe(Math.min(size, 9 - next));
        next += c.count;
        parts.push(...c.data);
      }
      expectValues(parts, all, `chunks of ${size}`);
    }
    const part: number[] = [];
    for await (const c of s.chunks(2, { start: 3, end: 8 })) part.push(...c.data);
    expectValues(part, all.slice(18, 48), 'chunks 3..8');
    await expectError(async () => {
      for await (const _ of s.chunks(0)) void _;
    }, 'E_OPTION', 'rowsPerChunk');
    const ac = new AbortController();
    await expectError(async () => {
      for await (const c of s.chunks(2, { signal: ac.signal })) if (c.start >= 2) ac.abort();
    }, 'E_ABORTED');
    await s.close();
  });

  it.skipIf(skip)('reads safetensors tensors by name, including unaligned F16 data', async () => {
    for (const t of ['a', 'b']) {
      const e = EXPECTED[`two.safetensors:${t}`];
      const s = await open(fx('two.safetensors'), { tensor: t });
      expect([s.rows, s.dim]).toEqual(e.shape);
      expectValues(await s.read(0, s.rows), e.values, `tensor ${t}`);
      expectValues(await s.readRows([s.rows - 1, 0, 1]), gatherRef(e.values, s.dim, [s.rows - 1, 0, 1]), `tensor ${t} rows`);
      await s.close();
    }
    // The fixture's data start is odd: no typed-array view is possible, copies still work.
    const unaligned = await open(fx('two.safetensors'), { tensor: 'a' });
    expect(unaligned.view?.(0, 1)).toBeUndefined();
    await unaligned.close();
    await expectError(open(fx('two.safetensors')), 'E_OPTION', 'two.safetensors', "'a'", "'b'", 'tensor');
    await expectError(open(fx('two.safetensors'), { tensor: 'nope' }), 'E_OPTION', "no tensor named 'nope'", "'a'");
    await expectError(open(fx('two.safetensors'), { tensor: 'v' }), 'E_FORMAT', "'v'", '2-D');
  });

  it.skipIf(skip)('round-trips safetensors written by writeSafetensors (fresh random data)', async () => {
    const rng = testRng();
    const rows = 3 + rng.int(40);
    const dim = 1 + rng.int(37);
    const m = randomMatrix(rng, rows, dim);
    const h = viaHalf(randomMatrix(rng, rows + 1, dim));
    const path = tmpFile('w.safetensors');
    await writeSafetensors(path, { emb: { data: m, shape: [rows, dim] }, bias: { data: m.subarray(0, dim), shape: [dim] } }, { note: 'x' });
    const s = await open(path); // the only 2-D tensor is chosen
    expectValues(await s.read(0, rows), m, 'F32 tensor');
    await s.close();
    const path16 = tmpFile('h.safetensors');
    await writeSafetensors(path16, { h: { data: h.bits, shape: [rows + 1, dim] } });
    const s16 = await open(path16);
    expect(s16.dtype).toBe('float16');
    expectValues(await s16.read(0, rows + 1), h.values, 'F16 tensor');
    await s16.close();
  });

  it.skipIf(skip)('reads raw .f32/.f16 files given dim, and refuses them without', async () => {
    for (const name of ['raw/emb.f32', 'raw/emb.f16']) {
      const e = EXPECTED[name];
      const s = await open(fx(name), { dim: e.shape[1] });
      expect([s.rows, s.dim]).toEqual(e.shape);
      expectValues(await s.read(0, s.rows), e.values, name);
      await s.close();
      await expectError(open(fx(name)), 'E_OPTION', name, 'dim');
      const bytes = e.values.length * (e.dtype === 'float16' ? 2 : 4);
      let wrongDim = e.shape[1] + 1;
      while (bytes % (wrongDim * (e.dtype === 'float16' ? 2 : 4)) === 0) wrongDim++;
      await expectError(open(fx(name), { dim: wrongDim }), 'E_FORMAT', name, 'whole number');
    }
    await expectError(open(fx('raw/emb.f32'), { dim: 6, dtype: 'float16' }), 'E_OPTION', 'emb.f32', 'float16');
    // Another extension works when both dtype and dim are given.
    const rng = testRng();
    const m = randomMatrix(rng, 11, 3);
    const path = tmpFile('emb.bin');
    writeFileSync(path, new Uint8Array(m.buffer));
    const s = await open(path, { dim: 3, dtype: 'float32' });
    expectValues(await s.read(0, 11), m, '.bin');
    await s.close();
    await expectError(open(path, { dim: 3 }), 'E_FORMAT', 'emb.bin', 'unknown file type');
  });

  it.skipIf(skip)('checks the dim and dtype options against the file', async () => {
    await expectError(open(fx('f32_v1.npy'), { dim: 4 }), 'E_SHAPE', 'f32_v1.npy', 'dim 5');
    await expectError(open(fx('f32_v1.npy'), { dtype: 'float16' }), 'E_SHAPE', 'f32_v1.npy', 'float32');
    await expectError(open(fx('f32_v1.npy'), { dim: 0 }), 'E_OPTION', 'dim');
    await expectError(open(fx('f32_v1.npy'), { bogus: 1 }), 'E_OPTION', "unknown option 'bogus'");
  });

  it.skipIf(skip)('refuses out-of-range reads and use after close with typed errors', async () => {
    const s = await open(fx('f32_v1.npy'));
    await expectError(s.read(5, 3), 'E_SHAPE', 'f32_v1.npy', 'out of range');
    await expectError(s.read(-1, 1), 'E_SHAPE');
    await expectError(s.read(0.5, 1), 'E_SHAPE');
    await expectError(s.readRows([0, 7]), 'E_SHAPE', 'row index 7', 'position 1');
    await expectError(s.readRows([NaN]), 'E_SHAPE');
    await s.close();
    await s.close(); // idempotent
    await expectError(s.read(0, 1), 'E_STATE', 'f32_v1.npy');
    await expectError(s.readRows([0]), 'E_STATE');
    await expectError(() => s.view?.(0, 1), 'E_STATE');
  });

  it.skipIf(skip)('close() while reads are in flight lets them finish with the right data', async () => {
    const rng = testRng();
    const rows = 20_011;
    const dim = 67;
    const m = randomMatrix(rng, rows, dim);
    const path = tmpFile('inflight.npy');
    await writeNpy(path, m, [rows, dim]);
    for (let round = 0; round < 3; round++) {
      const s = await open(path);
      const view = s.view?.(0, rows);
      const idx = Array.from({ length: 999 }, () => rng.int(rows));
      const whole = s.read(0, rows);
      const gathered = s.readRows(idx);
      const part = s.read(rows - 5, 5);
      const closing = s.close();
      await expectError(s.read(0, 1), 'E_STATE');
      expectValues(await whole, m, 'read in flight at close');
      expectValues(await gathered, gatherRef(m, dim, idx), 'readRows in flight at close');
      expectValues(await part, m.subarray((rows - 5) * dim), 'tail read in flight at close');
      await closing;
      // A view handed out before close stays valid: the mapping lives while anything holds it.
      if (view) expectValues(view.subarray(0, 1000), m.subarray(0, 1000), 'view after close');
    }
  });

  it.skipIf(skip)('large reads, gathers and scans (the multi-threaded native paths) are exact', async () => {
    const rng = testRng();
    const rows = 40_000 + rng.int(1000);
    const dim = 77;
    const m = randomMatrix(rng, rows, dim);
    const h = viaHalf(m);
    for (const [dtype, data, values] of [['float32', m, m], ['float16', h.bits, h.values]] as const) {
      const path = tmpFile(`large-${dtype}.npy`);
      await writeNpy(path, data, [rows, dim]);
      const s = await open(path);
      expectValues(await s.read(0, rows), values, `large ${dtype}`);
      const idx = Array.from({ length: 30_000 }, () => rng.int(rows));
      expectValues(await s.readRows(idx), gatherRef(values, dim, idx), `large gather ${dtype}`);
      await checkFinite(s);
      await s.close();
      // Two bad values far apart: the scan must report the first, whatever thread sees it first.
      const first = rows - 2 - rng.int(rows >> 2);
      const poisoned = Float32Array.from(values);
      poisoned[(rows - 1) * dim + 3] = NaN;
      poisoned[first * dim + 5] = -Infinity;
      const bad = tmpFile(`large-bad-${dtype}.npy`);
      await writeNpy(bad, poisoned, [rows, dim], { dtype });
      const b = await open(bad);
      await expectError(checkFinite(b, { rowsPerChunk: rows }), 'E_NAN', `row ${first},`, 'column 5', '-Inf');
      await b.close();
      // Only the very last value bad, default step size: the scan must reach the end.
      const last = Float32Array.from(values);
      last[last.length - 1] = Infinity;
      const tail = tmpFile(`large-tail-${dtype}.npy`);
      await writeNpy(tail, last, [rows, dim], { dtype });
      const t = await open(tail);
      await expectError(checkFinite(t), 'E_NAN', `row ${rows - 1},`, `column ${dim - 1}`, '+Inf');
      await t.close();
    }
  });

  it.skipIf(skip)('closing a source mid-iteration ends chunks() with E_STATE, never an unhandled rejection', async () => {
    const rng = testRng();
    const m = randomMatrix(rng, 500, 9);
    const path = tmpFile('iter.npy');
    await writeNpy(path, m, [500, 9]);
    const s = await open(path);
    let seen = 0;
    await expectError(async () => {
      for await (const c of s.chunks(7)) {
        seen += c.count;
        if (seen === 14) await s.close();
        await new Promise((r) => setTimeout(r, 5));
      }
    }, 'E_STATE', 'iter.npy');
    expect(seen).toBeGreaterThanOrEqual(14);
  });

  it.skipIf(skip)('checkFinite finds the first NaN/Inf (row, column, file) in f32 and f16 data', async () => {
    const rng = testRng();
    for (const dtype of ['float32', 'float16'] as const) {
      const rows = 50 + rng.int(300);
      const dim = 1 + rng.int(40);
      const m = randomMatrix(rng, rows, dim);
      const clean = tmpFile('clean.npy');
      const data = dtype === 'float16' ? viaHalf(m).bits : m;
      await writeNpy(clean, data, [rows, dim]);
      const ok = await open(clean);
      const progress: number[] = [];
      await checkFinite(ok, { rowsPerChunk: 17, onProgress: (done, total) => (expect(total).toBe(rows), progress.push(done)) });
      expect(progress[progress.length - 1]).toBe(rows);
      await ok.close();
      const badRow = rng.int(rows);
      const badCol = rng.int(dim);
      const poisoned = Float32Array.from(m);
      poisoned[badRow * dim + badCol] = [NaN, Infinity, -Infinity][rng.int(3)];
      // A second bad value in a later row: the first one must be the one reported.
      if (badRow < rows - 1) poisoned[(badRow + 1 + rng.int(Math.min(3, rows - 1 - badRow))) * dim + rng.int(dim)] = NaN;
      const path = tmpFile('nan.npy');
      await writeNpy(path, dtype === 'float16' ? viaHalf(poisoned).bits : poisoned, [rows, dim]);
      const s = await open(path);
      await expectError(checkFinite(s, { rowsPerChunk: 1 + rng.int(64) }), 'E_NAN', 'nan.npy', `row ${badRow},`, `column ${badCol}`);
      await s.close();
      // In a list of shards the message names the shard and the row inside it.
      const sharded = await open([clean, path]);
      await expectError(checkFinite(sharded), 'E_NAN', `row ${rows + badRow} (`, `row ${badRow} of that file`, 'nan.npy');
      const ac = new AbortController();
      ac.abort();
      await expectError(checkFinite(sharded, { signal: ac.signal }), 'E_ABORTED');
      await sharded.close();
    }
  });
});

describe.each(MODES)('malformed inputs ($mode)', ({ mmap, skip }) => {
  const open = (p: string | string[], o: Record<string, unknown> = {}) => openSource(p, { mmap, ...o });
  const good = readFileSync(fx('f32_v1.npy'));
  const goodV2 = readFileSync(fx('f32_v2.npy'));
  const write = (name: string, bytes: Uint8Array) => {
    const p = tmpFile(name);
    writeFileSync(p, bytes);
    return p;
  };
  /** The good v1 file with its header text replaced (padded to keep the data offset). */
  const withHeader = (text: string) => {
    const headerLen = good.readUInt16LE(8);
    const out = Buffer.from(good);
    out.fill(0x20, 10, 10 + headerLen);
    out.write(text, 10, 'latin1');
    out[10 + headerLen - 1] = 0x0a;
    return out;
  };

  it.skipIf(skip)('rejects damaged .npy files with E_FORMAT naming the file and the fault', async () => {
    const cases: [string, Uint8Array, string][] = [
      ['truncated.npy', good.subarray(0, good.length - 3), 'truncated'],
      ['extra.npy', Buffer.concat([good, Buffer.alloc(8)]), 'extra'],
      ['lies.npy', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (8, 5), }"), 'truncated'],
      ['lies-small.npy', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (7, 4), }"), 'extra'],
      ['magic.npy', Buffer.concat([Buffer.from('XNUMPY'), good.subarray(6)]), 'bad magic'],
      ['version.npy', Buffer.concat([good.subarray(0, 6), Buffer.from([4, 0]), good.subarray(8)]), 'version 4.0'],
      ['huge-header.npy', (() => { const b = Buffer.from(goodV2); b.writeUInt32LE(0xfffffff0, 8); return b; })(), 'implausibly large'],
      ['header-past-end.npy', (() => { const b = Buffer.from(good); b.writeUInt16LE(8000, 8); return b; })(), 'past the end'],
      ['tiny.npy', good.subarray(0, 7), 'only 7 bytes'],
      ['empty.npy', new Uint8Array(0), 'only 0 bytes'],
      ['garbage.npy', withHeader('{descr: <f4}'), 'malformed header'],
      ['not-dict.npy', withHeader("('<f4', False, (7, 5))"), 'expected a dict'],
      ['missing-key.npy', withHeader("{'descr': '<f4', 'shape': (7, 5), }"), "'fortran_order'"],
      ['extra-key.npy', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (7, 5), 'x': 1, }"), 'exactly the keys'],
      ['bad-shape.npy', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': 35, }"), 'tuple of integers'],
      ['neg-shape.npy', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-7, 5), }"), 'negative'],
      ['zero-dim.npy', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (7, 0), }"), 'no columns'],
      ['structured.npy', withHeader("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (7, 5), }"), 'structured'],
      ['unterminated.npy', withHeader("{'descr': '<f4, 'fortran_order': False, 'shape': (7, 5), }"), 'malformed header'],
    ];
    for (const [name, bytes, what] of cases) await expectError(open(write(name, bytes)), 'E_FORMAT', name, what);
  });

  it.skipIf(skip)('rejects numpy files of the wrong kind with a clear reason', async () => {
    const cases: [string, string[]][] = [
      ['bad/fortran.npy', ['fortran_order', 'C-ordered']],
      ['bad/bigendian.npy', ['big-endian', "'>f4'", "astype('<f4')"]],
      ['bad/float64.npy', ['float64', "astype('float32')"]],
      ['bad/int64.npy', ["'<i8'", 'not supported']],
      ['bad/onedim.npy', ['2-D', '(5,)', 'reshape(-1, 1)']],
      ['bad/threedim.npy', ['2-D', '(2, 3, 4)']],
    ];
    for (const [name, fragments] of cases) await expectError(open(fx(name)), 'E_FORMAT', name, ...fragments);
  });

  it.skipIf(skip)('never crashes on randomly corrupted or truncated files', async () => {
    const rng = testRng();
    for (let trial = 0; trial < 120; trial++) {
      const bytes = Buffer.from(trial % 2 ? good : goodV2);
      const kind = rng.int(3);
      let damaged: Uint8Array = bytes;
      if (kind === 0) damaged = bytes.subarray(0, rng.int(bytes.length));
      else {
        const flips = 1 + rng.int(4);
        for (let k = 0; k < flips; k++) bytes[rng.int(Math.min(bytes.length, 140))] = rng.int(256);
        if (kind === 2) damaged = Buffer.concat([bytes, Buffer.alloc(rng.int(9))]);
      }
      const path = write(`fuzz${trial}.npy`, damaged);
      try {
        const s = await open(path);
        // It parsed (the damage spared the header): every row must still be readable.
        await s.read(0, s.rows);
        await s.close();
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(PairpickError);
        expect((e as Error).message).toContain(path);
      }
    }
  });

  it.skipIf(skip)('rejects damaged .safetensors files', async () => {
    const rng = testRng();
    const m = randomMatrix(rng, 5, 3);
    const path = tmpFile('ok.safetensors');
    await writeSafetensors(path, { t: { data: m, shape: [5, 3] } });
    const ok = readFileSync(path);
    const headerLen = Number(ok.readBigUInt64LE(0));
    const withJson = (json: object) => {
      const text = Buffer.from(JSON.stringify(json));
      const pre = Buffer.alloc(8);
      pre.writeBigUInt64LE(BigInt(text.length));
      return Buffer.concat([pre, text, ok.subarray(8 + headerLen)]);
    };
    const cases: [string, Uint8Array, string, string?][] = [
      ['trunc.safetensors', ok.subarray(0, ok.length - 4), 'ends at data byte'],
      ['short.safetensors', ok.subarray(0, 5), 'only 5 bytes'],
      ['huge.safetensors', (() => { const b = Buffer.from(ok); b.writeBigUInt64LE(1n << 40n); return b; })(), 'implausibly large'],
      ['past.safetensors', (() => { const b = Buffer.from(ok); b.writeBigUInt64LE(BigInt(ok.length)); return b; })(), 'past the end'],
      ['json.safetensors', (() => { const b = Buffer.from(ok); b[9] = 0x3a; return b; })(), 'not valid JSON'],
      ['array.safetensors', withJson([1, 2]), 'not a JSON object'],
      ['bf16.safetensors', withJson({ t: { dtype: 'BF16', shape: [5, 6], data_offsets: [0, 60] } }), 'BF16'],
      ['span.safetensors', withJson({ t: { dtype: 'F32', shape: [5, 2], data_offsets: [0, 60] } }), 'data_offsets span'],
      ['offsets.safetensors', withJson({ t: { dtype: 'F32', shape: [5, 3], data_offsets: [60, 0] } }), 'malformed data_offsets'],
      ['shape.safetensors', withJson({ t: { dtype: 'F32', shape: [5, -3], data_offsets: [0, 60] } }), 'malformed shape'],
      ['none.safetensors', withJson({ v: { dtype: 'F32', shape: [15], data_offsets: [0, 60] } }), 'no 2-D tensor', 'E_OPTION'],
    ];
    for (const [name, bytes, what, code] of cases) await expectError(open(write(name, bytes)), code ?? 'E_FORMAT', name, what);
  });

  it.skipIf(skip)('rejects shards that disagree on dim or dtype, naming both files', async () => {
    await expectError(open([fx('shards/emb_1.npy'), fx('bad/dim16.npy')]), 'E_SHAPE', 'emb_1.npy', 'dim16.npy', 'dim 6', 'dim 16');
    await expectError(open([fx('shards/emb_2.npy'), fx('bad/f16dim6.npy')]), 'E_SHAPE', 'emb_2.npy', 'f16dim6.npy', 'float32', 'float16');
    await expectError(open([fx('shards'), fx('bad/fortran.npy')]), 'E_FORMAT', 'fortran.npy');
  });

  it.skipIf(skip)('reports missing files, empty folders and unknown types', async () => {
    await expectError(open(join(tmp, 'nope.npy')), 'E_IO', 'nope.npy', 'no such file');
    await expectError(open([fx('f32_v1.npy'), join(tmp, 'gone.npy')]), 'E_IO', 'gone.npy');
    await expectError(open(fx('raw/../bad/../shards/README.txt')), 'E_FORMAT', 'README.txt', 'unknown file type');
    const emptyDir = join(tmp, 'empty-dir');
    rmSync(emptyDir, { recursive: true, force: true });
    (await import('node:fs')).mkdirSync(emptyDir);
    await expectError(open(emptyDir), 'E_IO', 'empty-dir', 'no embedding files');
    await expectError(open([]), 'E_OPTION', 'empty');
  });
});

describe('mmap fallback switch', () => {
  it('PAIRPICK_NO_MMAP=1 makes sources use positional reads', async () => {
    const saved = process.env.PAIRPICK_NO_MMAP;
    process.env.PAIRPICK_NO_MMAP = '1';
    try {
      const s = await openSource(fx('f16_v1.npy'));
      expect(s.access).toBe('file');
      expectValues(await s.read(0, s.rows), EXPECTED['f16_v1.npy'].values);
      await s.close();
    } finally {
      if (saved === undefined) delete process.env.PAIRPICK_NO_MMAP;
      else process.env.PAIRPICK_NO_MMAP = saved;
    }
  });

  it.skipIf(!hasMmap)('uses the mapping by default when the addon is built', async () => {
    const s = await openSource(fx('f32_v1.npy'));
    expect(s.access).toBe('mmap');
    await s.close();
  });
});

describe('writeNpy / openNpyWriter / readNpy', () => {
  it('round-trips f32, f16 and int32 with numpy-compatible v1 headers aligned to 64 bytes', async () => {
    const rng = testRng();
    const rows = 7 + rng.int(294); // ≥ 7: the 1-D checks below write the first 7 values
    const dim = 1 + rng.int(70);
    const m = randomMatrix(rng, rows, dim);
    const h = viaHalf(m);
    const ints = Int32Array.from({ length: rows * 3 }, () => rng.int(2 ** 31) - 2 ** 30);
    const p32 = tmpFile('a.npy');
    const p16 = tmpFile('b.npy');
    const pConv = tmpFile('c.npy');
    const pInt = tmpFile('d.npy');
    await writeNpy(p32, m, [rows, dim]);
    await writeNpy(p16, h.bits, [rows, dim]);
    await writeNpy(pConv, m, [rows, dim], { dtype: 'float16' });
    await writeNpy(pInt, ints, [rows, 3]);
    for (const p of [p32, p16, pConv, pInt]) {
      const bytes = readFileSync(p);
      expect(bytes[6]).toBe(1);
      expect((10 + bytes.readUInt16LE(8)) % 64).toBe(0);
    }
    const s32 = await openSource(p32);
    expectValues(await s32.read(0, rows), m, 'f32');
    const s16 = await openSource(p16);
    expectValues(await s16.read(0, rows), h.values, 'f16');
    const sConv = await openSource(pConv);
    expect(sConv.dtype).toBe('float16');
    expectValues(await sConv.read(0, rows), h.values, 'f32 stored as f16');
    await Promise.all([s32.close(), s16.close(), sConv.close()]);
    const back = await readNpy(pInt);
    expect(back.dtype).toBe('int32');
    expect(back.shape).toEqual([rows, 3]);
    expectValues(back.data, ints, 'int32');
    const back16 = await readNpy(p16);
    expect(back16.dtype).toBe('float16');
    expectValues(back16.data, h.bits, 'f16 bits');
    // 1-D arrays are fine for writeNpy/readNpy (picks, labels) though not as sources.
    const p1 = tmpFile('picks.npy');
    await writeNpy(p1, ints.subarray(0, 7), [7]);
    expect((await readNpy(p1)).shape).toEqual([7]);
    const p1f = tmpFile('column.npy');
    await writeNpy(p1f, m.subarray(0, 7), [7]);
    await expectError(openSource(p1f), 'E_FORMAT', '2-D', '(7,)');
    await expectError(openSource(p1), 'E_FORMAT', "'<i4'");
  });

  it('readNpy narrows numpy int64 when the values fit', async () => {
    const back = await readNpy(fx('bad/int64.npy'));
    expect(back.dtype).toBe('int32');
    expectValues(back.data, Array.from({ length: 12 }, (_, i) => i));
    await expectError(readNpy(fx('bad/float64.npy')), 'E_FORMAT', 'float64.npy', "'<f8'");
  });

  it('writes atomically: failures and aborts leave the old file and no temporaries', async () => {
    const rng = testRng();
    const dir = join(tmp, 'atomic');
    (await import('node:fs')).mkdirSync(dir, { recursive: true });
    const path = join(dir, 'out.npy');
    const first = randomMatrix(rng, 4, 3);
    await writeNpy(path, first, [4, 3]);
    const before = readFileSync(path);
    await expectError(writeNpy(path, first, [5, 3]), 'E_SHAPE', '(5, 3)');
    await expectError(writeNpy(path, first, [4, 3], { dtype: 'int32' }), 'E_OPTION');
    const ac = new AbortController();
    ac.abort();
    await expectError(writeNpy(path, randomMatrix(rng, 3 << 19, 1), [3 << 19, 1], { signal: ac.signal }), 'E_ABORTED');
    await expectError(writeNpy(join(dir, 'missing', 'x.npy'), first, [4, 3]), 'E_IO', 'missing');
    expect(readFileSync(path).equals(before)).toBe(true);
    const second = randomMatrix(rng, 2, 6);
    await writeNpy(path, second, [2, 6]);
    const s = await openSource(path);
    expectValues(await s.read(0, 2), second, 'overwritten');
    await s.close();
    expect(readdirSync(dir)).toEqual(['out.npy']);
  });

  it('openNpyWriter streams rows and fills in the header at close', async () => {
    const rng = testRng();
    const dim = 2 + rng.int(49); // ≥ 2, so dim + 1 values are never whole rows
    const blocks = Array.from({ length: 1 + rng.int(6) }, () => randomMatrix(rng, rng.int(40), dim));
    const all = Float32Array.from(blocks.flatMap((b) => [...b]));
    for (const dtype of ['float32', 'float16'] as const) {
      const path = tmpFile(`stream-${dtype}.npy`);
      const w = await openNpyWriter(path, { dim, dtype });
      for (const b of blocks) void w.append(b); // not awaited: appends must still keep their order
      await w.close();
      const s = await openSource(path);
      expect([s.rows, s.dim, s.dtype]).toEqual([all.length / dim, dim, dtype]);
      expectValues(await s.read(0, s.rows), dtype === 'float16' ? viaHalf(all).values : all, `stream ${dtype}`);
      await s.close();
      await expectError(w.append(blocks[0]), 'E_STATE');
    }
    const path = tmpFile('stream-bad.npy');
    const w = await openNpyWriter(path, { dim, rows: all.length / dim + 1 });
    await w.append(all);
    await expectError(w.append(new Float32Array(dim + 1)), 'E_SHAPE', 'whole rows');
    await expectError(w.close(), 'E_SHAPE', 'announced');
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('memory sources and pools', () => {
  it('memorySource reads, gathers and views fp32 and fp16 arrays', async () => {
    const rng = testRng();
    const rows = 2 + rng.int(50);
    const dim = 1 + rng.int(20);
    const m = randomMatrix(rng, rows, dim);
    const h = viaHalf(m);
    const s = memorySource(m, dim, 'ram');
    const s16 = memorySource(h.bits, dim);
    expect([s.rows, s.dim, s.dtype, s.access]).toEqual([rows, dim, 'float32', 'memory']);
    expect(s16.dtype).toBe('float16');
    const idx = Array.from({ length: 30 }, () => rng.int(rows));
    expectValues(await s.readRows(idx), gatherRef(m, dim, idx));
    expectValues(await s16.readRows(idx), gatherRef(h.values, dim, idx));
    const r = await s.read(1, rows - 1);
    r[0] = 12345; // the caller owns what read returns
    expect(m[dim]).not.toBe(12345);
    expect(s.view!(1, 1)!.buffer).toBe(m.buffer);
    // A dim that does not divide the array's length (the first one above dim that does not).
    let wrongDim = dim + 1;
    while (m.length % wrongDim === 0) wrongDim++;
    await expectError(() => memorySource(m, wrongDim, 'ram'), 'E_SHAPE', 'ram', `dim ${wrongDim}`);
    await s.close();
    await expectError(s.read(0, 1), 'E_STATE', 'ram');
  });

  it('openPool mixes paths, sources, arrays and per-modality options; checks row counts', async () => {
    const rng = testRng();
    const e = EXPECTED['raw/emb.f32'];
    const rows = e.shape[0];
    const text = randomMatrix(rng, rows, 4);
    const own = memorySource(randomMatrix(rng, rows, 2), 2, 'mine');
    const pool = await openPool({ image: { path: fx('raw/emb.f32'), dim: 6 }, text: { data: text, dim: 4 }, extra: own });
    expect(pool.rows).toBe(rows);
    expect(pool.modalities).toEqual(['image', 'text', 'extra']);
    expectValues(await pool.source('image').read(0, rows), e.values);
    expectValues(await pool.sources.text.read(0, rows), text);
    expect(() => pool.source('audio')).toThrow(/modalities: image, text, extra/);
    await pool.close();
    expect((await own.read(0, 1)).length).toBe(2); // the caller's source stays open
    await expectError(pool.source('image').read(0, 1), 'E_STATE');

    await expectError(openPool({ image: fx('shards'), text: fx('f32_v1.npy') }), 'E_SHAPE', "'image'", "'text'", '9', '7', 'f32_v1.npy');
    await expectError(openPool({}), 'E_OPTION', 'no modalities');
    await expectError(openPool({ a: fx('f32_v1.npy') }, { bogus: true } as never), 'E_OPTION', 'bogus');
    await expectError(openPool({ a: 42 as never }), 'E_OPTION', "'a'");
  });
});

describe.skipIf(!hasMmap)('native mapping lifetime', () => {
  it('survives views, closes and garbage collection in any order (child process with --expose-gc)', () => {
    const rng = testRng();
    const path = tmpFile('gc.f32');
    writeFileSync(path, new Uint8Array(randomMatrix(rng, 4096, 33).buffer));
    const empty = tmpFile('empty.f32');
    writeFileSync(empty, new Uint8Array(0));
    const addon = join(packageRoot(), 'build', 'Release', 'pairpick.node');
    const script = `
      const { mmap } = require(${JSON.stringify(addon)});
      const ref = new Float32Array(require('fs').readFileSync(${JSON.stringify(path)}).buffer.slice(0));
      (async () => {
        const views = [];
        for (let round = 0; round < 200; round++) {
          const h = mmap.open(${JSON.stringify(path)});
          const dst = new Float32Array(4096 * 33);
          const p = h.read(0, dst.length, false, dst, 0);
          const g = h.gather(0, 33, false, Float64Array.of(4095, 0, 7), new Float32Array(99), Int32Array.of(2, 1, 0));
          if (round % 3 === 0) views.push(new Float32Array(h.buffer(), 4 * 33 * 5, 33));
          h.close();
          await p; await g;
          for (let i = 0; i < dst.length; i += 997) if (dst[i] !== ref[i]) throw new Error('bad copy');
          if (round % 10 === 0) { views.splice(0, views.length - 2); global.gc(); }
          try { h.buffer(); throw new Error('buffer after close'); } catch (e) { if (e.code !== 'E_STATE') throw e; }
          try { h.read(0, 1, false, dst, 0); throw new Error('read after close'); } catch (e) { if (e.code !== 'E_STATE') throw e; }
        }
        for (const v of views) for (let j = 0; j < 33; j++) if (v[j] !== ref[5 * 33 + j]) throw new Error('bad view');
        const z = mmap.open(${JSON.stringify(empty)});
        if (z.size !== 0 || z.buffer().byteLength !== 0) throw new Error('empty file');
        await z.read(0, 0, false, new Float32Array(0), 0);
        if (await z.firstNonFinite(0, 0, false) !== -1) throw new Error('empty scan');
        z.close();
        try { mmap.open(${JSON.stringify(tmp)}); throw new Error('opened a folder'); } catch (e) { if (e.code !== 'E_IO') throw e; }
        global.gc();
        console.log('ok');
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
  });
});

// numpy at test time: fresh random arrays both ways (skipped when python3 + numpy are absent).
const numpyOk = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!numpyOk)('live numpy round trips', () => {
  it('reads fresh numpy-written files (f32/f16, v1/v2/v3, sharded) on every access path', async () => {
    const dir = join(tmp, 'live');
    const py = `
import numpy as np, os, sys, json
rng = np.random.default_rng(${TEST_SEED})
out = sys.argv[1]
os.makedirs(os.path.join(out, 'shards'), exist_ok=True)
files = []
for k, (dt, ver) in enumerate([('<f4', (1, 0)), ('<f2', (1, 0)), ('<f4', (2, 0)), ('<f2', (3, 0))]):
    a = (rng.standard_normal((int(rng.integers(1, 300)), int(rng.integers(1, 90)))) * 3).astype(dt)
    name = f'live{k}.npy'
    with open(os.path.join(out, name), 'wb') as f:
        np.lib.format.write_array(f, a, version=ver)
    a.astype('<f8').tofile(os.path.join(out, name + '.f64'))
    files.append(name)
dim = int(rng.integers(1, 40))
parts = []
for i in rng.permutation(12)[:5]:
    a = rng.standard_normal((int(rng.integers(0, 50)), dim)).astype('<f4')
    np.save(os.path.join(out, 'shards', f'part_{i}.npy'), a)
    parts.append((int(i), a))
parts.sort()
np.concatenate([a for _, a in parts]).astype('<f8').tofile(os.path.join(out, 'shards.f64'))
print(json.dumps(files))
`;
    const r = spawnSync('python3', ['-c', py, dir], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = JSON.parse(r.stdout) as string[];
    const f64 = (p: string) => new Float64Array(new Uint8Array(readFileSync(p)).buffer);
    for (const { mmap, skip } of MODES) {
      if (skip) continue;
      for (const name of files) {
        const s = await openSource(join(dir, name), { mmap });
        expectValues(await s.read(0, s.rows), f64(join(dir, name + '.f64')), name);
        await s.close();
      }
      const s = await openSource(join(dir, 'shards'), { mmap });
      expectValues(await s.read(0, s.rows), f64(join(dir, 'shards.f64')), 'shards');
      await s.close();
    }
  });

  it('numpy reads what writeNpy and openNpyWriter wrote, value for value', async () => {
    const rng = testRng();
    const dir = join(tmp, 'to-numpy');
    (await import('node:fs')).mkdirSync(dir, { recursive: true });
    const rows = 1 + rng.int(200);
    const dim = 1 + rng.int(60);
    const m = randomMatrix(rng, rows, dim);
    const h = viaHalf(m);
    const ints = Int32Array.from({ length: rows }, () => rng.int(2 ** 32) - 2 ** 31);
    await writeNpy(join(dir, 'f4.npy'), m, [rows, dim]);
    await writeNpy(join(dir, 'f2.npy'), h.bits, [rows, dim]);
    await writeNpy(join(dir, 'i4.npy'), ints, [rows]);
    const w = await openNpyWriter(join(dir, 's2.npy'), { dim, dtype: 'float16', rows });
    await w.append(m.subarray(0, Math.floor(rows / 2) * dim));
    await w.append(m.subarray(Math.floor(rows / 2) * dim));
    await w.close();
    writeFileSync(join(dir, 'f4.f64'), new Uint8Array(Float64Array.from(m).buffer));
    writeFileSync(join(dir, 'f2.f64'), new Uint8Array(Float64Array.from(h.values).buffer));
    writeFileSync(join(dir, 'i4.f64'), new Uint8Array(Float64Array.from(ints).buffer));
    const py = `
import numpy as np, sys, os
d = sys.argv[1]
for name, ref, dt, shape in [('f4', 'f4', '<f4', (${rows}, ${dim})), ('f2', 'f2', '<f2', (${rows}, ${dim})), ('i4', 'i4', '<i4', (${rows},)), ('s2', 'f2', '<f2', (${rows}, ${dim}))]:
    a = np.load(os.path.join(d, name + '.npy'), mmap_mode='r')
    assert a.dtype == np.dtype(dt), (name, a.dtype)
    assert a.shape == shape, (name, a.shape)
    assert a.flags.c_contiguous
    want = np.fromfile(os.path.join(d, ref + '.f64'), dtype='<f8').reshape(shape)
    assert np.array_equal(a.astype('<f8'), want), name
print('ok')
`;
    const r = spawnSync('python3', ['-c', py, dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
  });
});

// Keep the unused-import checker quiet about a type used only in annotations above.
export type { EmbeddingSource };
