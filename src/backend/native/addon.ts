// Loads build/Release/pairpick.node once. Everything native goes through `loadAddon()`.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { PairpickError, type ErrorCode } from '../../errors.js';
import { packageRoot } from '../../util/root.js';
import type { DistancesParams, KnnMergeParams, MatrixData, Metric, MinUpdateParams, MinUpdateResult, TopK } from '../ops-distance.js';
import type { InfoNCEParams, MatmulParams, PrototypeLossParams, SinkhornParams } from '../ops-loss.js';
import type { GreedyStepResult, PrepareResult, RowSet, SelectPoolSpec } from '../ops-select.js';
import { checkNativeCodes, NATIVE_CODES, type NativeCodes } from './codes.js';

/** What `addon.cpu` and `addon.cuda` hold: the same ops over each backend's engines
 * (native/binding/{distance,loss,select}.cc). Parameter objects are those of the Backend ops with
 * codes (codes.ts) in place of metric, form, reduction and mode names. */
export interface NativeOps {
  distances(a: MatrixData, b: MatrixData, p: Coded<DistancesParams>): Promise<Float32Array>;
  knnMerge(query: MatrixData, ref: MatrixData, p: Coded<KnnMergeParams>, state: TopK): Promise<void>;
  minUpdate(points: MatrixData, center: MatrixData, minDist: Float32Array, p: Coded<MinUpdateParams>, exclude: Uint8Array | null): Promise<MinUpdateResult>;
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
  openSelection(spec: SelectPoolSpec): Promise<NativeSelection>;
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

/** The addon: build facts, code tables, the memory mapping (src/io/mmap.ts) and one op table per native backend. */
export interface Addon {
  build: { flavour: string; cudaBuilt: boolean };
  threads: number;
  simd: string;
  codes: NativeCodes;
  cudaProbe(): { built: boolean; available: boolean; name?: string; memory?: number; computeCapability?: string; reason?: string };
  /** Typed where it is used (src/io/mmap.ts). */
  mmap?: unknown;
  cpu: NativeOps;
  cuda: NativeOps;
}

let state: { addon: Addon | null; reason?: string } | undefined;

/**
 * The addon, or null with the reason it could not be loaded (kept for `pairpick info`). Throws
 * E_BACKEND when an addon loads but its code tables differ from this version's (a stale build).
 */
export function loadAddon(): { addon: Addon | null; reason?: string } {
  if (state) return state;
  // Behave exactly as an install where no native build succeeded (used to test the pure-JS mode).
  if (process.env.PAIRPICK_NO_ADDON === '1') {
    return (state = { addon: null, reason: 'native addon disabled (PAIRPICK_NO_ADDON=1)' });
  }
  const root = packageRoot();
  const file = join(root, 'build', 'Release', 'pairpick.node');
  if (!existsSync(file)) {
    return (state = { addon: null, reason: `native addon not built (${buildReport(root) ?? 'run `npm run build:native`'})` });
  }
  let addon: Addon;
  try {
    const require = createRequire(import.meta.url);
    addon = require(file) as Addon;
  } catch (e) {
    return (state = { addon: null, reason: `native addon failed to load: ${(e as Error).message}` });
  }
  checkNativeCodes(addon.codes, file);
  return (state = { addon });
}

function buildReport(root: string): string | undefined {
  try {
    const report = JSON.parse(readFileSync(join(root, 'build', 'native-build.json'), 'utf8'));
    const failed = (report.attempts ?? []).filter((a: { ok: boolean }) => !a.ok);
    if (failed.length) return failed.map((a: { tool: string; reason: string }) => `${a.tool}: ${a.reason}`).join('; ');
  } catch {
    /* no report */
  }
  return undefined;
}

const ERROR_CODES: ReadonlySet<string> = new Set(Object.keys(NATIVE_CODES.errors));

/** Turns an error thrown by the addon (a JS Error with a `code`) into a PairpickError. */
export function fromNative(e: unknown, context?: string): PairpickError {
  if (e instanceof PairpickError) return e;
  const err = e as { code?: string; message?: string };
  const code = (err?.code && ERROR_CODES.has(err.code) ? err.code : 'E_INTERNAL') as ErrorCode;
  const message = context ? `${context}: ${err?.message ?? String(e)}` : (err?.message ?? String(e));
  return new PairpickError(code, message, { cause: e });
}

/** Calls a native function and converts what it throws or rejects with. */
export async function callNative<T>(fn: () => Promise<T> | T, context?: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fromNative(e, context);
  }
}
