// NumPy .npy files: header parsing (format versions 1.0, 2.0, 3.0) and validation against the
// file size. Only the layout is read here; the rows are read by a storage backing (mmap / file).
//
// Format (numpy.lib.format): "\x93NUMPY", major, minor, header length (uint16 LE in v1, uint32
// LE in v2/v3), then an ASCII (v1/v2) or UTF-8 (v3) Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 512), } padded with spaces and '\n'.
import { open, type FileHandle } from 'node:fs/promises';

import { PairpickError } from '../errors.js';
import type { Dtype, Layout } from './types.js';

export const NPY_MAGIC = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59); // "\x93NUMPY"

/** Longest header accepted. numpy itself refuses headers over 10,000 bytes by default; we allow
 * more (long shapes, metadata) but never read an absurd length a corrupt file claims. */
export const NPY_MAX_HEADER = 1 << 20;

/** What an .npy header says. `descr` is numpy's dtype string (e.g. '<f4'). */
export interface NpyHeader {
  version: 1 | 2 | 3;
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the data (= length of magic + version + length field + header). */
  dataOffset: number;
}

function fail(path: string, what: string): never {
  throw new PairpickError('E_FORMAT', `${path}: not a readable .npy file: ${what}`);
}

/** Reads exactly `length` bytes at `position` (short file → E_FORMAT "truncated"). */
export async function readExactly(fh: FileHandle, path: string, position: number, length: number, what: string): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, done, length - done, position + done));
    } catch (e) {
      throw new PairpickError('E_IO', `${path}: cannot read ${what}: ${(e as Error).message}`, { cause: e });
    }
    if (n === 0) throw new PairpickError('E_FORMAT', `${path}: file is truncated (ends inside the ${what}: ${position + done} of ${position + length} bytes)`);
    done += n;
  }
  return buf;
}

/** Parses the header of an .npy file that is open as `fh` (any dtype, any shape). */
export async function readNpyHeader(fh: FileHandle, path: string, fileSize: number): Promise<NpyHeader> {
  if (fileSize < 10) fail(path, `file is only ${fileSize} bytes (an .npy header needs at least 10)`);
  const pre = await readExactly(fh, path, 0, Math.min(12, fileSize), 'npy preamble');
  for (let i = 0; i < NPY_MAGIC.length; i++) {
    if (pre[i] !== NPY_MAGIC[i]) fail(path, 'bad magic (expected "\\x93NUMPY" at the start)');
  }
  const major = pre[6];
  const minor = pre[7];
  if (major !== 1 && major !== 2 && major !== 3) fail(path, `unsupported format version ${major}.${minor} (pairpick reads 1.0, 2.0 and 3.0)`);
  const dv = new DataView(pre.buffer);
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = dv.getUint16(8, true);
    headerStart = 10;
  } else {
    if (fileSize < 12) fail(path, `file is only ${fileSize} bytes (a version ${major} header needs at least 12)`);
    headerLength = dv.getUint32(8, true);
    headerStart = 12;
  }
  if (headerLength > NPY_MAX_HEADER) fail(path, `header length ${headerLength} is implausibly large (limit ${NPY_MAX_HEADER} bytes)`);
  if (headerStart + headerLength > fileSize) {
    fail(path, `header length ${headerLength} runs past the end of the file (${fileSize} bytes): the file is truncated or corrupt`);
  }
  const raw = await readExactly(fh, path, headerStart, headerLength, 'npy header');
  let text: string;
  try {
    text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1', { fatal: major === 3 }).decode(raw);
  } catch {
    fail(path, 'header is not valid UTF-8');
  }
  const dict = parseHeaderDict(text, path);
  const descr = dict.get('descr');
  const fortran = dict.get('fortran_order');
  const shape = dict.get('shape');
  if (dict.size !== 3 || descr === undefined || fortran === undefined || shape === undefined) {
    fail(path, `header must have exactly the keys 'descr', 'fortran_order', 'shape' (got ${[...dict.keys()].map((k) => `'${k}'`).join(', ') || 'none'})`);
  }
  if (typeof descr !== 'string') fail(path, `'descr' is a structured or non-string dtype (${describe(descr)}); pairpick reads plain '<f4' or '<f2' arrays`);
  if (typeof fortran !== 'boolean') fail(path, `'fortran_order' must be True or False (got ${describe(fortran)})`);
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number')) fail(path, `'shape' must be a tuple of integers (got ${describe(shape)})`);
  return { version: major as 1 | 2 | 3, descr, fortranOrder: fortran, shape: shape as number[], dataOffset: headerStart + headerLength };
}

const DESCR_DTYPE: Record<string, Dtype> = { '<f4': 'float32', '<f2': 'float16' };

/** Why a dtype string is refused, with the fix. */
function explainDescr(descr: string): string {
  const kind = descr.slice(1);
  if (descr[0] === '>' && (kind === 'f4' || kind === 'f2')) {
    return `big-endian dtype '${descr}' is not supported; convert with arr.astype('<${kind}')`;
  }
  if (kind === 'f8') return `dtype '${descr}' (float64) is not supported; save arr.astype('float32') (or 'float16')`;
  if (/^[<>|=]?V2$/.test(descr) || /bfloat16/i.test(descr)) return `dtype '${descr}' (bfloat16?) is not supported; save as float32 or float16`;
  return `dtype '${descr}' is not supported; pairpick reads '<f4' (float32) and '<f2' (float16)`;
}

/** Header + checks for an embedding matrix: 2-D, C order, '<f4' / '<f2', size matching the file. */
export async function readNpyLayout(fh: FileHandle, path: string, fileSize: number): Promise<Layout> {
  const h = await readNpyHeader(fh, path, fileSize);
  const dtype = DESCR_DTYPE[h.descr];
  if (!dtype) fail(path, explainDescr(h.descr));
  if (h.fortranOrder) fail(path, "fortran_order is True (column-major); save a C-ordered array (np.ascontiguousarray(arr))");
  if (h.shape.length !== 2) {
    const hint = h.shape.length === 1 ? `; if it holds one value per row, save arr.reshape(-1, 1)` : '';
    fail(path, `expected a 2-D array (rows, dim) but the shape is (${h.shape.join(', ')}${h.shape.length === 1 ? ',' : ''})${hint}`);
  }
  const [rows, dim] = h.shape;
  if (dim < 1) fail(path, `shape (${rows}, ${dim}) has no columns`);
  const itemSize = dtype === 'float16' ? 2 : 4;
  const expected = rows * dim * itemSize;
  const actual = fileSize - h.dataOffset;
  if (!Number.isSafeInteger(expected)) fail(path, `shape (${rows}, ${dim}) is too large`);
  if (actual < expected) {
    fail(path, `file is truncated: shape (${rows}, ${dim}) of ${h.descr} needs ${expected} data bytes after the ${h.dataOffset}-byte header, the file has ${actual}`);
  }
  if (actual > expected) {
    fail(path, `header says shape (${rows}, ${dim}) of ${h.descr} = ${expected} data bytes, but ${actual} bytes follow the header (${actual - expected} extra)`);
  }
  return { path, dataOffset: h.dataOffset, rows, dim, dtype, fileSize };
}

// ---- a small parser for the Python literal in the header (dict, tuple, list, str, int, bool)

type PyValue = string | number | boolean | null | PyValue[] | Map<string, PyValue>;

function describe(v: unknown): string {
  if (v instanceof Map) return 'a dict';
  if (Array.isArray(v)) return `(${v.map(describe).join(', ')})`;
  return JSON.stringify(v) ?? String(v);
}

/** Parses `{'key': value, ...}` (what numpy writes) into a Map. Strict: anything else fails. */
export function parseHeaderDict(text: string, path: string): Map<string, PyValue> {
  let i = 0;
  const bad = (what: string): never => fail(path, `malformed header ${what} at character ${i}: ${JSON.stringify(text.slice(0, 120))}`);
  const skip = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const value = (depth: number): PyValue => {
    if (depth > 8) bad('(nested too deeply)');
    skip();
    const c = text[i];
    if (c === '{') {
      i++;
      const map = new Map<string, PyValue>();
      for (;;) {
        skip();
        if (text[i] === '}') {
          i++;
          return map;
        }
        const key = value(depth + 1);
        if (typeof key !== 'string') bad('(dict keys must be strings)');
        skip();
        if (text[i] !== ':') bad("(expected ':')");
        i++;
        if (map.has(key as string)) bad(`(duplicate key '${key}')`);
        map.set(key as string, value(depth + 1));
        skip();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') bad("(expected ',' or '}')");
      }
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const items: PyValue[] = [];
      for (;;) {
        skip();
        if (text[i] === close) {
          i++;
          return items;
        }
        items.push(value(depth + 1));
        skip();
        if (text[i] === ',') i++;
        else if (text[i] !== close) bad(`(expected ',' or '${close}')`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) bad('(unterminated string)');
      const s = text.slice(i + 1, end);
      if (s.includes('\\')) bad('(escapes in strings are not supported)');
      i = end + 1;
      return s;
    }
    const m = /^(-?\d+)L?|^(True|False|None)\b/.exec(text.slice(i, i + 40));
    if (!m) return bad('(unexpected token)');
    i += m[0].length;
    if (m[1] !== undefined) {
      const n = Number(m[1]);
      if (!Number.isSafeInteger(n)) bad(`(integer ${m[1]} is too large)`);
      if (n < 0) bad(`(negative integer ${m[1]})`);
      return n;
    }
    return m[2] === 'True' ? true : m[2] === 'False' ? false : null;
  };
  skip();
  if (text[i] !== '{') bad('(expected a dict)');
  const dict = value(0) as Map<string, PyValue>;
  skip();
  if (i !== text.length) bad('(trailing characters after the dict)');
  return dict;
}

/** A whole small .npy array in memory (labels, indices, picks): see readNpy. */
export interface NpyArray {
  data: Float32Array | Uint16Array | Int32Array;
  shape: number[];
  /** Element type of `data` ('float16' = fp16 bit patterns in a Uint16Array). */
  dtype: 'float32' | 'float16' | 'int32';
}

/**
 * Reads a whole .npy file into memory (any shape, C order): '<f4' → Float32Array, '<f2' →
 * Uint16Array (fp16 bits), '<i4' → Int32Array, and '<i8' (numpy's default integer) narrowed to
 * Int32Array when every value fits (`E_FORMAT` otherwise). Meant for small arrays such as labels
 * or picks; open embedding matrices with openSource(), which does not load them.
 */
export async function readNpy(path: string): Promise<NpyArray> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new PairpickError('E_IO', `${path}: cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    const h = await readNpyHeader(fh, path, size);
    const item = ({ '<f4': 4, '<f2': 2, '<i4': 4, '<i8': 8 } as Record<string, number>)[h.descr];
    if (!item) fail(path, `dtype '${h.descr}' is not supported by readNpy ('<f4', '<f2', '<i4', '<i8')`);
    if (h.fortranOrder && h.shape.filter((d) => d > 1).length > 1) fail(path, 'fortran_order is True; save a C-ordered array');
    const count = h.shape.reduce((a, b) => a * b, 1);
    const expected = count * item;
    const actual = size - h.dataOffset;
    if (actual !== expected) {
      fail(path, `shape (${h.shape.join(', ')}) of ${h.descr} needs ${expected} data bytes but ${actual} follow the header (${actual < expected ? 'truncated' : 'extra bytes'})`);
    }
    const bytes = await readExactly(fh, path, h.dataOffset, expected, 'npy data');
    const shape = h.shape;
    if (h.descr === '<f4') return { data: new Float32Array(bytes.buffer, 0, count), shape, dtype: 'float32' };
    if (h.descr === '<f2') return { data: new Uint16Array(bytes.buffer, 0, count), shape, dtype: 'float16' };
    if (h.descr === '<i4') return { data: new Int32Array(bytes.buffer, 0, count), shape, dtype: 'int32' };
    const wide = new BigInt64Array(bytes.buffer, 0, count);
    const data = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const v = wide[i];
      if (v > 2147483647n || v < -2147483648n) fail(path, `int64 value ${v} at flat index ${i} does not fit in int32`);
      data[i] = Number(v);
    }
    return { data, shape, dtype: 'int32' };
  } finally {
    await fh.close().catch(() => undefined);
  }
}
