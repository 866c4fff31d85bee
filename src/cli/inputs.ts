// The inputs of fit/embed/select: `--modality NAME=PATH` per modality, with the file options raw
// files and multi-tensor safetensors need (`--input-dim NAME=D`, `--input-dtype NAME=T`,
// `--input-tensor NAME=T`); and the check that no output file is one of the inputs.
import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { PairpickError } from '../errors.js';
import { openPool, type Pool, type PoolFileInput } from '../io/pool.js';
import type { Dtype } from '../io/types.js';
import { parseInteger, type FlagSpec, type ParsedArgs } from './args.js';

export const INPUT_FLAGS: Record<string, FlagSpec> = {
  modality: {
    type: 'string',
    multiple: true,
    value: 'NAME=PATH',
    required: true,
    group: 'Inputs',
    help: "one modality's embeddings, repeated for each modality (row i of every modality is sample i): a .npy file, a .safetensors file, a raw little-endian .f32/.f16 file, or a folder of such shards",
  },
  'input-dim': {
    type: 'string',
    multiple: true,
    value: 'NAME=D',
    group: 'Inputs',
    default: 'from the file',
    help: 'values per row of modality NAME: required for raw .f32/.f16 files (they have no header), checked against the file for other formats',
  },
  'input-dtype': {
    type: 'string',
    multiple: true,
    value: 'NAME=float32|float16',
    group: 'Inputs',
    default: 'from the file',
    help: 'element type of modality NAME: for a raw file whose extension is not .f32/.f16, checked for other formats',
  },
  'input-tensor': {
    type: 'string',
    multiple: true,
    value: 'NAME=TENSOR',
    group: 'Inputs',
    default: 'its only 2-D tensor',
    help: 'which tensor of a .safetensors modality to read, when it holds several',
  },
};

export interface ModalityInputs {
  /** What openPool takes: NAME → { path, dim?, dtype?, tensor? }, in the order given. */
  pool: Record<string, PoolFileInput & { path: string }>;
  names: string[];
}

/** Splits `NAME=VALUE` (at the first '='), naming the flag and its expected form when it is not one. */
function splitPair(text: string, flag: string, form: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) throw new PairpickError('E_OPTION', `--${flag} expects ${form}, got '${text}'`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** Reads --modality and the per-modality file options; at least `min` modalities. */
export function modalityInputs(args: ParsedArgs, min: number): ModalityInputs {
  const pool: ModalityInputs['pool'] = {};
  for (const text of args.list('modality')) {
    const [name, path] = splitPair(text, 'modality', 'NAME=PATH');
    if (Object.prototype.hasOwnProperty.call(pool, name)) throw new PairpickError('E_OPTION', `--modality ${name} is given twice`);
    pool[name] = { path };
  }
  const names = Object.keys(pool);
  if (names.length < min) {
    throw new PairpickError('E_OPTION', `${min === 1 ? 'at least one --modality NAME=PATH is' : `at least ${min} --modality NAME=PATH flags are`} needed (got ${names.length})`);
  }
  const own = (flag: string, form: string, set: (input: PoolFileInput, value: string, what: string) => void) => {
    for (const text of args.list(flag)) {
      const [name, value] = splitPair(text, flag, form);
      if (!Object.prototype.hasOwnProperty.call(pool, name)) {
        throw new PairpickError('E_OPTION', `--${flag} ${text}: there is no --modality ${name} (modalities: ${names.join(', ')})`);
      }
      set(pool[name], value, `--${flag} ${name}=`); // given again for NAME: the last one counts
    }
  };
  own('input-dim', 'NAME=D', (input, value, what) => void (input.dim = parseInteger(value, what, { min: 1 })));
  own('input-dtype', 'NAME=float32|float16', (input, value, what) => {
    if (value !== 'float32' && value !== 'float16') throw new PairpickError('E_OPTION', `${what} must be float32 or float16, got '${value}'`);
    input.dtype = value as Dtype;
  });
  own('input-tensor', 'NAME=TENSOR', (input, value) => void (input.tensor = value));
  return { pool, names };
}

const INPUT_OPTION_FLAG: Record<string, string> = { dim: 'input-dim', dtype: 'input-dtype', tensor: 'input-tensor' };
const INPUT_OPTION_VALUE: Record<string, string> = { dim: 'D', dtype: 'float32|float16', tensor: 'TENSOR' };

/**
 * Opens the pool of the --modality flags. File messages that name the API's file options ("pass
 * the row width with the 'dim' option") are reworded with the flags, for the modality whose file
 * the message names.
 */
export async function openInputs(inputs: ModalityInputs, signal?: AbortSignal): Promise<Pool> {
  try {
    return await openPool(inputs.pool, { signal });
  } catch (e) {
    if (!(e instanceof PairpickError)) throw e;
    const named = inputs.names.filter((n) => e.message.includes(inputs.pool[n].path));
    const modality = named.length === 1 ? named[0] : 'NAME';
    const message = e.message.replace(/(?<!named |tensor )(?:the )?'(dim|dtype|tensor)'(?: option)?/g, (_, option: string) => `--${INPUT_OPTION_FLAG[option]} ${modality}=${INPUT_OPTION_VALUE[option]}`);
    if (message === e.message) throw e;
    throw new PairpickError(e.code, message, { cause: e });
  }
}

/** Where a path leads: its real path, or (for a file not created yet) its folder's real path and its name. */
async function identity(path: string): Promise<string | undefined> {
  try {
    return await realpath(path);
  } catch {
    try {
      return join(await realpath(dirname(resolve(path))), basename(path));
    } catch {
      return undefined; // the folder does not exist either: nothing in it can be an input
    }
  }
}

export interface NamedPath {
  /** How the user named it, e.g. `--out picks.npy` or `--modality image=img.npy`. */
  label: string;
  path: string;
}

/** The files behind each modality of an open pool, labelled with the flag that named them. */
export function poolFiles(pool: Pool, inputs: ModalityInputs, flag = 'modality'): NamedPath[] {
  return inputs.names.flatMap((name) => {
    const files = pool.source(name).files ?? [inputs.pool[name].path];
    return files.map((path) => ({ label: `--${flag} ${name}=${inputs.pool[name].path}`, path }));
  });
}

/**
 * Reads a repeatable `--FLAG NAME=PATH` (the forms of --modality: .npy, .safetensors with one 2-D
 * tensor, or a folder of such shards) into what openPool takes; names must be distinct.
 */
export function namedPaths(args: ParsedArgs, flag: string): ModalityInputs {
  const pool: ModalityInputs['pool'] = {};
  for (const text of args.list(flag)) {
    const [name, path] = splitPair(text, flag, 'NAME=PATH');
    if (Object.prototype.hasOwnProperty.call(pool, name)) throw new PairpickError('E_OPTION', `--${flag} ${name} is given twice`);
    pool[name] = { path };
  }
  return { pool, names: Object.keys(pool) };
}

/**
 * Refuses (E_OPTION, naming both) an output that is the same file as an input — by real path, so
 * also through a symlink or a relative path — before anything is written over it.
 */
export async function refuseOverwritingInputs(outputs: NamedPath[], inputs: NamedPath[]): Promise<void> {
  const ids = await Promise.all(inputs.map((i) => identity(i.path)));
  for (const out of outputs) {
    const id = await identity(out.path);
    if (id === undefined) continue;
    const hit = ids.findIndex((x) => x === id);
    if (hit >= 0) {
      const input = inputs[hit];
      const shard = input.label.endsWith(`=${input.path}`) ? '' : ` (its file ${input.path})`;
      throw new PairpickError('E_OPTION', `${out.label} is the same file as the input ${input.label}${shard} (${id}): writing it would destroy the input; choose another output`);
    }
  }
}
