// Adapter: addon.{cpu,cuda}.distances / knnMerge / minUpdate → DistanceOps.
import type { DistanceOps } from '../ops-distance.js';

export function nativeDistanceOps(_table: Record<string, (...args: any[]) => any>, _name: 'cpu' | 'cuda'): DistanceOps {
  throw new Error('not implemented yet');
}
