// `pairpick demo`: the main job on the bundled AV-Digits data — train stage 1 on the train split
// (no labels), pick 100 samples with mmcsal, kcenter, typiclust and random, and compare them.
import { coldStartExperiment, type ColdStartArm, type ColdStartResult } from '../eval/coldstart.js';
import { loadDataset, type Dataset } from '../eval/datasets.js';
import { evaluate } from '../eval/evaluate.js';
import { HELP_FLAG, QUIET_FLAG, type CommandSpec, type ParsedArgs } from './args.js';
import { commandProgress, runCommand, streams, withInterrupt, type CommandContext } from './context.js';
import type { Progress } from './progress.js';
import { backendFlag, BACKENDS, COMMON_NOTES } from './shared.js';

const ARMS: ColdStartArm[] = [
  { label: 'mmcsal', strategy: 'mmcsal' },
  { label: 'kcenter', strategy: 'kcenter' },
  { label: 'typiclust', strategy: 'typiclust' },
  { label: 'random', strategy: 'random' },
];

const STAGE1_SHARE = 0.8;

export const DEMO_SPEC: CommandSpec = {
  name: 'demo',
  summary: 'fit stage 1 on the bundled AV-Digits data and compare selection strategies',
  synopsis: 'pairpick demo [options]',
  description:
    'Fits stage 1 on the AV-Digits training pairs (labels unused), picks B samples with mmcsal, kcenter, typiclust and random, ' +
    'and prints a table comparing them (classes covered, entropy, alignment, ridge-probe accuracy) on stdout, or one JSON ' +
    'document with --json. Progress and notes go to stderr.',
  flags: {
    budget: { type: 'string', value: 'B', group: 'Options', default: 100, help: 'samples each strategy picks' },
    seed: { type: 'string', value: 'N', group: 'Options', default: 0, help: 'seed of training and selection (an integer, may be negative)' },
    epochs: { type: 'string', value: 'N', group: 'Options', default: 20, help: 'stage-1 epochs' },
    backend: backendFlag('Options'),
    report: {
      type: 'string',
      value: 'DIR',
      group: 'Output',
      default: 'none',
      help: "run the comparison through 'pairpick eval' instead (same strategies, budget, seed and epochs; ridge model) and write its run folder to DIR: results.json, cells/, report.html",
    },
    json: { type: 'boolean', group: 'Output', help: 'print one JSON document { dataset, budget, seed, epochs, seconds, results } on stdout' },
    quiet: QUIET_FLAG,
    help: HELP_FLAG,
  },
  notes: COMMON_NOTES,
};

export async function demoCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return runCommand(DEMO_SPEC, argv, context, (args) => demoBody(args, argv, context));
}

/**
 * The demo run through evaluate() (spec §7 pipeline): the same arms, budget, seed and stage-1
 * epochs, a ridge model on the train split's z-scored features; its rows in the demo's shape.
 */
async function demoThroughEvaluate(
  dataset: Dataset,
  outDir: string,
  o: { budget: number; seed: number; epochs: number; backend?: (typeof BACKENDS)[number]; signal: AbortSignal; progress: Progress; argv: string[] },
): Promise<ColdStartResult[]> {
  const results = await evaluate(dataset, {
    cold: ARMS.map((a) => a.strategy),
    budgets: [o.budget],
    seeds: [o.seed],
    stage1: { epochs: o.epochs },
    model: 'ridge',
    outDir,
    command: ['pairpick', 'demo', ...o.argv].join(' '),
    backend: o.backend,
    signal: o.signal,
    onProgress: (p) => o.progress.update(p.fraction, p.phase, `${p.done}/${p.total} ${p.detail}`),
  });
  const gap = results.stage1[0]?.gap ?? NaN;
  return results.cells.map((c) => {
    const n = c.histogram.reduce((a, b) => a + b, 0);
    const entropy = -c.histogram.reduce((s, h) => (h > 0 ? s + (h / n) * Math.log(h / n) : s), 0);
    return {
      label: c.strategy,
      strategy: c.strategy as ColdStartResult['strategy'],
      budget: c.budget,
      seed: c.seed,
      accuracy: c.accuracy,
      covered: c.covered,
      entropy,
      alignment: c.alignment ?? NaN,
      seconds: results.times.cells[c.id].selection,
      gap,
      // The demo's dataset has no re-paired rows.
      mismatched: 0,
      ...(c.space !== undefined && { space: c.space }),
    };
  });
}

async function demoBody(args: ParsedArgs, argv: string[], context: CommandContext): Promise<void> {
  const { out: write, err } = streams(context);
  const budget = args.int('budget', { min: 1 }) ?? 100;
  const seed = args.int('seed') ?? 0;
  const epochs = args.int('epochs', { min: 1 }) ?? 20;
  const backend = args.choice('backend', BACKENDS);
  const json = args.flag('json');
  const quiet = args.flag('quiet');

  const started = Date.now();
  const dataset = await loadDataset('av-digits');
  try {
    const progress = commandProgress(context, 'pairpick demo', quiet);
    if (!quiet) {
      err(
        `AV-Digits: ${dataset.split.train.length} train pairs (the pool, labels unused) and ${dataset.split.test.length} test pairs; ` +
          `modalities ${dataset.pool.modalities.map((m) => `${m} (${dataset.pool.source(m).dim}-D)`).join(', ')}\n` +
          `stage 1: ${epochs} epochs of InfoNCE + prototypes, then ${budget} picks per strategy…\n`,
      );
    }
    const report = args.string('report');
    const results = await withInterrupt(context.signal, async (signal) => {
      try {
        if (report !== undefined) return await demoThroughEvaluate(dataset, report, { budget, seed, epochs, backend, signal, progress, argv });
        return await coldStartExperiment(dataset, {
          arms: ARMS,
          budgets: [budget],
          seeds: [seed],
          // Stage 1 is most of the time: its own progress fills the first 80 % of the bar.
          stage1: { epochs, onProgress: (p) => progress.update(STAGE1_SHARE * p.fraction, 'stage 1', p.epoch ? `epoch ${p.epoch}/${p.epochs}` : undefined) },
          backend,
          signal,
          onProgress: (done, total, what) => progress.update(STAGE1_SHARE + (1 - STAGE1_SHARE) * (done / total), 'selection', `${done}/${total} ${what}`),
        });
      } finally {
        progress.clear();
      }
    });
    const seconds = (Date.now() - started) / 1000;
    if (json) {
      write(JSON.stringify({ dataset: 'av-digits', budget, seed, epochs, seconds, results }, null, 2) + '\n');
      return;
    }
    const header = ['strategy', 'classes', 'entropy', 'alignment', 'probe acc', 'time'];
    // mmcsal's row names the space it covered (its default: the embedding + the input features).
    const rows = results.map((r) => [
      r.space ? `${r.label} (${r.space})` : r.label,
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
      ...(args.string('report') !== undefined ? [`report: ${args.string('report')}/report.html (results.json and cells/ beside it)`] : []),
      `total ${seconds.toFixed(1)}s`,
    ];
    write(out.join('\n') + '\n');
  } finally {
    await dataset.pool.close();
  }
}
