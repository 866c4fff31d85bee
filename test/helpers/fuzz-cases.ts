// Seeded generator of mutated .npy and .safetensors files, shared by the in-suite fuzz
// (test/fuzz-io.test.ts) and the long fuzz (scripts/fuzz-io.mjs, which bundles this file).
// Each case starts from a valid file of random shape and contents, then applies one to three
// mutations: bit flips and byte substitutions in the header, header-length off by a few bytes,
// truncation, trailing bytes, token-level edits of the header text (dtypes, shapes, offsets
// shifted by a few bytes, booleans, keys, whitespace, numbers at and beyond 2^53 and 2^64…).
import { Rng } from '../../src/util/rng.js';

export interface FuzzCase {
  kind: 'npy' | 'safetensors';
  bytes: Uint8Array;
  /** The tensor to ask for (safetensors with several 2-D tensors). */
  tensor?: string;
  /** What was done to the file, for reports ('none': the valid base file). */
  mutation: string;
  /** The base file is one pairpick reads by design (an .npy '<f4'/'<f2' matrix, a .safetensors
   * F32/F16 matrix): unmutated, it must be accepted. */
  canonical: boolean;
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(items.length)];
const enc = new TextEncoder();
const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** Random bytes for data: mostly finite floats, sometimes anything. */
function randomData(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
}

/** Bytes a header mutation likes to insert: structure, quotes, whitespace of every kind, digits. */
const INTERESTING = [
  0x20, 0x09, 0x0a, 0x0d, 0x0c, 0x0b, 0x00, 0x7b, 0x7d, 0x28, 0x29, 0x5b, 0x5d, 0x2c, 0x3a, 0x27, 0x22, 0x5c, 0x2d, 0x2b, 0x30, 0x31, 0x39,
  0x4c, 0x65, 0x2e, 0x23, 0xa0, 0xff, 0xc3, 0xef, 0xbb, 0xbf, 0x80,
];

// ---- base files ------------------------------------------------------------------------------

interface NpyParts {
  version: 1 | 2 | 3;
  text: string;
  data: Uint8Array;
  canonical: boolean;
}

function npyFromParts({ version, text, data }: NpyParts, pad = true): Uint8Array {
  const pre = version === 1 ? 10 : 12;
  let body = version === 3 ? enc.encode(text) : latin1(text);
  if (pad) {
    const total = Math.ceil((pre + body.length + 1) / 64) * 64;
    body = concat(body, new Uint8Array(total - pre - body.length - 1).fill(0x20), Uint8Array.of(0x0a));
  }
  const head = new Uint8Array(pre);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(head.buffer);
  if (version === 1) dv.setUint16(8, Math.min(body.length, 0xffff), true);
  else dv.setUint32(8, body.length, true);
  return concat(head, body, data);
}

function baseNpy(rng: Rng): NpyParts {
  const rows = rng.int(7);
  const dim = 1 + rng.int(5);
  const descr = rng.next() < 0.85 ? pick(rng, ["'<f4'", "'<f2'"]) : pick(rng, ["'<f8'", "'>f4'", "'<i4'", "'|u1'", "'f4'", "'<f4'"]);
  const item = /8/.test(descr) ? 8 : /[f]2|i2/.test(descr) ? 2 : /u1/.test(descr) ? 1 : 4;
  const shape = rng.next() < 0.9 ? `(${rows}, ${dim})` : pick(rng, [`(${rows * dim},)`, `(${rows}, ${dim}, 1)`, '()']);
  const count = shape === '()' ? 1 : rows * dim;
  const quote = rng.next() < 0.9 ? "'" : '"';
  const q = (s: string) => quote + s + quote;
  const entries = [`${q('descr')}: ${descr.replace(/'/g, quote)}`, `${q('fortran_order')}: False`, `${q('shape')}: ${shape}`];
  if (rng.next() < 0.2) entries.reverse();
  const text = `{${entries.join(', ')}${rng.next() < 0.8 ? ', ' : ''}}`;
  const canonical = (descr === "'<f4'" || descr === "'<f2'") && shape === `(${rows}, ${dim})`;
  return { version: pick(rng, [1, 1, 1, 2, 3] as const), text, data: randomData(rng, count * item), canonical };
}

interface StTensor {
  name: string;
  dtype: string;
  shape: number[];
  size: number;
}

function stText(tensors: { name: string; dtype: string; shape: number[]; begin: number; end: number }[], metadata?: Record<string, string>): string {
  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  for (const t of tensors) parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`);
  return `{${parts.join(',')}}`;
}

function stFromText(text: string, data: Uint8Array, lengthDelta = 0, padTo8 = false): Uint8Array {
  let body = enc.encode(text);
  if (padTo8) body = concat(body, new Uint8Array((8 - ((body.length + 8) % 8)) % 8).fill(0x20));
  const pre = new Uint8Array(8);
  new DataView(pre.buffer).setBigUint64(0, BigInt(Math.max(0, body.length + lengthDelta)), true);
  return concat(pre, body, data);
}

function baseSafetensors(rng: Rng): { tensors: { name: string; dtype: string; shape: number[]; begin: number; end: number }[]; data: Uint8Array; metadata?: Record<string, string>; tensor?: string } {
  const rows = rng.int(7);
  const dim = 1 + rng.int(5);
  const main: StTensor = { name: pick(rng, ['emb', 'x', 'embeddings', 'é']), dtype: pick(rng, ['F32', 'F16']), shape: [rows, dim], size: 0 };
  const list: StTensor[] = [main];
  const extra = rng.int(3);
  for (let k = 0; k < extra; k++) {
    const dtype = pick(rng, ['F32', 'BF16', 'I64', 'U8', 'F64', 'F8_E4M3', 'BOOL']);
    const shape = pick(rng, [[3], [2, 2, 1], [0, 4], [], [5]]);
    list.push({ name: `t${k}`, dtype, shape, size: 0 });
  }
  let tensor: string | undefined;
  if (list.filter((t) => t.shape.length === 2).length > 1 || rng.next() < 0.2) tensor = main.name;
  const bits: Record<string, number> = { F32: 32, F16: 16, BF16: 16, I64: 64, U8: 8, F64: 64, F8_E4M3: 8, BOOL: 8 };
  for (const t of list) t.size = (t.shape.reduce((a, b) => a * b, 1) * bits[t.dtype]) / 8;
  // Data in some order; header entries in another.
  const shuffled = <T>(items: T[]) => Array.from(rng.permutation(items.length), (k) => items[k]);
  const dataOrder = shuffled(list);
  let at = 0;
  const placed = dataOrder.map((t) => {
    const p = { name: t.name, dtype: t.dtype, shape: t.shape, begin: at, end: at + t.size };
    at += t.size;
    return p;
  });
  const headerOrder = shuffled(placed);
  const metadata = rng.next() < 0.3 ? { format: 'pt', note: pick(rng, ['x', '', 'a"b', 'ü']) } : undefined;
  return { tensors: headerOrder, data: randomData(rng, at), metadata, tensor };
}

// ---- mutations -------------------------------------------------------------------------------

function flipBits(rng: Rng, bytes: Uint8Array, headerEnd: number): Uint8Array {
  const out = bytes.slice();
  const n = 1 + rng.int(3);
  for (let k = 0; k < n && out.length; k++) {
    const at = rng.int(Math.max(1, Math.min(out.length, headerEnd)));
    out[at] ^= 1 << rng.int(8);
  }
  return out;
}

function substituteBytes(rng: Rng, bytes: Uint8Array, headerEnd: number): Uint8Array {
  const out = bytes.slice();
  const n = 1 + rng.int(2);
  for (let k = 0; k < n && out.length; k++) out[rng.int(Math.max(1, Math.min(out.length, headerEnd)))] = rng.next() < 0.7 ? pick(rng, INTERESTING) : rng.int(256);
  return out;
}

function truncate(rng: Rng, bytes: Uint8Array, headerEnd: number): Uint8Array {
  if (bytes.length === 0) return bytes;
  const near = rng.next() < 0.5 ? headerEnd + rng.int(9) - 4 : bytes.length - 1 - rng.int(8);
  return bytes.subarray(0, Math.max(0, Math.min(bytes.length - 1, near)));
}

function appendBytes(rng: Rng, bytes: Uint8Array): Uint8Array {
  return concat(bytes, randomData(rng, 1 + rng.int(8)));
}

/** Text edits for an .npy header dict. */
const NPY_EDITS: [RegExp, string[]][] = [
  [/False/, ['false', 'True', '0', 'None', 'Flase', 'False,', '(False)']],
  [/'<f4'|'<f2'|"<f4"|"<f2"/, ["'>f4'", "'<f8'", "'f4'", "'|f4'", "'<F4'", "''", "'<f4 '", "'<f2'", "'<f4'", "u'<f4'", "b'<f4'", "'<\\x66\\x34'", "['<f4']", "[('a', '<f4')]", "'<f4' '<f4'"]],
  [/\((\d+), (\d+)\)/, ['[$1, $2]', '($1)', '($1,)', '($1, $2,)', '($1, $2, 1)', '(-$1, $2)', '($1, -$2)', '(0$1, $2)', '($1L, $2L)', '($1 L, $2)', '($1l, $2)', '( $1 , $2 )', '(9007199254740993, $2)', '(18446744073709551617, $2)', '(0x$1, $2)', '($1_0, $2)', '($1.0, $2)', '(True, $2)', '(+$1, $2)', '($1 $2)', '($1,, $2)', '(($1), $2)', '($1, $2)#', '($1,\n$2)', '($1,\t$2)', '($1,\r$2)', '($1,\f$2)', '($1,\v$2)', '($1,\u00a0$2)']],
  [/'shape'|"shape"/, ["'Shape'", "'shape '", "'descr'", "'shape'", "'sh\\x61pe'"]],
  [/\{/, ['{ ', '{\n', '{{', '', '({', "{'x': 1, ", '{\t', ' {', '\n{', '\r{', '\f{', '\ufeff{', '\t{']],
  [/, \}|\}/, ['}', ',}', ',, }', ')', '', '} #', '}}', '};', '}\n\n', '} \r', '}\f', '}\0', '} ' + '{}']],
  [/, /, [',', ' , ', ',\n', ',\t', ',\r\n', ' ,', ';', ',\f', ',\v']],
];

const ST_EDITS: [RegExp, (rng: Rng) => string][] = [
  [/"data_offsets":\[(\d+),(\d+)\]/, (rng) => {
    const d = pick(rng, [1, 2, 3, 4, 5, -1, -3, -5]);
    const shift = `${d > 0 ? '+' : '-'}${Math.abs(d)}`;
    return `"data_offsets":[$1${shift},$2${shift}]`;
  }],
  [/"data_offsets":\[(\d+),(\d+)\]/, (rng) => pick(rng, ['"data_offsets":[$2,$1]', '"data_offsets":[$1,$2,$2]', '"data_offsets":[$1]', '"data_offsets":[-0,$2]', '"data_offsets":[$1.0,$2]', '"data_offsets":[$1,$2e0]', '"data_offsets":[$1,18446744073709551616]', '"data_offsets":[$1,9007199254740993]', '"data_offsets":"$1,$2"', '"data_offsets":[$1 ,$2 ]', '"data_offsets":{"a":$1}'])],
  [/"shape":\[([\d,]*)\]/, (rng) => pick(rng, ['"shape":[$1,1]', '"shape":[1,$1]', '"shape":[-1,$1]', '"shape":[$1.0]', '"shape":[18446744073709551615,$1]', '"shape":[4294967296,4294967296,$1]', '"shape":[]', '"shape":null', '"shape":[$1]', '"shape":[9007199254740993,0]', '"shape":[0,18446744073709551616]'])],
  [/"dtype":"(\w+)"/, (rng) => pick(rng, ['"dtype":"F16"', '"dtype":"F32"', '"dtype":"BF16"', '"dtype":"f32"', '"dtype":"F4"', '"dtype":"F128"', '"dtype":""', '"dtype":{"$1":null}', '"dtype":["$1"]', '"dtype":"$1","dtype":"$1"', '"dtype":"$1 "', '"dtype":"F8_E4M3FNUZ"', '"dtype":"C64"'])],
  [/^\{/, (rng) => pick(rng, [' {', '\n{', '\ufeff{', '{ ', '[{', '{"__metadata__":null,', '{"__metadata__":{"a":1},', '{"__metadata__":{},"__metadata__":{},', '{"__metadata__":["x"],', '{"z":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},'])],
  [/\}$/, (rng) => pick(rng, ['} ', '}\n', '}\t\r\n', '}\0', '},', '}}', '', '} x', '}\f', '}\u00a0'])],
  [/,/, (rng) => pick(rng, [',,', '', ' , ', ',\n', '\t,'])],
  [/"(\w+)":\{"dtype"/, (rng) => pick(rng, ['"$1":{"extra":[1,{"a":null}],"dtype"', '"$1":{"dtype":"F32","dtype"', '"\\ud800":{"dtype"', '"\\u0065mb":{"dtype"', '"$1":["F32",[1],[0,4]],"$1_":{"dtype"', '"$1\t":{"dtype"'])],
];

function applyRegexEdit(text: string, re: RegExp, replacement: string): string {
  // Apply at a random occurrence would need more state: the first occurrence is enough here.
  return text.replace(re, replacement);
}

/** $1+3 style arithmetic left by the offset-shift edit. */
function evaluateShifts(text: string): string {
  return text.replace(/(\d+)([+-])(\d+)/g, (_, a: string, op: string, b: string) => String(op === '+' ? Number(a) + Number(b) : Number(a) - Number(b)));
}

function mutateNpy(rng: Rng): FuzzCase {
  const parts = baseNpy(rng);
  const steps: string[] = [];
  let textEdited = false;
  let pad = true;
  const n = rng.next() < 0.06 ? 0 : 1 + rng.int(3);
  const ops: ((b: Uint8Array) => Uint8Array)[] = [];
  for (let k = 0; k < n; k++) {
    const kind = rng.int(8);
    if (kind <= 2 && !textEdited) {
      const [re, subs] = pick(rng, NPY_EDITS);
      const sub = pick(rng, subs);
      parts.text = applyRegexEdit(parts.text, re, sub);
      steps.push(`text ${re.source} -> ${JSON.stringify(sub)}`);
      if (rng.next() < 0.25) {
        pad = false;
        steps.push('unpadded');
      }
      textEdited = true;
    } else if (kind === 3) {
      ops.push((b) => flipBits(rng, b, Math.min(b.length, 140)));
      steps.push('flip');
    } else if (kind === 4) {
      ops.push((b) => substituteBytes(rng, b, Math.min(b.length, 140)));
      steps.push('bytes');
    } else if (kind === 5) {
      const delta = pick(rng, [1, -1, 2, -2, 3, -5, 8, 64, -64, 10000, 60000]);
      ops.push((b) => {
        const out = b.slice();
        if (out.length < 12) return out;
        const dv = new DataView(out.buffer);
        if (out[6] === 1) dv.setUint16(8, Math.max(0, Math.min(0xffff, dv.getUint16(8, true) + delta)), true);
        else dv.setUint32(8, Math.max(0, dv.getUint32(8, true) + delta), true);
        return out;
      });
      steps.push(`header length ${delta > 0 ? '+' : ''}${delta}`);
    } else if (kind === 6) {
      ops.push((b) => truncate(rng, b, 64));
      steps.push('truncate');
    } else {
      ops.push((b) => appendBytes(rng, b));
      steps.push('append');
    }
  }
  if (rng.next() < 0.03) {
    parts.text += ' '.repeat(9990 - parts.text.length + rng.int(20));
    steps.push('header near 10000');
  }
  if (rng.next() < 0.05) {
    const v = pick(rng, [0, 4, 2]);
    ops.push((b) => {
      const out = b.slice();
      if (out.length > 7) {
        out[6] = v === 0 ? out[6] : v;
        out[7] = v === 0 ? 1 : 0;
      }
      return out;
    });
    steps.push('version');
  }
  let bytes = npyFromParts(parts, pad);
  for (const op of ops) bytes = op(bytes);
  return { kind: 'npy', bytes, mutation: steps.join('; ') || 'none', canonical: parts.canonical };
}

function mutateSafetensors(rng: Rng): FuzzCase {
  const base = baseSafetensors(rng);
  let text = stText(base.tensors, base.metadata);
  let data = base.data;
  const steps: string[] = [];
  let lengthDelta = 0;
  let padTo8 = rng.next() < 0.5;
  const n = rng.next() < 0.06 ? 0 : 1 + rng.int(3);
  const ops: ((b: Uint8Array) => Uint8Array)[] = [];
  for (let k = 0; k < n; k++) {
    const kind = rng.int(9);
    if (kind <= 3) {
      const [re, sub] = pick(rng, ST_EDITS);
      const s = sub(rng);
      text = evaluateShifts(applyRegexEdit(text, re, s));
      steps.push(`text ${re.source} -> ${JSON.stringify(s)}`);
      if (/\+|-\d/.test(s) && rng.next() < 0.5) {
        // A consistent shift: move the data too, so only the offsets lie (or pad at the front).
        const shift = Number(/[+-](\d+)/.exec(s)?.[0] ?? 0);
        if (shift > 0) data = concat(new Uint8Array(shift), data);
        steps.push('data shifted');
      }
    } else if (kind === 4) {
      lengthDelta = pick(rng, [1, -1, 2, -2, 3, 4, 5, -5, 7]);
      padTo8 = false;
      steps.push(`header length ${lengthDelta > 0 ? '+' : ''}${lengthDelta}`);
    } else if (kind === 5) {
      ops.push((b) => flipBits(rng, b, Math.min(b.length, 8 + text.length)));
      steps.push('flip');
    } else if (kind === 6) {
      ops.push((b) => substituteBytes(rng, b, Math.min(b.length, 8 + text.length)));
      steps.push('bytes');
    } else if (kind === 7) {
      ops.push((b) => truncate(rng, b, 8 + text.length));
      steps.push('truncate');
    } else {
      ops.push((b) => appendBytes(rng, b));
      steps.push('append');
    }
  }
  if (rng.next() < 0.03) {
    ops.push((b) => {
      const out = b.slice();
      if (out.length >= 8) new DataView(out.buffer).setBigUint64(0, pick(rng, [100_000_001n, 1n << 63n, (1n << 64n) - 1n, 99_999_999n]), true);
      return out;
    });
    steps.push('huge header length');
  }
  let bytes = stFromText(text, data, lengthDelta, padTo8);
  for (const op of ops) bytes = op(bytes);
  return { kind: 'safetensors', bytes, tensor: base.tensor, mutation: steps.join('; ') || 'none', canonical: true };
}

/** One fuzz case (npy or safetensors, about half each). */
export function makeFuzzCase(rng: Rng): FuzzCase {
  return rng.next() < 0.5 ? mutateNpy(rng) : mutateSafetensors(rng);
}

/** Case number `index` of the run seeded with `seed` (replayable one by one). */
export function fuzzCase(seed: number, index: number): FuzzCase {
  return makeFuzzCase(new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0));
}
