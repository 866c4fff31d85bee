// Adapter: addon.{cpu,cuda} stage-1 ops → LossOps.
import type { LossOps } from '../ops-loss.js';

export function nativeLossOps(_table: Record<string, (...args: any[]) => any>, _name: 'cpu' | 'cuda'): LossOps {
  return {} as LossOps;
}
