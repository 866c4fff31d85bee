// `pairpick select`: pick the rows of a pool to label, written as .json, .csv or .npy.
import { stat } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';

import { PairpickError } from '../errors.js';
import { readNpy } from '../io/npy.js';
import type { ItemRows, Items } from '../io/table.js';
import { writeNpy } from '../io/write.js';
import { select, SELECT_DEFAULTS, type Selection, type SelectOptions, type SelectProgress } from '../select/index.js';
import { loadClassifier } from '../train/index.js';
import { findStrategy, modelStrategies, strategies, strategyNames, type AnyStrategy } from '../select/registry.js';
import type { RowMatrix } from '../select/strategy.js';
import type { Rule, RuleShape } from '../util/validate.js';
import { HELP_FLAG, parseChoice, parseDecimal, parseInteger, QUIET_FLAG, type CommandSpec, type FlagSpec, type ParsedArgs } from './args.js';
import { readIndexFile, writeTextAtomically } from './files.js';
import { commandProgress, runCommand, streams, withInterrupt, type CommandContext } from './context.js';
import { INPUT_FLAGS, modalityInputs, namedPaths, openInputs, poolFiles, refuseOverwritingInputs, type ModalityInputs, type NamedPath } from './inputs.js';
import { openPool, type Pool } from '../io/pool.js';
import { datasetInputs, itemFiles, ITEM_FLAGS, itemsSpec, labeledRows, picksCsv, picksLines, readIdFile, readItemFlags, writePicksNpy } from './items.js';
import { backendFlag, BACKENDS, COMMON_NOTES } from './shared.js';

const COMMAND = {
  name: 'select',
  summary: 'pick B samples of a pool to label',
  synopsis: 'pairpick select --modality NAME=PATH [--modality NAME=PATH …] --budget B [options]\n       pairpick select --dataset-dir DIR --budget B [--ids FILE[:COLUMN]] [--meta FILE --meta-columns A,B] [options]',
  description:
    'Picks B rows of the pool (row i of every modality is sample i) with one of the strategies listed below. ' +
    'Without --out the picked row indices are printed on stdout, one per line in pick order; with --out FILE they are written ' +
    'to FILE and a one-line summary is printed on stdout instead; --json prints the whole result as one JSON document on stdout ' +
    '(with or without --out). Progress and notes go to stderr.',
  notes: COMMON_NOTES,
};

/** The command line flag of a strategy's option: its kebab-case (lambdaAlign → lambda-align). */
export function flagOf(option: string): string {
  return option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The --help heading a strategy's options are listed under. */
function strategyGroup(s: AnyStrategy): string {
  const notes = [
    s.name === SELECT_DEFAULTS.strategy && 'default',
    s.kind === 'warm' && (s.model ? `warm: needs --model, a ${s.model.forms.join(' or ')} classifier` : "warm: reads a trained classifier's outputs"),
  ].filter(Boolean);
  return `Strategy ${s.name}${notes.length ? ` (${notes.join('; ')})` : ''}`;
}

/**
 * The flags of every registered strategy's options and inputs, from their descriptors: kebab-case
 * of the option, its placeholder, default and doc (an option two strategies share is listed once,
 * under the first). A strategy option may not take the name of one of select's own flags. A
 * strategy's pools (descriptor `pools`) are left out on purpose: a pool is several files, one per
 * modality, so the command declares its flags itself (`--input NAME=PATH` for mmcsal's `inputs`).
 */
function strategyFlags(taken: readonly string[]): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = {};
  const add = (s: AnyStrategy, name: string, flag: FlagSpec) => {
    const f = flagOf(name);
    if (taken.includes(f)) throw new PairpickError('E_INTERNAL', `pairpick select: option '${name}' of strategy '${s.name}' would be --${f}, which select has already`);
    flags[f] ??= flag;
  };
  for (const s of strategies()) {
    const group = strategyGroup(s);
    for (const [name, o] of Object.entries(s.options)) {
      add(s, name, { type: 'string', value: o.value, group, default: (o.default as string | number | undefined) ?? o.shownDefault, api: name, help: o.doc });
    }
    for (const [name, input] of Object.entries(s.inputs ?? {})) {
      const per = input.dim === undefined ? '' : ` (${input.dim} value${input.dim === 1 ? '' : 's'} a row)`;
      add(s, name, { type: 'string', value: 'FILE', group, default: 'none', api: name, help: `${input.doc}: a float32 .npy file, one row per pool row${per}; required by this strategy` });
    }
  }
  return flags;
}

/** `pairpick select`'s flags and --help, generated from the registered strategies at each call. */
export function selectSpec(): CommandSpec {
  const names = strategyNames();
  const leading: Record<string, FlagSpec> = {
    ...INPUT_FLAGS,
    modality: { ...INPUT_FLAGS.modality, required: false, default: 'none', help: `${INPUT_FLAGS.modality.help}; required unless --dataset-dir is given` },
    labeled: {
      type: 'string',
      value: 'FILE',
      group: 'Inputs',
      default: 'none',
      api: 'labeled',
      help:
        'rows already labelled (never picked; they count as covered): .json (an array), .csv/.txt (one index a line) or .npy (integers); ' +
        'with --ids (or --dataset-dir ids) the .json/.csv/.txt entries are item ids instead of row indices',
    },
    input: {
      type: 'string',
      multiple: true,
      value: 'NAME=PATH',
      group: 'Inputs',
      default: 'none',
      api: 'inputs',
      help:
        "one modality of the features stage 1 embedded (the rows behind the --modality embeddings, same order), repeated per modality, in the forms of --modality " +
        "with a header (.npy, .safetensors or a folder of such shards): --strategy mmcsal then covers the embedding joined with these features, " +
        "standardised per column (space embedding+inputs, the default when they are given); other strategies refuse it",
    },
    model: {
      type: 'string',
      value: 'FILE',
      group: 'Inputs',
      default: 'none',
      api: 'model',
      help: `a trained classifier (pairpick train --out FILE, safetensors) for the warm strategies ${modelStrategies().map((s) => s.name).join(', ')}; its modalities must be the pool's`,
    },
    ...ITEM_FLAGS,
    budget: { type: 'string', value: 'B', required: true, group: 'Selection', api: 'budget', help: 'number of rows to pick (1 … rows − labelled)' },
    strategy: { type: 'string', value: 'S', group: 'Selection', default: SELECT_DEFAULTS.strategy, api: 'strategy', help: `${names.join(', ')}; each is described below with its options` },
    seed: { type: 'string', value: 'N', group: 'Selection', default: SELECT_DEFAULTS.seed, api: 'seed', help: 'seed of every random choice (an integer, may be negative)' },
    backend: backendFlag('Selection'),
  };
  const trailing: Record<string, FlagSpec> = {
    out: {
      type: 'string',
      value: 'FILE',
      group: 'Output',
      default: 'indices on stdout',
      help:
        'write the picks to FILE, format by extension: .json (the --json document), .csv (one index a line) or .npy (int32); must not be an input. ' +
        'With --ids/--meta: .csv gets a header row and index,id,<columns> per pick, .npy a record array (fields index, id, <columns>), and stdout (no --out) ' +
        'one tab-separated line per pick',
    },
    json: {
      type: 'boolean',
      group: 'Output',
      help: "print the result as one JSON document on stdout: strategy, budget, backend, seconds, params, indices (and with --ids/--meta, ids and meta: column → values, in pick order), and per-pick components (MMCSAL's terms and raw values; uncertainty; BADGE/BMMAL gradNorm, distance, contribution:<modality> c_m and scale:<modality> s_m)",
    },
    quiet: QUIET_FLAG,
    help: HELP_FLAG,
  };
  const own = strategyFlags([...Object.keys(leading), ...Object.keys(trailing)]);
  return {
    ...COMMAND,
    flags: { ...leading, ...own, ...trailing },
    groups: [{ name: 'Inputs' }, { name: 'Items', doc: 'who the rows are: ids and metadata reported next to each pick' }, { name: 'Selection' }, ...strategies().map((s) => ({ name: strategyGroup(s), doc: s.doc })), { name: 'Output' }, { name: 'Other' }],
  };
}

/** A value of a rule's shape read from text: the number grammars (with the rule's lower bound, for
 * a plain message), or one of its words. */
function fromShape(text: string, what: string, shape: RuleShape): unknown {
  switch (shape.type) {
    case 'integer':
      return parseInteger(text, what, { min: shape.min });
    case 'number':
      return parseDecimal(text, what, shape.above !== undefined ? { min: shape.above, exclusiveMin: true } : { min: shape.min });
    case 'oneOf': {
      const choice = shape.choices.find((c) => String(c) === text);
      return choice !== undefined ? choice : parseChoice(text, what, shape.choices.map(String));
    }
    case 'either': {
      const words = shape.of.filter((s): s is Extract<RuleShape, { type: 'oneOf' }> => s.type === 'oneOf');
      const word = words.find((s) => s.choices.some((c) => String(c) === text));
      if (word) return fromShape(text, what, word);
      const other = shape.of.find((s) => s.type !== 'oneOf');
      return other ? fromShape(text, what, other) : parseChoice(text, what, words.flatMap((s) => s.choices.map(String)));
    }
  }
}

/** A strategy option read from its flag: by the shape of its rule, then checked by the rule itself (upper bounds). */
function optionFromFlag(text: string, flag: string, rule: Rule<unknown>): unknown {
  const value = fromShape(text, flag, rule.shape!);
  if (!rule.accepts(value)) throw new PairpickError('E_OPTION', `${flag} must be ${rule.expected}, got ${text}`);
  return value;
}

/** A warm strategy's input read from its flag's .npy file: float32, (rows) or (rows, dim). */
async function readRowMatrix(path: string, flag: string): Promise<RowMatrix> {
  const a = await readNpy(path);
  if (a.dtype !== 'float32') throw new PairpickError('E_FORMAT', `${flag} ${path}: expected float32 values, the file holds ${a.dtype}`);
  if (a.shape.length < 1 || a.shape.length > 2) {
    throw new PairpickError('E_FORMAT', `${flag} ${path}: expected a 1-D or 2-D array (rows[, dim]), got shape (${a.shape.join(', ')})`);
  }
  return { data: a.data as Float32Array, dim: a.shape.length === 2 ? a.shape[1] : 1 };
}

const OUT_FORMATS = ['.json', '.csv', '.npy'];

function toArray(x: ArrayLike<number> | undefined): number[] | undefined {
  return x ? Array.from(x, (v) => (Number.isFinite(v) ? v : null) as number) : undefined;
}

/** The JSON form of a selection (what --out x.json and --json write). */
export function selectionJson(sel: Selection, budget: number, items?: ItemRows) {
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
    ...(items?.ids && { ids: items.ids }),
    ...(items && Object.keys(items.columns).length > 0 && { meta: items.columns }),
    components,
    raw,
  };
}

async function writeSelection(out: string, sel: Selection, budget: number, items?: ItemRows): Promise<void> {
  const ext = extname(out).toLowerCase();
  if (ext === '.json') await writeTextAtomically(out, `${JSON.stringify(selectionJson(sel, budget, items), null, 2)}\n`);
  else if (ext === '.csv') await writeTextAtomically(out, items ? picksCsv(sel.indices, items) : Array.from(sel.indices).map((i) => `${i}\n`).join(''));
  else if (items) await writePicksNpy(out, sel.indices, items);
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

export async function selectCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  const spec = selectSpec();
  return runCommand(spec, argv, context, (args) => selectBody(spec, args, context));
}

async function selectBody(spec: CommandSpec, args: ParsedArgs, context: CommandContext): Promise<void> {
  const { out: write, err } = streams(context);
  const datasetDir = args.string('dataset-dir');
  if (datasetDir !== undefined && args.list('modality').length > 0) {
    throw new PairpickError('E_OPTION', '--dataset-dir and --modality both name the inputs; give one of them');
  }
  const dataset = datasetDir !== undefined ? await datasetInputs(datasetDir) : undefined;
  const inputs: ModalityInputs = dataset ? dataset.inputs : modalityInputs(args, 1);
  const items = await itemsSpec(args, dataset?.metadata);
  const budget = args.int('budget');
  if (budget === undefined) args.required('budget');
  const strategy = args.choice('strategy', strategyNames()) ?? SELECT_DEFAULTS.strategy;

  const out = args.string('out');
  if (out !== undefined) {
    const ext = extname(out).toLowerCase();
    if (!OUT_FORMATS.includes(ext)) throw new PairpickError('E_OPTION', `--out ${out}: unknown extension '${ext}' (use .json, .csv or .npy)`);
    const dir = dirname(resolve(out));
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new PairpickError('E_IO', `--out ${out}: folder ${dir} does not exist`);
  }
  const modelPath = args.string('model');
  const needsModel = findStrategy(strategy)?.model !== undefined;
  if (needsModel && modelPath === undefined) throw new PairpickError('E_OPTION', `--model FILE (a trained classifier) is required by --strategy ${strategy}`);
  if (!needsModel && modelPath !== undefined) {
    throw new PairpickError('E_OPTION', `--model applies only to the warm strategies ${modelStrategies().map((s) => s.name).join(', ')} (not --strategy ${strategy})`);
  }
  const inputFeatures = namedPaths(args, 'input');
  if (inputFeatures.names.length > 0 && !findStrategy(strategy)?.pools?.inputs) {
    throw new PairpickError('E_OPTION', `--input applies only to --strategy mmcsal (the features stage 1 embedded; not --strategy ${strategy})`);
  }
  const labeledPath = args.string('labeled');
  // With ids, a .json/.csv/.txt --labeled file lists ids: they are looked up once the ids are read.
  const labeledById = labeledPath !== undefined && items.ids !== undefined && extname(labeledPath).toLowerCase() !== '.npy';
  const labeled = labeledPath !== undefined ? (labeledById ? await readIdFile(labeledPath) : await readIndexFile(labeledPath)) : undefined;

  const model = modelPath !== undefined ? await loadClassifier(modelPath) : undefined;
  const options: Record<string, unknown> = { strategy, budget: budget!, labeled, model, seed: args.int('seed'), backend: args.choice('backend', BACKENDS) };
  // Strategy flags are passed only when given, so select() names any that do not fit the strategy.
  for (const s of strategies()) {
    for (const [name, o] of Object.entries(s.options)) {
      const text = args.string(flagOf(name));
      if (text !== undefined && !(name in options)) options[name] = optionFromFlag(text, `--${flagOf(name)}`, o.rule);
    }
  }
  for (const name of Object.keys(findStrategy(strategy)?.inputs ?? {})) {
    if (!args.has(flagOf(name))) throw new PairpickError('E_OPTION', `--${flagOf(name)} FILE is required by --strategy ${strategy}`);
  }
  for (const s of strategies()) {
    for (const name of Object.keys(s.inputs ?? {})) {
      const path = args.string(flagOf(name));
      if (path !== undefined && !(name in options)) options[name] = await readRowMatrix(path, `--${flagOf(name)}`);
    }
  }
  for (const key of Object.keys(options)) if (options[key] === undefined) delete options[key];

  const json = args.flag('json');
  const quiet = args.flag('quiet');
  const pool = await openInputs(inputs);
  let inputPool: Pool | undefined;
  try {
    if (inputFeatures.names.length > 0) {
      inputPool = await openPool(inputFeatures.pool, { signal: context.signal }).catch((e: unknown) => {
        if (e instanceof PairpickError) throw new PairpickError(e.code, `--input: ${e.message.replace(/^openPool: /, '')}`, { cause: e });
        throw e;
      });
      options.inputs = inputPool;
    }
    if (out !== undefined) {
      const sources: NamedPath[] = poolFiles(pool, inputs);
      if (inputPool) sources.push(...poolFiles(inputPool, inputFeatures, 'input'));
      if (labeledPath !== undefined) sources.push({ label: `--labeled ${labeledPath}`, path: labeledPath });
      if (modelPath !== undefined) sources.push({ label: `--model ${modelPath}`, path: modelPath });
      sources.push(...itemFiles(items));
      await refuseOverwritingInputs([{ label: `--out ${out}`, path: out }], sources);
    }
    const poolName = `the pool (${inputs.names.map((n) => `${n}=${inputs.pool[n].path}`).join(', ')})`;
    const described: Items | undefined = await readItemFlags(items, pool.rows, poolName, context.signal, dataset?.metadata);
    if (labeledById && described && labeled) options.labeled = labeledRows(labeled, described, labeledPath!);
    const progress = commandProgress(context, `pairpick select`, quiet);
    if (!quiet) {
      const shape = pool.modalities.map((m) => `${m} ${pool.source(m).dim}-D`).join(', ');
      err(`pairpick select: ${strategy}, budget ${budget}, ${pool.rows} rows (${shape})\n`);
    }
    let sel: Selection;
    try {
      sel = await withInterrupt(context.signal, (signal) =>
        select(pool, { ...(options as unknown as SelectOptions), signal, onProgress: (p) => progress.update(p.fraction, PHASE_NAMES[p.phase], `${p.done}/${p.total}`) }),
      );
    } finally {
      progress.clear();
    }
    // Written only now, atomically: a cancelled or failed selection leaves no output file.
    const picked = described?.describe(sel.indices);
    if (out !== undefined) await writeSelection(out, sel, budget!, picked);
    if (json) {
      write(`${JSON.stringify(selectionJson(sel, budget!, picked))}\n`);
    } else if (out !== undefined) {
      write(`picked ${sel.indices.length} of ${pool.rows} rows with ${sel.strategy} on ${sel.backend} in ${sel.seconds.toFixed(2)} s → ${out}\n`);
    } else if (picked) {
      write(picksLines(sel.indices, picked));
    } else {
      write(Array.from(sel.indices).map((i) => `${i}\n`).join(''));
    }
  } finally {
    await inputPool?.close();
    await pool.close();
  }
}
