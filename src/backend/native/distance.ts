// Adapter: addon.{cpu,cuda}.distances / knnMerge / minUpdate → DistanceOps.
// Signatures (native/binding/distance.cc):
//   distances(a, b, rowsA, rowsB, dim, metricCode) → Promise<Float32Array>
//   knnMerge(q, r, rowsQ, rowsR, dim, k, metricCode, refOffset, queryOffset, excludeSelf, idx, dist) → Promise<void>
//   minUpdate(points, center, rows, dim, metricCode, minDist, exclude | null) → Promise<{ argmax, max }>
import type { DistanceOps, MatrixData, Metric, MinUpdateResult } from '../ops-distance.js';
import { callNative } from './addon.js';

/** Metric codes shared with native/core/distance.h and cuda/api.h. */
export const METRIC_CODE: Record<Metric, number> = { sqeuclidean: 0, euclidean: 1, cosine: 2 };

interface NativeDistanceTable {
  distances(a: MatrixData, b: MatrixData, rowsA: number, rowsB: number, dim: number, metric: number): Promise<Float32Array>;
  knnMerge(
    q: MatrixData,
    r: MatrixData,
    rowsQ: number,
    rowsR: number,
    dim: number,
    k: number,
    metric: number,
    refOffset: number,
    queryOffset: number,
    excludeSelf: boolean,
    idx: Int32Array,
    dist: Float32Array,
  ): Promise<void>;
  minUpdate(
    points: MatrixData,
    center: MatrixData,
    rows: number,
    dim: number,
    metric: number,
    minDist: Float32Array,
    exclude: Uint8Array | null,
  ): Promise<MinUpdateResult>;
}

export function nativeDistanceOps(table: Record<string, (...args: any[]) => any>, name: 'cpu' | 'cuda'): DistanceOps {
  const t = table as unknown as NativeDistanceTable;
  return {
    distances: (a, b, p) =>
      callNative(() => t.distances(a, b, p.rowsA, p.rowsB, p.dim, METRIC_CODE[p.metric]), `${name} distances`),
    knnMerge: (q, r, p, state) =>
      callNative(
        () =>
          t.knnMerge(q, r, p.rowsQ, p.rowsR, p.dim, p.k, METRIC_CODE[p.metric], p.refOffset, p.queryOffset, p.excludeSelf, state.indices, state.distances),
        `${name} knnMerge`,
      ),
    minUpdate: (points, center, minDist, p, exclude) =>
      callNative(() => t.minUpdate(points, center, p.rows, p.dim, METRIC_CODE[p.metric], minDist, exclude ?? null), `${name} minUpdate`),
  };
}
