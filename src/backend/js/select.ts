import type { SelectOps } from '../ops-select.js';

export const jsSelectOps: SelectOps = {};
