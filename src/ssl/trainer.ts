// Stage 1 trainer (spec/methods.md §1): projection heads + prototypes fitted with AdamW on seeded,
// shuffled mini-batches gathered from the (memory-mapped) sources with readRows — the pool is
// never copied whole into the JS heap. Memory: the model, its optimiser state and a few batches.
import { getBackend, type BackendChoice } from '../backend/index.js';
import type { Backend } from '../backend/types.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import { MAX_SINKHORN_ITERATIONS } from '../kernels/loss.js';
import {
  BACKEND,
  BOOLEAN,
  checkPool,
  checkTensorSizes,
  count,
  either,
  FUNCTION,
  integer,
  number,
  oneOf,
  optionName,
  readOptions,
  SEED,
  SIGNAL,
  type Schema,
} from '../util/validate.js';
import { withPool, type PoolInput } from '../io/pool.js';
import { Rng } from '../util/rng.js';
import { FlatAdamW, type AdamWParam } from './adamw.js';
import { gapFromMeans, MeanAccumulator } from './gap.js';
import { Projection, type PoolLike } from './model.js';
import { headForward, headParams, initHead, Workspace, type Head, type HeadGrads } from './projection.js';
import { normalizePrototypes, stepLossAndGrads, type Stage1State } from './step.js';
import { checkPoolFinite } from './validate.js';

/** Options of `fitProjection()`; every default is the one of spec/methods.md §1. */
export interface FitOptions {
  /** Passes over the pool (default 20). */
  epochs?: number;
  /** Output dimension d of every head (default 128). */
  dim?: number;
  /** Hidden width h of the MLP heads (default 512); 0 or 'linear' gives linear heads. */
  hidden?: number | 'linear';
  /** Prototypes K per modality (default 64; the class count when known is a good choice). */
  prototypes?: number;
  /** Weight β of the prototype losses (default 1; 0 = contrastive only). */
  beta?: number;
  /** InfoNCE temperature τ (default 0.07). */
  temperature?: number;
  /** Prototype softmax temperature τ_p (default 0.1). */
  protoTemperature?: number;
  /** Sinkhorn-Knopp ε (default 0.05). */
  epsilon?: number;
  /** Sinkhorn-Knopp iterations (default 3). */
  sinkhornIterations?: number;
  /** Swapped prototype targets: modality a learns b's codes and vice versa (M > 2: the mean of the others' codes). Default false. */
  swap?: boolean;
  /** Mini-batch size b (default 1024; clamped to the pool size). */
  batch?: number;
  /** AdamW learning rate (default 1e-3). */
  lr?: number;
  /** AdamW decoupled weight decay on the weight matrices (default 1e-4). */
  weightDecay?: number;
  /** Seed of the initialisation and of the batch order (default 0). */
  seed?: number;
  /** Backend for the heavy ops (default: PAIRPICK_BACKEND, else cuda → cpu → js). */
  backend?: BackendChoice;
  /** Stops training between mini-batches with `E_ABORTED`. */
  signal?: AbortSignal;
  /** Called after every mini-batch and pass over the pool. */
  onProgress?: (progress: FitProgress) => void;
  /** Called when an epoch (and its gap pass) is done, with its history record. */
  onEpoch?: (record: EpochRecord) => void;
}

/** The options a model was trained with (stored in its checkpoint). */
export interface ResolvedFitOptions {
  epochs: number;
  dim: number;
  /** 0 = linear heads. */
  hidden: number;
  prototypes: number;
  beta: number;
  temperature: number;
  protoTemperature: number;
  epsilon: number;
  sinkhornIterations: number;
  swap: boolean;
  batch: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** The backend that trained it. */
  backend: string;
}

export interface FitProgress {
  /** `check` = NaN/Inf scan of the inputs, `gap` = a pass measuring the modality gap, `train` = a mini-batch. */
  phase: 'check' | 'gap' | 'train';
  /** 1-based epoch while training; 0 before it. */
  epoch: number;
  epochs: number;
  /** Mini-batches done in this epoch, and their count. */
  batch: number;
  batches: number;
  /** Mean loss of the epoch's batches so far (train phase). */
  loss?: number;
  /** Overall progress in [0, 1]. */
  fraction: number;
}

/** One row of the training history. */
export interface EpochRecord {
  epoch: number;
  /** Mean over the epoch's batches of L = infoNCE + β·proto. */
  loss: number;
  infoNCE: number;
  /** Σ_m L_proto^m (0 when β = 0: not computed). */
  proto: number;
  /** Modality gap on the whole pool after the epoch. */
  gap: number;
  /** Wall time of the epoch's optimisation steps (the gap pass not included). */
  seconds: number;
}

export const FIT_DEFAULTS = {
  epochs: 20,
  dim: 128,
  hidden: 512,
  prototypes: 64,
  beta: 1,
  temperature: 0.07,
  protoTemperature: 0.1,
  epsilon: 0.05,
  sinkhornIterations: 3,
  swap: false,
  batch: 1024,
  lr: 1e-3,
  weightDecay: 1e-4,
  seed: 0,
} as const;

/** Every option of fitProjection (option name → rule). */
const FIT_OPTIONS = {
  epochs: count(1),
  dim: count(1),
  hidden: either(oneOf(['linear'] as const), count(0)),
  prototypes: count(1),
  beta: number({ min: 0 }),
  temperature: number({ above: 0 }),
  protoTemperature: number({ above: 0 }),
  epsilon: number({ above: 0 }),
  sinkhornIterations: integer({ min: 1, max: MAX_SINKHORN_ITERATIONS }),
  swap: BOOLEAN,
  batch: count(2),
  lr: number({ above: 0 }),
  weightDecay: number({ min: 0 }),
  seed: SEED,
  backend: BACKEND,
  signal: SIGNAL,
  onProgress: FUNCTION,
  onEpoch: FUNCTION,
} satisfies Schema;

/** Validates fit options (E_OPTION naming the option) and fills in the defaults. */
export function resolveFitOptions(options: FitOptions, where = 'fitProjection'): Omit<ResolvedFitOptions, 'backend'> {
  const o = readOptions(options, FIT_OPTIONS, where);
  const d = FIT_DEFAULTS;
  const hidden = o.hidden ?? d.hidden;
  return {
    epochs: o.epochs ?? d.epochs,
    dim: o.dim ?? d.dim,
    hidden: hidden === 'linear' ? 0 : hidden,
    prototypes: o.prototypes ?? d.prototypes,
    beta: o.beta ?? d.beta,
    temperature: o.temperature ?? d.temperature,
    protoTemperature: o.protoTemperature ?? d.protoTemperature,
    epsilon: o.epsilon ?? d.epsilon,
    sinkhornIterations: o.sinkhornIterations ?? d.sinkhornIterations,
    swap: o.swap ?? d.swap,
    batch: o.batch ?? d.batch,
    lr: o.lr ?? d.lr,
    weightDecay: o.weightDecay ?? d.weightDecay,
    seed: o.seed ?? d.seed,
  };
}

/** Checks the pool can be trained on: ≥ 2 modalities, ≥ 2 rows, equal row counts. */
export function checkTrainablePool(pool: PoolLike, where = 'fitProjection'): void {
  checkPool(pool, where);
  if (pool.modalities.length < 2) {
    throw new PairpickError('E_SHAPE', `${where}: stage 1 needs at least 2 modalities, the pool has ${pool.modalities.length} (${pool.modalities.join(', ') || 'none'})`);
  }
  if (pool.rows < 2) throw new PairpickError('E_SHAPE', `${where}: the pool has ${pool.rows} row(s); contrastive training needs at least 2`);
}

/**
 * Refuses model and batch shapes whose arrays would exceed MAX_TENSOR_VALUES, before anything is
 * allocated: the heads' weights, the prototypes, all parameters together, and the per-batch
 * activations (the batch is clamped to the pool's rows first).
 */
export function checkModelSize(pool: PoolLike, o: Pick<ResolvedFitOptions, 'dim' | 'hidden' | 'prototypes' | 'batch'>, where = 'fitProjection'): void {
  const { dim, hidden, prototypes: K } = o;
  const b = Math.min(o.batch, pool.rows);
  const batch = b === o.batch ? `'batch' ${b}` : `${b} rows (the pool)`;
  const tensors: [string, number][] = [];
  let parameters = K * dim * pool.modalities.length;
  for (const m of pool.modalities) {
    const D = pool.source(m).dim;
    const first = hidden > 0 ? hidden * D : dim * D;
    parameters += first + (hidden > 0 ? hidden * dim : 0);
    tensors.push([`modality '${m}': the first layer (input ${D} × ${hidden > 0 ? `'hidden' ${hidden}` : `'dim' ${dim}`})`, first]);
    tensors.push([`modality '${m}': a batch of inputs (${batch} × input ${D})`, b * D]);
  }
  if (hidden > 0) {
    tensors.push([`the second layer ('hidden' ${hidden} × 'dim' ${dim})`, hidden * dim]);
    tensors.push([`a batch of hidden activations (${batch} × 'hidden' ${hidden})`, b * hidden]);
  }
  tensors.push([`the prototypes ('prototypes' ${K} × 'dim' ${dim})`, K * dim]);
  tensors.push([`a batch of outputs (${batch} × 'dim' ${dim})`, b * dim]);
  tensors.push([`a batch of prototype scores (${batch} × 'prototypes' ${K})`, b * K]);
  tensors.push([`the model's parameters (options 'dim', 'hidden', 'prototypes')`, parameters]);
  checkTensorSizes(where, tensors);
}

/** Fresh heads and unit-norm prototypes, drawn in a fixed order from `seed`. */
export function initState(modalities: readonly string[], inputDims: readonly number[], o: { seed: number; hidden: number; dim: number; prototypes: number }): Stage1State {
  const rng = new Rng(o.seed);
  const heads = inputDims.map((D) => initHead(rng, D, o.hidden, o.dim));
  const prototypes = modalities.map(() => {
    const C = new Float32Array(o.prototypes * o.dim);
    for (let i = 0; i < C.length; i++) C[i] = rng.normal();
    normalizePrototypes(C, o.dim);
    return C;
  });
  return { modalities, heads, prototypes };
}

/** The modality gap of the current heads over the whole pool, streamed in blocks. */
export async function poolGap(
  backend: Backend,
  pool: PoolLike,
  heads: readonly Head[],
  opts: { signal?: AbortSignal; chunkRows?: number; onChunk?: (rowsDone: number) => void } = {},
): Promise<number> {
  const chunkRows = opts.chunkRows ?? 4096;
  const means: Float64Array[] = [];
  let done = 0;
  for (let m = 0; m < pool.modalities.length; m++) {
    const acc = new MeanAccumulator(heads[m].dim);
    for await (const chunk of pool.source(pool.modalities[m]).chunks(chunkRows, { signal: opts.signal })) {
      const { z } = await headForward(backend, heads[m], chunk.data, chunk.count);
      acc.add(z, chunk.count);
      done += chunk.count;
      opts.onChunk?.(done);
      throwIfAborted(opts.signal, 'fitProjection');
    }
    means.push(acc.mean());
  }
  return gapFromMeans(means);
}

/**
 * The heads and prototypes `fitProjection` would start from with the same options (seed, shapes),
 * untrained: a baseline for "the same heads at random initialisation". `gap` and `gapBefore` are
 * the gap of these heads on the pool; `history` is empty.
 */
export async function initProjection(input: PoolLike | PoolInput, options: Omit<FitOptions, 'onEpoch'> = {}): Promise<Projection> {
  return withPool(input, 'initProjection', options?.signal, (pool) => initOnPool(pool as PoolLike, options));
}

async function initOnPool(pool: PoolLike, options: Omit<FitOptions, 'onEpoch'>): Promise<Projection> {
  const where = 'initProjection';
  options ??= {};
  const resolved = resolveFitOptions(options, where);
  checkTrainablePool(pool, where);
  checkModelSize(pool, resolved, where);
  const backend = getBackend(options.backend, optionName(where, 'backend'));
  const names = [...pool.modalities];
  const state = initState(names, names.map((n) => pool.source(n).dim), resolved);
  const gap = await poolGap(backend, pool, state.heads, { signal: options.signal });
  return new Projection({ modalities: names, heads: state.heads, prototypes: state.prototypes, options: { ...resolved, backend: backend.name }, history: [], gapBefore: gap, gap });
}

/**
 * Stage 1: trains one projection head per modality (and K prototypes each) on the pool, with
 * cross-modal InfoNCE + β · prototype losses (spec/methods.md §1), and returns the Projection.
 * The inputs are scanned for NaN/Inf first (E_NAN naming the modality and row). The last partial
 * batch of an epoch is kept when it has ≥ 2 rows (a single leftover row is dropped). `input` is an
 * open pool or what openPool accepts (paths, sources, 2-D tensors, `{ data, dim }`), then opened
 * and closed here.
 */
export async function fitProjection(input: PoolLike | PoolInput, options: FitOptions = {}): Promise<Projection> {
  return withPool(input, 'fitProjection', options?.signal, (pool) => fitOnPool(pool as PoolLike, options));
}

async function fitOnPool(pool: PoolLike, options: FitOptions): Promise<Projection> {
  options ??= {};
  const resolved = resolveFitOptions(options);
  checkTrainablePool(pool);
  checkModelSize(pool, resolved);
  const backend = getBackend(options.backend, optionName('fitProjection', 'backend'));
  const { signal, onProgress } = options;
  const o: ResolvedFitOptions = { ...resolved, backend: backend.name };
  const names = [...pool.modalities];
  const sources = names.map((n) => pool.source(n));
  const N = pool.rows;
  const M = names.length;
  const batch = Math.min(o.batch, N);
  const batches = Math.floor(N / batch) + (N % batch >= 2 ? 1 : 0);

  // Overall progress: a scan ≈ 0.05 epoch, a gap pass (forward only) ≈ 0.3 epoch.
  const totalUnits = 0.05 + 0.3 * (o.epochs + 1) + o.epochs;
  let unitsDone = 0;
  const report = (p: Omit<FitProgress, 'fraction' | 'epochs'>, units: number) => {
    onProgress?.({ ...p, epochs: o.epochs, fraction: Math.min(1, (unitsDone + units) / totalUnits) });
  };

  throwIfAborted(signal, 'fitProjection');
  await checkPoolFinite(pool, { signal, onProgress: (f) => report({ phase: 'check', epoch: 0, batch: 0, batches }, 0.05 * f) });
  unitsDone += 0.05;

  const state = initState(names, sources.map((s) => s.dim), o);
  const gapPass = async (epoch: number) => {
    const g = await poolGap(backend, pool, state.heads, {
      signal,
      onChunk: (rows) => report({ phase: 'gap', epoch, batch: 0, batches }, (0.3 * rows) / (N * M)),
    });
    unitsDone += 0.3;
    return g;
  };
  const gapBefore = await gapPass(0);

  // Every parameter lives in the optimiser's flat buffer from here on: the heads and prototypes
  // become views of it, and the step writes its gradients straight into the matching views.
  const params: AdamWParam[] = [];
  for (const head of state.heads) for (const p of headParams(head)) params.push({ value: p.value, decay: !p.isBias });
  for (const C of state.prototypes) params.push({ value: C, decay: false });
  const optimizer = new FlatAdamW(backend, params, { lr: o.lr, weightDecay: o.weightDecay });
  const headGrads: HeadGrads[] = [];
  let t = 0;
  for (const head of state.heads) {
    const g = {} as HeadGrads;
    for (const p of headParams(head)) {
      head[p.name] = optimizer.values[t];
      g[p.name] = optimizer.grads[t++];
    }
    headGrads.push(g);
  }
  const prototypeGrads = state.prototypes.map((_, m) => {
    state.prototypes[m] = optimizer.values[t];
    return optimizer.grads[t++];
  });
  const stepOutput = { headGrads, prototypeGrads, workspace: new Workspace() };
  // The batch order has its own stream, so changing the model shape does not reshuffle batches.
  const shuffler = new Rng((o.seed ^ 0x6a09e667) >>> 0);
  const hyper = { beta: o.beta, temperature: o.temperature, protoTemperature: o.protoTemperature, epsilon: o.epsilon, sinkhornIterations: o.sinkhornIterations, swap: o.swap };

  const history: EpochRecord[] = [];
  let gap = gapBefore;
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const started = performance.now();
    const order = shuffler.permutation(N);
    let sumLoss = 0;
    let sumInfo = 0;
    let sumProto = 0;
    for (let k = 0; k < batches; k++) {
      throwIfAborted(signal, 'fitProjection');
      // Rows of a batch are read in ascending order (locality in the mapped files); the losses do
      // not depend on the order of the pairs within a batch.
      const indices = order.slice(k * batch, Math.min(N, (k + 1) * batch)).sort();
      const rows = indices.length;
      const inputs: Float32Array[] = [];
      for (const s of sources) inputs.push(await s.readRows(indices));
      const r = await stepLossAndGrads(backend, state, inputs, rows, hyper, stepOutput);
      if (!Number.isFinite(r.loss)) {
        throw new PairpickError('E_NAN', `fitProjection: training diverged (loss ${r.loss}) at epoch ${epoch}, batch ${k + 1}; try a smaller lr (now ${o.lr})`);
      }
      await optimizer.update();
      for (const C of state.prototypes) normalizePrototypes(C, o.dim);
      sumLoss += r.loss;
      sumInfo += r.infoNCE;
      sumProto += r.proto;
      report({ phase: 'train', epoch, batch: k + 1, batches, loss: sumLoss / (k + 1) }, (k + 1) / batches);
    }
    unitsDone += 1;
    const seconds = (performance.now() - started) / 1000;
    gap = await gapPass(epoch);
    const record: EpochRecord = { epoch, loss: sumLoss / batches, infoNCE: sumInfo / batches, proto: sumProto / batches, gap, seconds };
    history.push(record);
    options.onEpoch?.(record);
  }

  return new Projection({
    modalities: names,
    heads: state.heads,
    prototypes: state.prototypes,
    options: o,
    history,
    gapBefore,
    gap,
  });
}
