// Item ids and metadata on the command line: --ids FILE[:COLUMN], --meta FILE, --meta-columns,
// --dataset-dir DIR (the LAION layout), --labeled given as ids; and the picks' ids and columns in
// each output format (JSON, CSV, record .npy, lines on stdout).
import { stat } from 'node:fs/promises';
import { extname, join } from 'node:path';

import { PairpickError } from '../errors.js';
import { readJsonFile, readTextFile } from '../io/files.js';
import { ID_COLUMNS, readItems, readTable, type ItemRows, type Items, type ItemsSpec, type TableValue } from '../io/table.js';
import { writeNpyRecords, type NpyRecordField } from '../io/write.js';
import type { FlagSpec, ParsedArgs } from './args.js';
import type { ModalityInputs, NamedPath } from './inputs.js';

export const ITEM_FLAGS: Record<string, FlagSpec> = {
  ids: {
    type: 'string',
    value: 'FILE[:COLUMN]',
    group: 'Items',
    default: 'none',
    help:
      'one id per pool row, reported next to each pick: a .txt file (one id a line), a .csv (header row), .jsonl or .parquet file, or a folder of ' +
      'such shards (natural name order, like embedding shards); COLUMN defaults to id, key, url, image_path, path, file or filename, whichever it has first',
  },
  meta: {
    type: 'string',
    value: 'FILE',
    group: 'Items',
    default: 'none',
    help: 'a manifest (.csv, .jsonl, .parquet or a folder of shards) with one row per pool row; its columns are reported next to each pick',
  },
  'meta-columns': { type: 'string', value: 'A,B', group: 'Items', default: 'every column', help: 'the --meta columns to report, comma-separated' },
  'dataset-dir': {
    type: 'string',
    value: 'DIR',
    group: 'Items',
    default: 'none',
    help:
      'a dataset in the LAION layout instead of --modality: DIR/img_emb/ and DIR/text_emb/ become modalities image and text, DIR/metadata/ gives the ids ' +
      '(its key column unless --ids names another) and, unless --meta says otherwise, its caption and url columns',
  },
};

/** The LAION layout: embedding folders (modality name → folder) and the metadata folder. */
const DATASET_MODALITIES: Record<string, string> = { image: 'img_emb', text: 'text_emb' };
const DATASET_METADATA = 'metadata';
const DATASET_META_COLUMNS = ['caption', 'url'];

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** What --dataset-dir DIR stands for: the modality inputs and, when DIR/metadata/ exists, the manifest. */
export async function datasetInputs(dir: string): Promise<{ inputs: ModalityInputs; metadata?: string }> {
  if (!(await isDirectory(dir))) throw new PairpickError('E_IO', `--dataset-dir ${dir}: no such folder`);
  const pool: ModalityInputs['pool'] = {};
  for (const [name, folder] of Object.entries(DATASET_MODALITIES)) {
    if (await isDirectory(join(dir, folder))) pool[name] = { path: join(dir, folder) };
  }
  const names = Object.keys(pool);
  if (names.length === 0) {
    throw new PairpickError('E_IO', `--dataset-dir ${dir}: found none of ${Object.values(DATASET_MODALITIES).map((f) => `${f}/`).join(', ')} (the LAION layout: img_emb/, text_emb/, metadata/)`);
  }
  const metadata = join(dir, DATASET_METADATA);
  return { inputs: { pool, names }, ...((await isDirectory(metadata)) && { metadata }) };
}

/**
 * FILE[:COLUMN]: the whole text when it names an existing file or folder (paths may hold ':'),
 * else split at the last ':'.
 */
export async function splitColumn(text: string): Promise<{ path: string; column?: string }> {
  if (await stat(text).then(() => true, () => false)) return { path: text };
  const colon = text.lastIndexOf(':');
  if (colon <= 0 || colon === text.length - 1) return { path: text };
  return { path: text.slice(0, colon), column: text.slice(colon + 1) };
}

/** The manifests the item flags name (--dataset-dir's metadata filling in what is not given). */
export async function itemsSpec(args: ParsedArgs, datasetMetadata?: string): Promise<ItemsSpec> {
  const spec: ItemsSpec = {};
  const ids = args.string('ids');
  if (ids !== undefined) spec.ids = await splitColumn(ids);
  else if (datasetMetadata) {
    // The dataset's ids when its metadata has an id column (LAION's is `key`); none otherwise.
    const names = (await readTable(datasetMetadata, { columns: [] })).columnNames;
    const column = ID_COLUMNS.find((c) => names.includes(c));
    if (column) spec.ids = { path: datasetMetadata, column };
  }
  const metaColumns = args.string('meta-columns')?.split(',').map((c) => c.trim());
  if (metaColumns?.some((c) => c === '')) throw new PairpickError('E_OPTION', `--meta-columns ${args.string('meta-columns')}: a column name is empty`);
  const meta = args.string('meta');
  if (meta !== undefined) spec.meta = { path: meta, columns: metaColumns };
  else if (metaColumns && datasetMetadata) spec.meta = { path: datasetMetadata, columns: metaColumns };
  else if (metaColumns) throw new PairpickError('E_OPTION', '--meta-columns needs --meta FILE (or --dataset-dir)');
  return spec;
}

/** Reads the item manifests for a pool of `rows` rows; for --dataset-dir, the metadata's caption/url columns by default. */
export async function readItemFlags(spec: ItemsSpec, rows: number, poolName: string, signal?: AbortSignal, datasetMetadata?: string): Promise<Items | undefined> {
  let meta = spec.meta;
  if (!meta && datasetMetadata) {
    const names = (await readTable(datasetMetadata, { columns: [], signal })).columnNames;
    const columns = DATASET_META_COLUMNS.filter((c) => names.includes(c));
    if (columns.length) meta = { path: datasetMetadata, columns };
  }
  if (!spec.ids && !meta) return undefined;
  return readItems({ ...spec, meta }, rows, poolName, { signal, labels: { ids: '--ids', meta: '--meta' } });
}

/** The manifest files, for the check that no output overwrites an input. */
export function itemFiles(spec: ItemsSpec): NamedPath[] {
  const out: NamedPath[] = [];
  if (spec.ids) out.push({ label: `--ids ${spec.ids.path}`, path: spec.ids.path });
  if (spec.meta) out.push({ label: `--meta ${spec.meta.path}`, path: spec.meta.path });
  return out;
}

/** --labeled entries as ids (with --ids): .json (an array of ids), .csv/.txt (one id a line). */
export function labeledRows(entries: readonly unknown[], items: Items, path: string): number[] {
  return Array.from(items.rowsOf(entries, `--labeled ${path}`));
}

// ---- outputs -------------------------------------------------------------------------------

/** One CSV field, quoted when it holds a comma, quote or line break (RFC 4180). */
function csvField(v: TableValue | number | undefined): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One stdout field: tabs, line breaks and backslashes escaped so a pick stays one line. */
function lineField(v: TableValue | number | undefined): string {
  const s = v === null || v === undefined ? '' : String(v);
  return s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

function fieldNames(rows: ItemRows): string[] {
  return ['index', ...(rows.ids ? ['id'] : []), ...Object.keys(rows.columns)];
}

function fieldValues(indices: ArrayLike<number>, rows: ItemRows, k: number): (TableValue | number)[] {
  return [indices[k], ...(rows.ids ? [rows.ids[k]] : []), ...Object.values(rows.columns).map((c) => c[k])];
}

/** The picks as CSV: a header row (index, id, the columns), then one row per pick. */
export function picksCsv(indices: ArrayLike<number>, rows: ItemRows): string {
  const lines = [fieldNames(rows).map(csvField).join(',')];
  for (let k = 0; k < indices.length; k++) lines.push(fieldValues(indices, rows, k).map(csvField).join(','));
  return `${lines.join('\n')}\n`;
}

/** The picks as stdout lines: index, id and the columns, tab-separated (\t, \n and \\ escaped), no header. */
export function picksLines(indices: ArrayLike<number>, rows: ItemRows): string {
  let out = '';
  for (let k = 0; k < indices.length; k++) out += `${fieldValues(indices, rows, k).map(lineField).join('\t')}\n`;
  return out;
}

/** The picks as a record .npy: index (int32), id (text) and each column (float64 when all its values are numbers, else text). */
export async function writePicksNpy(path: string, indices: ArrayLike<number>, rows: ItemRows): Promise<void> {
  const fields: NpyRecordField[] = [{ name: 'index', type: 'int32', values: indices }];
  if (rows.ids) fields.push({ name: 'id', type: 'text', values: rows.ids });
  for (const [name, values] of Object.entries(rows.columns)) {
    if (fields.some((f) => f.name === name)) throw new PairpickError('E_OPTION', `--meta-columns: column '${name}' would clash with the '${name}' field of the .npy output; choose another output format`);
    if (values.every((v) => typeof v === 'number')) fields.push({ name, type: 'float64', values: values as number[] });
    else fields.push({ name, type: 'text', values: values.map((v) => (v === null ? '' : String(v))) });
  }
  await writeNpyRecords(path, fields);
}

/** A --labeled file of ids: .json (an array of strings or numbers), .csv/.txt (one id a line; blank lines skipped). */
export async function readIdFile(path: string): Promise<(string | number)[]> {
  const ext = extname(path).toLowerCase();
  if (ext !== '.json' && ext !== '.csv' && ext !== '.txt') {
    throw new PairpickError('E_OPTION', `--labeled ${path}: unknown extension '${ext}' (ids: use .json, .csv or .txt; row indices: .npy)`);
  }
  if (ext === '.json') {
    const value = await readJsonFile(path);
    if (!Array.isArray(value)) throw new PairpickError('E_FORMAT', `${path}: expected a JSON array of ids`);
    value.forEach((v, p) => {
      if (typeof v !== 'string' && typeof v !== 'number') throw new PairpickError('E_FORMAT', `${path}: element ${p} (${JSON.stringify(v)}) is not an id (a string or number)`);
    });
    return value as (string | number)[];
  }
  return (await readTextFile(path))
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
