// .safetensors files: an 8-byte little-endian header length N, a JSON header of N bytes mapping
// tensor names to { dtype, shape, data_offsets: [begin, end] } (offsets relative to byte 8 + N),
// then the data. We pick one 2-D F32/F16 tensor and check its byte range against the file.
import type { FileHandle } from 'node:fs/promises';

import { PairpickError } from '../errors.js';
import { readExactly } from './npy.js';
import type { Dtype, Layout } from './types.js';

/** The safetensors format caps the header at 100 MB; so do we. */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

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

/** Parses and checks the header: every entry well-formed and inside the file. */
export async function readSafetensorsHeader(fh: FileHandle, path: string, fileSize: number): Promise<{ entries: SafetensorsEntry[]; dataStart: number }> {
  if (fileSize < 8) fail(path, `file is only ${fileSize} bytes (the header length alone takes 8)`);
  const pre = await readExactly(fh, path, 0, 8, 'safetensors header length');
  const length = new DataView(pre.buffer).getBigUint64(0, true);
  if (length > BigInt(SAFETENSORS_MAX_HEADER)) fail(path, `header length ${length} is implausibly large (limit ${SAFETENSORS_MAX_HEADER} bytes)`);
  const n = Number(length);
  if (8 + n > fileSize) fail(path, `header length ${n} runs past the end of the file (${fileSize} bytes): truncated or not a safetensors file`);
  const raw = await readExactly(fh, path, 8, n, 'safetensors header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    fail(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail(path, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataBytes = fileSize - dataStart;
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!v || typeof v !== 'object') fail(path, `tensor '${name}' is not an object`);
    if (typeof v.dtype !== 'string') fail(path, `tensor '${name}' has no dtype`);
    const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (!Array.isArray(v.shape) || !v.shape.every(isCount)) fail(path, `tensor '${name}' has a malformed shape ${JSON.stringify(v.shape)}`);
    const offsets = v.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[1] < offsets[0]) {
      fail(path, `tensor '${name}' has malformed data_offsets ${JSON.stringify(offsets)}`);
    }
    if (offsets[1] > dataBytes) {
      fail(path, `tensor '${name}' ends at data byte ${offsets[1]} but the file holds only ${dataBytes} data bytes (truncated?)`);
    }
    entries.push({ name, dtype: v.dtype, shape: v.shape as number[], begin: offsets[0], end: offsets[1] });
  }
  return { entries, dataStart };
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
  const expected = rows * dim * (dtype === 'float16' ? 2 : 4);
  if (entry.end - entry.begin !== expected) {
    fail(path, `tensor '${entry.name}': shape (${rows}, ${dim}) ${entry.dtype} needs ${expected} bytes but data_offsets span ${entry.end - entry.begin}`);
  }
  return { path, dataOffset: dataStart + entry.begin, rows, dim, dtype, fileSize };
}
