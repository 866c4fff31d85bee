// `pairpick demo`: the main job on the bundled AV-Digits data — train stage 1 on the train split
// (no labels), pick 100 samples with mmcsal, kcenter, typiclust and random, and compare them.
import { coldStartExperiment, type ColdStartArm } from '../eval/coldstart.js';
import { loadDataset } from '../eval/datasets.js';
import { parseCommand, numberFlag } from './args.js';
import { progressBar } from './progress.js';
import type { BackendChoice } from '../backend/index.js';

const ARMS: ColdStartArm[] = [
  { label: 'mmcsal', strategy: 'mmcsal' },
  { label: 'kcenter', strategy: 'kcenter' },
  { label: 'typiclust', strategy: 'typiclust' },
  { label: 'random', strategy: 'random' },
];

export async function demoCommand(argv: string[]): Promise<void> {
  const { values } = parseCommand(
    argv,
    {
      budget: { type: 'string' },
      seed: { type: 'string' },
      epochs: { type: 'string' },
      backend: { type: 'string' },
      json: { type: 'boolean' },
    },
    'demo',
  );
  const budget = numberFlag(values.budget, 'budget', { integer: true, min: 1 }) ?? 100;
  const seed = numberFlag(values.seed, 'seed', { integer: true, min: 0 }) ?? 0;
  const epochs = numberFlag(values.epochs, 'epochs', { integer: true, min: 1 }) ?? 20;
  const backend = values.backend as BackendChoice | undefined;

  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  const started = Date.now();
  const dataset = await loadDataset('av-digits');
  try {
    const bar = progressBar('demo', !values.json && process.stderr.isTTY === true);
    if (!values.json) {
      process.stderr.write(
        `AV-Digits: ${dataset.split.train.length} train pairs (the pool, labels unused) and ${dataset.split.test.length} test pairs; ` +
          `modalities ${dataset.pool.modalities.map((m) => `${m} (${dataset.pool.source(m).dim}-D)`).join(', ')}\n` +
          `stage 1: ${epochs} epochs of InfoNCE + prototypes, then ${budget} picks per strategy…\n`,
      );
    }
    const results = await coldStartExperiment(dataset, {
      arms: ARMS,
      budgets: [budget],
      seeds: [seed],
      stage1: { epochs },
      backend,
      signal: controller.signal,
      onProgress: (done, total, what) => bar.update(done / total, what),
    });
    bar.done();
    const seconds = (Date.now() - started) / 1000;
    if (values.json) {
      process.stdout.write(JSON.stringify({ dataset: 'av-digits', budget, seed, epochs, seconds, results }, null, 2) + '\n');
      return;
    }
    const header = ['strategy', 'classes', 'entropy', 'alignment', 'probe acc', 'time'];
    const rows = results.map((r) => [
      r.label,
      `${r.covered}/${dataset.classes.length}`,
      r.entropy.toFixed(3),
      r.alignment.toFixed(3),
      `${(100 * r.accuracy).toFixed(1)}%`,
      `${r.seconds.toFixed(2)}s`,
    ]);
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
    const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
    const out = [
      `modality gap after stage 1: ${results[0].gap.toFixed(3)}   (entropy of a uniform 10-class histogram: ${Math.log(10).toFixed(3)})`,
      '',
      line(header),
      ...rows.map(line),
      '',
      `probe acc: ridge regression trained on the ${budget} picked samples' raw features only, scored on the test split.`,
      `total ${seconds.toFixed(1)}s`,
    ];
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    process.removeListener('SIGINT', onSigint);
    await dataset.pool.close();
  }
}
