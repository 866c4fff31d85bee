// NumPy .npy files: header parsing (format versions 1.0, 2.0, 3.0) and validation against the
// file size. Only the layout is read here; the rows are read by a storage backing (mmap / file).
//
// Format (numpy.lib.format): "\x93NUMPY", major, minor, header length (uint16 LE in v1, uint32
// LE in v2/v3), then an ASCII (v1/v2) or UTF-8 (v3) Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 512), } padded with spaces and '\n'.
import type { FileHandle } from 'node:fs/promises';

import { PairpickError } from '../errors.js';
import { checkPath } from './args.js';
import { checkUnchanged, openRegularFile } from './files.js';
import type { Dtype, Layout } from './types.js';

export const NPY_MAGIC = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59); // "\x93NUMPY"

/** Longest header numpy reads: np.load refuses headers over 10,000 characters (its
 * max_header_size, a guard for ast.literal_eval), so we refuse them too. */
export const NPY_MAX_HEADER = 10_000;

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

/**
 * Parses the header of an .npy file that is open as `fh` (any dtype, any shape), refusing
 * everything np.load refuses: another magic or version than 1.0 / 2.0 / 3.0, a header over
 * 10,000 characters or past the end of the file, a header that is not a dict literal with
 * exactly the keys 'descr', 'fortran_order' and 'shape', a shape that is not a tuple of
 * non-negative integers. The literal syntax accepted is a strict subset of Python's (see
 * parseHeaderDict), so some files numpy reads are refused here, never the other way round.
 */
export async function readNpyHeader(fh: FileHandle, path: string, fileSize: number): Promise<NpyHeader> {
  if (fileSize < 10) fail(path, `file is only ${fileSize} bytes (an .npy header needs at least 10)`);
  const pre = await readExactly(fh, path, 0, Math.min(12, fileSize), 'npy preamble');
  for (let i = 0; i < NPY_MAGIC.length; i++) {
    if (pre[i] !== NPY_MAGIC[i]) fail(path, 'bad magic (expected "\\x93NUMPY" at the start)');
  }
  const major = pre[6];
  const minor = pre[7];
  if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) {
    fail(path, `unsupported format version ${major}.${minor} (numpy and pairpick read 1.0, 2.0 and 3.0)`);
  }
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
  // numpy counts characters after decoding; for UTF-8 (v3) bytes ≥ characters, so this is never laxer.
  if (headerLength > NPY_MAX_HEADER) {
    fail(path, `header length ${headerLength} is implausibly large (numpy refuses headers over ${NPY_MAX_HEADER} characters)`);
  }
  if (headerStart + headerLength > fileSize) {
    fail(path, `header length ${headerLength} runs past the end of the file (${fileSize} bytes): the file is truncated or corrupt`);
  }
  const raw = await readExactly(fh, path, headerStart, headerLength, 'npy header');
  let text: string;
  if (major === 3) {
    try {
      // ignoreBOM: a byte-order mark is kept as a character (and refused), as Python does.
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
    } catch {
      fail(path, 'header is not valid UTF-8');
    }
  } else {
    text = latin1(raw);
  }
  const dict = parseHeaderDict(text, path, major !== 3);
  const keys = [...dict.keys()];
  const descr = dict.get('descr');
  const fortran = dict.get('fortran_order');
  const shape = dict.get('shape');
  if (dict.size !== 3 || descr === undefined || fortran === undefined || shape === undefined) {
    fail(path, `header must have exactly the keys 'descr', 'fortran_order', 'shape' (got ${keys.map((k) => `'${k}'`).join(', ') || 'none'})`);
  }
  if (typeof descr !== 'string') {
    fail(path, `'descr' is a structured or non-string dtype (${describe(descr)}); pairpick reads plain arrays such as '<f4' or '<f2'`);
  }
  if (typeof fortran !== 'boolean') fail(path, `'fortran_order' must be True or False (got ${describe(fortran)})`);
  if (!(shape instanceof PyTuple) || !shape.items.every((d) => typeof d === 'bigint')) {
    fail(path, `'shape' must be a tuple of integers (got ${describe(shape)})`);
  }
  const dims = shape.items as bigint[];
  for (const d of dims) {
    if (d < 0n) fail(path, `'shape' ${describe(shape)} has a negative size`);
    if (d > BigInt(Number.MAX_SAFE_INTEGER)) fail(path, `'shape' ${describe(shape)} has a size too large to be real`);
  }
  return { version: major as 1 | 2 | 3, descr, fortranOrder: fortran, shape: dims.map(Number), dataOffset: headerStart + headerLength };
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 4096) s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  return s;
}

/** Values count × item bytes, or undefined when that is not a safe integer. */
function byteCount(shape: readonly number[], item: number): number | undefined {
  let n = item;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
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
  const expected = byteCount(h.shape, dtype === 'float16' ? 2 : 4);
  if (expected === undefined) fail(path, `shape (${rows}, ${dim}) is too large`);
  const actual = fileSize - h.dataOffset;
  if (actual < expected) {
    fail(path, `file is truncated: shape (${rows}, ${dim}) of ${h.descr} needs ${expected} data bytes after the ${h.dataOffset}-byte header, the file has ${actual}`);
  }
  if (actual > expected) {
    fail(path, `header says shape (${rows}, ${dim}) of ${h.descr} = ${expected} data bytes, but ${actual} bytes follow the header (${actual - expected} extra)`);
  }
  return { path, dataOffset: h.dataOffset, rows, dim, dtype, fileSize };
}

// ---- a parser for the Python literal in the header ---------------------------------------
//
// numpy reads the header with ast.literal_eval. We accept a strict subset of that syntax, wide
// enough for every header numpy (any version) writes: a dict of quoted strings, True/False/None,
// decimal integers (with Python 2's 'L' suffix in format 1.0/2.0, which numpy still reads),
// tuples and lists. Refused although Python would take them: escapes, string prefixes and
// implicit concatenation, comments, line continuations, hex/octal/underscored/signed-plus
// integers, parenthesised values, duplicate keys, and whitespace other than space and tab
// before the dict, space/tab/newline inside and after it (Python's tokenizer refuses some mixes
// of '\r' and '\f' there, so we do not try to follow it).

/** A Python tuple (distinct from a list: numpy requires the shape to be a tuple). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export type PyValue = string | bigint | boolean | null | PyValue[] | PyTuple | Map<string, PyValue>;

function describe(v: unknown): string {
  if (v instanceof Map) return 'a dict';
  if (v instanceof PyTuple) return `(${v.items.map(describe).join(', ')}${v.items.length === 1 ? ',' : ''})`;
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v === null) return 'None';
  return `'${String(v)}'`;
}

const isInner = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n';
const isIdentifierChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_.]/.test(c);

/**
 * Parses `{'key': value, ...}` into a Map. `python2Longs` allows the 'L' suffix on integers
 * (numpy accepts it in format 1.0 and 2.0 files only).
 */
export function parseHeaderDict(text: string, path: string, python2Longs = true): Map<string, PyValue> {
  let i = 0;
  const bad = (what: string): never => fail(path, `malformed header ${what} at character ${i}: ${JSON.stringify(text.slice(0, 120))}`);
  const skip = () => {
    while (isInner(text[i])) i++;
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
      let commas = 0;
      for (;;) {
        skip();
        if (text[i] === close) {
          i++;
          if (c === '[') return items;
          if (items.length === 1 && commas === 0) bad('(a parenthesised value; a 1-tuple needs a trailing comma, as in (5,))');
          return new PyTuple(items);
        }
        items.push(value(depth + 1));
        skip();
        if (text[i] === ',') {
          i++;
          commas++;
        } else if (text[i] !== close) bad(`(expected ',' or '${close}')`);
      }
    }
    if (c === "'" || c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== c) {
        const code = text.charCodeAt(end);
        if (text[end] === '\\') bad('(escapes in strings are not supported)');
        if (code < 0x20 || code >= 0x7f) bad('(control or non-ASCII character in a string)');
        end++;
      }
      if (end >= text.length) bad('(unterminated string)');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const m = /^(-?)(0+|[1-9][0-9]*)(L?)|^(True|False|None)/.exec(text.slice(i, i + 64));
    if (!m) return bad('(unexpected token)');
    if (m[3] === 'L' && !python2Longs) bad("(the 'L' suffix is Python 2 syntax, not allowed in format 3.0)");
    i += m[0].length;
    if (isIdentifierChar(text[i])) bad('(unexpected token)');
    if (m[4] !== undefined) return m[4] === 'True' ? true : m[4] === 'False' ? false : null;
    return BigInt(m[1] + m[2]);
  };
  while (text[i] === ' ' || text[i] === '\t') i++;
  if (text[i] !== '{') bad('(expected a dict)');
  const dict = value(0) as Map<string, PyValue>;
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n')) i++;
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
  checkPath(path, 'readNpy');
  const { fh, stamp, size } = await openRegularFile(path);
  try {
    const h = await readNpyHeader(fh, path, size);
    const item = ({ '<f4': 4, '<f2': 2, '<i4': 4, '<i8': 8 } as Record<string, number>)[h.descr];
    if (!item) fail(path, `dtype '${h.descr}' is not supported by readNpy ('<f4', '<f2', '<i4', '<i8')`);
    if (h.fortranOrder && h.shape.filter((d) => d > 1).length > 1) fail(path, 'fortran_order is True; save a C-ordered array');
    const expected = byteCount(h.shape, item);
    if (expected === undefined) fail(path, `shape (${h.shape.join(', ')}) is too large`);
    const count = expected / item;
    const actual = size - h.dataOffset;
    if (actual !== expected) {
      fail(path, `shape (${h.shape.join(', ')}) of ${h.descr} needs ${expected} data bytes but ${actual} follow the header (${actual < expected ? 'truncated' : 'extra bytes'})`);
    }
    let bytes: Uint8Array;
    try {
      bytes = await readExactly(fh, path, h.dataOffset, expected, 'npy data');
    } catch (e) {
      checkUnchanged(fh, path, stamp); // a file cut short after its header was checked: say so
      throw e;
    }
    checkUnchanged(fh, path, stamp);
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
