// Standing fuzz of the file readers: a few hundred mutated .npy and .safetensors files per run
// (seeded: replay with PAIRPICK_TEST_SEED), each opened through both read paths (memory map and
// positional reads) and readNpy. Every file must be either read with exactly the values the
// reference decodes, or refused with a PairpickError naming it — never another exception, never
// a hang, and never accepted when the reference (test/reference/, written from the format specs)
// refuses it. scripts/fuzz-io.mjs runs the same cases by the ten thousand against numpy itself.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { PairpickError } from '../src/errors.js';
import { openSource, readNpy } from '../src/io/index.js';
import { nativeMmap } from '../src/io/mmap.js';
import { fuzzCase } from './helpers/fuzz-cases.js';
import { TEST_SEED } from './helpers/random.js';
import { npyReference, npyReferenceMatrix } from './reference/npy.js';
import { safetensorsReference, safetensorsReferenceMatrix } from './reference/safetensors.js';

const CASES = 400;
const tmp = mkdtempSync(join(tmpdir(), 'pairpick-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const modes = nativeMmap() !== undefined ? [true, false] : [false];

type Attempt = { ok: true; rows: number; dim: number; values: Float32Array } | { ok: false; error: unknown };

/** Rejects after `ms`, so a hang fails the case instead of the whole run. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function openAndRead(path: string, tensor: string | undefined, mmap: boolean): Promise<Attempt> {
  try {
    const s = await openSource(path, { mmap, ...(tensor === undefined ? {} : { tensor }) });
    try {
      const values = await s.read(0, s.rows);
      // A gather too (the other native entry point), checked against the plain read.
      const order = Array.from({ length: s.rows }, (_, i) => s.rows - 1 - i);
      const gathered = await s.readRows(order);
      for (let r = 0; r < s.rows; r++) {
        for (let j = 0; j < s.dim; j++) {
          if (!Object.is(gathered[r * s.dim + j], values[order[r] * s.dim + j])) throw new Error(`${path}: readRows disagrees with read at row ${order[r]}`);
        }
      }
      return { ok: true, rows: s.rows, dim: s.dim, values };
    } finally {
      await s.close();
    }
  } catch (error) {
    return { ok: false, error };
  }
}

function expectRefusal(error: unknown, path: string, where: string): void {
  expect(error, `${where}: threw ${String(error)}`).toBeInstanceOf(PairpickError);
  expect((error as Error).message, where).toContain(path);
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

describe('fuzz: mutated .npy and .safetensors files on every read path', () => {
  it(`${CASES} cases: read exactly or refused with a PairpickError, never accepted when the reference refuses`, async () => {
    const counts = { accepted: 0, refused: 0, stricterThanReference: 0, readNpyAccepted: 0 };
    for (let k = 0; k < CASES; k++) {
      const c = fuzzCase(TEST_SEED, k);
      const path = join(tmp, `case-${k}.${c.kind}`);
      writeFileSync(path, c.bytes);
      const where = (how: string) => `case ${k} [${c.mutation}] via ${how} (replay with PAIRPICK_TEST_SEED=${TEST_SEED})`;
      const verdict = c.kind === 'npy' ? npyReference(c.bytes) : safetensorsReference(c.bytes);
      const matrix = c.kind === 'npy' ? npyReferenceMatrix(c.bytes, verdict as ReturnType<typeof npyReference>) : safetensorsReferenceMatrix(c.bytes, verdict as ReturnType<typeof safetensorsReference>, c.tensor);
      for (const mmap of modes) {
        const how = mmap ? 'mmap' : 'positional reads';
        const got = await within(openAndRead(path, c.tensor, mmap), 10_000, where(how));
        if (got.ok) {
          counts.accepted++;
          expect(verdict.ok, `${where(how)}: accepted, but the reference refuses: ${verdict.ok ? '' : verdict.reason}`).toBe(true);
          expect(matrix, `${where(how)}: accepted a file whose tensor is not a 2-D float32/float16 matrix`).toBeDefined();
          expect([got.rows, got.dim], where(how)).toEqual([matrix!.rows, matrix!.dim]);
          expect(sameValues(got.values, matrix!.values), `${where(how)}: values differ from the reference's`).toBe(true);
        } else {
          counts.refused++;
          expectRefusal(got.error, path, where(how));
          if (matrix) counts.stricterThanReference++;
          // An untouched file of a kind pairpick reads by design must be read.
          if (c.mutation === 'none' && c.canonical) expect.fail(`${where(how)}: refused a valid file: ${(got.error as Error).message}`);
        }
      }
      if (c.kind === 'npy') {
        const v = verdict as ReturnType<typeof npyReference>;
        let array: Awaited<ReturnType<typeof readNpy>> | undefined;
        try {
          array = await within(readNpy(path), 10_000, where('readNpy'));
        } catch (e) {
          expectRefusal(e, path, where('readNpy'));
        }
        if (array) {
          counts.readNpyAccepted++;
          expect(v.ok, `${where('readNpy')}: accepted, but the reference refuses: ${v.ok ? '' : v.reason}`).toBe(true);
          if (!v.ok) continue;
          expect(array.shape, where('readNpy')).toEqual(v.shape);
          const stored = c.bytes.subarray(v.dataOffset);
          if (v.itemSize === 8) {
            const wide = new BigInt64Array(stored.slice(0, array.data.length * 8).buffer);
            for (let i = 0; i < wide.length; i++) expect(BigInt(array.data[i]), where('readNpy')).toBe(wide[i]);
          } else {
            const raw = new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
            expect(Buffer.from(raw).equals(Buffer.from(stored.subarray(0, raw.length))), `${where('readNpy')}: values differ`).toBe(true);
          }
        }
      }
    }
    // eslint-disable-next-line no-console
    console.log(`fuzz-io: ${CASES} cases × ${modes.length} paths: ${counts.accepted} reads accepted, ${counts.refused} refused (${counts.stricterThanReference} of them readable by the reference); readNpy accepted ${counts.readNpyAccepted}`);
    // The generator must exercise both outcomes, or the test proves nothing.
    expect(counts.accepted).toBeGreaterThan(CASES / 20);
    expect(counts.refused).toBeGreaterThan(CASES / 4);
  });
});
