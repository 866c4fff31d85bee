// Stage-1 ops (InfoNCE, Sinkhorn, prototype loss, the projection heads' matrix products).
// Filled in by the stage-1 work; see spec/methods.md §1.
import type { MatrixData } from './ops-distance.js';

// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface LossOps {}

export type { MatrixData };
