// The cold-start experiment (src/eval/coldstart.ts): a cell must not depend on the other budgets
// of the run — selections are shared across budgets only by greedy runs whose picks for a smaller
// budget are a prefix of a larger one's.
import { describe, expect, it } from 'vitest';

import { coldStartExperiment, type ColdStartArm } from '../src/eval/coldstart.js';
import { rejectsWith } from './helpers/errors.js';
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

  it("mmcsal arms that resolve to space 'embedding+inputs' get the raw pool as inputs; other arms select on the embedding alone", async () => {
    const rng = testRng();
    const d = makeEvalData(rng, { classes: 4, perClass: 20 });
    const arms: ColdStartArm[] = [
      { label: 'mmcsal default', strategy: 'mmcsal' },
      { label: 'mmcsal auto coverage', strategy: 'mmcsal', options: { space: 'auto', distribution: 'coverage' } },
      { label: 'mmcsal concat', strategy: 'mmcsal', options: { space: 'concat' } },
      { label: 'mmcsal density', strategy: 'mmcsal', options: { distribution: 'density' } },
      { label: 'mmcsal clusters', strategy: 'mmcsal', options: { distribution: 'clusters' } },
      { label: 'facility', strategy: 'facility' },
    ];
    const dataset = await evalDataset(d);
    try {
      const results = await coldStartExperiment(dataset, { arms, budgets: [6], seeds: [rng.int(1000)], stage1: { epochs: 1 } });
      const space = Object.fromEntries(results.map((r) => [r.label, r.space]));
      expect(space).toEqual({
        'mmcsal default': 'embedding+inputs',
        'mmcsal auto coverage': 'embedding+inputs',
        'mmcsal concat': 'concat',
        'mmcsal density': 'multimodal',
        'mmcsal clusters': 'concat',
        facility: undefined,
      });
      // The experiment sets the inputs itself (the raw rows of each seed's pool).
      const own = { label: 'own inputs', strategy: 'mmcsal', options: { inputs: dataset.pool } } as ColdStartArm;
      await rejectsWith(coldStartExperiment(dataset, { arms: [own], budgets: [6], seeds: [1] }), 'E_OPTION', /arms\[0\]\.options: option 'inputs' is set by the experiment/);
    } finally {
      await dataset.pool.close();
    }
  });
});
