// pairpick's public API.
export { PairpickError, type ErrorCode } from './errors.js';
export { backends, getBackend, type BackendChoice } from './backend/index.js';
export type { Backend, BackendInfo, BackendName, MatrixData, Metric, TopK } from './backend/types.js';
export * as kernels from './kernels/index.js';
export { packageVersion as version } from './util/root.js';
export * from './io/index.js';
export * from './ssl/index.js';
export * from './select/index.js';
export * from './eval/index.js';
export * from './train/index.js';
