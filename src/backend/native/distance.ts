// Adapter: addon.{cpu,cuda}.distances / knnMerge / minUpdate / coverGains / holdRows / releaseRows →
// DistanceOps (metric names → codes).
import type { DistanceOps } from '../ops-distance.js';
import { callNative } from '../../native/addon.js';
import { NATIVE_CODES } from '../../native/codes.js';
import type { NativeOps } from './ops.js';

export function nativeDistanceOps(ops: NativeOps, name: 'cpu' | 'cuda'): DistanceOps {
  const metrics = NATIVE_CODES.metrics;
  return {
    distances: (a, b, p) => callNative(() => ops.distances(a, b, { ...p, metric: metrics[p.metric] }), `${name} distances`),
    knnMerge: (q, r, p, state) => callNative(() => ops.knnMerge(q, r, { ...p, metric: metrics[p.metric] }, state), `${name} knnMerge`),
    minUpdate: (points, center, minDist, p, exclude) =>
      callNative(() => ops.minUpdate(points, center, minDist, { ...p, metric: metrics[p.metric] }, exclude ?? null), `${name} minUpdate`),
    coverGains: (table, cover, rows, p) => callNative(() => ops.coverGains(table, cover, rows, p), `${name} coverGains`),
    holdRows: (data, rows, dim) => callNative(() => ops.holdRows(data, { rows, dim }), `${name} holdRows`),
    releaseRows: (held) => {
      if (!ArrayBuffer.isView(held)) ops.releaseRows(held);
    },
  };
}
