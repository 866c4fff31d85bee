// `pairpick fit`: stage 1 on a pool of embedding files, written to a .safetensors model.
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import { PairpickError } from '../errors.js';
import { FIT_DEFAULTS, fitProjection, type EpochRecord, type FitOptions, type FitProgress } from '../ssl/index.js';
import { HELP_FLAG, parseInteger, QUIET_FLAG, type CommandSpec, type FlagSpec, type ParsedArgs } from './args.js';
import { commandProgress, runCommand, streams, withInterrupt, type CommandContext } from './context.js';
import { INPUT_FLAGS, modalityInputs, openInputs, poolFiles, refuseOverwritingInputs } from './inputs.js';
import { backendFlag, BACKENDS, COMMON_NOTES } from './shared.js';

const d = FIT_DEFAULTS;
const training = (value: string, api: string, def: string | number, help: string): FlagSpec => ({ type: 'string', value, group: 'Training', default: def, api, help });

export const FIT_SPEC: CommandSpec = {
  name: 'fit',
  summary: 'stage 1: train projection heads on a pool (no labels)',
  synopsis: 'pairpick fit --modality NAME=PATH --modality NAME=PATH [… more modalities] --out model.safetensors [options]',
  description:
    'Trains one projection head per modality (and prototypes) with cross-modal InfoNCE + prototype losses on the pool, and ' +
    'writes the model to --out. stdout gets the training log (one line per epoch, then the modality gap before and after) or, ' +
    'with --json, one JSON summary at the end. Progress and notes go to stderr.',
  flags: {
    ...INPUT_FLAGS,
    out: { type: 'string', value: 'FILE', required: true, group: 'Output', help: 'the model file to write (.safetensors); must not be an input' },
    json: { type: 'boolean', group: 'Output', help: 'print one JSON summary on stdout (out, rows, modalities, inputDims, options, gapBefore, gap, history, seconds) instead of the log' },
    epochs: training('N', 'epochs', d.epochs, 'passes over the pool'),
    dim: training('D', 'dim', d.dim, 'output dimension of every head'),
    hidden: training('H|linear', 'hidden', d.hidden, 'hidden width of the MLP heads; 0 or linear gives linear heads'),
    prototypes: training('K', 'prototypes', d.prototypes, 'prototypes per modality (the class count, when known, is a good choice)'),
    beta: training('B', 'beta', d.beta, 'weight β ≥ 0 of the prototype losses (0: contrastive only)'),
    temperature: training('T', 'temperature', d.temperature, 'InfoNCE temperature τ > 0'),
    'proto-temperature': training('T', 'protoTemperature', d.protoTemperature, 'prototype softmax temperature τ_p > 0'),
    epsilon: training('E', 'epsilon', d.epsilon, 'Sinkhorn-Knopp entropy ε > 0'),
    'sinkhorn-iterations': training('N', 'sinkhornIterations', d.sinkhornIterations, 'Sinkhorn-Knopp iterations'),
    swap: { type: 'boolean', group: 'Training', default: d.swap, api: 'swap', help: "swapped prototype targets: each modality learns the others' codes" },
    batch: training('N', 'batch', d.batch, 'mini-batch size ≥ 2 (clamped to the pool size)'),
    lr: training('LR', 'lr', d.lr, 'AdamW learning rate > 0'),
    'weight-decay': training('WD', 'weightDecay', d.weightDecay, 'AdamW decoupled weight decay ≥ 0 on the weight matrices'),
    seed: training('N', 'seed', d.seed, 'seed of the initialisation and the batch order (an integer, may be negative)'),
    backend: backendFlag('Training'),
    quiet: QUIET_FLAG,
    help: HELP_FLAG,
  },
  notes: COMMON_NOTES,
};

/** The progress phase of a fit report: one per epoch (its mini-batches and its gap pass). */
function phaseOf(p: FitProgress): { phase: string; detail?: string } {
  if (p.phase === 'check') return { phase: 'checking inputs' };
  if (p.epoch === 0) return { phase: 'initial gap' };
  const phase = `epoch ${p.epoch}/${p.epochs}`;
  if (p.phase === 'gap') return { phase, detail: 'gap' };
  return { phase, detail: `batch ${p.batch}/${p.batches}${p.loss === undefined ? '' : ` loss ${p.loss.toFixed(4)}`}` };
}

export async function fitCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return runCommand(FIT_SPEC, argv, context, (args) => fitBody(args, context));
}

async function fitBody(args: ParsedArgs, context: CommandContext): Promise<void> {
  const { out: write } = streams(context);
  const inputs = modalityInputs(args, 2);
  const out = args.required('out');
  const outDir = dirname(resolve(out));
  const dirStat = await stat(outDir).catch(() => undefined);
  if (!dirStat?.isDirectory()) throw new PairpickError('E_IO', `--out ${out}: folder ${outDir} does not exist`);

  const hiddenText = args.string('hidden');
  const options: FitOptions = {
    epochs: args.int('epochs', { min: 1 }),
    dim: args.int('dim', { min: 1 }),
    hidden: hiddenText === undefined || hiddenText === 'linear' ? hiddenText : parseInteger(hiddenText, '--hidden', { min: 0 }),
    prototypes: args.int('prototypes', { min: 1 }),
    beta: args.float('beta', { min: 0 }),
    temperature: args.float('temperature', { min: 0, exclusiveMin: true }),
    protoTemperature: args.float('proto-temperature', { min: 0, exclusiveMin: true }),
    epsilon: args.float('epsilon', { min: 0, exclusiveMin: true }),
    sinkhornIterations: args.int('sinkhorn-iterations', { min: 1 }),
    swap: args.has('swap') ? true : undefined,
    batch: args.int('batch', { min: 2 }),
    lr: args.float('lr', { min: 0, exclusiveMin: true }),
    weightDecay: args.float('weight-decay', { min: 0 }),
    seed: args.int('seed'),
    backend: args.choice('backend', BACKENDS),
  };
  for (const key of Object.keys(options) as (keyof FitOptions)[]) if (options[key] === undefined) delete options[key];

  const json = args.flag('json');
  const progress = commandProgress(context, 'pairpick fit', args.flag('quiet'));
  const started = performance.now();
  const pool = await openInputs(inputs);
  try {
    await refuseOverwritingInputs([{ label: `--out ${out}`, path: out }], poolFiles(pool, inputs));
    const header = () =>
      `pairpick fit: ${pool.rows} samples × ${pool.modalities.length} modalities (${pool.modalities.map((m) => `${m} ${pool.source(m).dim}-D`).join(', ')})\n` +
      `  epoch      loss   infoNCE     proto     gap  seconds\n`;
    if (!json) write(header());
    const onEpoch = (h: EpochRecord) => {
      if (json) return;
      progress.clear();
      write(
        `  ${String(h.epoch).padStart(5)}  ${h.loss.toFixed(4).padStart(8)}  ${h.infoNCE.toFixed(4).padStart(8)}  ${h.proto.toFixed(4).padStart(8)}  ${h.gap.toFixed(4).padStart(6)}  ${h.seconds.toFixed(1).padStart(6)}\n`,
      );
    };
    const projection = await withInterrupt(context.signal, async (signal) => {
      try {
        const trained = await fitProjection(pool, {
          ...options,
          signal,
          onEpoch,
          onProgress: (p) => {
            const { phase, detail } = phaseOf(p);
            progress.update(p.fraction, phase, detail);
          },
        });
        // Written only now, atomically (a Ctrl-C during the write lets it finish): an interrupted
        // or failed fit leaves no model file behind, not even a partial one.
        await trained.save(out);
        return trained;
      } finally {
        progress.clear();
      }
    });
    const seconds = (performance.now() - started) / 1000;
    if (json) {
      write(
        `${JSON.stringify(
          {
            out,
            rows: pool.rows,
            modalities: projection.modalities,
            inputDims: projection.inputDims,
            options: projection.options,
            gapBefore: projection.gapBefore,
            gap: projection.gap,
            history: projection.history,
            seconds,
          },
          null,
          2,
        )}\n`,
      );
    } else {
      write(
        `modality gap ${projection.gapBefore.toFixed(4)} (random init) → ${projection.gap.toFixed(4)}, ${projection.dim}-D, backend ${projection.options.backend}\n` +
          `model written to ${out} (${seconds.toFixed(1)} s)\n`,
      );
    }
  } finally {
    await pool.close();
  }
}
