// Independent reference of what numpy's np.load accepts in an .npy file, written from the format
// description (numpy.lib.format: magic "\x93NUMPY", version 1.0 / 2.0 / 3.0, a little-endian
// uint16 (v1) or uint32 (v2, v3) header length, a latin1 (v1, v2) or UTF-8 (v3) header that
// ast.literal_eval turns into a dict with exactly the keys 'descr', 'fortran_order', 'shape';
// headers over 10,000 characters refused; Python 2 'L' integer suffixes tolerated in v1/v2) and
// Python's literal grammar. It is a model, not numpy: where it is unsure it refuses, and the
// places where it refuses headers numpy would take (leading whitespace other than space/tab,
// '\r' or '\f' outside brackets, structured and exotic dtypes) are ones pairpick refuses too.
// The long fuzz (scripts/fuzz-io.mjs) checks pairpick against numpy itself.
import { halfToFloat } from '../../src/util/half.js';

export type NpyVerdict =
  | { ok: true; descr: string; fortranOrder: boolean; shape: number[]; dataOffset: number; itemSize: number }
  | { ok: false; reason: string };

class Refused extends Error {}
const refuse = (why: string): never => {
  throw new Refused(why);
};

// ---- Python tokens ---------------------------------------------------------------------------

type Token =
  | { t: 'op'; v: string }
  | { t: 'str'; v: string; bytes: boolean }
  | { t: 'int'; v: bigint }
  | { t: 'num' } // float or imaginary: never a valid shape entry or key
  | { t: 'name'; v: string }
  | { t: 'end' };

const DIGITS: Record<string, RegExp> = {
  x: /^[0-9a-fA-F](_?[0-9a-fA-F])*/,
  o: /^[0-7](_?[0-7])*/,
  b: /^[01](_?[01])*/,
};

/** Python's literal string body with its escapes (bytes: no \u / \N escapes). */
function unescape(body: string, raw: boolean, bytes: boolean): string {
  if (raw) return body;
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[++i];
    const simple: Record<string, string> = { '\n': '', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
    if (e in simple) out += simple[e];
    else if (e === 'x') {
      const h = body.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) refuse('bad \\x escape');
      out += String.fromCharCode(parseInt(h, 16));
      i += 2;
    } else if (!bytes && (e === 'u' || e === 'U')) {
      const n = e === 'u' ? 4 : 8;
      const h = body.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) refuse('bad \\u escape');
      const cp = parseInt(h, 16);
      if (cp > 0x10ffff) refuse('escape out of range');
      out += String.fromCodePoint(cp);
      i += n;
    } else if (/[0-7]/.test(e)) {
      let j = i;
      while (j < i + 3 && /[0-7]/.test(body[j] ?? '')) j++;
      out += String.fromCharCode(parseInt(body.slice(i, j), 8));
      i = j - 1;
    } else if (!bytes && e === 'N') refuse('\\N escapes are not modelled');
    else out += `\\${e}`; // Python keeps unknown escapes (with a warning)
  }
  return out;
}

/**
 * Tokenizes the header after literal_eval's lstrip(" \\t"). Between tokens: space, tab, form
 * feed, comments; newlines inside brackets. After the expression (depth 0): only space, tab,
 * '\n' and comments (a model narrower than Python's tokenizer, see the top of the file).
 */
function tokenize(text: string, python2: boolean): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let depth = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '\f' || c === '\r') {
      if (depth === 0) refuse('form feed or carriage return outside brackets');
      i++;
      continue;
    }
    if (c === '\n') {
      if (depth === 0 && tokens.length === 0) refuse('newline before the expression');
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n' && text[i] !== '\r') i++;
      continue;
    }
    if (c === '\\' && text[i + 1] === '\n') {
      i += 2;
      continue;
    }
    if ('{}()[],:+-'.includes(c)) {
      if ('{(['.includes(c)) depth++;
      if ('})]'.includes(c)) depth = Math.max(0, depth - 1);
      tokens.push({ t: 'op', v: c });
      i++;
      continue;
    }
    // String, with an optional prefix.
    const sm = /^([rRuUbB]|[rR][bB]|[bB][rR])?('''|"""|'|")/.exec(text.slice(i, i + 5));
    if (sm) {
      const prefix = (sm[1] ?? '').toLowerCase();
      const quote = sm[2];
      let j = i + sm[0].length;
      let body = '';
      for (;;) {
        if (j >= text.length) refuse('unterminated string');
        if (text.startsWith(quote, j)) break;
        const ch = text[j];
        if (quote.length === 1 && (ch === '\n' || ch === '\r')) refuse('newline in a string');
        if (ch === '\\') {
          body += ch + (text[j + 1] ?? '');
          j += 2;
          continue;
        }
        body += ch;
        j++;
      }
      const bytes = prefix.includes('b');
      if (bytes && /[^\x00-\x7f]/.test(body)) refuse('non-ASCII in bytes');
      tokens.push({ t: 'str', v: unescape(body, prefix.includes('r'), bytes), bytes });
      i = j + quote.length;
      continue;
    }
    // Number.
    if (/[0-9.]/.test(c) && /^\.?[0-9]/.test(text.slice(i, i + 2))) {
      const rest = text.slice(i);
      let m = /^0[xXoObB]/.exec(rest);
      let len: number;
      let value: bigint | undefined;
      if (m) {
        const kind = rest[1].toLowerCase();
        const dm = DIGITS[kind].exec(rest.slice(2));
        if (!dm) refuse('bad number');
        len = 2 + dm![0].length;
        value = BigInt(`0${kind}${dm![0].replace(/_/g, '')}`);
      } else {
        m = /^([0-9](_?[0-9])*)?(\.([0-9](_?[0-9])*)?)?([eE][+-]?[0-9](_?[0-9])*)?[jJ]?/.exec(rest);
        len = m![0].length;
        const text0 = m![0];
        if (/^[0-9](_?[0-9])*$/.test(text0)) {
          const digits = text0.replace(/_/g, '');
          if (/^0+[1-9]/.test(digits)) refuse('leading zeros in a decimal integer');
          value = BigInt(digits);
        } else if (text0 === '' || text0 === '.') refuse('bad number');
      }
      const after = text[i + len];
      i += len;
      if (after !== undefined && /[A-Za-z0-9_]/.test(after)) {
        // Python 2's long suffix: numpy's fallback drops a NAME 'L' right after a number (v1/v2).
        if (python2 && after === 'L' && value !== undefined && !/[A-Za-z0-9_]/.test(text[i + 1] ?? '')) i++;
        else refuse('invalid number literal');
      }
      tokens.push(value === undefined ? { t: 'num' } : { t: 'int', v: value });
      continue;
    }
    const nm = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
    if (nm) {
      const prev = tokens[tokens.length - 1];
      // "3 L": the fallback also drops an 'L' separated from its number by spaces.
      if (nm[0] === 'L' && python2 && prev?.t === 'int') {
        i += 1;
        continue;
      }
      tokens.push({ t: 'name', v: nm[0] });
      i += nm[0].length;
      continue;
    }
    refuse(`character U+${c.charCodeAt(0).toString(16).padStart(4, '0')} is not valid Python here`);
  }
  tokens.push({ t: 'end' });
  return tokens;
}

// ---- literal_eval ----------------------------------------------------------------------------

class Tuple {
  constructor(readonly items: PyVal[]) {}
}
class PySet {}
type PyVal = string | bigint | boolean | null | { bytes: string } | { number: true } | PyVal[] | Tuple | PySet | Map<string, PyVal> | { dictWithOtherKeys: true };

function literalEval(tokens: Token[]): PyVal {
  let p = 0;
  const peek = () => tokens[p];
  const isOp = (v: string) => peek().t === 'op' && (peek() as { v: string }).v === v;
  const expectOp = (v: string) => {
    if (!isOp(v)) refuse(`expected '${v}'`);
    p++;
  };
  const atom = (): PyVal => {
    const tok = peek();
    if (tok.t === 'str') {
      // Adjacent literals concatenate (all str or all bytes).
      let s = '';
      const bytes = tok.bytes;
      while (peek().t === 'str') {
        const t = peek() as { v: string; bytes: boolean };
        if (t.bytes !== bytes) refuse('mixing bytes and str literals');
        s += t.v;
        p++;
      }
      return bytes ? { bytes: s } : s;
    }
    if (tok.t === 'int') {
      p++;
      return tok.v;
    }
    if (tok.t === 'num') {
      p++;
      return { number: true };
    }
    if (tok.t === 'name') {
      p++;
      if (tok.v === 'True') return true;
      if (tok.v === 'False') return false;
      if (tok.v === 'None') return null;
      return refuse(`name '${tok.v}' is not a literal`);
    }
    if (isOp('+') || isOp('-')) {
      const neg = isOp('-');
      p++;
      const v = atom();
      if (typeof v === 'bigint') return neg ? -v : v;
      if (v && typeof v === 'object' && 'number' in v) return v;
      return refuse('unary sign on a non-number');
    }
    if (isOp('(')) {
      p++;
      if (isOp(')')) {
        p++;
        return new Tuple([]);
      }
      const first = value();
      if (isOp(')')) {
        p++;
        return first; // parenthesised, not a tuple
      }
      const items = [first];
      while (isOp(',')) {
        p++;
        if (isOp(')')) break;
        items.push(value());
      }
      expectOp(')');
      return new Tuple(items);
    }
    if (isOp('[')) {
      p++;
      const items: PyVal[] = [];
      while (!isOp(']')) {
        items.push(value());
        if (!isOp(',')) break;
        p++;
      }
      expectOp(']');
      return items;
    }
    if (isOp('{')) {
      p++;
      if (isOp('}')) {
        p++;
        return new Map();
      }
      const k = value();
      if (!isOp(':')) {
        while (isOp(',')) {
          p++;
          if (isOp('}')) break;
          value();
        }
        expectOp('}');
        return new PySet();
      }
      const map = new Map<string, PyVal>();
      let otherKeys = false;
      let key = k;
      for (;;) {
        expectOp(':');
        const v = value();
        if (typeof key === 'string') map.set(key, v); // a repeated key: the last one wins, as in Python
        else otherKeys = true;
        if (!isOp(',')) break;
        p++;
        if (isOp('}')) break;
        key = value();
      }
      expectOp('}');
      return otherKeys ? { dictWithOtherKeys: true } : map;
    }
    return refuse('unexpected token');
  };
  const value = (): PyVal => {
    const v = atom();
    // literal_eval allows only complex sums ("1+2j") as binary operations: a number result.
    if ((isOp('+') || isOp('-')) && (typeof v === 'bigint' || (v && typeof v === 'object' && 'number' in v))) {
      p++;
      const w = atom();
      if (!(w && typeof w === 'object' && 'number' in w)) refuse('binary operation');
      return { number: true };
    }
    return v;
  };
  const v = value();
  if (peek().t !== 'end') refuse('tokens after the expression');
  return v;
}

/** Item size of a descr numpy accepts, for the descrs modelled (others are refused). */
function itemSize(descr: PyVal): number {
  if (typeof descr !== 'string') return refuse('descr not modelled');
  const m = /^([<>=|]?)([fiub])([1248])$/.exec(descr);
  if (!m) return refuse(`descr '${descr}' not modelled`);
  const [, order, kind, size] = m;
  if (kind === 'f' && size === '1') refuse('no 1-byte float');
  if (order === '|' && size !== '1') return Number(size); // numpy accepts '|f4' as native order
  return Number(size);
}

/** np.load's verdict (with and without mmap_mode) on a whole .npy file. */
export function npyReference(bytes: Uint8Array): NpyVerdict {
  try {
    if (bytes.length < 8) refuse('shorter than magic and version');
    const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
    if (magic.some((b, k) => bytes[k] !== b)) refuse('bad magic');
    const major = bytes[6];
    const minor = bytes[7];
    if (minor !== 0 || major < 1 || major > 3) refuse('bad version');
    const lengthBytes = major === 1 ? 2 : 4;
    if (bytes.length < 8 + lengthBytes) refuse('no header length');
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerLength = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
    const start = 8 + lengthBytes;
    if (bytes.length < start + headerLength) refuse('header runs past the end');
    const raw = bytes.subarray(start, start + headerLength);
    let text: string;
    if (major === 3) {
      try {
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
      } catch {
        return refuse('header not UTF-8');
      }
    } else text = Array.from(raw, (b) => String.fromCharCode(b)).join('');
    if ([...text].length > 10000) refuse('header over 10000 characters');
    if (text.includes('\0')) refuse('NUL in the header');
    let k = 0;
    while (text[k] === ' ' || text[k] === '\t') k++;
    const d = literalEval(tokenize(text.slice(k), major !== 3));
    if (!(d instanceof Map)) refuse('header is not a dict');
    const dict = d as Map<string, PyVal>;
    const keys = [...dict.keys()].sort();
    if (keys.join(',') !== 'descr,fortran_order,shape') refuse('wrong keys');
    const shape = dict.get('shape');
    if (!(shape instanceof Tuple) || !shape.items.every((x) => typeof x === 'bigint')) refuse('shape not a tuple of ints');
    const dims = (shape as Tuple).items as bigint[];
    const fortran = dict.get('fortran_order');
    if (typeof fortran !== 'boolean') refuse('fortran_order not a bool');
    const size = itemSize(dict.get('descr')!);
    if (dims.some((x) => x < 0n)) refuse('negative dimension');
    const count = dims.reduce((a, b) => a * b, 1n);
    const need = BigInt(start + headerLength) + count * BigInt(size);
    if (BigInt(bytes.length) < need) refuse('data shorter than the shape needs');
    if (dims.some((x) => x > BigInt(Number.MAX_SAFE_INTEGER))) refuse('dimension beyond what can be allocated');
    return { ok: true, descr: dict.get('descr') as string, fortranOrder: fortran as boolean, shape: dims.map(Number), dataOffset: start + headerLength, itemSize: size };
  } catch (e) {
    if (e instanceof Refused) return { ok: false, reason: e.message };
    throw e;
  }
}

/** The values (as float32) of a 2-D C-ordered little-endian f4/f2 array the reference accepted,
 * or undefined when it is of another kind. */
export function npyReferenceMatrix(bytes: Uint8Array, v: NpyVerdict): { rows: number; dim: number; values: Float32Array } | undefined {
  if (!v.ok || v.shape.length !== 2 || v.fortranOrder) return undefined;
  const little = v.descr[0] === '<' || v.descr[0] === '=' || v.descr[0] === '|' || !/^[<>=|]/.test(v.descr);
  if (!little || !/f[24]$/.test(v.descr)) return undefined;
  const [rows, dim] = v.shape;
  const n = rows * dim;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + v.dataOffset, n * v.itemSize);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = v.itemSize === 4 ? dv.getFloat32(4 * i, true) : halfToFloat(dv.getUint16(2 * i, true));
  return { rows, dim, values };
}
