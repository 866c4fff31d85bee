// Adapter: addon.{cpu,cuda} selection ops → SelectOps.
import type { SelectOps } from '../ops-select.js';

export function nativeSelectOps(_table: Record<string, (...args: any[]) => any>, _name: 'cpu' | 'cuda'): SelectOps {
  return {};
}
