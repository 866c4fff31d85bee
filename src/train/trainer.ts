// Downstream classifiers (spec/methods.md §4 late fusion with AdamW; §6 MLA with SGD + momentum,
// alternating modality steps through one shared head, the orthogonal head-gradient projection and
// test-time entropy fusion), trained on the labelled rows of a pool. The labelled rows are read
// once (checked for NaN, missing modalities found) and kept in memory when they fit; batches are
// gathered with the sources' readRows, in a seeded order, as stage 1 does.
import { getBackend, type BackendChoice } from '../backend/index.js';
import type { Backend } from '../backend/types.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import type { Labels } from '../io/labels.js';
import { memorySource } from '../io/source.js';
import type { EmbeddingSource } from '../io/types.js';
import { AdamW } from '../ssl/adamw.js';
import { Rng } from '../util/rng.js';
import {
  BACKEND,
  BOOLEAN,
  checkPool,
  checkTensorSizes,
  count,
  FUNCTION,
  INDEX_LIST,
  number,
  OBJECT,
  oneOf,
  optionName,
  readOptions,
  rowIndices,
  SEED,
  SIGNAL,
  type PoolShape,
  type Schema,
} from '../util/validate.js';
import { loadClassifierData } from './checkpoint.js';
import { checkSomePresent, readRows, type ModalityInput } from './data.js';
import { checkMissingMasks, forwardRows, TrainedClassifier } from './model.js';
import { initNetwork, lateFusionStep, mlaStep, networkTensors, type Network } from './network.js';
import { Sgd } from './sgd.js';
import type { Classifier, ClassifierModel, EpochRecord } from './types.js';

/** Options of `trainClassifier()`; defaults from spec/methods.md §4 and §6. */
export interface TrainClassifierOptions {
  /** 'late-fusion' (default, spec §4) or 'mla' (spec §6). */
  model?: ClassifierModel;
  /** Rows to train on (each must have a label); default: every row whose label is not −1. */
  labeled?: ArrayLike<number>;
  /** Number of classes (default: the class names' count, else the largest label + 1). */
  classes?: number;
  /** Hidden width h of every encoder (default 256). */
  hidden?: number;
  /** Passes over the labelled rows (default 100). */
  epochs?: number;
  /** Mini-batch size (default 64; the last batch of an epoch may be smaller). */
  batch?: number;
  /** Learning rate (default 1e-3 for late fusion's AdamW, 1e-2 for MLA's SGD). */
  lr?: number;
  /** Weight decay of the weight matrices (default 1e-4; biases are not decayed). */
  weightDecay?: number;
  /** MLA: SGD momentum (default 0.9). */
  momentum?: number;
  /** MLA: the fraction of the epochs after which the learning rate drops ×0.1 (default 0.7: epoch 70 of 100). */
  lrDropAt?: number;
  /** MLA: apply the orthogonal head-gradient projection (default true; false = the authors' released behaviour). */
  headProjection?: boolean;
  /** MLA: test-time fusion, 'dynamic' (softmax of −entropy, default) or 'mean'. */
  fusion?: 'dynamic' | 'mean';
  /** Rows to treat as missing per modality (mask[row] = 1), besides all-NaN rows. */
  missing?: Record<string, Uint8Array>;
  /** Seed of the initialisation and of the batch order (default 0). */
  seed?: number;
  backend?: BackendChoice;
  /** Stops training between mini-batches with `E_ABORTED`. */
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
  onEpoch?: (record: EpochRecord) => void;
  /** Called with the pool rows of every mini-batch (ascending) before its step: the batch order, for reproducing a run elsewhere. */
  onBatch?: (rows: Int32Array, epoch: number) => void;
  /**
   * Awaited after every optimiser step with the classifier being trained (live: its weights
   * change with the next step; use it before returning, do not keep it). `modality` is the
   * modality MLA just stepped (undefined for late fusion, whose steps use every modality).
   */
  onStep?: (step: { epoch: number; batch: number; modality?: string; classifier: Classifier }) => void | Promise<void>;
}

export interface TrainProgress {
  /** `check` = reading and checking the labelled rows; `train` = a mini-batch. */
  phase: 'check' | 'train';
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  /** Mean loss of the epoch's batches so far. */
  loss?: number;
  /** Overall progress in [0, 1]. */
  fraction: number;
}

export const TRAIN_DEFAULTS = {
  model: 'late-fusion',
  hidden: 256,
  epochs: 100,
  batch: 64,
  weightDecay: 1e-4,
  seed: 0,
  lateFusion: { lr: 1e-3 },
  mla: { lr: 1e-2, momentum: 0.9, lrDropAt: 0.7, headProjection: true, fusion: 'dynamic' },
} as const;

const TRAIN_OPTIONS = {
  model: oneOf(['late-fusion', 'mla'] as const),
  labeled: INDEX_LIST,
  classes: count(2),
  hidden: count(1),
  epochs: count(1),
  batch: count(1),
  lr: number({ above: 0 }),
  weightDecay: number({ min: 0 }),
  momentum: number({ min: 0, below: 1 }),
  lrDropAt: number({ above: 0, max: 1 }),
  headProjection: BOOLEAN,
  fusion: oneOf(['dynamic', 'mean'] as const),
  missing: OBJECT,
  seed: SEED,
  backend: BACKEND,
  signal: SIGNAL,
  onProgress: FUNCTION,
  onEpoch: FUNCTION,
  onBatch: FUNCTION,
  onStep: FUNCTION,
} satisfies Schema;

const MLA_ONLY = ['momentum', 'lrDropAt', 'headProjection', 'fusion'] as const;

/** Labelled rows held in memory when they take at most this many values (all modalities). */
const CACHE_VALUES = 2 ** 26;
/** Rows read per block while checking the labelled rows. */
const SCAN_ROWS = 16384;

/** Labels as ids (−1 = unlabelled), with class names when given. */
function readLabelArgument(labels: unknown, rows: number, where: string): Labels {
  let ids: ArrayLike<number>;
  let classNames: string[] | undefined;
  if (labels && typeof labels === 'object' && 'ids' in labels) {
    const l = labels as Labels;
    ids = l.ids;
    if (l.classNames !== undefined) {
      if (!Array.isArray(l.classNames) || !l.classNames.every((c) => typeof c === 'string')) throw new PairpickError('E_OPTION', `${where}: labels.classNames must be an array of strings`);
      classNames = l.classNames;
    }
  } else {
    ids = labels as ArrayLike<number>;
  }
  if (!INDEX_LIST.accepts(ids)) throw new PairpickError('E_OPTION', `${where}: argument 'labels' must be an array or typed array of class ids (−1 = unlabelled), or { ids, classNames } from readLabels()`);
  if (ids.length !== rows) throw new PairpickError('E_SHAPE', `${where}: argument 'labels' has ${ids.length} entries, the pool has ${rows} rows (one label per row, −1 = unlabelled)`);
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const v = ids[i];
    if (!Number.isInteger(v) || v < -1 || v > 2 ** 31 - 1) throw new PairpickError('E_OPTION', `${where}: labels[${i}] = ${v} is not a class id (an integer ≥ 0, or −1 for unlabelled)`);
    out[i] = v;
  }
  return { ids: out, classNames };
}

/** The training rows (pool numbering, ascending), their labels, and the class count. */
function trainingRows(pool: PoolShape, labels: Labels, o: { labeled?: ArrayLike<number>; classes?: number }, where: string): { rows: Int32Array; y: Int32Array; classes: number } {
  let rows: Int32Array;
  if (o.labeled !== undefined) {
    rows = rowIndices(o.labeled, pool.rows, optionName(where, 'labeled'), 'labeled', { distinct: true }).sort();
    for (const r of rows) if (labels.ids[r] < 0) throw new PairpickError('E_OPTION', `${where}: row ${r} is in 'labeled' but its label is −1 (unlabelled)`);
  } else {
    rows = Int32Array.from(labels.ids.keys()).filter((r) => labels.ids[r] >= 0);
  }
  const y = Int32Array.from(rows, (r) => labels.ids[r]);
  let max = -1;
  for (const v of y) max = Math.max(max, v);
  const classes = o.classes ?? labels.classNames?.length ?? max + 1;
  if (labels.classNames && labels.classNames.length !== classes) throw new PairpickError('E_OPTION', `${where}: option 'classes' is ${classes} but the labels name ${labels.classNames.length} classes`);
  for (let p = 0; p < y.length; p++) {
    if (y[p] >= classes) throw new PairpickError('E_OPTION', `${where}: labels[${rows[p]}] = ${y[p]} is out of range (option 'classes' is ${classes}: ids 0 … ${classes - 1})`);
  }
  const seen = new Set(y);
  if (seen.size < 2) {
    throw new PairpickError('E_OPTION', `${where}: the labelled rows (${rows.length}) hold ${seen.size} distinct class${seen.size === 1 ? ` (${[...seen][0]})` : 'es'}; a classifier needs at least 2`);
  }
  return { rows, y, classes };
}

/**
 * Trains a downstream classifier on the labelled rows of `pool` (spec §4 late fusion, §6 MLA).
 * `labels` has one class id per pool row (−1 = unlabelled), or is `{ ids, classNames }` as
 * `readLabels()` returns. Missing modalities (all-NaN rows, or the `missing` mask): late fusion
 * zero-fills their encoder output (and leaves them out of their auxiliary loss); MLA trains each
 * modality only on the rows that have it and fuses only the present modalities.
 */
export async function trainClassifier(pool: PoolShape, labels: ArrayLike<number> | Labels, options: TrainClassifierOptions = {}): Promise<TrainedClassifier> {
  return run(pool, labels, options, 'trainClassifier');
}

/**
 * The untrained classifier `trainClassifier` would start from with the same pool shape, labels
 * and options (the same seeded initial weights; `history` empty): a baseline, and the starting
 * point for reproducing a run with another framework.
 */
export async function initClassifier(pool: PoolShape, labels: ArrayLike<number> | Labels, options: Omit<TrainClassifierOptions, 'onProgress' | 'onEpoch' | 'onBatch' | 'onStep' | 'signal'> = {}): Promise<TrainedClassifier> {
  return run(pool, labels, options, 'initClassifier');
}

async function run(pool: PoolShape, labels: ArrayLike<number> | Labels, options: TrainClassifierOptions, where: 'trainClassifier' | 'initClassifier'): Promise<TrainedClassifier> {
  options ??= {};
  const o = readOptions(options, TRAIN_OPTIONS, where);
  checkPool(pool, where);
  const model = (o.model ?? TRAIN_DEFAULTS.model) as ClassifierModel;
  if (model !== 'mla') {
    const bad = MLA_ONLY.find((k) => o[k] !== undefined);
    if (bad) throw new PairpickError('E_OPTION', `${where}: option '${bad}' applies to model 'mla' only (model is '${model}')`);
  }
  const names = [...pool.modalities];
  const M = names.length;
  const lab = readLabelArgument(labels, pool.rows, where);
  const { rows: trainRows, y: trainLabels, classes } = trainingRows(pool, lab, o, where);
  const masks = checkMissingMasks(o.missing as Record<string, unknown> | undefined, names, pool.rows, where);
  const L = trainRows.length;
  const hidden = o.hidden ?? TRAIN_DEFAULTS.hidden;
  const batch = Math.min(o.batch ?? TRAIN_DEFAULTS.batch, L);
  const modalities = names.map((name) => ({ name, dim: pool.source(name).dim }));
  const dimSum = modalities.reduce((s, m) => s + m.dim, 0);
  checkTensorSizes(where, [
    ...modalities.map((m) => [`modality '${m.name}': the encoder (input ${m.dim} × 'hidden' ${hidden})`, m.dim * hidden] as const),
    [`the head ('classes' ${classes} × ${M} modalities × 'hidden' ${hidden})`, classes * M * hidden],
    [`a batch of features (${batch} rows × ${M} × 'hidden' ${hidden})`, batch * M * hidden],
    ...(model === 'mla' ? [[`the head projection ('hidden' ${hidden} × ${hidden})`, hidden * hidden] as const] : []),
  ]);
  const backend = getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend'));
  const resolved = {
    model,
    hidden,
    classes,
    epochs: o.epochs ?? TRAIN_DEFAULTS.epochs,
    batch: o.batch ?? TRAIN_DEFAULTS.batch,
    lr: o.lr ?? (model === 'mla' ? TRAIN_DEFAULTS.mla.lr : TRAIN_DEFAULTS.lateFusion.lr),
    weightDecay: o.weightDecay ?? TRAIN_DEFAULTS.weightDecay,
    seed: o.seed ?? TRAIN_DEFAULTS.seed,
    labeled: L,
    backend: backend.name,
    ...(model === 'mla'
      ? {
          momentum: o.momentum ?? TRAIN_DEFAULTS.mla.momentum,
          lrDropAt: o.lrDropAt ?? TRAIN_DEFAULTS.mla.lrDropAt,
          headProjection: o.headProjection ?? TRAIN_DEFAULTS.mla.headProjection,
          fusion: o.fusion ?? TRAIN_DEFAULTS.mla.fusion,
        }
      : {}),
  };
  if (where === 'initClassifier') return new TrainedClassifier(initNetwork(new Rng(resolved.seed), model, modalities, hidden, classes), resolved, [], lab.classNames);
  const { signal, onProgress } = options;
  const epochs = resolved.epochs;
  const batches = Math.ceil(L / batch);
  const totalUnits = 0.05 + epochs;
  const report = (p: Omit<TrainProgress, 'fraction' | 'epochs'>, units: number) => onProgress?.({ ...p, epochs, fraction: Math.min(1, units / totalUnits) });

  // Read and check the labelled rows once (E_NAN on partly-NaN rows and rows with no modality).
  const inputs: ModalityInput[] = modalities.map((m) => ({ ...m, source: pool.source(m.name) as EmbeddingSource, mask: masks[m.name] }));
  const present = new Uint8Array(L * M);
  const cache = L * dimSum <= CACHE_VALUES ? modalities.map((m) => new Float32Array(L * m.dim)) : undefined;
  for (let s = 0; s < L; s += SCAN_ROWS) {
    throwIfAborted(signal, where);
    const block = trainRows.subarray(s, Math.min(L, s + SCAN_ROWS));
    const r = await readRows(inputs, block, where);
    checkSomePresent(r.present, block.length, M, (i) => block[i], names, where);
    present.set(r.present, s * M);
    if (cache) r.x.forEach((x, m) => cache[m].set(x, s * modalities[m].dim));
    report({ phase: 'check', epoch: 0, batch: 0, batches }, (0.05 * (s + block.length)) / L);
  }
  for (let m = 0; m < M; m++) {
    let any = false;
    for (let p = 0; p < L && !any; p++) any = present[p * M + m] === 1;
    if (!any) throw new PairpickError('E_SHAPE', `${where}: modality '${names[m]}' is missing on every labelled row; nothing to train its encoder on`);
  }
  // Batches are gathered with readRows: from the in-memory copy (positions 0 … L−1) or the pool.
  const cached = cache?.map((c, m) => memorySource(c, modalities[m].dim, names[m]));
  const gather = async (positions: Int32Array): Promise<Float32Array[]> => {
    if (cached) return Promise.all(cached.map((s) => s.readRows(positions)));
    return (await readRows(inputs, Int32Array.from(positions, (p) => trainRows[p]), where)).x;
  };

  const net = initNetwork(new Rng(resolved.seed), model, modalities, hidden, classes);
  const live = options.onStep ? new TrainedClassifier(net, resolved, [], lab.classNames) : undefined;
  const tensors = networkTensors(net);
  const shuffler = new Rng((resolved.seed ^ 0x6a09e667) >>> 0);
  const history: EpochRecord[] = [];
  const adamw = model === 'late-fusion' ? new AdamW(tensors.map((t) => ({ value: t.value, decay: !t.isBias })), { lr: resolved.lr, weightDecay: resolved.weightDecay }) : undefined;
  const sgd = model === 'mla' ? new Sgd({ lr: resolved.lr, momentum: resolved.momentum!, weightDecay: resolved.weightDecay }) : undefined;
  const projection = model === 'mla' && resolved.headProjection ? identity(hidden) : undefined;
  const dropAfter = Math.round((resolved.lrDropAt ?? 1) * epochs);

  for (let epoch = 1; epoch <= epochs; epoch++) {
    const started = performance.now();
    const order = shuffler.permutation(L);
    if (sgd) sgd.lr = epoch > dropAfter ? resolved.lr * 0.1 : resolved.lr;
    const parts: Record<string, number> = {};
    const counts: Record<string, number> = {};
    const add = (k: string, v: number) => {
      if (Number.isNaN(v)) return;
      parts[k] = (parts[k] ?? 0) + v;
      counts[k] = (counts[k] ?? 0) + 1;
    };
    let lossSum = 0;
    let lossCount = 0;
    for (let k = 0; k < batches; k++) {
      // Let timers and signal handlers (an abort, Ctrl-C) run: the js backend's ops complete
      // synchronously, so without this nothing else would get a turn until training ends.
      await yieldToEventLoop();
      throwIfAborted(signal, where);
      const positions = order.slice(k * batch, Math.min(L, (k + 1) * batch)).sort();
      const rows = positions.length;
      options.onBatch?.(Int32Array.from(positions, (p) => trainRows[p]), epoch);
      const x = await gather(positions);
      const y = Int32Array.from(positions, (p) => trainLabels[p]);
      const bPresent = new Uint8Array(rows * M);
      for (let r = 0; r < rows; r++) for (let m = 0; m < M; m++) bPresent[r * M + m] = present[positions[r] * M + m];
      if (adamw) {
        const s = await lateFusionStep(backend, net, x, bPresent, y, rows);
        checkFinite(s.loss, epoch, k, resolved.lr, where);
        const g = s.grads;
        const grads: Float32Array[] = [];
        g.encoders.forEach((e) => grads.push(e.w, e.b));
        grads.push(g.head.w, g.head.b);
        g.aux.forEach((a) => grads.push(a.w, a.b));
        adamw.update(grads);
        await options.onStep?.({ epoch, batch: k + 1, classifier: live! });
        lossSum += s.loss;
        lossCount++;
        add('fused', s.fused);
        s.aux.forEach((v, m) => add(`aux:${names[m]}`, v));
      } else {
        const alpha = 0.1 ** (1 + k / batches);
        for (let m = 0; m < M; m++) {
          const keep: number[] = [];
          for (let r = 0; r < rows; r++) if (bPresent[r * M + m]) keep.push(r);
          if (keep.length === 0) continue;
          const xm = keep.length === rows ? x[m] : pick(x[m], keep, modalities[m].dim);
          const ym = keep.length === rows ? y : Int32Array.from(keep, (r) => y[r]);
          const s = await mlaStep(backend, net, m, xm, ym, keep.length);
          checkFinite(s.loss, epoch, k, resolved.lr, where);
          if (projection) await backend.headProjection(projection, s.meanFeature, s.head.w, { hidden, classes, alpha });
          sgd!.update(
            [
              { value: net.encoders[m].w, decay: true },
              { value: net.encoders[m].b, decay: false },
              { value: net.head.w, decay: true },
              { value: net.head.b, decay: false },
            ],
            [s.encoder.w, s.encoder.b, s.head.w, s.head.b],
          );
          lossSum += s.loss;
          lossCount++;
          add(`ce:${names[m]}`, s.loss);
          await options.onStep?.({ epoch, batch: k + 1, modality: names[m], classifier: live! });
        }
      }
      report({ phase: 'train', epoch, batch: k + 1, batches, loss: lossSum / Math.max(1, lossCount) }, 0.05 + epoch - 1 + (k + 1) / batches);
    }
    const seconds = (performance.now() - started) / 1000;
    const trainAccuracy = await accuracy(backend, net, resolved.fusion ?? 'dynamic', gather, present, trainLabels, signal, where);
    const record: EpochRecord = {
      epoch,
      loss: lossSum / Math.max(1, lossCount),
      parts: Object.fromEntries(Object.entries(parts).map(([key, v]) => [key, v / counts[key]])),
      trainAccuracy,
      seconds,
    };
    history.push(record);
    options.onEpoch?.(record);
  }
  return new TrainedClassifier(net, resolved, history, lab.classNames);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function checkFinite(loss: number, epoch: number, k: number, lr: number, where: string): void {
  if (!Number.isFinite(loss)) throw new PairpickError('E_NAN', `${where}: training diverged (loss ${loss}) at epoch ${epoch}, batch ${k + 1}; try a smaller lr (now ${lr})`);
}

function identity(h: number): Float32Array {
  const P = new Float32Array(h * h);
  for (let i = 0; i < h; i++) P[i * h + i] = 1;
  return P;
}

/** Rows `keep` of a rows × dim matrix. */
function pick(x: Float32Array, keep: readonly number[], dim: number): Float32Array {
  const out = new Float32Array(keep.length * dim);
  keep.forEach((r, i) => out.set(x.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}

/** Accuracy of the fused prediction over the labelled rows (in blocks). */
async function accuracy(
  backend: Backend,
  net: Network,
  fusion: 'dynamic' | 'mean',
  gather: (positions: Int32Array) => Promise<Float32Array[]>,
  present: Uint8Array,
  y: Int32Array,
  signal: AbortSignal | undefined,
  where: string,
): Promise<number> {
  const L = y.length;
  const M = net.modalities.length;
  const C = net.classes;
  let correct = 0;
  for (let s = 0; s < L; s += SCAN_ROWS) {
    throwIfAborted(signal, where);
    const n = Math.min(SCAN_ROWS, L - s);
    const positions = Int32Array.from({ length: n }, (_, i) => s + i);
    const f = await forwardRows(backend, net, fusion, await gather(positions), present.subarray(s * M, (s + n) * M), n);
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let k = 1; k < C; k++) if (f.logits[i * C + k] > f.logits[i * C + best]) best = k;
      if (best === y[s + i]) correct++;
    }
  }
  return correct / L;
}

/** Loads a classifier written by `Classifier.save()` (E_FORMAT naming the file when it is not one). */
export async function loadClassifier(path: string): Promise<TrainedClassifier> {
  if (typeof path !== 'string' || path.length === 0) throw new PairpickError('E_OPTION', "loadClassifier: argument 'path' must be a non-empty string");
  const d = await loadClassifierData(path);
  return new TrainedClassifier(d.network, { ...d.options }, [...d.history], d.classNames ? [...d.classNames] : undefined);
}
