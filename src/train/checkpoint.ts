// Classifier checkpoints as .safetensors. Every tensor is F32 in PyTorch's layout (out × in):
//   <modality>.encoder.weight (h × D), <modality>.encoder.bias (h)
//   head.weight (C × M·h for late fusion, C × h for MLA), head.bias (C)
//   <modality>.aux.weight (C × h), <modality>.aux.bias (C)            — late fusion only
// __metadata__: format "pairpick.classifier", version "1", and as JSON strings the model, the
// modalities ([{ name, dim }]), hidden, classes, class names, options and history. Written atomically.
import { PairpickError } from '../errors.js';
import { openRegularFile } from '../io/files.js';
import { readExactly } from '../io/npy.js';
import { readSafetensorsHeader, type SafetensorsEntry } from '../io/safetensors.js';
import { writeSafetensors, type SafetensorsTensor } from '../io/write.js';
import { transpose } from '../util/dense.js';
import type { Network } from './network.js';
import type { ClassifierModel, EpochRecord } from './types.js';

export const CLASSIFIER_FORMAT = 'pairpick.classifier';
export const CLASSIFIER_VERSION = '1';

export interface ClassifierMeta {
  options: Readonly<Record<string, unknown>>;
  history: readonly EpochRecord[];
  classNames?: readonly string[];
}

export async function saveClassifier(path: string, net: Network, meta: ClassifierMeta): Promise<void> {
  const { hidden: h, classes: C } = net;
  const tensors: Record<string, SafetensorsTensor> = {};
  net.modalities.forEach((m, i) => {
    tensors[`${m.name}.encoder.weight`] = { shape: [h, m.dim], data: transpose(net.encoders[i].w, m.dim, h) };
    tensors[`${m.name}.encoder.bias`] = { shape: [h], data: net.encoders[i].b };
  });
  tensors['head.weight'] = { shape: [C, net.head.w.length / C], data: net.head.w };
  tensors['head.bias'] = { shape: [C], data: net.head.b };
  net.aux.forEach((a, i) => {
    tensors[`${net.modalities[i].name}.aux.weight`] = { shape: [C, h], data: a.w };
    tensors[`${net.modalities[i].name}.aux.bias`] = { shape: [C], data: a.b };
  });
  const metadata: Record<string, string> = {
    format: CLASSIFIER_FORMAT,
    version: CLASSIFIER_VERSION,
    model: net.model,
    modalities: JSON.stringify(net.modalities),
    hidden: String(h),
    classes: String(C),
    options: JSON.stringify(meta.options),
    history: JSON.stringify(meta.history),
  };
  if (meta.classNames) metadata.classNames = JSON.stringify(meta.classNames);
  await writeSafetensors(path, tensors, metadata);
}

function fail(path: string, what: string): never {
  throw new PairpickError('E_FORMAT', `${path}: not a pairpick classifier: ${what}`);
}

function json(path: string, meta: Record<string, string>, key: string): unknown {
  const text = meta[key];
  if (text === undefined) fail(path, `__metadata__ has no '${key}'`);
  try {
    return JSON.parse(text);
  } catch {
    fail(path, `__metadata__ '${key}' is not valid JSON`);
  }
}

/** Reads and validates a classifier checkpoint (E_FORMAT naming the file and what is wrong). */
export async function loadClassifierData(path: string): Promise<{ network: Network } & ClassifierMeta> {
  const { fh, size } = await openRegularFile(path);
  try {
    const { entries, dataStart } = await readSafetensorsHeader(fh, path, size);
    const headerText = new TextDecoder().decode(await readExactly(fh, path, 8, dataStart - 8, 'safetensors header'));
    const rawMeta = (JSON.parse(headerText) as Record<string, unknown>).__metadata__;
    if (!rawMeta || typeof rawMeta !== 'object' || !Object.values(rawMeta).every((v) => typeof v === 'string')) fail(path, 'the header has no __metadata__ of strings');
    const meta = rawMeta as Record<string, string>;
    if (meta.format !== CLASSIFIER_FORMAT) fail(path, `__metadata__ format is ${JSON.stringify(meta.format)}, expected '${CLASSIFIER_FORMAT}'`);
    if (meta.version !== CLASSIFIER_VERSION) fail(path, `version ${JSON.stringify(meta.version)} is not supported (this pairpick reads version ${CLASSIFIER_VERSION})`);
    const model = meta.model as ClassifierModel;
    if (model !== 'late-fusion' && model !== 'mla') fail(path, `unknown model ${JSON.stringify(meta.model)}`);
    const modalities = json(path, meta, 'modalities') as { name: string; dim: number }[];
    if (!Array.isArray(modalities) || modalities.length < 1 || !modalities.every((m) => m && typeof m.name === 'string' && m.name && Number.isInteger(m.dim) && m.dim > 0)) {
      fail(path, `__metadata__ modalities must be a list of { name, dim }`);
    }
    const hidden = Number(meta.hidden);
    const classes = Number(meta.classes);
    if (!Number.isInteger(hidden) || hidden < 1) fail(path, `__metadata__ hidden ${JSON.stringify(meta.hidden)} is not a positive integer`);
    if (!Number.isInteger(classes) || classes < 2) fail(path, `__metadata__ classes ${JSON.stringify(meta.classes)} is not an integer ≥ 2`);
    const byName = new Map<string, SafetensorsEntry>(entries.map((e) => [e.name, e]));
    const tensor = async (name: string, shape: number[]): Promise<Float32Array> => {
      const e = byName.get(name);
      if (!e) fail(path, `tensor '${name}' is missing`);
      if (e.dtype !== 'F32') fail(path, `tensor '${name}' has dtype ${e.dtype}, expected F32`);
      if (e.shape.length !== shape.length || e.shape.some((s, i) => s !== shape[i])) fail(path, `tensor '${name}' has shape (${e.shape.join(', ')}), expected (${shape.join(', ')})`);
      const count = shape.reduce((a, b) => a * b, 1);
      if (e.end - e.begin !== count * 4) fail(path, `tensor '${name}' spans ${e.end - e.begin} bytes, expected ${count * 4}`);
      const bytes = await readExactly(fh, path, dataStart + e.begin, count * 4, `tensor '${name}'`);
      const data = new Float32Array(bytes.buffer, bytes.byteOffset, count);
      for (let i = 0; i < count; i++) if (!Number.isFinite(data[i])) fail(path, `tensor '${name}' holds a non-finite value at element ${i}`);
      return Float32Array.from(data);
    };
    const M = modalities.length;
    const encoders = [];
    for (const m of modalities) encoders.push({ w: transpose(await tensor(`${m.name}.encoder.weight`, [hidden, m.dim]), hidden, m.dim), b: await tensor(`${m.name}.encoder.bias`, [hidden]) });
    const headIn = model === 'late-fusion' ? M * hidden : hidden;
    const head = { w: await tensor('head.weight', [classes, headIn]), b: await tensor('head.bias', [classes]) };
    const aux = [];
    if (model === 'late-fusion') for (const m of modalities) aux.push({ w: await tensor(`${m.name}.aux.weight`, [classes, hidden]), b: await tensor(`${m.name}.aux.bias`, [classes]) });
    const options = json(path, meta, 'options');
    const history = json(path, meta, 'history');
    if (!options || typeof options !== 'object' || Array.isArray(options)) fail(path, '__metadata__ options is not an object');
    if (!Array.isArray(history)) fail(path, '__metadata__ history is not a list');
    let classNames: string[] | undefined;
    if (meta.classNames !== undefined) {
      classNames = json(path, meta, 'classNames') as string[];
      if (!Array.isArray(classNames) || classNames.length !== classes || !classNames.every((c) => typeof c === 'string')) fail(path, `__metadata__ classNames must list ${classes} strings`);
    }
    return {
      network: { model, modalities, hidden, classes, encoders, head, aux },
      options: options as Record<string, unknown>,
      history: history as EpochRecord[],
      classNames,
    };
  } finally {
    await fh.close();
  }
}
