// Writing .npy (and .safetensors) files atomically: everything goes to a temporary file in the
// same folder, which is flushed and renamed over the target only when complete, so a reader never
// sees half a file and an interrupted write leaves the old file (if any) intact.
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { PairpickError, throwIfAborted } from '../errors.js';
import { floatArrayToHalf, halfArrayToFloat } from '../util/half.js';
import { checkPath, checkSignal, describeValue, optionalChoice, optionalInteger, optionsObject } from './args.js';
import { NPY_MAGIC } from './npy.js';
import type { Dtype } from './types.js';

/** Element types writeNpy can store. */
export type NpyWriteDtype = Dtype | 'int32';

const DESCR: Record<NpyWriteDtype, string> = { float32: '<f4', float16: '<f2', int32: '<i4' };

/** Values converted per step when a conversion is needed (bounds the temporary memory). */
const PIECE = 1 << 20;

function dtypeOfArray(data: Float32Array | Uint16Array | Int32Array, where = 'writeNpy'): NpyWriteDtype {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Uint16Array) return 'float16';
  if (data instanceof Int32Array) return 'int32';
  throw new PairpickError('E_OPTION', `${where}: data must be a Float32Array, a Uint16Array (fp16 bits) or an Int32Array (got ${describeValue(data)})`);
}

/** An .npy header (magic through padding) for the dtype and shape; `minLength` pads it further
 * (the streaming writer reserves room for any row count). Version 1.0 unless it is too long. */
export function npyHeaderBytes(dtype: NpyWriteDtype, shape: readonly number[], minLength = 0): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Data starts on a 64-byte boundary, as numpy does it (aligned for any SIMD load).
  const pad = (preamble: number) => {
    const total = Math.max(minLength, preamble + dict.length + 1);
    return Math.ceil(total / 64) * 64;
  };
  let version = 1;
  let total = pad(10);
  if (total - 10 > 0xffff) {
    version = 2;
    total = pad(12);
  }
  const preamble = version === 1 ? 10 : 12;
  const out = new Uint8Array(total);
  out.set(NPY_MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, total - preamble, true);
  else dv.setUint32(8, total - preamble, true);
  const text = dict + ' '.repeat(total - preamble - dict.length - 1) + '\n';
  for (let i = 0; i < text.length; i++) out[preamble + i] = text.charCodeAt(i);
  return out;
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number | null, path: string): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(bytes.length - done, 1 << 30);
    let written: number;
    try {
      ({ bytesWritten: written } = await fh.write(bytes, done, n, position === null ? null : position + done));
    } catch (e) {
      throw new PairpickError('E_IO', `${path}: write failed: ${(e as Error).message}`, { cause: e });
    }
    done += written;
  }
}

function bytesOf(a: Float32Array | Uint16Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Values of `data` as bytes of `dtype`, converting in pieces when the types differ. */
async function writeValues(fh: FileHandle, data: Float32Array | Uint16Array | Int32Array, dtype: NpyWriteDtype, path: string, signal?: AbortSignal): Promise<void> {
  const from = dtypeOfArray(data);
  for (let i = 0; i < data.length; i += PIECE) {
    throwIfAborted(signal, `writing ${path}`);
    const part = data.subarray(i, Math.min(data.length, i + PIECE));
    let out: Float32Array | Uint16Array | Int32Array = part;
    if (from !== dtype) {
      if (from === 'float32' && dtype === 'float16') out = floatArrayToHalf(part as Float32Array);
      else if (from === 'float16' && dtype === 'float32') out = halfArrayToFloat(part as Uint16Array);
      else throw new PairpickError('E_OPTION', `${path}: cannot store ${from} data as ${dtype}`);
    }
    await writeAll(fh, bytesOf(out), null, path);
  }
}

/** Runs `fill` on a temporary file, then flushes it and renames it to `path`; removes it on failure. */
async function atomically(path: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(path);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx');
  } catch (e) {
    throw new PairpickError('E_IO', `${path}: cannot create a file in ${dirname(path)}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await fill(fh);
    await fh.datasync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    if (e instanceof PairpickError) throw e;
    throw new PairpickError('E_IO', `${path}: cannot write: ${(e as Error).message}`, { cause: e });
  }
}

function checkShape(shape: readonly number[], length: number, where: string): void {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    const got = Array.isArray(shape) ? `[${shape.map((d) => describeValue(d)).join(', ')}]` : describeValue(shape);
    throw new PairpickError('E_SHAPE', `${where}: shape must be a non-empty list of non-negative integers (got ${got})`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== length) throw new PairpickError('E_SHAPE', `${where}: shape (${shape.join(', ')}) holds ${n} values but the data has ${length}`);
}

/** Options of `writeNpy()`. */
export interface WriteNpyOptions {
  /** Stored element type. Default: the array's own (Float32Array → '<f4', Uint16Array → '<f2',
   * Int32Array → '<i4'); 'float16' stores a Float32Array rounded to fp16, 'float32' widens fp16. */
  dtype?: NpyWriteDtype;
  /** Cancels the write with `E_ABORTED` (the target is left untouched). */
  signal?: AbortSignal;
}

/**
 * Writes a C-ordered .npy file (format 1.0, or 2.0 for a very long header) atomically.
 * numpy reads it with `np.load(path)` (use `mmap_mode='r'` for big ones).
 */
export async function writeNpy(path: string, data: Float32Array | Uint16Array | Int32Array, shape: readonly number[], options?: WriteNpyOptions): Promise<void> {
  const opts = optionsObject(options, ['dtype', 'signal'], 'writeNpy');
  checkPath(path, 'writeNpy');
  const from = dtypeOfArray(data);
  const dtype = optionalChoice(opts.dtype, ['float32', 'float16', 'int32'], 'writeNpy', "option 'dtype'") ?? from;
  if ((from === 'int32') !== (dtype === 'int32')) throw new PairpickError('E_OPTION', `writeNpy(${path}): cannot store ${from} data as ${dtype}`);
  checkShape(shape, data.length, `writeNpy(${path})`);
  const signal = checkSignal(opts.signal, 'writeNpy');
  throwIfAborted(signal, `writing ${path}`);
  await atomically(path, async (fh) => {
    await writeAll(fh, npyHeaderBytes(dtype, shape), null, path);
    await writeValues(fh, data, dtype, path, signal);
  });
}

/** A 2-D .npy file written a block of rows at a time (for outputs too big to hold at once). */
export interface NpyWriter {
  /** Rows appended so far. */
  readonly rows: number;
  /** Appends whole rows (Float32Array or Uint16Array fp16; converted to the file's dtype). */
  append(rows: Float32Array | Uint16Array): Promise<void>;
  /** Finishes the header and renames the file into place. */
  close(): Promise<void>;
  /** Discards the partial file. */
  abort(): Promise<void>;
}

/** Header size the streaming writer reserves: room for any (rows, dim) a JS number can hold. */
const STREAM_HEADER = 128;

/**
 * Starts writing a rows × `dim` .npy file of `dtype` (default float32) block by block; the row
 * count is filled in by close(), and checked against `rows` when given. Atomic like writeNpy.
 */
export async function openNpyWriter(path: string, options: { dim: number; dtype?: Dtype; rows?: number }): Promise<NpyWriter> {
  checkPath(path, 'openNpyWriter');
  const where = `openNpyWriter(${path})`;
  const opts = optionsObject(options, ['dim', 'dtype', 'rows'], where);
  if (opts.dim === undefined) throw new PairpickError('E_OPTION', `${where}: option 'dim' (values per row) is required`);
  const dim = optionalInteger(opts.dim, where, "option 'dim'", 1) as number;
  const expectedRows = optionalInteger(opts.rows, where, "option 'rows'");
  const dtype = optionalChoice(opts.dtype, ['float32', 'float16'], where, "option 'dtype'") ?? 'float32';
  const tmp = tempPathFor(path);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx');
  } catch (e) {
    throw new PairpickError('E_IO', `${path}: cannot create a file in ${dirname(path)}: ${(e as Error).message}`, { cause: e });
  }
  let rows = 0;
  let state: 'open' | 'done' = 'open';
  let queue: Promise<void> = writeAll(fh, new Uint8Array(STREAM_HEADER), null, path);
  queue.catch(() => undefined);
  const discard = async () => {
    state = 'done';
    await queue.catch(() => undefined);
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
  };
  return {
    get rows() {
      return rows;
    },
    append(block) {
      if (state !== 'open') return Promise.reject(new PairpickError('E_STATE', `${path}: append() after close()/abort()`));
      if (!(block instanceof Float32Array || block instanceof Uint16Array)) {
        return Promise.reject(new PairpickError('E_OPTION', `${path}: append() takes a Float32Array or a Uint16Array of fp16 values (got ${describeValue(block)})`));
      }
      if (block.length % dim !== 0) return Promise.reject(new PairpickError('E_SHAPE', `${path}: ${block.length} values are not whole rows of dim ${dim}`));
      rows += block.length / dim;
      // Appends are serialised so rows land in call order even if the caller does not await.
      queue = queue.then(() => writeValues(fh, block, dtype, path));
      queue.catch(() => undefined); // an un-awaited append must not crash the process; close() reports it
      return queue;
    },
    async close() {
      if (state !== 'open') throw new PairpickError('E_STATE', `${path}: close() after close()/abort()`);
      state = 'done';
      try {
        await queue;
        if (expectedRows !== undefined && rows !== expectedRows) {
          throw new PairpickError('E_SHAPE', `${path}: ${rows} rows were written but ${expectedRows} were announced`);
        }
        await writeAll(fh, npyHeaderBytes(dtype, [rows, dim], STREAM_HEADER), 0, path);
        await fh.datasync();
        await fh.close();
        await rename(tmp, path);
      } catch (e) {
        await discard();
        throw e instanceof PairpickError ? e : new PairpickError('E_IO', `${path}: cannot write: ${(e as Error).message}`, { cause: e });
      }
    },
    abort: discard,
  };
}

/** A UTF-16 surrogate that is not half of a pair: such a string has no UTF-8 form. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** One tensor for writeSafetensors. */
export interface SafetensorsTensor {
  data: Float32Array | Uint16Array | Int32Array;
  shape: number[];
}

/** Writes a .safetensors file atomically (F32 / F16 / I32 tensors, in the given order). */
export async function writeSafetensors(path: string, tensors: Record<string, SafetensorsTensor>, metadata?: Record<string, string>): Promise<void> {
  checkPath(path, 'writeSafetensors');
  const where = `writeSafetensors(${path})`;
  if (!tensors || typeof tensors !== 'object' || Array.isArray(tensors)) {
    throw new PairpickError('E_OPTION', `${where}: tensors must be an object mapping names to { data, shape } (got ${describeValue(tensors)})`);
  }
  const strings = (m: object) => Object.entries(m).every(([k, v]) => typeof v === 'string' && !LONE_SURROGATE.test(k) && !LONE_SURROGATE.test(v));
  if (metadata !== undefined && (!metadata || typeof metadata !== 'object' || Array.isArray(metadata) || !strings(metadata))) {
    throw new PairpickError('E_OPTION', `${where}: metadata must be an object of well-formed string values`);
  }
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    if (name === '__metadata__') throw new PairpickError('E_OPTION', `${where}: '__metadata__' is reserved and cannot name a tensor`);
    if (LONE_SURROGATE.test(name)) throw new PairpickError('E_OPTION', `${where}: tensor name ${JSON.stringify(name)} is not well-formed Unicode`);
    const tensor = tensors[name];
    if (!tensor || typeof tensor !== 'object') throw new PairpickError('E_OPTION', `${where}: tensor '${name}' must be { data, shape }`);
    const { data, shape } = tensor;
    const dtype = { float32: 'F32', float16: 'F16', int32: 'I32' }[dtypeOfArray(data, `${where} tensor '${name}'`)];
    checkShape(shape, data.length, `${where} tensor '${name}'`);
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const json = JSON.stringify(header);
  const padding = (8 - ((new TextEncoder().encode(json).length + 8) % 8)) % 8; // data starts 8-byte aligned
  const jsonBytes = new TextEncoder().encode(json + ' '.repeat(padding));
  const pre = new Uint8Array(8);
  new DataView(pre.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  await atomically(path, async (fh) => {
    await writeAll(fh, pre, null, path);
    await writeAll(fh, jsonBytes, null, path);
    for (const name of names) await writeAll(fh, bytesOf(tensors[name].data), null, path);
  });
}

/** One field of a record .npy: int32 or float64 numbers, or text (stored as fixed-width UTF-32 '<U'). */
export type NpyRecordField =
  | { name: string; type: 'int32'; values: ArrayLike<number> }
  | { name: string; type: 'float64'; values: ArrayLike<number> }
  | { name: string; type: 'text'; values: readonly string[] };

/**
 * Writes a 1-D structured .npy (numpy record array) atomically: one record per row, one field
 * per entry of `fields` (all of one length). `np.load(path)['id']` reads a field back. Text is
 * stored as '<U n' (n = the longest value, in code points). Format 3.0 (UTF-8 header) when a
 * field name is not ASCII, else 1.0.
 */
export async function writeNpyRecords(path: string, fields: readonly NpyRecordField[]): Promise<void> {
  checkPath(path, 'writeNpyRecords');
  const rows = fields[0]?.values.length ?? 0;
  for (const f of fields) {
    if (f.values.length !== rows) throw new PairpickError('E_SHAPE', `writeNpyRecords(${path}): field '${f.name}' has ${f.values.length} values, '${fields[0].name}' has ${rows}`);
  }
  const codePoints = fields.map((f) => (f.type === 'text' ? f.values.map((v) => Array.from(v)) : []));
  const widths = fields.map((f, k) => (f.type === 'int32' ? 4 : f.type === 'float64' ? 8 : 4 * Math.max(1, ...codePoints[k].map((c) => c.length))));
  const literal = (name: string) => `'${name.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const descr = fields.map((f, k) => `(${literal(f.name)}, '${f.type === 'int32' ? '<i4' : f.type === 'float64' ? '<f8' : `<U${widths[k] / 4}`}')`).join(', ');
  const dict = `{'descr': [${descr}], 'fortran_order': False, 'shape': (${rows},), }`;
  const utf8 = /[^\x20-\x7e]/.test(dict);
  const dictBytes = new TextEncoder().encode(dict);
  const preamble = utf8 ? 12 : 10;
  const total = Math.ceil((preamble + dictBytes.length + 1) / 64) * 64;
  const header = new Uint8Array(total).fill(0x20);
  header.set(NPY_MAGIC, 0);
  header[6] = utf8 ? 3 : 1;
  header[7] = 0;
  const dv = new DataView(header.buffer);
  if (utf8) dv.setUint32(8, total - preamble, true);
  else dv.setUint16(8, total - preamble, true);
  header.set(dictBytes, preamble);
  header[total - 1] = 0x0a;
  const recordBytes = widths.reduce((a, b) => a + b, 0);
  const body = new Uint8Array(rows * recordBytes);
  const view = new DataView(body.buffer);
  for (let r = 0; r < rows; r++) {
    let at = r * recordBytes;
    fields.forEach((f, k) => {
      if (f.type === 'int32') view.setInt32(at, f.values[r], true);
      else if (f.type === 'float64') view.setFloat64(at, f.values[r], true);
      else codePoints[k][r].forEach((c, j) => view.setUint32(at + 4 * j, c.codePointAt(0)!, true));
      at += widths[k];
    });
  }
  await atomically(path, async (fh) => {
    await writeAll(fh, header, null, path);
    await writeAll(fh, body, null, path);
  });
}
