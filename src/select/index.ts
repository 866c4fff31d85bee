// Selection: which rows of a pool to label (spec §3).
export {
  select,
  validateLabeled,
  STRATEGIES,
  SELECT_DEFAULTS,
  AUTO_LAMBDA_ALIGN,
  type Strategy,
  type SelectOptions,
  type Selection,
  type SelectProgress,
  type PoolLike as SelectPool,
  type MmcsalComponents,
  type MmcsalRaw,
} from './select.js';
export type { FacilityOptimizer } from './facility.js';
