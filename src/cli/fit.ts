// `pairpick fit`: stage 1 on a pool of embedding files, written to a .safetensors model.
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import type { BackendChoice } from '../backend/index.js';
import { PairpickError } from '../errors.js';
import { openPool } from '../io/pool.js';
import { fitProjection, type EpochRecord, type FitOptions, type FitProgress } from '../ssl/index.js';
import { modalityFlags, numberFlag, parseCommand } from './args.js';
import { progressBar } from './progress.js';

/** What a command needs from its surroundings (tests pass their own). */
export interface CommandContext {
  /** Aborts the command (in addition to Ctrl-C). */
  signal?: AbortSignal;
  /** Where results go (default: process.stdout). */
  stdout?: (text: string) => void;
  /** Show progress bars (default: when stderr is a TTY and --json is not given). */
  progress?: boolean;
}

export const FIT_USAGE = `usage: pairpick fit --modality NAME=PATH --modality NAME=PATH … --out model.safetensors
          [--epochs 20] [--dim 128] [--hidden 512|linear] [--prototypes 64] [--beta 1]
          [--temperature 0.07] [--proto-temperature 0.1] [--epsilon 0.05] [--sinkhorn-iterations 3]
          [--swap] [--batch 1024] [--lr 1e-3] [--weight-decay 1e-4] [--seed 0]
          [--backend auto|cuda|cpu|js] [--json]
`;

/**
 * Runs `fn` with an AbortSignal that fires on Ctrl-C (SIGINT) or when `outer` aborts; the
 * handler is removed afterwards, so a second Ctrl-C after the command ends behaves normally.
 */
export async function withInterrupt<T>(outer: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted (SIGINT)'));
  const onOuter = () => controller.abort(outer?.reason);
  process.on('SIGINT', onSigint);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  try {
    return await fn(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
    outer?.removeEventListener('abort', onOuter);
  }
}

function phaseLabel(p: FitProgress): string {
  if (p.phase === 'check') return 'checking inputs';
  if (p.phase === 'gap') return p.epoch === 0 ? 'initial gap' : `epoch ${p.epoch}/${p.epochs} gap`;
  return `epoch ${p.epoch}/${p.epochs} batch ${p.batch}/${p.batches} loss ${p.loss?.toFixed(4)}`;
}

export async function fitCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  const { values } = parseCommand(
    argv,
    {
      modality: { type: 'string', multiple: true },
      out: { type: 'string' },
      epochs: { type: 'string' },
      dim: { type: 'string' },
      hidden: { type: 'string' },
      prototypes: { type: 'string' },
      beta: { type: 'string' },
      temperature: { type: 'string' },
      'proto-temperature': { type: 'string' },
      epsilon: { type: 'string' },
      'sinkhorn-iterations': { type: 'string' },
      swap: { type: 'boolean' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      'weight-decay': { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    'fit',
  );
  const write = context.stdout ?? ((s: string) => void process.stdout.write(s));
  if (values.help) {
    write(FIT_USAGE);
    return;
  }
  const modalities = modalityFlags(values.modality as string[] | undefined);
  if (Object.keys(modalities).length < 2) {
    throw new PairpickError('E_OPTION', `pairpick fit needs at least two --modality NAME=PATH flags (got ${Object.keys(modalities).length})\n${FIT_USAGE}`);
  }
  const out = values.out as string | undefined;
  if (!out) throw new PairpickError('E_OPTION', `pairpick fit: --out model.safetensors is required\n${FIT_USAGE}`);
  const outDir = dirname(resolve(out));
  const dirStat = await stat(outDir).catch(() => undefined);
  if (!dirStat?.isDirectory()) throw new PairpickError('E_IO', `pairpick fit: --out ${out}: folder ${outDir} does not exist`);

  const hiddenText = values.hidden as string | undefined;
  const options: FitOptions = {
    epochs: numberFlag(values.epochs as string | undefined, 'epochs', { integer: true, min: 1 }),
    dim: numberFlag(values.dim as string | undefined, 'dim', { integer: true, min: 1 }),
    hidden: hiddenText === 'linear' ? 'linear' : numberFlag(hiddenText, 'hidden', { integer: true, min: 0 }),
    prototypes: numberFlag(values.prototypes as string | undefined, 'prototypes', { integer: true, min: 1 }),
    beta: numberFlag(values.beta as string | undefined, 'beta', { min: 0 }),
    temperature: numberFlag(values.temperature as string | undefined, 'temperature'),
    protoTemperature: numberFlag(values['proto-temperature'] as string | undefined, 'proto-temperature'),
    epsilon: numberFlag(values.epsilon as string | undefined, 'epsilon'),
    sinkhornIterations: numberFlag(values['sinkhorn-iterations'] as string | undefined, 'sinkhorn-iterations', { integer: true, min: 1 }),
    swap: values.swap as boolean | undefined,
    batch: numberFlag(values.batch as string | undefined, 'batch', { integer: true, min: 2 }),
    lr: numberFlag(values.lr as string | undefined, 'lr'),
    weightDecay: numberFlag(values['weight-decay'] as string | undefined, 'weight-decay', { min: 0 }),
    seed: numberFlag(values.seed as string | undefined, 'seed', { integer: true }),
    backend: values.backend as BackendChoice | undefined,
  };
  for (const key of Object.keys(options) as (keyof FitOptions)[]) if (options[key] === undefined) delete options[key];

  const json = values.json === true;
  const bar = progressBar('fit', context.progress ?? (!json && process.stderr.isTTY === true));
  const started = performance.now();
  const pool = await openPool(modalities);
  try {
    const header = () =>
      `pairpick fit: ${pool.rows} samples × ${pool.modalities.length} modalities (${pool.modalities.map((m) => `${m} ${pool.source(m).dim}-D`).join(', ')})\n` +
      `  epoch      loss   infoNCE     proto     gap  seconds\n`;
    if (!json) write(header());
    const onEpoch = (h: EpochRecord) => {
      if (json) return;
      bar.done();
      write(
        `  ${String(h.epoch).padStart(5)}  ${h.loss.toFixed(4).padStart(8)}  ${h.infoNCE.toFixed(4).padStart(8)}  ${h.proto.toFixed(4).padStart(8)}  ${h.gap.toFixed(4).padStart(6)}  ${h.seconds.toFixed(1).padStart(6)}\n`,
      );
    };
    const projection = await withInterrupt(context.signal, async (signal) => {
      const trained = await fitProjection(pool, { ...options, signal, onEpoch, onProgress: (p) => bar.update(p.fraction, phaseLabel(p)) });
      bar.done();
      // Written only now, atomically (a Ctrl-C during the write lets it finish): an interrupted
      // or failed fit leaves no model file behind, not even a partial one.
      await trained.save(out);
      return trained;
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
    bar.done();
    await pool.close();
  }
}
