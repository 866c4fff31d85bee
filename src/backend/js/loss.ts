import type { LossOps } from '../ops-loss.js';

export const jsLossOps: LossOps = {};
