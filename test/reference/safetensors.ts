// Independent reference of what the safetensors crate accepts (safetensors/src/tensor.rs:
// SafeTensors::read_metadata, the serde derive of HashMetadata / TensorInfo / Dtype, and
// Metadata::validate), written from that code and serde_json's documented behaviour:
//   * 8-byte little-endian header length n ≤ 100,000,000, with 8 + n ≤ file length;
//   * the header is UTF-8 and one JSON value (RFC 8259; JSON whitespace around it; strings
//     without raw control characters or lone surrogate escapes; at most 127 levels of nesting);
//   * it is an object; "__metadata__" (at most once) is null or an object of strings; every other
//     key is a tensor: {dtype, shape, data_offsets} (fields once each, others ignored) or the
//     array [dtype, shape, data_offsets]; dtype a known name; shape a list of u64 and
//     data_offsets two u64 (integers without sign, fraction or exponent); a repeated tensor
//     name keeps the last entry;
//   * sorted by data_offsets, tensors lie end to end from 0, each spanning exactly
//     shape product × dtype bits / 8 bytes (64-bit overflow refused, whole bytes only);
//   * the last end + 8 + n equals the file length.
// This module is a model for the in-suite fuzz; scripts/fuzz_io_reference.py is the same
// transcription in Python for the long fuzz.
import { halfToFloat } from '../../src/util/half.js';

export const REFERENCE_DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
};

export interface ReferenceTensor {
  dtype: string;
  shape: bigint[];
  begin: bigint;
  end: bigint;
}
export type SafetensorsVerdict = { ok: true; headerLength: number; tensors: Map<string, ReferenceTensor> } | { ok: false; reason: string };

class Refused extends Error {}
const refuse = (why: string): never => {
  throw new Refused(why);
};

type Json = { kind: 'null' } | { kind: 'bool' } | { kind: 'num'; text: string } | { kind: 'str'; v: string } | { kind: 'arr'; items: Json[] } | { kind: 'obj'; pairs: [string, Json][] };

/** serde_json's grammar: keeps duplicate keys (pairs) and numbers as text. */
function parse(text: string): Json {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const str = (): string => {
    if (text[i] !== '"') refuse('expected a string');
    i++;
    let out = '';
    for (;;) {
      if (i >= text.length) refuse('EOF in a string');
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c.charCodeAt(0) < 0x20) refuse('control character in a string');
      if (c !== '\\') {
        out += c;
        i++;
        continue;
      }
      const e = text[i + 1];
      i += 2;
      const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e in map) {
        out += map[e];
        continue;
      }
      if (e !== 'u') refuse('invalid escape');
      const hex = () => {
        const h = text.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) refuse('invalid \\u escape');
        i += 4;
        return parseInt(h, 16);
      };
      const u = hex();
      if (u >= 0xdc00 && u <= 0xdfff) refuse('lone trailing surrogate');
      if (u >= 0xd800 && u <= 0xdbff) {
        if (text.slice(i, i + 2) !== '\\u') refuse('lone leading surrogate');
        i += 2;
        const low = hex();
        if (low < 0xdc00 || low > 0xdfff) refuse('lone leading surrogate');
        out += String.fromCharCode(u, low);
      } else out += String.fromCharCode(u);
    }
  };
  const value = (depth: number): Json => {
    if (depth >= 128) refuse('recursion limit exceeded');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const pairs: [string, Json][] = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { kind: 'obj', pairs };
      }
      for (;;) {
        ws();
        const k = str();
        ws();
        if (text[i] !== ':') refuse("expected ':'");
        i++;
        pairs.push([k, value(depth + 1)]);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return { kind: 'obj', pairs };
        }
        refuse("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const items: Json[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { kind: 'arr', items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return { kind: 'arr', items };
        }
        refuse("expected ',' or ']'");
      }
    }
    if (c === '"') return { kind: 'str', v: str() };
    if (text.startsWith('null', i)) {
      i += 4;
      return { kind: 'null' };
    }
    if (text.startsWith('true', i) || text.startsWith('false', i)) {
      i += text[i] === 't' ? 4 : 5;
      return { kind: 'bool' };
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
    if (!m) return refuse('expected a value');
    i += m[0].length;
    if (m[2] !== undefined || m[3] !== undefined) {
      const f = Number(m[0]);
      if (!Number.isFinite(f)) refuse('number out of range');
    }
    return { kind: 'num', text: m[0] };
  };
  const v = value(0);
  ws();
  if (i !== text.length) refuse('trailing characters');
  return v;
}

const U64_MAX = (1n << 64n) - 1n;

/** A usize as serde reads it: a JSON integer (no sign, fraction, exponent) that fits in u64. */
function usize(v: Json): bigint {
  if (v.kind !== 'num' || !/^(0|[1-9][0-9]*)$/.test(v.text)) return refuse('not an unsigned integer');
  const n = BigInt(v.text);
  if (n > U64_MAX) refuse('integer beyond u64');
  return n;
}

function tensorInfo(v: Json): ReferenceTensor {
  let dtype: Json | undefined;
  let shape: Json | undefined;
  let offsets: Json | undefined;
  if (v.kind === 'arr') {
    if (v.items.length !== 3) refuse('tensor info array of the wrong length');
    [dtype, shape, offsets] = v.items;
  } else if (v.kind === 'obj') {
    for (const [k, x] of v.pairs) {
      if (k === 'dtype') {
        if (dtype) refuse('duplicate field dtype');
        dtype = x;
      } else if (k === 'shape') {
        if (shape) refuse('duplicate field shape');
        shape = x;
      } else if (k === 'data_offsets') {
        if (offsets) refuse('duplicate field data_offsets');
        offsets = x;
      }
    }
    if (!dtype || !shape || !offsets) refuse('missing field');
  } else return refuse('tensor info is not a map');
  // A unit enum variant: its name, or (serde's externally tagged form) {"NAME": null}.
  let name: string | undefined;
  if (dtype!.kind === 'str') name = dtype!.v;
  else if (dtype!.kind === 'obj' && dtype!.pairs.length === 1 && dtype!.pairs[0][1].kind === 'null') name = dtype!.pairs[0][0];
  if (name === undefined || !(name in REFERENCE_DTYPE_BITS)) refuse('unknown dtype');
  if (shape!.kind !== 'arr') refuse('shape is not a list');
  if (offsets!.kind !== 'arr' || offsets!.items.length !== 2) refuse('data_offsets is not a pair');
  const dims = (shape as { items: Json[] }).items.map(usize);
  const [begin, end] = (offsets as { items: Json[] }).items.map(usize);
  return { dtype: name!, shape: dims, begin, end };
}

/** The safetensors crate's verdict on a whole file. */
export function safetensorsReference(bytes: Uint8Array): SafetensorsVerdict {
  try {
    if (bytes.length < 8) refuse('header too small');
    const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    if (n > 100_000_000n) refuse('header too large');
    if (8n + n > BigInt(bytes.length)) refuse('invalid header length');
    const raw = bytes.subarray(8, 8 + Number(n));
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
    } catch {
      return refuse('header is not UTF-8');
    }
    const top = parse(text);
    if (top.kind !== 'obj') refuse('header is not a map');
    const tensors = new Map<string, ReferenceTensor>();
    let sawMetadata = false;
    for (const [key, v] of (top as { pairs: [string, Json][] }).pairs) {
      if (key === '__metadata__') {
        if (sawMetadata) refuse('duplicate field __metadata__');
        sawMetadata = true;
        if (v.kind === 'null') continue;
        if (v.kind !== 'obj' || !v.pairs.every(([, x]) => x.kind === 'str')) refuse('__metadata__ is not a map of strings');
        continue;
      }
      tensors.set(key, tensorInfo(v)); // every entry must be valid; a repeated name keeps the last
    }
    const sorted = [...tensors.values()].sort((a, b) => (a.begin !== b.begin ? (a.begin < b.begin ? -1 : 1) : a.end < b.end ? -1 : a.end > b.end ? 1 : 0));
    let start = 0n;
    for (const t of sorted) {
      if (t.begin !== start || t.end < t.begin) refuse('invalid offset');
      start = t.end;
      let elements = 1n;
      for (const d of t.shape) {
        elements *= d;
        if (elements > U64_MAX) refuse('validation overflow');
      }
      const bits = elements * BigInt(REFERENCE_DTYPE_BITS[t.dtype]);
      if (bits > U64_MAX) refuse('validation overflow');
      if (bits % 8n !== 0n) refuse('misaligned slice');
      if (t.end - t.begin !== bits / 8n) refuse('tensor invalid info');
    }
    if (start + 8n + n !== BigInt(bytes.length)) refuse('metadata incomplete buffer');
    return { ok: true, headerLength: Number(n), tensors };
  } catch (e) {
    if (e instanceof Refused) return { ok: false, reason: e.message };
    throw e;
  }
}

/** The tensor pairpick is expected to read (`name`, or the only 2-D tensor) as float32 values,
 * or undefined when there is no such F32/F16 2-D tensor. */
export function safetensorsReferenceMatrix(
  bytes: Uint8Array,
  v: SafetensorsVerdict,
  name?: string,
): { rows: number; dim: number; values: Float32Array } | undefined {
  if (!v.ok) return undefined;
  let t: ReferenceTensor | undefined;
  if (name !== undefined) t = v.tensors.get(name);
  else {
    const matrices = [...v.tensors.values()].filter((x) => x.shape.length === 2);
    t = matrices.length === 1 ? matrices[0] : undefined;
  }
  if (!t || t.shape.length !== 2 || (t.dtype !== 'F32' && t.dtype !== 'F16')) return undefined;
  const [rows, dim] = t.shape.map(Number);
  const n = rows * dim;
  const at = 8 + v.headerLength + Number(t.begin);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + at, Number(t.end - t.begin));
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = t.dtype === 'F32' ? dv.getFloat32(4 * i, true) : halfToFloat(dv.getUint16(2 * i, true));
  return { rows, dim, values };
}
