// .safetensors files: an 8-byte little-endian header length N, a JSON header of N bytes mapping
// tensor names to { dtype, shape, data_offsets: [begin, end] } (offsets relative to byte 8 + N),
// then the data. The whole file is validated as the safetensors reference does it
// (safetensors/src/tensor.rs, SafeTensors::read_metadata and Metadata::validate): N ≤ 100 MB
// and inside the file, the header a UTF-8 JSON object (only JSON whitespace after it), every
// tensor of a known dtype with shape × dtype size == end − begin, the tensors sorted by offset
// lying end to end from 0 with no gap or overlap, and the last one ending exactly at the end of
// the file. We are stricter on a few points: the header must start with '{' (as the format
// description says), duplicate names, tensors given as arrays, a non-object __metadata__,
// numbers beyond 2^53 and nesting deeper than 64 are refused. Then one 2-D F32/F16 tensor is picked.
import type { FileHandle } from 'node:fs/promises';

import { PairpickError } from '../errors.js';
import { readExactly } from './npy.js';
import type { Dtype, Layout } from './types.js';

/** The safetensors format caps the header at 100 MB; so do we. */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

/** Bits per element of every dtype the reference knows (its Dtype::bitsize). */
export const SAFETENSORS_DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

const DTYPES: Record<string, Dtype> = { F32: 'float32', F16: 'float16' };

/** One tensor as the header describes it. */
export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function fail(path: string, what: string): never {
  throw new PairpickError('E_FORMAT', `${path}: not a readable .safetensors file: ${what}`);
}

// ---- strict JSON (RFC 8259, as serde_json reads it) ---------------------------------------

/** A JSON number kept as its text: the header's integers may exceed 2^53. */
class JsonNumber {
  constructor(readonly text: string) {}
}
type JsonValue = string | boolean | null | JsonNumber | JsonValue[] | Map<string, JsonValue>;

const MAX_DEPTH = 64;

/** Parses one JSON value filling `text` (whitespace around it allowed). Throws a message string. */
function parseJson(text: string): JsonValue {
  let i = 0;
  const err = (what: string): never => {
    throw new SyntaxError(`${what} at character ${i}`);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const hex4 = (): number => {
    const h = text.slice(i, i + 4);
    if (!/^[0-9A-Fa-f]{4}$/.test(h)) err('bad \\u escape');
    i += 4;
    return parseInt(h, 16);
  };
  const string = (): string => {
    i++; // opening quote
    let out = '';
    let from = i;
    for (;;) {
      if (i >= text.length) err('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(from, i);
        i++;
        return out;
      }
      if (c < 0x20) err('control character in a string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(from, i);
      const e = text[i + 1];
      i += 2;
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e in simple) out += simple[e];
      else if (e === 'u') {
        const u = hex4();
        if (u >= 0xdc00 && u <= 0xdfff) err('lone trailing surrogate in a \\u escape');
        if (u >= 0xd800 && u <= 0xdbff) {
          if (text[i] !== '\\' || text[i + 1] !== 'u') err('lone leading surrogate in a \\u escape');
          i += 2;
          const low = hex4();
          if (low < 0xdc00 || low > 0xdfff) err('lone leading surrogate in a \\u escape');
          out += String.fromCharCode(u, low);
        } else out += String.fromCharCode(u);
      } else err('invalid escape');
      from = i;
    }
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) err(`nesting deeper than ${MAX_DEPTH}`);
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const map = new Map<string, JsonValue>();
      ws();
      if (text[i] === '}') {
        i++;
        return map;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') err('expected a string key');
        const key = string();
        ws();
        if (text[i] !== ':') err("expected ':'");
        i++;
        if (map.has(key)) err(`duplicate key ${JSON.stringify(key)}`);
        map.set(key, value(depth + 1));
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return map;
        } else err("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const items: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return items;
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return items;
        } else err("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (m && m[0].length > 0) {
      i += m[0].length;
      return new JsonNumber(m[0]);
    }
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return err('unexpected token');
  };
  const v = value(0);
  ws();
  if (i !== text.length) err('trailing characters after the JSON value');
  return v;
}

/** An unsigned integer (a JSON integer with no sign, fraction or exponent) that is a safe JS number. */
function asCount(v: JsonValue): number | undefined {
  if (!(v instanceof JsonNumber) || !/^(0|[1-9][0-9]*)$/.test(v.text)) return undefined;
  const n = Number(v.text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function describe(v: JsonValue): string {
  if (v instanceof JsonNumber) return v.text;
  if (v instanceof Map) return 'an object';
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  return JSON.stringify(v);
}

const U64_MAX = (1n << 64n) - 1n;

/** Parses and checks the header and the layout of the whole file (see the top of this file). */
export async function readSafetensorsHeader(
  fh: FileHandle,
  path: string,
  fileSize: number,
): Promise<{ entries: SafetensorsEntry[]; dataStart: number; metadata?: Record<string, string> }> {
  if (fileSize < 8) fail(path, `file is only ${fileSize} bytes (the header length alone takes 8)`);
  const pre = await readExactly(fh, path, 0, 8, 'safetensors header length');
  const length = new DataView(pre.buffer).getBigUint64(0, true);
  if (length > BigInt(SAFETENSORS_MAX_HEADER)) fail(path, `header length ${length} is implausibly large (limit ${SAFETENSORS_MAX_HEADER} bytes)`);
  const n = Number(length);
  if (8 + n > fileSize) fail(path, `header length ${n} runs past the end of the file (${fileSize} bytes): truncated or not a safetensors file`);
  const raw = await readExactly(fh, path, 8, n, 'safetensors header');
  if (raw[0] !== 0x7b) fail(path, `header is not a JSON object starting with '{' (its first byte is ${raw.length ? `0x${raw[0].toString(16).padStart(2, '0')}` : 'missing: the header is empty'})`);
  let text: string;
  try {
    // ignoreBOM: a byte-order mark stays a character (and is refused), as Rust's from_utf8 keeps it.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    fail(path, 'header is not valid UTF-8');
  }
  let json: JsonValue;
  try {
    json = parseJson(text);
  } catch (e) {
    fail(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!(json instanceof Map)) fail(path, 'header is not a JSON object');

  const dataStart = 8 + n;
  const dataBytes = fileSize - dataStart;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> | undefined;
  for (const [name, value] of json) {
    if (name === '__metadata__') {
      if (!(value instanceof Map) || ![...value.values()].every((v) => typeof v === 'string')) {
        fail(path, '__metadata__ must be an object whose values are all strings');
      }
      metadata = Object.fromEntries(value) as Record<string, string>;
      continue;
    }
    if (!(value instanceof Map)) fail(path, `tensor '${name}' is not an object (got ${describe(value)})`);
    const dtype = value.get('dtype');
    const shape = value.get('shape');
    const offsets = value.get('data_offsets');
    if (typeof dtype !== 'string') fail(path, `tensor '${name}' has no dtype string`);
    if (!(dtype in SAFETENSORS_DTYPE_BITS)) fail(path, `tensor '${name}' has an unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => asCount(d) !== undefined)) {
      fail(path, `tensor '${name}' has a malformed shape ${shape === undefined ? '(missing)' : describe(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => asCount(d) !== undefined)) {
      fail(path, `tensor '${name}' has malformed data_offsets ${offsets === undefined ? '(missing)' : describe(offsets)}`);
    }
    const [begin, end] = offsets.map((d) => asCount(d)!);
    if (end < begin) fail(path, `tensor '${name}' has malformed data_offsets [${begin}, ${end}] (the end comes before the beginning)`);
    entries.push({ name, dtype, shape: shape.map((d) => asCount(d)!), begin, end });
  }

  // Metadata::validate: in offset order, each tensor starts where the previous one ended, and
  // spans exactly shape × dtype bits / 8 bytes (computed with 64-bit overflow checks, in order).
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let end = 0;
  for (const e of sorted) {
    if (e.begin !== end) {
      fail(path, `tensor '${e.name}' has data_offsets [${e.begin}, ${e.end}] but the tensors before it end at data byte ${end}: tensors must lie end to end from byte 0 (no gaps, no overlaps)`);
    }
    end = e.end;
    let elements = 1n;
    for (const d of e.shape) {
      elements *= BigInt(d);
      if (elements > U64_MAX) fail(path, `tensor '${e.name}' has shape (${e.shape.join(', ')}), too many elements`);
    }
    const bits = elements * BigInt(SAFETENSORS_DTYPE_BITS[e.dtype]);
    if (bits > U64_MAX) fail(path, `tensor '${e.name}' has shape (${e.shape.join(', ')}), too many elements`);
    if (bits % 8n !== 0n) fail(path, `tensor '${e.name}' (${e.dtype}, shape (${e.shape.join(', ')})) does not fill a whole number of bytes`);
    if (BigInt(e.end - e.begin) !== bits / 8n) {
      fail(path, `tensor '${e.name}': shape (${e.shape.join(', ')}) ${e.dtype} needs ${bits / 8n} bytes but data_offsets span ${e.end - e.begin}`);
    }
  }
  // read_metadata: the tensors must cover the data exactly ("file not fully covered").
  if (end > dataBytes) {
    const last = sorted[sorted.length - 1];
    fail(path, `tensor '${last.name}' ends at data byte ${end} but the file holds only ${dataBytes} data bytes (truncated?)`);
  }
  if (end < dataBytes) {
    fail(path, `${dataBytes} data bytes follow the header but the tensors cover only ${end} (${dataBytes - end} extra bytes: the file is not fully covered)`);
  }
  return { entries, dataStart, metadata };
}

/** The layout of one tensor (`tensor`, or the only 2-D one) of a .safetensors file. */
export async function readSafetensorsLayout(fh: FileHandle, path: string, fileSize: number, tensor?: string): Promise<Layout> {
  const { entries, dataStart } = await readSafetensorsHeader(fh, path, fileSize);
  const list = () => entries.map((e) => `'${e.name}' ${e.dtype} (${e.shape.join(', ')})`).join(', ') || 'none';
  let entry: SafetensorsEntry | undefined;
  if (tensor !== undefined) {
    entry = entries.find((e) => e.name === tensor);
    if (!entry) throw new PairpickError('E_OPTION', `${path}: no tensor named '${tensor}' (tensors: ${list()})`);
  } else {
    const matrices = entries.filter((e) => e.shape.length === 2);
    if (matrices.length !== 1) {
      throw new PairpickError(
        'E_OPTION',
        `${path}: ${matrices.length === 0 ? 'no 2-D tensor' : `${matrices.length} 2-D tensors`}; choose one with the 'tensor' option (tensors: ${list()})`,
      );
    }
    entry = matrices[0];
  }
  const dtype = DTYPES[entry.dtype];
  if (!dtype) fail(path, `tensor '${entry.name}' has dtype ${entry.dtype}; pairpick reads F32 and F16 (convert BF16/F64 first)`);
  if (entry.shape.length !== 2) fail(path, `tensor '${entry.name}' has shape (${entry.shape.join(', ')}); expected 2-D (rows, dim)`);
  const [rows, dim] = entry.shape;
  if (dim < 1) fail(path, `tensor '${entry.name}' has shape (${rows}, ${dim}) with no columns`);
  return { path, dataOffset: dataStart + entry.begin, rows, dim, dtype, fileSize };
}
