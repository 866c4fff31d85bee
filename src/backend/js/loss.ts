import type { LossOps } from '../ops-loss.js';

export const jsLossOps: LossOps = {} as LossOps; // filled in by the stage-1 kernels
