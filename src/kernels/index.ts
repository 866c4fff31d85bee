// `kernels.*`: the backend ops as a validated public API for other Node ML tools.
export * from './distance.js';
export * from './loss.js';
