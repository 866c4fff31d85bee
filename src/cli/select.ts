// `pairpick select`: pick the rows of a pool to label, written as .json, .csv or .npy.
import { randomBytes } from 'node:crypto';
import { rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';

import { PairpickError } from '../errors.js';
import { openRegularFile } from '../io/files.js';
import { readNpy } from '../io/npy.js';
import { writeNpy } from '../io/write.js';
import { select, SELECT_DEFAULTS, STRATEGIES, type Selection, type SelectOptions, type SelectProgress } from '../select/index.js';
import { HELP_FLAG, helpText, parseCommand, parseDecimal, QUIET_FLAG, type CommandSpec } from './args.js';
import { commandProgress, streams, withInterrupt, type CommandContext } from './context.js';
import { withFlagWording } from './errors.js';
import { INPUT_FLAGS, modalityInputs, openInputs, poolFiles, refuseOverwritingInputs, type NamedPath } from './inputs.js';
import { backendFlag, BACKENDS, COMMON_NOTES } from './shared.js';

export const SELECT_SPEC: CommandSpec = {
  name: 'select',
  summary: 'pick B samples of a pool to label',
  synopsis: 'pairpick select --modality NAME=PATH [--modality NAME=PATH …] --budget B [options]',
  description:
    'Picks B rows of the pool (row i of every modality is sample i) with a cold-start strategy. ' +
    'Without --out the picked row indices are printed on stdout, one per line in pick order; with --out FILE they are written ' +
    'to FILE and a one-line summary is printed on stdout instead; --json prints the whole result as one JSON document on stdout ' +
    '(with or without --out). Progress and notes go to stderr.',
  flags: {
    ...INPUT_FLAGS,
    labeled: {
      type: 'string',
      value: 'FILE',
      group: 'Inputs',
      default: 'none',
      api: 'labeled',
      help: 'rows already labelled (never picked; they count as covered): .json (an array), .csv/.txt (one index a line) or .npy (integers)',
    },
    budget: { type: 'string', value: 'B', required: true, group: 'Selection', api: 'budget', help: 'number of rows to pick (1 … rows − labelled)' },
    strategy: { type: 'string', value: 'S', group: 'Selection', default: SELECT_DEFAULTS.strategy, api: 'strategy', help: `${STRATEGIES.join(', ')}` },
    seed: { type: 'string', value: 'N', group: 'Selection', default: SELECT_DEFAULTS.seed, api: 'seed', help: 'seed of every random choice (an integer, may be negative)' },
    backend: backendFlag('Selection'),
    k: { type: 'string', value: 'K', group: 'MMCSAL', default: SELECT_DEFAULTS.k, api: 'k', help: 'neighbours of the kNN density' },
    gamma: {
      type: 'string',
      value: 'auto|G',
      group: 'MMCSAL',
      default: SELECT_DEFAULTS.gamma,
      api: 'gamma',
      help: 'weight γ ≥ 0 of the cross-modal distances (auto: 1 when every modality has the same dimension, else 0)',
    },
    'lambda-align': {
      type: 'string',
      value: 'auto|L',
      group: 'MMCSAL',
      default: SELECT_DEFAULTS.lambdaAlign,
      api: 'lambdaAlign',
      help: 'weight λ ≥ 0 of the alignment term (auto: 0.25 when every modality has the same dimension, else 0)',
    },
    'w-density': { type: 'string', value: 'W', group: 'MMCSAL', default: SELECT_DEFAULTS.wDensity, api: 'wDensity', help: 'weight w_ρ ≥ 0 of the density term' },
    'w-diversity': { type: 'string', value: 'W', group: 'MMCSAL', default: SELECT_DEFAULTS.wDiversity, api: 'wDiversity', help: 'weight w_δ ≥ 0 of the diversity term' },
    'density-sample': {
      type: 'string',
      value: 'N',
      group: 'MMCSAL',
      default: 'exact',
      api: 'densitySample',
      help: 'estimate the density against a seeded sample of N ≥ 2 rows instead of every row (faster on large pools)',
    },
    radius: { type: 'string', value: 'R', group: 'ProbCover', default: 'auto', api: 'radius', help: 'ball radius δ > 0 (auto: chosen for ball purity ≥ 0.95 w.r.t. k-means pseudo-labels)' },
    optimizer: { type: 'string', value: 'lazy|stochastic', group: 'Facility location', default: SELECT_DEFAULTS.optimizer, api: 'optimizer', help: 'exact lazy greedy, or stochastic greedy' },
    out: {
      type: 'string',
      value: 'FILE',
      group: 'Output',
      default: 'indices on stdout',
      help: 'write the picks to FILE, format by extension: .json (the --json document), .csv (one index a line) or .npy (int32); must not be an input',
    },
    json: { type: 'boolean', group: 'Output', help: 'print the result as one JSON document on stdout: strategy, budget, backend, seconds, params, indices, and MMCSAL\'s per-pick components and raw terms' },
    quiet: QUIET_FLAG,
    help: HELP_FLAG,
  },
  notes: COMMON_NOTES,
};

const OUT_FORMATS = ['.json', '.csv', '.npy'];

/** Reads a list of row indices: .json (an array), .csv/.txt (one per line), .npy (integers). */
export async function readIndexFile(path: string): Promise<number[]> {
  const ext = extname(path).toLowerCase();
  if (ext === '.npy') {
    const a = await readNpy(path);
    if (a.dtype !== 'int32') throw new PairpickError('E_FORMAT', `${path}: labelled indices must be integers (the file holds ${a.dtype})`);
    if (a.shape.length > 1 && a.shape.filter((d) => d !== 1).length > 1) {
      throw new PairpickError('E_FORMAT', `${path}: expected a 1-D array of indices, got shape (${a.shape.join(', ')})`);
    }
    return Array.from(a.data as Int32Array);
  }
  let text: string;
  try {
    const { fh } = await openRegularFile(path); // a named pipe would block a plain read forever
    try {
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof PairpickError) throw e;
    throw new PairpickError('E_IO', `${path}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  if (ext === '.json') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new PairpickError('E_FORMAT', `${path}: not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(value)) throw new PairpickError('E_FORMAT', `${path}: expected a JSON array of row indices`);
    value.forEach((v, p) => {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new PairpickError('E_FORMAT', `${path}: element ${p} (${JSON.stringify(v)}) is not an integer`);
    });
    return value as number[];
  }
  if (ext === '.csv' || ext === '.txt') {
    const out: number[] = [];
    text.split(/\r?\n/).forEach((line, n) => {
      const t = line.trim();
      if (t === '') return;
      if (!/^[+-]?\d+$/.test(t)) throw new PairpickError('E_FORMAT', `${path}:${n + 1}: '${t}' is not an integer row index`);
      out.push(Number(t));
    });
    return out;
  }
  throw new PairpickError('E_OPTION', `--labeled ${path}: unknown extension '${ext}' (use .json, .csv, .txt or .npy)`);
}

/** Writes text to `path` atomically: a temporary file in the same folder, renamed over it when complete. */
async function writeTextAtomically(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { flush: true });
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new PairpickError('E_IO', `${path}: cannot write: ${(e as Error).message}`, { cause: e });
  }
}

function toArray(x: ArrayLike<number> | undefined): number[] | undefined {
  return x ? Array.from(x, (v) => (Number.isFinite(v) ? v : null) as number) : undefined;
}

/** The JSON form of a selection (what --out x.json and --json write). */
export function selectionJson(sel: Selection, budget: number) {
  const components = sel.components
    ? Object.fromEntries(Object.entries(sel.components).map(([k, v]) => [k, toArray(v as Float32Array)]))
    : undefined;
  const raw = sel.raw ? Object.fromEntries(Object.entries(sel.raw).map(([k, v]) => [k, toArray(v as Float32Array)])) : undefined;
  return {
    strategy: sel.strategy,
    budget,
    backend: sel.backend,
    seconds: sel.seconds,
    params: sel.params,
    indices: Array.from(sel.indices),
    components,
    raw,
  };
}

async function writeSelection(out: string, sel: Selection, budget: number): Promise<void> {
  const ext = extname(out).toLowerCase();
  if (ext === '.json') await writeTextAtomically(out, `${JSON.stringify(selectionJson(sel, budget), null, 2)}\n`);
  else if (ext === '.csv') await writeTextAtomically(out, Array.from(sel.indices).map((i) => `${i}\n`).join(''));
  else await writeNpy(out, Int32Array.from(sel.indices), [sel.indices.length]);
}

const PHASE_NAMES: Record<SelectProgress['phase'], string> = {
  prepare: 'reading and normalising',
  density: 'kNN density',
  kmeans: 'k-means',
  radius: 'radius search',
  coverage: 'coverage',
  select: 'picking',
};

/** `auto` or a number ≥ 0, for --gamma and --lambda-align. */
function autoOrNumber(value: string | undefined, flag: string): number | 'auto' | undefined {
  if (value === undefined || value === 'auto') return value;
  return parseDecimal(value, `--${flag}`, { min: 0 });
}

export async function selectCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return withFlagWording(SELECT_SPEC, () => selectBody(argv, context));
}

async function selectBody(argv: string[], context: CommandContext): Promise<void> {
  const args = parseCommand(argv, SELECT_SPEC);
  const { out: write, err } = streams(context);
  if (args.flag('help')) {
    write(helpText(SELECT_SPEC));
    return;
  }
  const inputs = modalityInputs(args, 1);
  const budget = args.int('budget');
  if (budget === undefined) args.required('budget');
  const strategy = args.choice('strategy', STRATEGIES) ?? SELECT_DEFAULTS.strategy;

  const out = args.string('out');
  if (out !== undefined) {
    const ext = extname(out).toLowerCase();
    if (!OUT_FORMATS.includes(ext)) throw new PairpickError('E_OPTION', `--out ${out}: unknown extension '${ext}' (use .json, .csv or .npy)`);
    const dir = dirname(resolve(out));
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new PairpickError('E_IO', `--out ${out}: folder ${dir} does not exist`);
  }
  const labeledPath = args.string('labeled');
  const labeled = labeledPath !== undefined ? await readIndexFile(labeledPath) : undefined;

  // Strategy flags are passed only when given, so select() names any that do not fit the strategy.
  const options: SelectOptions = {
    strategy,
    budget: budget!,
    labeled,
    seed: args.int('seed'),
    backend: args.choice('backend', BACKENDS),
    k: args.int('k', { min: 1 }),
    gamma: autoOrNumber(args.string('gamma'), 'gamma'),
    lambdaAlign: autoOrNumber(args.string('lambda-align'), 'lambda-align'),
    wDensity: args.float('w-density', { min: 0 }),
    wDiversity: args.float('w-diversity', { min: 0 }),
    densitySample: args.int('density-sample', { min: 2 }),
    radius: args.float('radius', { min: 0, exclusiveMin: true }),
    optimizer: args.choice('optimizer', ['lazy', 'stochastic'] as const),
  };
  for (const key of Object.keys(options) as (keyof SelectOptions)[]) if (options[key] === undefined) delete options[key];

  const json = args.flag('json');
  const quiet = args.flag('quiet');
  const pool = await openInputs(inputs);
  try {
    if (out !== undefined) {
      const sources: NamedPath[] = poolFiles(pool, inputs);
      if (labeledPath !== undefined) sources.push({ label: `--labeled ${labeledPath}`, path: labeledPath });
      await refuseOverwritingInputs([{ label: `--out ${out}`, path: out }], sources);
    }
    const progress = commandProgress(context, `pairpick select`, quiet);
    if (!quiet) {
      const shape = pool.modalities.map((m) => `${m} ${pool.source(m).dim}-D`).join(', ');
      err(`pairpick select: ${strategy}, budget ${budget}, ${pool.rows} rows (${shape})\n`);
    }
    let sel: Selection;
    try {
      sel = await withInterrupt(context.signal, (signal) =>
        select(pool, { ...options, signal, onProgress: (p) => progress.update(p.fraction, PHASE_NAMES[p.phase], `${p.done}/${p.total}`) }),
      );
    } finally {
      progress.clear();
    }
    // Written only now, atomically: a cancelled or failed selection leaves no output file.
    if (out !== undefined) await writeSelection(out, sel, budget!);
    if (json) {
      write(`${JSON.stringify(selectionJson(sel, budget!))}\n`);
    } else if (out !== undefined) {
      write(`picked ${sel.indices.length} of ${pool.rows} rows with ${sel.strategy} on ${sel.backend} in ${sel.seconds.toFixed(2)} s → ${out}\n`);
    } else {
      write(Array.from(sel.indices).map((i) => `${i}\n`).join(''));
    }
  } finally {
    await pool.close();
  }
}
