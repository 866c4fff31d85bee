// Item manifests: the ids, paths, URLs and captions that belong to the rows of a pool, read from
// .txt (one value a line), .csv (header row), .jsonl (one object a line) or .parquet files, or a
// folder of such shards concatenated in natural order (the order embedding shards use). Only the
// columns asked for are kept in memory.
import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';

import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

import { PairpickError, throwIfAborted } from '../errors.js';
import { checkPath, checkSignal, describeValue, optionsObject } from './args.js';
import { readTextFile, requireRegularFile } from './files.js';
import { naturalCompare } from './shards.js';

/** One value of a manifest column: text, a number, a boolean, or null (missing). */
export type TableValue = string | number | boolean | null;

/** Manifest formats, by extension. */
export const TABLE_EXTENSIONS = ['.txt', '.csv', '.jsonl', '.parquet'] as const;

/** The one column of a .txt manifest (one value a line). */
export const TXT_COLUMN = 'id';

/** Columns tried, in order, when ids are asked for without naming a column (LAION's metadata has `key` and `url`). */
export const ID_COLUMNS = ['id', 'key', 'url', 'image_path', 'path', 'file', 'filename'] as const;

/** A manifest read from one file or a folder of shards. */
export interface Table {
  /** Rows, summed over the files. */
  readonly rows: number;
  /** The files, in row order. */
  readonly files: readonly string[];
  /** Rows of each file. */
  readonly fileRows: readonly number[];
  /** The path as given (for messages). */
  readonly name: string;
  /** Every column the files have (the first file's, which every other must have too). */
  readonly columnNames: readonly string[];
  /** The columns read: name → one value per row. */
  readonly columns: Readonly<Record<string, TableValue[]>>;
}

/** Options of {@link readTable}. */
export interface ReadTableOptions {
  /** Columns to read (default: every column). A column no file has is `E_OPTION` listing those there are. */
  columns?: readonly string[];
  /** Cancels between files with `E_ABORTED`. */
  signal?: AbortSignal;
}

/**
 * Reads a manifest: `.txt` (one value a line, column {@link TXT_COLUMN}), `.csv` (RFC 4180, a
 * header row naming the columns), `.jsonl` (one JSON object a line; a key missing on a line is
 * null) or `.parquet` (any codec; INT64 values that fit a double become numbers, others their
 * decimal text), or a folder of files of one of these kinds, concatenated in natural name order.
 * Errors: `E_IO` (missing, unreadable, an empty folder), `E_FORMAT` (malformed, naming the file
 * and line; shards of different kinds or columns), `E_OPTION` (a column that is not there).
 */
export async function readTable(path: string, options?: ReadTableOptions): Promise<Table> {
  const where = 'readTable';
  checkPath(path, where);
  const o = optionsObject(options, ['columns', 'signal'], where);
  const signal = checkSignal(o.signal, where);
  if (o.columns !== undefined && !(Array.isArray(o.columns) && o.columns.every((c) => typeof c === 'string' && c.length > 0))) {
    throw new PairpickError('E_OPTION', `${where}: option 'columns' must be an array of column names (got ${describeValue(o.columns)})`);
  }
  const files = await tableFiles(path);
  let columnNames: string[] | undefined;
  const wanted = o.columns ? [...new Set(o.columns)] : undefined;
  const columns: Record<string, TableValue[]> = {};
  let rows = 0;
  const fileRows: number[] = [];
  for (const file of files) {
    throwIfAborted(signal, `reading ${path}`);
    const part = await readTableFile(file, wanted ?? columnNames);
    if (columnNames === undefined) {
      columnNames = part.columnNames;
      for (const c of wanted ?? []) {
        if (!columnNames.includes(c)) {
          throw new PairpickError('E_OPTION', `${file} has no column '${c}' (its columns: ${columnNames.join(', ') || 'none'})`);
        }
      }
      for (const c of wanted ?? columnNames) columns[c] = [];
    } else {
      const missing = (wanted ?? columnNames).filter((c) => !part.columnNames.includes(c));
      if (missing.length) throw new PairpickError('E_FORMAT', `${file} has no column '${missing[0]}', which ${files[0]} has (shards of one manifest share their columns)`);
    }
    for (const c of Object.keys(columns)) {
      const values = part.columns[c];
      for (let i = 0; i < values.length; i++) columns[c].push(values[i]);
    }
    rows += part.rows;
    fileRows.push(part.rows);
  }
  return { rows, files, fileRows, name: path, columnNames: columnNames ?? [], columns };
}

/** The files of a manifest path: the file itself, or a folder's manifest files of one kind, natural-sorted. */
async function tableFiles(path: string): Promise<string[]> {
  let s;
  try {
    s = await stat(path);
  } catch (e) {
    throw new PairpickError('E_IO', `${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`, { cause: e });
  }
  if (!s.isDirectory()) {
    requireRegularFile(path, s); // a named pipe would block a read forever
    kindOf(path);
    return [path];
  }
  const names: string[] = [];
  for (const n of await readdir(path)) {
    if (n.startsWith('.') || !(TABLE_EXTENSIONS as readonly string[]).includes(extname(n).toLowerCase())) continue;
    if ((await stat(join(path, n))).isFile()) names.push(n);
  }
  if (names.length === 0) throw new PairpickError('E_IO', `${path}: the folder holds no manifest files (${TABLE_EXTENSIONS.join(', ')})`);
  const kinds = new Set(names.map((n) => extname(n).toLowerCase()));
  if (kinds.size > 1) throw new PairpickError('E_FORMAT', `${path}: the folder mixes manifest kinds (${[...kinds].join(', ')}); keep one kind per folder`);
  return names.sort(naturalCompare).map((n) => join(path, n));
}

type Kind = (typeof TABLE_EXTENSIONS)[number];

function kindOf(file: string): Kind {
  const ext = extname(file).toLowerCase();
  if (!(TABLE_EXTENSIONS as readonly string[]).includes(ext)) {
    throw new PairpickError('E_OPTION', `${file}: unknown manifest extension '${ext}' (use ${TABLE_EXTENSIONS.join(', ')})`);
  }
  return ext as Kind;
}

interface TablePart {
  rows: number;
  columnNames: string[];
  columns: Record<string, TableValue[]>;
}

async function readTableFile(file: string, wanted: readonly string[] | undefined): Promise<TablePart> {
  const kind = kindOf(file);
  if (kind === '.parquet') return readParquet(file, wanted);
  const text = await readTextFile(file);
  if (kind === '.txt') return readTxt(file, text, wanted);
  if (kind === '.csv') return readCsv(file, text, wanted);
  return readJsonl(file, text, wanted);
}


/** Lines of a text file without the final newline's empty remainder. */
function linesOf(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function pick(file: string, all: string[], wanted: readonly string[] | undefined): string[] {
  for (const c of wanted ?? []) if (!all.includes(c)) throw new PairpickError('E_OPTION', `${file} has no column '${c}' (its columns: ${all.join(', ') || 'none'})`);
  return [...(wanted ?? all)];
}

function readTxt(file: string, text: string, wanted: readonly string[] | undefined): TablePart {
  pick(file, [TXT_COLUMN], wanted);
  const lines = linesOf(text);
  const empty = lines.findIndex((l) => l.trim() === '');
  if (empty >= 0) throw new PairpickError('E_FORMAT', `${file}:${empty + 1}: empty line (one value a line; every row needs one)`);
  return { rows: lines.length, columnNames: [TXT_COLUMN], columns: { [TXT_COLUMN]: lines.map((l) => l.trim()) } };
}

/** RFC 4180 records: fields separated by commas, quoted fields may hold commas, quotes ("") and newlines. */
function csvRecords(file: string, text: string): { fields: string[]; line: number }[] {
  const records: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let start = 1;
  let i = 0;
  let quotedField = false;
  const n = text.length;
  const endRecord = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '' && !quotedField)) records.push({ fields, line: start });
    fields = [];
    field = '';
    quotedField = false;
  };
  while (i < n) {
    const c = text[i];
    if (c === '"' && field === '' && !quotedField) {
      quotedField = true;
      i++;
      const open = line;
      for (;;) {
        if (i >= n) throw new PairpickError('E_FORMAT', `${file}:${open}: a quoted field is never closed`);
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
        throw new PairpickError('E_FORMAT', `${file}:${line}: text after a closing quote (a quote inside a field is written "")`);
      }
      continue;
    }
    if (c === ',') {
      fields.push(field);
      field = '';
      quotedField = false;
      i++;
    } else if (c === '\n' || c === '\r') {
      endRecord();
      if (c === '\r' && text[i + 1] === '\n') i++;
      i++;
      line++;
      start = line;
    } else {
      if (c === '"') throw new PairpickError('E_FORMAT', `${file}:${line}: a quote inside an unquoted field (quote the field and write "")`);
      field += c;
      i++;
    }
  }
  if (field !== '' || fields.length || quotedField) endRecord();
  return records;
}

function readCsv(file: string, text: string, wanted: readonly string[] | undefined): TablePart {
  const records = csvRecords(file, text);
  if (records.length === 0) throw new PairpickError('E_FORMAT', `${file}: empty (a .csv manifest starts with a header row naming its columns)`);
  const header = records[0].fields.map((h) => h.trim());
  header.forEach((h, k) => {
    if (h === '') throw new PairpickError('E_FORMAT', `${file}:1: column ${k + 1} of the header has no name`);
    if (header.indexOf(h) !== k) throw new PairpickError('E_FORMAT', `${file}:1: column '${h}' appears twice in the header`);
  });
  const names = pick(file, header, wanted);
  const at = names.map((c) => header.indexOf(c));
  const columns: Record<string, TableValue[]> = Object.fromEntries(names.map((c) => [c, []]));
  for (const r of records.slice(1)) {
    if (r.fields.length !== header.length) {
      throw new PairpickError('E_FORMAT', `${file}:${r.line}: ${r.fields.length} fields, the header has ${header.length}`);
    }
    names.forEach((c, k) => columns[c].push(r.fields[at[k]]));
  }
  return { rows: records.length - 1, columnNames: header, columns };
}

function readJsonl(file: string, text: string, wanted: readonly string[] | undefined): TablePart {
  const lines = linesOf(text);
  const objects: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  lines.forEach((l, k) => {
    if (l.trim() === '') throw new PairpickError('E_FORMAT', `${file}:${k + 1}: empty line (one JSON object a line; every row needs one)`);
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch (e) {
      throw new PairpickError('E_FORMAT', `${file}:${k + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PairpickError('E_FORMAT', `${file}:${k + 1}: expected a JSON object, got ${describeValue(v)}`);
    objects.push(v as Record<string, unknown>);
    for (const key of Object.keys(v)) seen.add(key);
  });
  const names = pick(file, [...seen], wanted);
  const columns: Record<string, TableValue[]> = {};
  for (const c of names) {
    columns[c] = objects.map((obj, k) => {
      const v = obj[c];
      if (v === undefined || v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v ?? null;
      throw new PairpickError('E_FORMAT', `${file}:${k + 1}: '${c}' is ${describeValue(v)}; manifest values are text, numbers, booleans or null`);
    });
  }
  return { rows: objects.length, columnNames: [...seen], columns };
}

/** A parquet value as a manifest value: bigint → number when exact, else its decimal text; dates → ISO text; bytes → refused. */
function parquetValue(v: unknown, file: string, column: string, row: number): TableValue {
  if (v === undefined || v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v ?? null;
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  throw new PairpickError('E_FORMAT', `${file}: column '${column}', row ${row}: ${describeValue(v)} is not text, a number or a boolean`);
}

async function readParquet(file: string, wanted: readonly string[] | undefined): Promise<TablePart> {
  let buffer;
  let metadata;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw new PairpickError('E_IO', `${file}: cannot read: ${(e as Error).message}`, { cause: e });
    throw new PairpickError('E_FORMAT', `${file}: not a readable Parquet file (${(e as Error).message})`, { cause: e });
  }
  const all = parquetSchema(metadata).children.map((c) => c.element.name);
  const names = pick(file, all, wanted);
  const rows = Number(metadata.num_rows);
  const columns: Record<string, TableValue[]> = Object.fromEntries(names.map((c) => [c, []]));
  if (names.length && rows > 0) {
    let objects: Record<string, unknown>[];
    try {
      objects = await parquetReadObjects({ file: buffer, metadata, columns: names, compressors });
    } catch (e) {
      throw new PairpickError('E_FORMAT', `${file}: cannot decode columns ${names.join(', ')} (${(e as Error).message})`, { cause: e });
    }
    if (objects.length !== rows) throw new PairpickError('E_FORMAT', `${file}: the footer says ${rows} rows, the row groups hold ${objects.length}`);
    for (const c of names) columns[c] = objects.map((obj, k) => parquetValue(obj[c], file, c, k));
  }
  return { rows, columnNames: all, columns };
}

/** Ids read from a manifest column, as text. */
export interface ItemIds {
  /** One id per row (numbers as their decimal text). */
  readonly ids: string[];
  /** The column they came from. */
  readonly column: string;
  /** The manifest they came from. */
  readonly table: Table;
}

/**
 * Reads item ids: the `column` of a manifest (default: the first of {@link ID_COLUMNS} it has,
 * else its only column; else `E_OPTION` listing its columns). Missing values are `E_FORMAT`
 * naming the row.
 */
export async function readIds(path: string, options: { column?: string; signal?: AbortSignal } = {}): Promise<ItemIds> {
  const o = optionsObject(options, ['column', 'signal'], 'readIds');
  let column = o.column;
  if (column === undefined) {
    const head = await readTable(path, { columns: [], signal: o.signal });
    column = ID_COLUMNS.find((c) => head.columnNames.includes(c)) ?? (head.columnNames.length === 1 ? head.columnNames[0] : undefined);
    if (column === undefined) {
      throw new PairpickError('E_OPTION', `${path}: which column holds the ids? It has ${head.columnNames.join(', ')}; name one as ${basename(path)}:COLUMN`);
    }
  }
  const table = await readTable(path, { columns: [column], signal: o.signal });
  const ids = table.columns[column].map((v, row) => {
    if (v === null || v === '') throw new PairpickError('E_FORMAT', `${path}: row ${row}${locateRow(table, row)} has no id (column '${column}' is empty)`);
    return String(v);
  });
  return { ids, column, table };
}

/** " (file x, row r of that file)" for a row of a sharded table; empty for one file. */
export function locateRow(table: Pick<Table, 'files' | 'fileRows'>, row: number): string {
  if (table.files.length <= 1) return '';
  let start = 0;
  for (let f = 0; f < table.files.length; f++) {
    if (row < start + table.fileRows[f]) return ` (${table.files[f]}, row ${row - start} of that file)`;
    start += table.fileRows[f];
  }
  return '';
}

/**
 * Row numbers of `wanted` ids (in the given order), `E_OPTION` naming the first id that is not in
 * `ids` or that `ids` holds twice (then it names no single row).
 */
export function rowsOfIds(ids: readonly string[], wanted: readonly unknown[], what: string): Int32Array {
  const rowOf = new Map<string, number>();
  const twice = new Set<string>();
  ids.forEach((id, row) => {
    if (rowOf.has(id)) twice.add(id);
    else rowOf.set(id, row);
  });
  const out = new Int32Array(wanted.length);
  wanted.forEach((w, k) => {
    const id = typeof w === 'number' ? String(w) : w;
    if (typeof id !== 'string') throw new PairpickError('E_OPTION', `${what}: entry ${k} (${describeValue(w)}) is not an id`);
    const row = rowOf.get(id);
    if (row === undefined) throw new PairpickError('E_OPTION', `${what}: id '${id}' (entry ${k}) is not one of the items' ids`);
    if (twice.has(id)) throw new PairpickError('E_OPTION', `${what}: id '${id}' (entry ${k}) belongs to several rows, so it names none`);
    out[k] = row;
  });
  return out;
}

/** Checks a manifest has one row per pool row: `E_SHAPE` naming both otherwise. */
export function checkTableRows(table: Pick<Table, 'rows' | 'name'>, what: string, rows: number, poolName: string): void {
  if (table.rows !== rows) {
    throw new PairpickError('E_SHAPE', `${what} ${table.name} has ${table.rows} rows, but ${poolName} has ${rows}; row i of the manifest must describe pool row i`);
  }
}

/** Where a pool's item ids and metadata come from (paths as readTable takes them). */
export interface ItemsSpec {
  /** The manifest holding one id per pool row, and its column (default: see {@link readIds}). */
  ids?: { path: string; column?: string };
  /** The manifest whose columns describe the rows, and which columns to keep (default: all). */
  meta?: { path: string; columns?: readonly string[] };
}

/** Ids and metadata of a pool's rows (row i of each belongs to pool row i). */
export interface Items {
  readonly ids?: readonly string[];
  /** Metadata columns, in the order asked for. */
  readonly columns: Readonly<Record<string, TableValue[]>>;
  /** Rows of the given ids (`E_OPTION` naming an unknown or repeated one; `what` names the list). */
  rowsOf(wanted: readonly unknown[], what: string): Int32Array;
  /** The ids and metadata of some rows, in the given order. */
  describe(indices: ArrayLike<number>): ItemRows;
}

/** The ids and metadata of picked rows, next to their indices. */
export interface ItemRows {
  ids?: string[];
  columns: Record<string, TableValue[]>;
}

/**
 * Reads the ids and metadata of a pool of `rows` rows and checks each manifest has one row per
 * pool row (`E_SHAPE` naming the manifest — `labels` says how, e.g. '--ids' — and `poolName`,
 * e.g. "the pool (image=img_emb/)").
 * Commands that report picks (select, eval) attach `describe(indices)` to their output.
 */
export async function readItems(
  spec: ItemsSpec,
  rows: number,
  poolName: string,
  options: { signal?: AbortSignal; labels?: { ids: string; meta: string } } = {},
): Promise<Items> {
  const { signal, labels = { ids: 'the ids manifest', meta: 'the metadata manifest' } } = options;
  let ids: ItemIds | undefined;
  if (spec.ids) {
    ids = await readIds(spec.ids.path, { column: spec.ids.column, signal });
    checkTableRows(ids.table, labels.ids, rows, poolName);
  }
  let columns: Record<string, TableValue[]> = {};
  if (spec.meta) {
    const table = await readTable(spec.meta.path, { columns: spec.meta.columns, signal });
    checkTableRows(table, labels.meta, rows, poolName);
    columns = { ...table.columns };
  }
  const idList = ids?.ids;
  return {
    ids: idList,
    columns,
    rowsOf(wanted, what) {
      if (!idList) throw new PairpickError('E_STATE', `${what}: no ids were read (give the ids manifest)`);
      return rowsOfIds(idList, wanted, what);
    },
    describe(indices) {
      const pick = <T>(values: readonly T[]) => Array.from(indices, (i) => values[i]);
      return { ...(idList && { ids: pick(idList) }), columns: Object.fromEntries(Object.entries(columns).map(([c, v]) => [c, pick(v)])) };
    },
  };
}
