import type { DistanceOps } from '../ops-distance.js';

export const jsDistanceOps: DistanceOps = {} as DistanceOps; // filled in by the distance core
