// Input files held to the references' rules and to what can happen to them while pairpick reads:
// files truncated or rewritten under an open source (E_IO naming the file, never a SIGBUS),
// named pipes, sockets and devices (refused at once, never a hang), .safetensors and .npy files
// that the safetensors reference or numpy refuse (E_FORMAT), and bad arguments to every public
// io function (PairpickError naming the argument, never a TypeError).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
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
} from '../src/io/index.js';
import { nativeMmap } from '../src/io/mmap.js';
import { floatToHalf, halfToFloat } from '../src/util/half.js';
import { packageRoot } from '../src/util/root.js';
import { randomMatrix, testRng, TEST_SEED } from './helpers/random.js';

const root = packageRoot();
const tmp = mkdtempSync(join(tmpdir(), 'pairpick-strict-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileCounter = 0;
const tmpFile = (name: string) => join(tmp, `${++fileCounter}-${name}`);

const hasMmap = nativeMmap() !== undefined;
const MODES = [
  { mode: 'mmap' as const, mmap: true, skip: !hasMmap },
  { mode: 'file' as const, mmap: false, skip: false },
];

/** Asserts that `p` fails with a PairpickError of `code` whose message contains every fragment. */
async function expectError(p: Promise<unknown> | (() => unknown), code: string, ...fragments: string[]): Promise<PairpickError> {
  let error: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error, `expected a PairpickError ${code}, got ${String(error)}`).toBeInstanceOf(PairpickError);
  const err = error as PairpickError;
  expect(err.code, err.message).toBe(code);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

/** Rejects after `ms`: a promise that never settles fails the test instead of hanging it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function expectSameValues(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) expect(actual[i], `${what}[${i}]`).toBe(expected[i]);
  }
}

// ---------------------------------------------------------------------------------------------
describe('files truncated or rewritten while open', () => {
  it.each(MODES)('reads fail with E_IO naming the file, never a signal ($mode, child process)', ({ mode, skip }) => {
    if (skip) return;
    const dir = join(tmp, `race-${mode}`);
    mkdirSync(dir, { recursive: true });
    const r = spawnSync(process.execPath, [join(root, 'test', 'helpers', 'file-race-child.mjs'), mode, dir, String(TEST_SEED)], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.signal, `the child died of ${r.signal}: ${r.stderr}`).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const { results, faults } = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      results: { name: string; path: string; ok: boolean; code?: string; message?: string; same?: boolean }[];
      faults: number;
    };
    expect(results.length).toBeGreaterThanOrEqual(mode === 'mmap' ? 10 : 9);
    for (const res of results) {
      if (res.name === 'truncate during a read' && res.ok) {
        // The read finished before the truncation reached it: then it must hold the file as it was.
        expect(res.same, res.name).toBe(true);
        continue;
      }
      expect(res.ok, `${res.name}: should have failed`).toBe(false);
      expect(res.code, `${res.name}: ${res.message}`).toBe('E_IO');
      expect(res.message).toContain(res.path);
      expect(res.message).toContain('changed or was truncated');
    }
    // The mapped reads really touched vanished pages (so this test would die of SIGBUS unguarded).
    if (mode === 'mmap') expect(faults).toBeGreaterThan(0);
  });

  it.skipIf(!hasMmap)('the SIGBUS guard leaves other SIGBUS signals alone: the process still dies of them (child process)', async () => {
    const path = tmpFile('guarded.f32');
    writeFileSync(path, new Uint8Array(randomMatrix(testRng(), 64, 4).buffer));
    const addon = join(root, 'build', 'Release', 'pairpick.node');
    // Mapping a file installs the guard; a SIGBUS that is not a fault in a mapping must still kill.
    const script = `
      const { mmap } = require(${JSON.stringify(addon)});
      const h = mmap.open(${JSON.stringify(path)});
      process.kill(process.pid, 'SIGBUS');
      setTimeout(() => console.log('survived'), 500);`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.stdout).not.toContain('survived');
    expect(r.signal).toBe('SIGBUS');
  });

  it.skipIf(!hasMmap)('a mapping outlives its file being replaced by rename (the old contents stay valid)', async () => {
    const rng = testRng();
    const values = randomMatrix(rng, 300, 12);
    const path = tmpFile('renamed.npy');
    await writeNpy(path, values, [300, 12]);
    const s = await openSource(path, { mmap: true });
    await writeNpy(path, randomMatrix(rng, 300, 12), [300, 12]); // atomic: a new file renamed over the old
    expectSameValues(await s.read(0, 300), values, 'read after rename');
    s.checkIntact();
    await s.close();
  });

  it.skipIf(!hasMmap || !existsSync('/proc/self/maps'))('pairpick select exits with an error, never a signal, while np.save-style rewrites hit its input', async () => {
    const rng = testRng();
    // Big enough that a selection takes far longer than the milliseconds before the first rewrite.
    const rows = 50_000;
    const dim = 64;
    const path = tmpFile('pool.npy');
    await writeNpy(path, randomMatrix(rng, rows, dim), [rows, dim]);
    const contents = readFileSync(path);
    const past = new Date(Date.now() - 3600_000);
    utimesSync(path, past, past);
    const cli = join(root, 'dist', 'cli.js');
    const outcomes: { code: number | null; signal: NodeJS.Signals | null; stderr: string }[] = [];
    for (let run = 0; run < 3; run++) {
      utimesSync(path, past, past);
      const child = spawn(process.execPath, [cli, 'select', '--modality', `a=${path}`, '--budget', '150', '--strategy', 'kcenter', '--backend', 'cpu', '--out', tmpFile('picks.json')], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.stdout.resume();
      let done = false;
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('exit', (code, signal) => {
          done = true;
          resolve({ code, signal });
        }),
      );
      // Wait until the CLI has the file mapped (it shows in /proc/<pid>/maps), then rewrite it.
      const poolOpen = (async () => {
        while (!done && !mapsOf(child.pid!).includes(path)) await new Promise((r) => setTimeout(r, 3));
      })();
      await within(poolOpen, 60_000, 'pairpick select opening its input');
      // np.save's way of replacing a file: truncate it to 0, then write the new contents.
      for (let k = 0; k < 400 && !done; k++) {
        truncateSync(path, 0);
        await new Promise((r) => setTimeout(r, 2));
        writeFileSync(path, contents);
        await new Promise((r) => setTimeout(r, 5));
      }
      const { code, signal } = await within(exited, 60_000, 'pairpick select');
      outcomes.push({ code, signal, stderr });
    }
    for (const o of outcomes) {
      expect(o.signal, o.stderr).toBeNull();
      // 0 only if a selection finished before the first rewrite reached it (its picks were then
      // made from the file as it was); otherwise E_IO naming the file.
      expect([0, 1], o.stderr).toContain(o.code);
      if (o.code === 1) expect(o.stderr).toMatch(new RegExp(`file ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} changed or was truncated.*\\(E_IO\\)`));
    }
    // A selection takes far longer than the few milliseconds before the first rewrite.
    expect(outcomes.some((o) => o.code === 1)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
describe('non-regular files', () => {
  const fifo = join(tmp, 'pipe.npy');
  const socketPath = join(tmp, 'sock.npy');
  let server: Server | undefined;
  const makeSpecials = async () => {
    if (!server) {
      const r = spawnSync('mkfifo', [fifo]);
      expect(r.status, 'mkfifo').toBe(0);
      server = createServer();
      await new Promise<void>((resolve) => server!.listen(socketPath, resolve));
    }
  };
  afterAll(() => server?.close());

  it.each(MODES)('openSource refuses a named pipe, a socket and character devices at once ($mode)', async ({ mmap, skip }) => {
    if (skip) return;
    await makeSpecials();
    await expectError(within(openSource(fifo, { mmap }), 5000, 'openSource(fifo)'), 'E_IO', fifo, 'named pipe');
    await expectError(within(openSource(socketPath, { mmap }), 5000, 'openSource(socket)'), 'E_IO', socketPath, 'socket');
    await expectError(within(openSource('/dev/zero', { mmap, dtype: 'float32', dim: 4 }), 5000, 'openSource(/dev/zero)'), 'E_IO', '/dev/zero', 'character device');
    await expectError(within(openSource(['/dev/null'], { mmap, dim: 4, dtype: 'float32' }), 5000, 'openSource(/dev/null)'), 'E_IO', '/dev/null');
    await expectError(within(openPool({ a: fifo }, { mmap }), 5000, 'openPool(fifo)'), 'E_IO', fifo, 'named pipe');
  });

  it('readNpy refuses a named pipe, a folder and a device at once', async () => {
    await makeSpecials();
    await expectError(within(readNpy(fifo), 5000, 'readNpy(fifo)'), 'E_IO', fifo, 'named pipe');
    await expectError(within(readNpy(tmp), 5000, 'readNpy(folder)'), 'E_IO', tmp);
    await expectError(within(readNpy('/dev/zero'), 5000, 'readNpy(/dev/zero)'), 'E_IO', '/dev/zero');
  });

  it.skipIf(!hasMmap)('the native mapping refuses a named pipe without blocking (child process)', async () => {
    await makeSpecials();
    const addon = join(root, 'build', 'Release', 'pairpick.node');
    const script = `
      const { mmap } = require(${JSON.stringify(addon)});
      try { mmap.open(${JSON.stringify(fifo)}); console.log('opened'); } catch (e) { console.log(e.code + ' ' + e.message); }`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.signal, 'mmap.open on a FIFO blocked').toBeNull();
    expect(r.stdout).toContain('E_IO');
    expect(r.stdout).toContain('named pipe');
  });

  it.skipIf(!existsCli())('pairpick select on a named pipe exits 1 at once naming it', async () => {
    await makeSpecials();
    const r = spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), 'select', '--modality', `a=${fifo}`, '--budget', '2'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.signal, 'the CLI hung on a named pipe').toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(fifo);
    expect(r.stderr).toContain('named pipe');
  });

  it.skipIf(!existsCli())('pairpick embed --model and select --labeled on a named pipe exit at once naming it', async () => {
    await makeSpecials();
    const data = join(tmp, 'fifo-input.npy');
    await writeNpy(data, randomMatrix(testRng(), 6, 3), [6, 3]);
    const fifoJson = join(tmp, 'pipe.json');
    expect(spawnSync('mkfifo', [fifoJson]).status, 'mkfifo').toBe(0);
    const cli = (args: string[]) => spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), ...args], { encoding: 'utf8', timeout: 20_000 });
    for (const [what, args] of [
      ['embed --model', ['embed', '--model', fifo, '--modality', `a=${data}`, '--out-dir', join(tmp, 'fifo-out')]],
      ['select --labeled', ['select', '--modality', `a=${data}`, '--budget', '2', '--labeled', fifoJson]],
    ] as const) {
      const r = cli([...args]);
      expect(r.signal, `the CLI hung on a named pipe given to ${what}`).toBeNull();
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toContain('named pipe');
    }
  });
});

function mapsOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/maps`, 'utf8');
  } catch {
    return '';
  }
}

function existsCli(): boolean {
  try {
    return statSync(join(root, 'dist', 'cli.js')).isFile();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
/** A .safetensors file from a header (object or raw text) and data, with an optional header
 * length that lies by `lengthDelta`. */
function safetensorsBytes(header: object | string, data: Uint8Array, lengthDelta = 0): Uint8Array {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const pre = Buffer.alloc(8);
  pre.writeBigUInt64LE(BigInt(text.length + lengthDelta));
  return Buffer.concat([pre, text, data]);
}

describe.each(MODES)('strict .safetensors validation ($mode)', ({ mmap, skip }) => {
  const open = (p: string, o: Record<string, unknown> = {}) => openSource(p, { mmap, ...o });
  const write = (name: string, bytes: Uint8Array) => {
    const p = tmpFile(name);
    writeFileSync(p, bytes);
    return p;
  };

  it.skipIf(skip)('refuses what the reference refuses, naming the file and the problem', async () => {
    const rng = testRng();
    const rows = 6;
    const dim = 5;
    const m = randomMatrix(rng, rows, dim);
    const bytes = new Uint8Array(m.buffer);
    const n = bytes.length; // 120
    const t = (begin: number, end: number, shape = [rows, dim], dtype = 'F32') => ({ dtype, shape, data_offsets: [begin, end] });
    const cases: [string, Uint8Array, string][] = [
      // One byte too many: the header swallows the first data byte (made a UTF-8 continuation byte here).
      ['len-plus-1.safetensors', safetensorsBytes({ t: t(0, n) }, Buffer.concat([Buffer.from([0x80]), bytes.subarray(1)]), +1), 'not valid UTF-8'],
      ['len-minus-1.safetensors', safetensorsBytes({ t: t(0, n) }, bytes, -1), 'not valid JSON'],
      ['shift-3.safetensors', safetensorsBytes({ t: t(3, n + 3) }, Buffer.concat([Buffer.alloc(3), bytes])), 'end to end from byte 0'],
      ['shift-4.safetensors', safetensorsBytes({ t: t(4, n + 4) }, Buffer.concat([Buffer.alloc(4), bytes])), 'end to end from byte 0'],
      ['shift-5-short.safetensors', safetensorsBytes({ t: t(5, n + 5) }, bytes), 'end to end from byte 0'],
      ['trailing.safetensors', safetensorsBytes({ t: t(0, n) }, Buffer.concat([bytes, Buffer.alloc(3)])), 'not fully covered'],
      ['truncated.safetensors', safetensorsBytes({ t: t(0, n) }, bytes.subarray(0, n - 4)), 'truncated'],
      ['gap.safetensors', safetensorsBytes({ a: t(0, 8, [2], 'F32'), t: t(12, n + 12) }, Buffer.concat([Buffer.alloc(12), bytes])), 'end to end'],
      ['overlap.safetensors', safetensorsBytes({ a: t(0, 8, [2], 'F32'), t: t(4, n + 4) }, Buffer.concat([Buffer.alloc(4), bytes])), 'end to end'],
      ['span.safetensors', safetensorsBytes({ t: t(0, n, [rows, dim - 1]) }, bytes), 'data_offsets span'],
      ['dtype.safetensors', safetensorsBytes({ x: t(0, 4, [1], 'F128'), t: t(4, n + 4) }, Buffer.concat([Buffer.alloc(4), bytes])), 'unknown dtype'],
      ['lower-dtype.safetensors', safetensorsBytes({ t: t(0, n, [rows, dim], 'f32') }, bytes), 'unknown dtype'],
      ['meta.safetensors', safetensorsBytes({ __metadata__: { a: 1 }, t: t(0, n) }, bytes), '__metadata__'],
      ['meta-array.safetensors', safetensorsBytes({ __metadata__: ['a'], t: t(0, n) }, bytes), '__metadata__'],
      ['neg.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[6,5],"data_offsets":[-0,120]}}', bytes), 'malformed data_offsets'],
      ['float.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[6.0,5],"data_offsets":[0,120]}}', bytes), 'malformed shape'],
      ['exp.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[6,5],"data_offsets":[0,1.2e2]}}', bytes), 'malformed data_offsets'],
      ['three.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120,120]}}', bytes), 'malformed data_offsets'],
      ['missing.safetensors', safetensorsBytes('{"t":{"dtype":"F32","data_offsets":[0,120]}}', bytes), 'malformed shape'],
      ['overflow.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[6,5,18446744073709551616],"data_offsets":[0,120]}}', bytes), 'malformed shape'],
      ['f4-odd.safetensors', safetensorsBytes({ x: t(0, 2, [3], 'F4'), t: t(2, n + 2) }, Buffer.concat([Buffer.alloc(2), bytes])), 'whole number of bytes'],
      ['dup.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120]},"t":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120]}}', bytes), 'duplicate'],
      ['surrogate.safetensors', safetensorsBytes('{"\\ud800":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120]}}', bytes), 'surrogate'],
      ['ctrl.safetensors', safetensorsBytes('{"a\tb":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120]}}', bytes), 'control character'],
      ['lead-space.safetensors', safetensorsBytes(' {"t":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120]}}', bytes), "starting with '{'"],
      ['bom.safetensors', safetensorsBytes('\ufeff{"t":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120]}}', bytes), "starting with '{'"],
      ['trailing-comma.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120]},}', bytes), 'not valid JSON'],
      ['nan-pad.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[6,5],"data_offsets":[0,120]}}\u0000', bytes), 'not valid JSON'],
      ['array-info.safetensors', safetensorsBytes('{"t":["F32",[6,5],[0,120]]}', bytes), 'not an object'],
      ['empty-header.safetensors', safetensorsBytes('', bytes), "starting with '{'"],
      ['no-tensors-data.safetensors', safetensorsBytes({}, bytes), 'not fully covered'],
    ];
    for (const [name, file, what] of cases) await expectError(open(write(name, file)), 'E_FORMAT', name, what);
  });

  it.skipIf(skip)('accepts what the reference accepts, with the right values', async () => {
    const rng = testRng();
    const rows = 7;
    const dim = 3;
    const m = randomMatrix(rng, rows, dim);
    const bytes = new Uint8Array(m.buffer);
    const n = bytes.length;
    const half = Uint16Array.from(m, (v) => floatToHalf(v));
    const halfValues = Float32Array.from(half, (h) => halfToFloat(h));
    const cases: [string, Uint8Array, Float32Array, Record<string, unknown>?][] = [
      // Trailing JSON whitespace inside the header length is padding (the reference allows it).
      ['padded.safetensors', safetensorsBytes('{"t":{"dtype":"F32","shape":[7,3],"data_offsets":[0,84]}} \t\r\n ', bytes), m],
      // Offsets in any key order; other tensors of any known dtype, zero-sized ones, metadata,
      // fields the reference ignores.
      [
        'many.safetensors',
        safetensorsBytes(
          {
            __metadata__: { note: 'x', format: 'pt' },
            t: { data_offsets: [8, 8 + n], shape: [rows, dim], dtype: 'F32', extra: { ignored: [1, 2] } },
            b: { dtype: 'BF16', shape: [2, 2], data_offsets: [0, 8] },
            z: { dtype: 'I64', shape: [0, 4], data_offsets: [8 + n, 8 + n] },
            q: { dtype: 'F4', shape: [2], data_offsets: [8 + n, 9 + n] },
          },
          Buffer.concat([Buffer.alloc(8), bytes, Buffer.alloc(1)]),
        ),
        m,
        { tensor: 't' },
      ],
      ['half.safetensors', safetensorsBytes({ h: { dtype: 'F16', shape: [rows, dim], data_offsets: [0, 2 * rows * dim] } }, new Uint8Array(half.buffer)), halfValues],
      ['escaped.safetensors', safetensorsBytes('{"\\u00e9\\ud83d\\ude00":{"dtype":"F32","shape":[7,3],"data_offsets":[0,84]}}', bytes), m],
    ];
    for (const [name, file, expected, opts] of cases) {
      const s = await open(write(name, file), opts);
      expect([s.rows, s.dim], name).toEqual([rows, dim]);
      expectSameValues(await s.read(0, rows), expected, name);
      await s.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
/** A version 1/2/3 .npy file from header text (padded to a 64-byte boundary like numpy does,
 * unless `exact`) and data. */
function npyBytes(text: string, data: Uint8Array, version = 1, exact = false): Uint8Array {
  const pre = version === 1 ? 10 : 12;
  let body = Buffer.from(text, version === 3 ? 'utf8' : 'latin1');
  if (!exact) {
    const total = Math.ceil((pre + body.length + 1) / 64) * 64;
    body = Buffer.concat([body, Buffer.alloc(total - pre - body.length - 1, 0x20), Buffer.from('\n')]);
  }
  const head = Buffer.alloc(pre);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(body.length, 8);
  else head.writeUInt32LE(body.length, 8);
  return Buffer.concat([head, body, data]);
}

describe.each(MODES)('strict .npy validation ($mode)', ({ mmap, skip }) => {
  const open = (p: string) => openSource(p, { mmap });
  const write = (name: string, bytes: Uint8Array) => {
    const p = tmpFile(name);
    writeFileSync(p, bytes);
    return p;
  };
  const dict = (shape = '(4, 3)', descr = "'<f4'", fortran = 'False') => `{'descr': ${descr}, 'fortran_order': ${fortran}, 'shape': ${shape}, }`;

  // numpy 2.x refuses each of these in np.load (checked with numpy 2.4, with and without mmap_mode).
  it.skipIf(skip)('refuses every header numpy refuses', async () => {
    const data = new Uint8Array(randomMatrix(testRng(), 4, 3).buffer);
    const cases: [string, Uint8Array, string][] = [
      ['json-bool.npy', npyBytes(dict('(4, 3)', "'<f4'", 'false'), data), 'malformed header'],
      ['minor.npy', (() => { const b = Buffer.from(npyBytes(dict(), data)); b[7] = 1; return b; })(), 'version 1.1'],
      ['list-shape.npy', npyBytes(dict('[4, 3]'), data), 'tuple'],
      ['paren-int.npy', npyBytes(dict('(12)'), data), '1-tuple'],
      ['leading-zero.npy', npyBytes(dict('(04, 3)'), data), 'malformed header'],
      ['long-v3.npy', npyBytes(dict('(4L, 3)'), data, 3), "'L' suffix"],
      ['extra-key.npy', npyBytes(dict().replace('}', "'x': 1}"), data), 'exactly the keys'],
      ['double-comma.npy', npyBytes(dict().replace(', }', ',, }'), data), 'malformed header'],
      ['vtab.npy', npyBytes(dict().replace(', ', ',\x0b'), data), 'malformed header'],
      ['nbsp.npy', npyBytes(dict().replace(', ', ',\xa0'), data), 'malformed header'],
      ['nul.npy', npyBytes(`${dict()}\0`, data, 1, true), 'trailing characters'],
      ['bom-v3.npy', npyBytes(`\ufeff${dict()}`, data, 3), 'expected a dict'],
      ['two-dicts.npy', npyBytes(dict() + dict(), data), 'trailing characters'],
      ['bool-fortran.npy', npyBytes(dict('(4, 3)', "'<f4'", '0'), data), 'True or False'],
      ['header-10001.npy', npyBytes(dict() + ' '.repeat(10001 - dict().length), data, 1, true), 'implausibly large'],
      ['short-data.npy', npyBytes(dict(), data.subarray(0, data.length - 1)), 'truncated'],
    ];
    for (const [name, file, what] of cases) await expectError(open(write(name, file)), 'E_FORMAT', name, what);
  });

  // numpy reads each of these; so do we, value for value.
  it.skipIf(skip)('accepts the header variations numpy writes or reads', async () => {
    const m = randomMatrix(testRng(), 4, 3);
    const data = new Uint8Array(m.buffer);
    const cases: [string, Uint8Array][] = [
      ['no-newline.npy', npyBytes(dict(), data, 1, true)],
      ['no-trailing-comma.npy', npyBytes(dict().replace(', }', '}'), data)],
      ['double-quotes.npy', npyBytes(dict().replace(/'/g, '"'), data)],
      ['key-order.npy', npyBytes("{'shape': (4, 3), 'fortran_order': False, 'descr': '<f4'}", data)],
      ['python2-long.npy', npyBytes(dict('(4L, 3L)'), data, 2)],
      ['spaces.npy', npyBytes(`  \t{ 'descr' :'<f4' ,\n'fortran_order':False,'shape':(\n4,3 , ) } \n \n`, data, 1, true)],
      ['v3.npy', npyBytes(dict(), data, 3)],
      ['header-10000.npy', npyBytes(dict() + ' '.repeat(10000 - dict().length), data, 1, true)],
    ];
    for (const [name, file] of cases) {
      const s = await open(write(name, file));
      expect([s.rows, s.dim], name).toEqual([4, 3]);
      expectSameValues(await s.read(0, 4), m, name);
      await s.close();
    }
  });

  it.skipIf(skip)('readNpy applies the same rules to 1-tuples and 0-d arrays', async () => {
    const values = Int32Array.of(5, -7, 11);
    const one = write('one.npy', npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", new Uint8Array(values.buffer)));
    const got = await readNpy(one);
    expect(got.shape).toEqual([3]);
    expectSameValues(got.data, values, 'readNpy 1-tuple');
    const scalar = write('scalar.npy', npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (), }", new Uint8Array(values.buffer, 4, 4)));
    expect((await readNpy(scalar)).shape).toEqual([]);
    await expectError(readNpy(write('paren.npy', npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (3), }", new Uint8Array(values.buffer)))), 'E_FORMAT', '1-tuple');
  });
});

// ---------------------------------------------------------------------------------------------
describe('bad arguments to the io functions', () => {
  it('every public io function answers bad arguments with a PairpickError naming them', async () => {
    const rng = testRng();
    const m = randomMatrix(rng, 9, 4);
    const path = tmpFile('args.npy');
    await writeNpy(path, m, [9, 4]);
    const any = (v: unknown) => v as never;

    await expectError(openSource(any(undefined)), 'E_OPTION', 'openSource', 'path');
    await expectError(openSource(any(null)), 'E_OPTION', 'openSource', 'path');
    await expectError(openSource(any(42)), 'E_OPTION', 'openSource', 'path');
    await expectError(openSource(any([path, 3])), 'E_OPTION', 'path [1]');
    await expectError(openSource(''), 'E_OPTION', 'path');
    await expectError(openSource(path, any('fast')), 'E_OPTION', 'options');
    await expectError(openSource(path, any({ dim: '4' })), 'E_OPTION', "'dim'");
    await expectError(openSource(path, any({ dim: 2 ** 60 })), 'E_OPTION', "'dim'");
    await expectError(openSource(path, any({ dtype: 'f32' })), 'E_OPTION', "'dtype'");
    await expectError(openSource(path, any({ tensor: 3 })), 'E_OPTION', "'tensor'");
    await expectError(openSource(path, any({ mmap: 'yes' })), 'E_OPTION', "'mmap'");
    await expectError(openSource(path, any({ signal: true })), 'E_OPTION', "'signal'");
    await expectError(openSource(path, any({ bogus: 1 })), 'E_OPTION', "'bogus'");

    const s = await openSource(path, any(null)); // null options = none
    await expectError(s.read(any('0'), 1), 'E_OPTION', 'read()', 'start');
    await expectError(s.read(0, any(undefined)), 'E_OPTION', 'read()', 'count');
    await expectError(s.read(-1, 1), 'E_SHAPE', 'start');
    await expectError(s.read(0, 1.5), 'E_SHAPE', 'count');
    await expectError(s.read(8, 2), 'E_SHAPE', 'out of range');
    await expectError(s.readRows(any(null)), 'E_OPTION', 'readRows()', 'indices');
    await expectError(s.readRows(any(5)), 'E_OPTION', 'indices');
    await expectError(s.readRows(any(new BigInt64Array(2))), 'E_OPTION', 'indices');
    await expectError(s.readRows(any(['1'])), 'E_SHAPE', 'row index "1"');
    await expectError(s.readRows([0, 9]), 'E_SHAPE', 'row index 9', 'position 1');
    await expectError(() => s.view?.(any(null), 1), 'E_OPTION', 'view()', 'start');
    await expectError(() => s.chunks(0), 'E_OPTION', 'rowsPerChunk');
    await expectError(() => s.chunks(any('2')), 'E_OPTION', 'rowsPerChunk');
    await expectError(() => s.chunks(2, any({ start: -1 })), 'E_OPTION', "'start'");
    await expectError(() => s.chunks(2, any({ start: 5, end: 3 })), 'E_SHAPE', 'before start');
    await expectError(() => s.chunks(2, any({ signal: 'stop' })), 'E_OPTION', "'signal'");
    await expectError(() => s.chunks(2, any(7)), 'E_OPTION', 'options');

    await expectError(checkFinite(any(null)), 'E_OPTION', 'checkFinite', 'source');
    await expectError(checkFinite(any({ rows: 3 })), 'E_OPTION', 'source');
    await expectError(checkFinite(s, any({ rowsPerChunk: 0 })), 'E_OPTION', 'rowsPerChunk');
    await expectError(checkFinite(s, any({ onProgress: 'log' })), 'E_OPTION', 'onProgress');
    await expectError(checkFinite(s, any({ signal: {} })), 'E_OPTION', "'signal'");
    await s.close();

    await expectError(openPool(any(null)), 'E_OPTION', 'openPool');
    await expectError(openPool({ a: path }, any({ signal: 1 })), 'E_OPTION', 'openPool', "'signal'");
    await expectError(openPool({ a: path }, any({ dim: -2 })), 'E_OPTION', "'dim'");
    await expectError(openPool({ a: any({ data: [1, 2], dim: 1 }) }), 'E_OPTION', 'Float32Array');
    await expectError(openPool({ a: any({ data: m, dim: 4, extra: 1 }) }), 'E_OPTION', "'extra'");
    await expectError(openPool({ a: any({ path: 7 }) }), 'E_OPTION', 'path');

    const out = tmpFile('out.npy');
    await expectError(writeNpy(any(undefined), m, [9, 4]), 'E_OPTION', 'writeNpy', 'path');
    await expectError(writeNpy(out, any([1, 2]), [2]), 'E_OPTION', 'writeNpy', 'data');
    await expectError(writeNpy(out, m, any('9x4')), 'E_SHAPE', 'shape');
    await expectError(writeNpy(out, m, any([9n, 4n])), 'E_SHAPE', 'shape', '9n');
    await expectError(writeNpy(out, m, [9, 4], any({ dtype: 'float64' })), 'E_OPTION', "'dtype'");
    await expectError(writeNpy(out, m, [9, 4], any({ signal: 'x' })), 'E_OPTION', "'signal'");
    await expectError(openNpyWriter(out, any(undefined)), 'E_OPTION', "'dim'");
    await expectError(openNpyWriter(out, any({ dim: '4' })), 'E_OPTION', "'dim'");
    await expectError(openNpyWriter(out, any({ dim: 4, rows: -1 })), 'E_OPTION', "'rows'");
    await expectError(openNpyWriter(out, any({ dim: 4, dtype: 'int8' })), 'E_OPTION', "'dtype'");
    await expectError(openNpyWriter(any(null), { dim: 4 }), 'E_OPTION', 'path');
    const w = await openNpyWriter(out, { dim: 4 });
    await expectError(w.append(any([1, 2, 3, 4])), 'E_OPTION', 'append()');
    await w.abort();
    await expectError(readNpy(any(undefined)), 'E_OPTION', 'readNpy', 'path');
    await expectError(readNpy(''), 'E_OPTION', 'readNpy');
    await expectError(writeSafetensors(out, any(null)), 'E_OPTION', 'tensors');
    await expectError(writeSafetensors(out, any({ t: 1 })), 'E_OPTION', "'t'");
    await expectError(writeSafetensors(out, { t: { data: m, shape: [9, 4] } }, any({ a: 1 })), 'E_OPTION', 'metadata');
    await expectError(writeSafetensors(out, { __metadata__: { data: m, shape: [9, 4] } }), 'E_OPTION', '__metadata__');
    await expectError(writeSafetensors(out, { '\ud800': { data: m, shape: [9, 4] } }), 'E_OPTION', 'well-formed');
    await expectError(() => memorySource(any([1, 2]), 1), 'E_OPTION', 'Float32Array');
    await expectError(() => memorySource(m, 4, any(5)), 'E_OPTION', 'name');
    await expectError(() => naturalCompare(any(1), 'a'), 'E_OPTION', 'naturalCompare');
  });
});
