// The cold-start experiment (src/eval/coldstart.ts): a cell must not depend on the other budgets
// of the run — selections are shared across budgets only by greedy runs whose picks for a smaller
// budget are a prefix of a larger one's.
import { describe, expect, it } from 'vitest';

import { coldStartExperiment, type ColdStartArm } from '../src/eval/coldstart.js';
import { evalDataset, makeEvalData } from './helpers/eval-data.js';
import { testRng } from './helpers/random.js';

describe('coldStartExperiment', () => {
  it('a cell is the same whether or not a larger budget is asked for in the same run', async () => {
    const rng = testRng();
    const d = makeEvalData(rng, { classes: 5, perClass: 30 });
    const arms: ColdStartArm[] = [
      { label: 'mmcsal clusters', strategy: 'mmcsal', options: { distribution: 'clusters', alignment: 'filter' } },
      { label: 'mmcsal coverage', strategy: 'mmcsal', options: { distribution: 'coverage', alignment: 'filter' } },
      { label: 'mmcsal density', strategy: 'mmcsal' },
      { label: 'facility', strategy: 'facility' },
      { label: 'facility stochastic', strategy: 'facility', options: { optimizer: 'stochastic' } },
      { label: 'kcenter', strategy: 'kcenter' },
      { label: 'kmeans', strategy: 'kmeans' },
    ];
    const seed = rng.int(1000);
    const small = 4 + rng.int(4);
    const large = 15 + rng.int(10);
    const run = async (budgets: number[]) => {
      const dataset = await evalDataset(d);
      try {
        return await coldStartExperiment(dataset, { arms, budgets, seeds: [seed], stage1: { epochs: 2 } });
      } finally {
        await dataset.pool.close();
      }
    };
    const alone = await run([small]);
    const both = await run([small, large]);
    expect(alone).toHaveLength(arms.length);
    for (const a of alone) {
      const b = both.find((r) => r.label === a.label && r.budget === small);
      // Accuracy, classes covered, entropy and the picks' mean alignment follow from the picks.
      expect({ ...b, seconds: 0 }, a.label).toEqual({ ...a, seconds: 0 });
    }
  });
});
