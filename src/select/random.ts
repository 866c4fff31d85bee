// Random (spec §3.7): a seeded uniform sample without replacement of the unlabelled rows.
import { Rng } from '../util/rng.js';
import { candidates, type RunBase } from './common.js';
import { defineStrategy } from './strategy.js';

export function randomPicks(run: Pick<RunBase, 'rows' | 'labeled' | 'labeledMask' | 'seed'>, budget: number): Int32Array {
  const rest = candidates(run);
  const rng = new Rng(run.seed);
  for (let t = 0; t < budget; t++) {
    const j = t + rng.int(rest.length - t);
    const x = rest[t];
    rest[t] = rest[j];
    rest[j] = x;
  }
  return rest.slice(0, budget);
}

export const randomStrategy = defineStrategy({
  name: 'random',
  kind: 'cold',
  doc: 'a seeded uniform sample of the unlabelled rows (the embeddings are not read)',
  options: {},
  weights: { select: 1 },
  readsPool: false,
  async run(run, budget) {
    run.checkAbort();
    const indices = randomPicks(run, budget);
    run.report('select', budget, budget);
    return { indices };
  },
});
