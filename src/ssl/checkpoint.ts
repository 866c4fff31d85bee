// Stage-1 checkpoints as .safetensors. Every tensor is F32, weights in PyTorch's (out × in) layout:
//   <modality>.linear1.weight (h × D), <modality>.linear1.bias (h),
//   <modality>.linear2.weight (d × h), <modality>.linear2.bias (d)   — MLP heads; a linear head
//                                                                      has linear1 only (d × D)
//   <modality>.prototypes (K × d)
// The header's __metadata__ holds format "pairpick.projection", version "1", and the modality
// order, input dimensions, options and history as JSON strings. Written atomically.

import { PairpickError } from '../errors.js';
import { openRegularFile } from '../io/files.js';
import { readExactly } from '../io/npy.js';
import { readSafetensorsHeader, type SafetensorsEntry } from '../io/safetensors.js';
import { writeSafetensors, type SafetensorsTensor } from '../io/write.js';
import { transpose } from '../util/dense.js';
import type { Head } from './projection.js';

export const CHECKPOINT_FORMAT = 'pairpick.projection';
export const CHECKPOINT_VERSION = '1';

/** Everything a checkpoint holds. */
export interface CheckpointData {
  modalities: string[];
  heads: Head[];
  prototypes: Float32Array[];
  /** JSON-serialisable values stored as strings in __metadata__. */
  metadata: Record<string, unknown>;
}

/** Writes a stage-1 checkpoint atomically. */
export async function saveCheckpoint(path: string, data: CheckpointData): Promise<void> {
  const tensors: Record<string, SafetensorsTensor> = {};
  data.modalities.forEach((name, m) => {
    const h = data.heads[m];
    const out1 = h.hidden > 0 ? h.hidden : h.dim;
    tensors[`${name}.linear1.weight`] = { shape: [out1, h.inputDim], data: transpose(h.w1, h.inputDim, out1) };
    tensors[`${name}.linear1.bias`] = { shape: [out1], data: h.b1 };
    if (h.hidden > 0) {
      tensors[`${name}.linear2.weight`] = { shape: [h.dim, h.hidden], data: transpose(h.w2!, h.hidden, h.dim) };
      tensors[`${name}.linear2.bias`] = { shape: [h.dim], data: h.b2! };
    }
    tensors[`${name}.prototypes`] = { shape: [data.prototypes[m].length / h.dim, h.dim], data: data.prototypes[m] };
  });
  const metadata: Record<string, string> = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, modalities: JSON.stringify(data.modalities) };
  for (const [k, v] of Object.entries(data.metadata)) metadata[k] = JSON.stringify(v);
  await writeSafetensors(path, tensors, metadata);
}

function fail(path: string, what: string): never {
  throw new PairpickError('E_FORMAT', `${path}: not a pairpick projection checkpoint: ${what}`);
}

function parseJson(path: string, key: string, text: string | undefined): unknown {
  if (text === undefined) fail(path, `__metadata__ has no '${key}'`);
  try {
    return JSON.parse(text);
  } catch {
    fail(path, `__metadata__ '${key}' is not valid JSON`);
  }
}

/**
 * Reads and validates a stage-1 checkpoint: format tag, version, every expected tensor present
 * with dtype F32 and consistent shapes, finite values. Errors are `E_FORMAT` naming the file
 * (`E_IO` when it cannot be read).
 */
export async function loadCheckpoint(path: string): Promise<CheckpointData> {
  // A regular file only: a named pipe would block the open forever.
  const { fh, size } = await openRegularFile(path);
  try {
    const { entries, dataStart } = await readSafetensorsHeader(fh, path, size);
    const headerText = new TextDecoder().decode(await readExactly(fh, path, 8, dataStart - 8, 'safetensors header'));
    const rawMeta = (JSON.parse(headerText) as Record<string, unknown>).__metadata__;
    if (!rawMeta || typeof rawMeta !== 'object') fail(path, 'the header has no __metadata__');
    const meta = rawMeta as Record<string, unknown>;
    if (!Object.values(meta).every((v) => typeof v === 'string')) fail(path, '__metadata__ values must be strings');
    const strings = meta as Record<string, string>;
    if (strings.format !== CHECKPOINT_FORMAT) fail(path, `__metadata__ format is ${JSON.stringify(strings.format)}, expected '${CHECKPOINT_FORMAT}'`);
    if (strings.version !== CHECKPOINT_VERSION) fail(path, `checkpoint version ${JSON.stringify(strings.version)} is not supported (this pairpick reads version ${CHECKPOINT_VERSION})`);
    const modalities = parseJson(path, 'modalities', strings.modalities);
    if (!Array.isArray(modalities) || modalities.length < 1 || !modalities.every((m) => typeof m === 'string' && m.length > 0) || new Set(modalities).size !== modalities.length) {
      fail(path, `__metadata__ modalities must be a list of distinct names, got ${strings.modalities}`);
    }
    const byName = new Map<string, SafetensorsEntry>(entries.map((e) => [e.name, e]));
    const tensor = async (name: string, rank: number): Promise<{ shape: number[]; data: Float32Array }> => {
      const e = byName.get(name);
      if (!e) fail(path, `tensor '${name}' is missing`);
      if (e.dtype !== 'F32') fail(path, `tensor '${name}' has dtype ${e.dtype}, expected F32`);
      if (e.shape.length !== rank || e.shape.some((s) => s < 1)) fail(path, `tensor '${name}' has shape (${e.shape.join(', ')}), expected ${rank}-D and non-empty`);
      const count = e.shape.reduce((a, b) => a * b, 1);
      if (e.end - e.begin !== count * 4) fail(path, `tensor '${name}' of shape (${e.shape.join(', ')}) spans ${e.end - e.begin} bytes, expected ${count * 4}`);
      const bytes = await readExactly(fh, path, dataStart + e.begin, count * 4, `tensor '${name}'`);
      const data = new Float32Array(bytes.buffer, bytes.byteOffset, count);
      for (let i = 0; i < count; i++) if (!Number.isFinite(data[i])) fail(path, `tensor '${name}' holds a non-finite value at element ${i}`);
      return { shape: e.shape, data };
    };
    const heads: Head[] = [];
    const prototypes: Float32Array[] = [];
    let dim = -1;
    for (const name of modalities as string[]) {
      const w1 = await tensor(`${name}.linear1.weight`, 2);
      const b1 = await tensor(`${name}.linear1.bias`, 1);
      const [out1, inputDim] = w1.shape;
      if (b1.shape[0] !== out1) fail(path, `'${name}.linear1.bias' has ${b1.shape[0]} values, expected ${out1}`);
      let head: Head;
      if (byName.has(`${name}.linear2.weight`)) {
        const w2 = await tensor(`${name}.linear2.weight`, 2);
        const b2 = await tensor(`${name}.linear2.bias`, 1);
        const [d, h] = w2.shape;
        if (h !== out1) fail(path, `'${name}.linear2.weight' takes ${h} inputs but linear1 has ${out1} outputs`);
        if (b2.shape[0] !== d) fail(path, `'${name}.linear2.bias' has ${b2.shape[0]} values, expected ${d}`);
        head = { inputDim, hidden: h, dim: d, w1: transpose(w1.data, out1, inputDim), b1: b1.data, w2: transpose(w2.data, d, h), b2: b2.data };
      } else {
        head = { inputDim, hidden: 0, dim: out1, w1: transpose(w1.data, out1, inputDim), b1: b1.data };
      }
      if (dim === -1) dim = head.dim;
      if (head.dim !== dim) fail(path, `modality '${name}' projects to ${head.dim} dimensions, '${modalities[0]}' to ${dim}`);
      const C = await tensor(`${name}.prototypes`, 2);
      if (C.shape[1] !== dim) fail(path, `'${name}.prototypes' has ${C.shape[1]} columns, expected ${dim}`);
      heads.push(head);
      prototypes.push(C.data);
    }
    const metadata: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(strings)) {
      if (k === 'format' || k === 'version' || k === 'modalities') continue;
      metadata[k] = parseJson(path, k, v);
    }
    return { modalities: modalities as string[], heads, prototypes, metadata };
  } finally {
    await fh.close();
  }
}
