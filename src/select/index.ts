// Selection: which rows of a pool to label (spec §3).
export {
  select,
  validateLabeled,
  STRATEGIES,
  SELECT_DEFAULTS,
  type Strategy,
  type SelectOptions,
  type SelectCommonOptions,
  type Selection,
  type SelectProgress,
  type PoolLike as SelectPool,
  type MmcsalComponents,
  type MmcsalRaw,
} from './select.js';
export { AUTO_LAMBDA_ALIGN, DEFAULT_ALIGN_QUANTILE, DEFAULT_COVERAGE_SAMPLE, MMCSAL_ALIGNMENTS, MMCSAL_DISTRIBUTIONS, MMCSAL_SPACES } from './mmcsal.js';
export type { FacilityOptimizer } from './facility.js';
export { activeLearningRound, type ActiveLearningRound, type ActiveLearningRoundOptions } from './rounds.js';
export type { SelectionComponents } from './strategy.js';
