// The typed surface of the addon's op tables (`addon.cpu`, `addon.cuda`): the Backend ops'
// parameter objects with codes (src/native/codes.ts) in place of names.
import { loadAddon } from '../../native/addon.js';
import { NATIVE_CODES } from '../../native/codes.js';
import type { CoverGainsParams, DistancesParams, HeldRows, KnnMergeParams, MatrixData, Metric, MinUpdateParams, MinUpdateResult, TopK } from '../ops-distance.js';
import type { AdamWStepParams, InfoNCEParams, LinearBackwardParams, LinearForwardParams, MatmulParams, PrototypeLossParams, SinkhornParams } from '../ops-loss.js';
import type { EntropyFusionParams, FusionMode, HeadProjectionParams, SoftmaxCrossEntropyParams } from '../ops-train.js';
import type { GradientLoadResult, GradientSampleResult, GradientSpec } from '../ops-warm.js';
import type { GreedyConfig, GreedyStepResult, PairForm, PairReduction, PrepareResult, RowSet, SelectPoolSpec } from '../ops-select.js';

// Compile-time: every name the Backend ops use has a code.
NATIVE_CODES.metrics satisfies Record<Metric, number>;
NATIVE_CODES.pairForms satisfies Record<PairForm, number>;
NATIVE_CODES.reductions satisfies Record<PairReduction['kind'], number>;
NATIVE_CODES.greedyModes satisfies Record<GreedyConfig['mode'], number>;
NATIVE_CODES.fusionModes satisfies Record<FusionMode, number>;

/** What `addon.cpu` and `addon.cuda` hold: the same ops over each backend's engines
 * (native/binding/{distance,loss,select,train,warm}.cc). Parameter objects are those of the Backend ops with
 * codes (codes.ts) in place of metric, form, reduction and mode names. */
export interface NativeOps {
  distances(a: MatrixData, b: MatrixData, p: Coded<DistancesParams>): Promise<Float32Array>;
  knnMerge(query: MatrixData, ref: HeldRows, p: Coded<KnnMergeParams>, state: TopK): Promise<void>;
  minUpdate(points: HeldRows, center: MatrixData, minDist: Float32Array, p: Coded<MinUpdateParams>, exclude: Uint8Array | null): Promise<MinUpdateResult>;
  coverGains(table: Float32Array, cover: Float32Array, rows: Int32Array, p: CoverGainsParams): Promise<Float64Array>;
  /** Device rows (cuda), or `data` itself where the engine reads host arrays in place (cpu). */
  holdRows(data: MatrixData, p: { rows: number; dim: number }): Promise<HeldRows>;
  releaseRows(held: HeldRows): void;
  infoNCE(za: Float32Array, zb: Float32Array, p: InfoNCEParams, gradA: Float32Array, gradB: Float32Array): Promise<number>;
  sinkhorn(scores: Float32Array, p: SinkhornParams, codes: Float32Array): Promise<void>;
  prototypeLoss(
    z: Float32Array,
    prototypes: Float32Array,
    targets: Float32Array,
    p: PrototypeLossParams,
    gradZ: Float32Array,
    gradPrototypes: Float32Array,
  ): Promise<number>;
  matmul(a: MatrixData, b: Float32Array, c: Float32Array, p: MatmulParams): Promise<void>;
  linearForward(x: MatrixData, w: Float32Array, bias: Float32Array, y: Float32Array, p: LinearForwardParams): Promise<void>;
  linearBackward(
    x: MatrixData,
    w: Float32Array,
    gy: Float32Array,
    gradW: Float32Array,
    gradBias: Float32Array,
    gx: Float32Array | null,
    p: LinearBackwardParams,
  ): Promise<void>;
  adamwStep(params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array, p: AdamWStepParams): Promise<void>;
  openSelection(spec: SelectPoolSpec): Promise<NativeSelection>;
  softmaxCrossEntropy(logits: Float32Array, labels: Int32Array, p: SoftmaxCrossEntropyParams, grad: Float32Array, stats: Float64Array): Promise<void>;
  headProjection(projection: Float32Array, meanFeature: Float32Array, gradWeight: Float32Array, p: HeadProjectionParams): Promise<void>;
  entropyFusion(
    logits: Float32Array,
    present: Uint8Array,
    p: Omit<EntropyFusionParams, 'mode'> & { mode: number },
    fused: Float32Array,
    weights: Float32Array,
    entropy: Float32Array,
    probs: Float32Array,
  ): Promise<void>;
  openGradient(spec: GradientSpec): Promise<NativeGradient>;
}

/** The wrapped native gradient store (native/binding/warm.cc): GradientContext as is. */
export interface NativeGradient {
  readonly rows: number;
  load(start: number, count: number, features: Float32Array[]): Promise<GradientLoadResult>;
  dots(a: Int32Array, b: Int32Array): Promise<Float64Array>;
  sampleInit(exclude: Uint8Array): Promise<void>;
  sampleStep(steps: number, uniforms: Float64Array): Promise<GradientSampleResult>;
  close(): void;
}

/** A metric or pair form as the addon takes it. */
export interface NativePairMetric {
  form: number;
  gamma: number;
}

/** A reduction as the addon takes it: the members of PairReduction, `kind` as its code. */
export type NativeReduction = { kind: number; k?: number; radius?: number; refMask?: Uint8Array; labels?: Int32Array; cover?: Float32Array };

/** The wrapped native selection object (native/binding/select.cc): SelectionContext with codes. */
export interface NativeSelection {
  readonly rows: number;
  prepare(start: number, count: number, wantAlignment: boolean): Promise<PrepareResult>;
  pairReduce(queries: RowSet, refs: RowSet | null, metric: NativePairMetric, reduction: NativeReduction): Promise<Float64Array>;
  distancesFrom(row: number, metric: NativePairMetric): Promise<Float32Array>;
  gather(indices: Int32Array): Promise<Float32Array>;
  setCentroids(centroids: Float32Array, k: number): Promise<void>;
  assign(start: number, count: number, labels: Int32Array, distances: Float32Array, sums: Float64Array, counts: Float64Array): Promise<number>;
  greedyInit(config: { metric: NativePairMetric; base: Float32Array | null; wDiversity: number; exclude: Uint8Array; mode: number }): Promise<void>;
  greedyAddCenters(indices: Int32Array): Promise<void>;
  greedyStep(steps: number, uniforms: Float64Array | null): Promise<GreedyStepResult>;
  close(): void;
}

/** Params with the metric name replaced by its code. */
type Coded<P extends { metric: Metric }> = Omit<P, 'metric'> & { metric: number };

/** The typed op table of one native backend (the loader keeps the tables opaque). */
export function nativeOps(name: 'cpu' | 'cuda'): NativeOps {
  const { addon } = loadAddon();
  if (!addon) throw new Error('nativeOps called without an addon');
  return addon[name] as NativeOps;
}
