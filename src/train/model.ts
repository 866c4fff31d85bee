// A trained downstream classifier (the `Classifier` contract of ./types.ts): forward passes over
// a pool in blocks, predictions, features, the output layer, and saving.
import { getBackend, type BackendChoice } from '../backend/index.js';
import type { Backend, FusionMode } from '../backend/types.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import type { Pool } from '../io/pool.js';
import type { EmbeddingSource } from '../io/types.js';
import { BACKEND, check, checkPool, FUNCTION, isPoolShape, OBJECT, optionName, readOptions, SIGNAL, STRING, type Schema } from '../util/validate.js';
import { saveClassifier } from './checkpoint.js';
import { checkSomePresent, readBlock, type ModalityInput } from './data.js';
import { concatFeatures, encode, outputForward, type Network } from './network.js';
import type { Classifier, ClassifierModel, EpochRecord, ForwardOptions, ForwardResult, OutputLayer, Prediction } from './types.js';

/** Rows per forward block. */
const BLOCK_ROWS = 4096;

const FORWARD_OPTIONS = { missing: OBJECT, signal: SIGNAL, onProgress: FUNCTION, backend: BACKEND } satisfies Schema;

/** ForwardOptions plus the backend of the products (default: PAIRPICK_BACKEND, else cuda → cpu → js). */
export interface ClassifierForwardOptions extends ForwardOptions {
  backend?: BackendChoice;
}

export class TrainedClassifier implements Classifier {
  readonly model: ClassifierModel;
  readonly modalities: readonly { name: string; dim: number }[];
  readonly classes: number;
  readonly classNames?: readonly string[];
  readonly hidden: number;
  readonly options: Readonly<Record<string, unknown>>;
  readonly history: readonly EpochRecord[];
  /** The parameters (shared, not copied: do not modify). */
  readonly network: Network;
  private readonly fusion: FusionMode;

  constructor(network: Network, options: Record<string, unknown>, history: EpochRecord[], classNames?: string[]) {
    this.network = network;
    this.model = network.model;
    this.modalities = network.modalities;
    this.classes = network.classes;
    this.hidden = network.hidden;
    this.options = options;
    this.history = history;
    if (classNames) this.classNames = classNames;
    this.fusion = options.fusion === 'mean' ? 'mean' : 'dynamic';
  }

  /** The model's modalities matched to the input's sources (absent ones are missing on every row). */
  private inputs(input: unknown, missing: Record<string, unknown> | undefined, where: string): { inputs: ModalityInput[]; rows: number } {
    let sources: Record<string, EmbeddingSource>;
    if (isPoolShape(input)) {
      checkPool(input, where);
      sources = Object.fromEntries(input.modalities.map((n) => [n, input.source(n) as EmbeddingSource]));
    } else {
      check(OBJECT, input, `${where}: argument 'pool' (a pool, or one source per modality name)`);
      sources = input as Record<string, EmbeddingSource>;
    }
    const names = this.modalities.map((m) => m.name);
    let rows = -1;
    for (const [name, s] of Object.entries(sources)) {
      if (!names.includes(name)) throw new PairpickError('E_SHAPE', `${where}: the model has no modality '${name}' (it has: ${names.join(', ')})`);
      if (!s || typeof s !== 'object' || typeof s.read !== 'function') throw new PairpickError('E_OPTION', `${where}: modality '${name}' must be an embedding source`);
      const dim = this.modalities[names.indexOf(name)].dim;
      if (s.dim !== dim) throw new PairpickError('E_SHAPE', `${where}: modality '${name}' has ${s.dim} dimensions but the model was trained on ${dim}`);
      if (rows >= 0 && s.rows !== rows) throw new PairpickError('E_SHAPE', `${where}: modalities disagree on the number of rows (${rows} vs ${s.rows} for '${name}')`);
      rows = s.rows;
    }
    if (rows < 0) throw new PairpickError('E_SHAPE', `${where}: none of the model's modalities (${names.join(', ')}) is given`);
    const masks = checkMissingMasks(missing, names, rows, where);
    return { inputs: this.modalities.map((m) => ({ name: m.name, dim: m.dim, source: sources[m.name], mask: masks[m.name] })), rows };
  }

  private async forwardBlock(backend: Backend, inputs: ModalityInput[], start: number, count: number, where: string): Promise<ForwardResult> {
    const { x, present } = await readBlock(inputs, start, count, where);
    checkSomePresent(present, count, this.modalities.length, (r) => start + r, inputs.map((i) => i.name), where);
    return { start, ...(await forwardRows(backend, this.network, this.fusion, x, present, count)) };
  }

  /** Forward passes over rows [start, start + count) in blocks, handing each block to `visit`. */
  private async each(input: unknown, range: { start: number; count: number } | undefined, options: ClassifierForwardOptions | undefined, where: string, visit: (r: ForwardResult, backend: Backend) => Promise<void>): Promise<number> {
    const o = readOptions(options, FORWARD_OPTIONS, where);
    const { inputs, rows } = this.inputs(input, o.missing as Record<string, unknown> | undefined, where);
    const start = range?.start ?? 0;
    const count = range?.count ?? rows - start;
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > rows) {
      throw new PairpickError('E_OPTION', `${where}: range { start: ${show(start)}, count: ${show(count)} } does not lie within the ${rows} rows`);
    }
    const backend = getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend'));
    for (let s = start; s < start + count; s += BLOCK_ROWS) {
      await new Promise<void>((resolve) => setImmediate(resolve)); // a turn for an abort / Ctrl-C
      throwIfAborted(o.signal, where);
      const n = Math.min(BLOCK_ROWS, start + count - s);
      await visit(await this.forwardBlock(backend, inputs, s, n, where), backend);
      o.onProgress?.({ done: s + n - start, total: count });
    }
    return count;
  }

  async forward(pool: Pool, range?: { start: number; count: number }, options?: ClassifierForwardOptions): Promise<ForwardResult> {
    const where = 'Classifier.forward';
    const M = this.modalities.length;
    const parts: ForwardResult[] = [];
    const count = await this.each(pool, range, options, where, async (r) => void parts.push(r));
    if (parts.length === 1) return parts[0];
    const { hidden: h, classes: C } = this;
    const out: ForwardResult = {
      start: range?.start ?? 0,
      rows: count,
      classes: C,
      logits: new Float32Array(count * C),
      features: this.modalities.map(() => new Float32Array(count * h)),
      present: new Uint8Array(count * M),
      modalityLogits: this.modalities.map(() => new Float32Array(count * C)),
      fusionWeights: new Float32Array(count * M),
    };
    let at = 0;
    for (const p of parts) {
      out.logits.set(p.logits, at * C);
      out.present.set(p.present, at * M);
      out.fusionWeights.set(p.fusionWeights, at * M);
      for (let m = 0; m < M; m++) {
        out.features[m].set(p.features[m], at * h);
        out.modalityLogits[m].set(p.modalityLogits[m], at * C);
      }
      at += p.rows;
    }
    return out;
  }

  async predict(pool: Pool | Record<string, EmbeddingSource>, options?: ClassifierForwardOptions): Promise<Prediction> {
    const where = 'Classifier.predict';
    const M = this.modalities.length;
    const C = this.classes;
    const blocks: { r: ForwardResult; fused: Float32Array; modal: { probs: Float32Array; entropy: Float32Array } }[] = [];
    const rows = await this.each(pool, undefined, options, where, async (r, backend) => {
      const ones = new Uint8Array(r.rows).fill(1);
      const fused = (await backend.entropyFusion(r.logits, ones, { rows: r.rows, classes: C, modalities: 1, mode: 'mean' })).probs;
      const modal = await backend.entropyFusion(stack(r.modalityLogits), r.present, { rows: r.rows, classes: C, modalities: M, mode: 'mean' });
      blocks.push({ r, fused, modal });
    });
    const probs = new Float32Array(rows * C);
    const pred = new Int32Array(rows);
    const fusionWeights = new Float32Array(rows * M);
    const perModality = this.modalities.map((m) => ({ name: m.name, probs: new Float32Array(rows * C), entropy: new Float32Array(rows) }));
    let at = 0;
    for (const { r, fused, modal } of blocks) {
      probs.set(fused, at * C);
      fusionWeights.set(r.fusionWeights, at * M);
      for (let m = 0; m < M; m++) {
        perModality[m].probs.set(modal.probs.subarray(m * r.rows * C, (m + 1) * r.rows * C), at * C);
        for (let i = 0; i < r.rows; i++) perModality[m].entropy[at + i] = modal.entropy[i * M + m];
      }
      at += r.rows;
    }
    for (let i = 0; i < rows; i++) {
      let best = 0;
      for (let k = 1; k < C; k++) if (probs[i * C + k] > probs[i * C + best]) best = k;
      pred[i] = best;
    }
    return { rows, classes: C, probs, pred, perModality, fusionWeights };
  }

  async features(pool: Pool, options?: ClassifierForwardOptions): Promise<Float32Array[]> {
    return (await this.forward(pool, undefined, options)).features;
  }

  head(): OutputLayer {
    return {
      model: this.model,
      classes: this.classes,
      hidden: this.hidden,
      modalities: this.modalities.length,
      weight: Float32Array.from(this.network.head.w),
      bias: Float32Array.from(this.network.head.b),
    };
  }

  async save(path: string): Promise<void> {
    check(STRING, path, "Classifier.save: argument 'path'");
    await saveClassifier(path, this.network, { options: this.options, history: this.history, classNames: this.classNames });
  }
}

/** The forward pass of `rows` rows already read (x zero-filled where missing, present rows × M). */
export async function forwardRows(backend: Backend, net: Network, fusion: FusionMode, x: readonly Float32Array[], present: Uint8Array, rows: number): Promise<Omit<ForwardResult, 'start'>> {
  const { hidden: h, classes: C } = net;
  const M = net.modalities.length;
  const features: Float32Array[] = [];
  for (let m = 0; m < M; m++) features.push(await encode(backend, net.encoders[m], x[m], rows, net.modalities[m].dim, h, { mask: present, m, M }));
  const modalityLogits: Float32Array[] = [];
  let logits: Float32Array;
  let fusionWeights: Float32Array;
  if (net.model === 'late-fusion') {
    for (let m = 0; m < M; m++) modalityLogits.push(await outputForward(backend, net.aux[m], features[m], rows, h, C));
    logits = await outputForward(backend, net.head, concatFeatures(features, rows, h), rows, M * h, C);
    fusionWeights = Float32Array.from(present);
  } else {
    for (let m = 0; m < M; m++) modalityLogits.push(await outputForward(backend, net.head, features[m], rows, h, C));
    const f = await backend.entropyFusion(stack(modalityLogits), present, { rows, classes: C, modalities: M, mode: fusion });
    logits = f.fused;
    fusionWeights = f.weights;
  }
  return { rows, classes: C, logits, features, present, modalityLogits, fusionWeights };
}

function show(v: unknown): string {
  return typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v);
}

/** Per-modality rows × C blocks stacked into one modalities × rows × C array. */
function stack(blocks: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(blocks.reduce((s, b) => s + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** Checks the `missing` option: modality name → Uint8Array of `rows` 0/1 values. */
export function checkMissingMasks(missing: Record<string, unknown> | undefined, names: readonly string[], rows: number, where: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  if (!missing) return out;
  for (const [name, mask] of Object.entries(missing)) {
    if (!names.includes(name)) throw new PairpickError('E_OPTION', `${where}: option 'missing' names modality '${name}', which the model does not have (${names.join(', ')})`);
    if (!(mask instanceof Uint8Array)) throw new PairpickError('E_OPTION', `${where}: option 'missing': modality '${name}' must be a Uint8Array of 0/1 per row`);
    if (mask.length !== rows) throw new PairpickError('E_SHAPE', `${where}: option 'missing': modality '${name}' has ${mask.length} entries, the pool has ${rows} rows`);
    out[name] = mask;
  }
  return out;
}
