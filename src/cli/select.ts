// `pairpick select`: pick the rows of a pool to label, written as .json, .csv or .npy.
import { randomBytes } from 'node:crypto';
import { readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';

import type { BackendChoice } from '../backend/index.js';
import { PairpickError } from '../errors.js';
import { readNpy } from '../io/npy.js';
import { openPool } from '../io/pool.js';
import { writeNpy } from '../io/write.js';
import { select, STRATEGIES, type Selection, type SelectOptions, type SelectProgress, type Strategy } from '../select/index.js';
import { modalityFlags, numberFlag, parseCommand } from './args.js';
import { withInterrupt, type CommandContext } from './fit.js';
import { progressBar } from './progress.js';

export const SELECT_USAGE = `usage: pairpick select --modality NAME=PATH [--modality NAME=PATH …] --budget B
          [--strategy ${STRATEGIES.join('|')}] [--labeled FILE(.json|.csv|.txt|.npy)]
          [--seed 0] [--backend auto|cuda|cpu|js] [--out FILE(.json|.csv|.npy)] [--json]
          mmcsal:    [--k 10] [--gamma auto|G] [--lambda-align auto|L] [--w-density 1] [--w-diversity 4]
                     [--density-sample N]
          probcover: [--radius R]  (default: automatic)
          facility:  [--optimizer lazy|stochastic]
`;

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
    text = await readFile(path, 'utf8');
  } catch (e) {
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

function phaseLabel(p: SelectProgress): string {
  const names: Record<SelectProgress['phase'], string> = {
    prepare: 'normalising',
    density: 'kNN density',
    kmeans: 'k-means',
    radius: 'radius',
    coverage: 'coverage',
    select: 'picking',
  };
  return `${names[p.phase]} ${p.done}/${p.total}`;
}

/** `auto` or a number, for --gamma and --lambda-align. */
function autoOrNumber(value: string | undefined, flag: string): number | 'auto' | undefined {
  if (value === undefined || value === 'auto') return value;
  return numberFlag(value, flag);
}

export async function selectCommand(argv: string[], context: CommandContext & { stderr?: (text: string) => void } = {}): Promise<void> {
  const { values } = parseCommand(
    argv,
    {
      modality: { type: 'string', multiple: true },
      budget: { type: 'string' },
      strategy: { type: 'string' },
      labeled: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      k: { type: 'string' },
      gamma: { type: 'string' },
      'lambda-align': { type: 'string' },
      'w-density': { type: 'string' },
      'w-diversity': { type: 'string' },
      'density-sample': { type: 'string' },
      radius: { type: 'string' },
      optimizer: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    'select',
  );
  const write = context.stdout ?? ((s: string) => void process.stdout.write(s));
  if (values.help) {
    write(SELECT_USAGE);
    return;
  }
  const modalities = modalityFlags(values.modality as string[] | undefined);
  if (Object.keys(modalities).length < 1) throw new PairpickError('E_OPTION', `pairpick select needs at least one --modality NAME=PATH\n${SELECT_USAGE}`);
  if (values.budget === undefined) throw new PairpickError('E_OPTION', `pairpick select: --budget B is required\n${SELECT_USAGE}`);
  const budget = numberFlag(values.budget as string, 'budget', { integer: true })!;
  const strategy = (values.strategy ?? 'mmcsal') as Strategy;
  if (!STRATEGIES.includes(strategy)) throw new PairpickError('E_OPTION', `--strategy: unknown strategy '${strategy}' (choose one of: ${STRATEGIES.join(', ')})`);

  const out = values.out as string | undefined;
  if (out !== undefined) {
    const ext = extname(out).toLowerCase();
    if (!OUT_FORMATS.includes(ext)) throw new PairpickError('E_OPTION', `--out ${out}: unknown extension '${ext}' (use .json, .csv or .npy)`);
    const dir = dirname(resolve(out));
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new PairpickError('E_IO', `--out ${out}: folder ${dir} does not exist`);
  }
  const labeled = values.labeled !== undefined ? await readIndexFile(values.labeled as string) : undefined;

  // Strategy flags are passed only when given, so select() names any that do not fit the strategy.
  const flag = (name: string) => (values as Record<string, unknown>)[name] as string | undefined;
  const options: SelectOptions = {
    strategy,
    budget,
    labeled,
    seed: numberFlag(flag('seed'), 'seed', { integer: true }),
    backend: flag('backend') as BackendChoice | undefined,
    k: numberFlag(flag('k'), 'k', { integer: true, min: 1 }),
    gamma: autoOrNumber(flag('gamma'), 'gamma'),
    lambdaAlign: autoOrNumber(flag('lambda-align'), 'lambda-align'),
    wDensity: numberFlag(flag('w-density'), 'w-density', { min: 0 }),
    wDiversity: numberFlag(flag('w-diversity'), 'w-diversity', { min: 0 }),
    densitySample: numberFlag(flag('density-sample'), 'density-sample', { integer: true, min: 2 }),
    radius: numberFlag(flag('radius'), 'radius'),
    optimizer: flag('optimizer') as SelectOptions['optimizer'],
  };
  const flagOf: Record<string, string> = { lambdaAlign: '--lambda-align', wDensity: '--w-density', wDiversity: '--w-diversity', densitySample: '--density-sample' };
  for (const key of Object.keys(options) as (keyof SelectOptions)[]) if (options[key] === undefined) delete options[key];

  const json = values.json === true;
  const bar = progressBar(`select ${strategy}`, context.progress ?? (!json && process.stderr.isTTY === true));
  const pool = await openPool(modalities);
  try {
    let sel: Selection;
    try {
      sel = await withInterrupt(context.signal, (signal) => {
        if (!json) {
          const shape = pool.modalities.map((m) => `${m} ${pool.source(m).dim}-D`).join(', ');
          (context.stderr ?? ((t: string) => void process.stderr.write(t)))(`pairpick select: ${strategy}, budget ${budget}, ${pool.rows} rows (${shape})\n`);
        }
        return select(pool, { ...options, signal, onProgress: (p) => bar.update(p.fraction, phaseLabel(p)) });
      });
    } catch (e) {
      // Name the command-line flag rather than the API option.
      if (e instanceof PairpickError && e.code === 'E_OPTION') {
        const m = /option '(\w+)' does not apply/.exec(e.message);
        if (m) throw new PairpickError('E_OPTION', e.message.replace(`option '${m[1]}'`, `${flagOf[m[1]] ?? `--${m[1]}`}`));
      }
      throw e;
    }
    bar.done();
    // Written only now, atomically: a cancelled or failed selection leaves no output file.
    if (out !== undefined) await writeSelection(out, sel, budget);
    if (json) {
      write(`${JSON.stringify(selectionJson(sel, budget))}\n`);
    } else if (out !== undefined) {
      write(`picked ${sel.indices.length} of ${pool.rows} rows with ${sel.strategy} on ${sel.backend} in ${sel.seconds.toFixed(2)} s → ${out}\n`);
    } else {
      write(Array.from(sel.indices).map((i) => `${i}\n`).join(''));
    }
  } finally {
    bar.done();
    await pool.close();
  }
}
