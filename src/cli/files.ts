// Files the commands share: row-index lists (--labeled) and atomic text outputs.
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';

import { PairpickError } from '../errors.js';
import { readJsonFile, readTextFile } from '../io/files.js';
import { readNpy } from '../io/npy.js';

/** Reads a list of row indices: .json (an array), .csv/.txt (one per line), .npy (integers). */
export async function readIndexFile(path: string): Promise<number[]> {
  const ext = extname(path).toLowerCase();
  if (ext === '.npy') {
    const a = await readNpy(path);
    if (a.dtype !== 'int32') throw new PairpickError('E_FORMAT', `${path}: labelled indices must be integers (the file holds ${a.dtype})`);
    if (a.shape.length > 1 && a.shape.filter((d) => d !== 1).length > 1) {
      throw new PairpickError('E_FORMAT', `${path}: expected a 1-D array of indices, got shape (${a.shape.join(', ')})`);
    }
    return Array.from(a.data as Int32Array);
  }
  if (ext === '.json') {
    let value = await readJsonFile(path);
    // A selection document (`pairpick select --out picks.json`) carries its indices in `indices`.
    if (value && typeof value === 'object' && !Array.isArray(value) && Array.isArray((value as { indices?: unknown }).indices)) value = (value as { indices: unknown[] }).indices;
    if (!Array.isArray(value)) throw new PairpickError('E_FORMAT', `${path}: expected a JSON array of row indices (or a selection document with 'indices')`);
    value.forEach((v, p) => {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new PairpickError('E_FORMAT', `${path}: element ${p} (${JSON.stringify(v)}) is not an integer`);
    });
    return value as number[];
  }
  if (ext === '.csv' || ext === '.txt') {
    const out: number[] = [];
    (await readTextFile(path)).split(/\r?\n/).forEach((line, n) => {
      const t = line.trim();
      if (t === '') return;
      if (!/^[+-]?\d+$/.test(t)) throw new PairpickError('E_FORMAT', `${path}:${n + 1}: '${t}' is not an integer row index`);
      out.push(Number(t));
    });
    return out;
  }
  throw new PairpickError('E_OPTION', `--labeled ${path}: unknown extension '${ext}' (use .json, .csv, .txt or .npy)`);
}

/** Writes text to `path` atomically: a temporary file in the same folder, renamed over it when complete. */
export async function writeTextAtomically(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { flush: true });
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new PairpickError('E_IO', `${path}: cannot write: ${(e as Error).message}`, { cause: e });
  }
}

