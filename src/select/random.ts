// Random (spec §3.7): a seeded uniform sample without replacement of the unlabelled rows.
import { Rng } from '../util/rng.js';
import { candidates, type Run } from './common.js';

export function randomPicks(run: Pick<Run, 'rows' | 'labeled' | 'labeledMask' | 'seed'>, budget: number): Int32Array {
  const rest = candidates(run as Run);
  const rng = new Rng(run.seed);
  for (let t = 0; t < budget; t++) {
    const j = t + rng.int(rest.length - t);
    const x = rest[t];
    rest[t] = rest[j];
    rest[j] = x;
  }
  return rest.slice(0, budget);
}
