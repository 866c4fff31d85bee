// Class labels for the downstream classifiers: one label per pool row, −1 (or an empty line /
// null) for an unlabelled row. Formats: .npy of integers; .json, an array of integers, strings or
// nulls; .csv / .txt, one label per line. Strings are class names, mapped to ids in order of
// their sorted (natural) order so the mapping does not depend on row order, and kept so that
// predictions can be reported as names.
import { extname } from 'node:path';
import { PairpickError } from '../errors.js';
import { readJsonFile, readTextFile } from './files.js';
import { readNpy } from './npy.js';
import { naturalCompare } from './shards.js';

/** Labels of a pool: `ids[i]` = class id of row i, −1 when unlabelled. */
export interface Labels {
  ids: Int32Array;
  /** Class names (index = id) when the labels were strings. */
  classNames?: string[];
}

const UNLABELLED = new Set(['', '-1']);

function fail(path: string, what: string): never {
  throw new PairpickError('E_FORMAT', `${path}: ${what}`);
}

/** Turns one label per row (numbers, numeric strings, class names, null/'' = unlabelled) into ids. */
function fromValues(values: readonly unknown[], path: string): Labels {
  const isInteger = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
  const numeric = (v: unknown) => typeof v === 'string' && /^[+-]?\d+$/.test(v.trim());
  const blank = (v: unknown) => v === null || (typeof v === 'string' && UNLABELLED.has(v.trim())) || v === -1;
  const present = values.filter((v) => !blank(v));
  const fraction = values.findIndex((v) => typeof v === 'number' && !Number.isInteger(v));
  if (fraction >= 0) fail(path, `row ${fraction}: label ${values[fraction]} is not an integer class id`);
  if (present.every((v) => isInteger(v) || numeric(v))) {
    const ids = new Int32Array(values.length);
    values.forEach((v, i) => {
      if (blank(v)) return void (ids[i] = -1);
      const n = typeof v === 'number' ? v : Number((v as string).trim());
      if (n < 0 || n > 2 ** 31 - 1) fail(path, `row ${i}: label ${n} is out of range (class ids are integers ≥ 0; −1 = unlabelled)`);
      ids[i] = n;
    });
    return { ids };
  }
  const bad = values.findIndex((v) => !blank(v) && typeof v !== 'string');
  if (bad >= 0) fail(path, `row ${bad}: label ${JSON.stringify(values[bad])} is neither a class name nor an integer (mixed label types)`);
  const names = [...new Set(present.map((v) => (v as string).trim()))].sort(naturalCompare);
  const index = new Map(names.map((n, i) => [n, i]));
  const ids = Int32Array.from(values, (v) => (blank(v) ? -1 : index.get((v as string).trim())!));
  return { ids, classNames: names };
}

/**
 * Reads labels from `.npy` (integers), `.json` (an array), `.csv` / `.txt` (one per line; a
 * single header line is not guessed — every line is a label). `E_FORMAT` naming the file and row
 * for anything else.
 */
export async function readLabels(path: string): Promise<Labels> {
  if (typeof path !== 'string' || path.length === 0) throw new PairpickError('E_OPTION', `readLabels: argument 'path' must be a non-empty string`);
  const ext = extname(path).toLowerCase();
  if (ext === '.npy') {
    const a = await readNpy(path);
    if (a.dtype !== 'int32') fail(path, `labels must be integers, the array holds ${a.dtype}`);
    if (a.shape.length !== 1 && !(a.shape.length === 2 && a.shape[1] === 1)) fail(path, `labels must be a vector, the array has shape (${a.shape.join(', ')})`);
    const ids = a.data as Int32Array;
    for (let i = 0; i < ids.length; i++) if (ids[i] < -1) fail(path, `row ${i}: label ${ids[i]} is out of range (class ids are ≥ 0; −1 = unlabelled)`);
    return { ids: Int32Array.from(ids) };
  }
  if (ext === '.json') {
    const v = await readJsonFile(path);
    if (!Array.isArray(v)) fail(path, 'labels must be a JSON array (one label per row)');
    return fromValues(v, path);
  }
  if (ext === '.csv' || ext === '.txt') {
    const lines = (await readTextFile(path)).split(/\r?\n/);
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return fromValues(lines, path);
  }
  throw new PairpickError('E_FORMAT', `${path}: unknown labels format '${ext || '(none)'}' (use .npy, .json, .csv or .txt)`);
}

/** A train/test split of a pool's rows (ascending row indices). */
export interface Split {
  train: Int32Array;
  test: Int32Array;
}

/**
 * Reads a train/test split, one entry per row, in the formats of `readLabels`: 0 or 'train', 1 or
 * 'test'. `E_SHAPE` when the count is not `rows`, `E_FORMAT` naming the row of any other value.
 */
export async function readSplit(path: string, rows: number): Promise<Split> {
  const { ids, classNames } = await readLabels(path);
  if (ids.length !== rows) throw new PairpickError('E_SHAPE', `${path}: the split has ${ids.length} entries but the pool has ${rows} rows (one per row)`);
  const train: number[] = [];
  const test: number[] = [];
  ids.forEach((id, i) => {
    const value = classNames ? (classNames[id] ?? '') : String(id);
    if (value === '0' || value === 'train') train.push(i);
    else if (value === '1' || value === 'test') test.push(i);
    else fail(path, `row ${i} is '${id === -1 ? '' : value}', not 0/train or 1/test`);
  });
  return { train: Int32Array.from(train), test: Int32Array.from(test) };
}
