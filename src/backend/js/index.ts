// The pure-TypeScript backend: same results as the native ones, everywhere, slower.
import type { Backend } from '../types.js';
import { jsDistanceOps } from './distance.js';
import { jsLossOps } from './loss.js';
import { jsSelectOps } from './select.js';
import { jsTrainOps } from './train.js';
import { jsWarmOps } from './warm.js';

export const jsBackend: Backend = {
  name: 'js',
  ...jsDistanceOps,
  ...jsLossOps,
  ...jsSelectOps,
  ...jsTrainOps,
  ...jsWarmOps,
};
