// Stage 1 (spec/methods.md §1): projection heads trained with cross-modal InfoNCE + prototypes.
export { fitProjection, initProjection, FIT_DEFAULTS, type FitOptions, type FitProgress, type EpochRecord, type ResolvedFitOptions } from './trainer.js';
export { Projection, loadProjection, type EmbedOptions, type EmbeddedPool, type PoolLike } from './model.js';
export { modalityGap, type ModalityGapOptions } from './gap.js';
export type { Head } from './projection.js';
