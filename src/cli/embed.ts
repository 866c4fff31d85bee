// `pairpick embed`: applies a stage-1 model to a pool, writing DIR/NAME.npy (float32, unit rows).
// All or nothing: every modality is written under a temporary name and the files are renamed into
// place only when all of them are complete, so a failure or Ctrl-C leaves DIR as it was.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { getBackend } from '../backend/index.js';
import { PairpickError } from '../errors.js';
import { openNpyWriter, type NpyWriter } from '../io/write.js';
import { loadProjection } from '../ssl/index.js';
import { HELP_FLAG, QUIET_FLAG, type CommandSpec, type ParsedArgs } from './args.js';
import { commandProgress, runCommand, streams, withInterrupt, type CommandContext } from './context.js';
import { INPUT_FLAGS, modalityInputs, openInputs, poolFiles, refuseOverwritingInputs } from './inputs.js';
import { backendFlag, BACKENDS, COMMON_NOTES } from './shared.js';

const DEFAULT_CHUNK_ROWS = 4096;

export const EMBED_SPEC: CommandSpec = {
  name: 'embed',
  summary: 'project a pool with a trained model (one .npy per modality)',
  synopsis: 'pairpick embed --model model.safetensors --modality NAME=PATH [--modality NAME=PATH …] --out-dir DIR [options]',
  description:
    'Applies the heads of a model written by `pairpick fit` to each modality and writes DIR/NAME.npy (float32, rows × the ' +
    "model's dim, unit-norm rows) for every modality, all or nothing. stdout gets one line per file written, or with --json " +
    'one JSON document { model, outputs: [{ modality, path, rows, dim }] }. Progress and notes go to stderr.',
  flags: {
    model: { type: 'string', value: 'FILE', required: true, group: 'Inputs', help: 'the model written by pairpick fit (.safetensors)' },
    ...INPUT_FLAGS,
    'out-dir': {
      type: 'string',
      value: 'DIR',
      required: true,
      group: 'Output',
      help: 'folder for NAME.npy per modality (created if missing; existing files of those names are replaced only when every modality is done)',
    },
    json: { type: 'boolean', group: 'Output', help: 'print one JSON document on stdout instead of one line per file' },
    backend: backendFlag('Computation'),
    'chunk-rows': { type: 'string', value: 'N', group: 'Computation', default: DEFAULT_CHUNK_ROWS, api: 'chunkRows', help: 'rows read and projected per step (bounds the memory used)' },
    quiet: QUIET_FLAG,
    help: HELP_FLAG,
  },
  notes: COMMON_NOTES,
};

/** A modality name becomes a file name: refuse anything that could leave the output folder. */
function checkFileName(name: string): void {
  if (name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new PairpickError('E_OPTION', `modality name '${name}' cannot be used as a file name in --out-dir`);
  }
}

export async function embedCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return runCommand(EMBED_SPEC, argv, context, (args) => embedBody(args, context));
}

async function embedBody(args: ParsedArgs, context: CommandContext): Promise<void> {
  const { out: write } = streams(context);
  const modelPath = args.required('model');
  const inputs = modalityInputs(args, 1);
  const outDir = args.required('out-dir');
  inputs.names.forEach(checkFileName);
  const chunkRows = args.int('chunk-rows', { min: 1 }) ?? DEFAULT_CHUNK_ROWS;
  const backend = getBackend(args.choice('backend', BACKENDS));
  const json = args.flag('json');

  const projection = await loadProjection(modelPath);
  const pool = await openInputs(inputs);
  const progress = commandProgress(context, 'pairpick embed', args.flag('quiet'));
  const staged: { temp: string; path: string }[] = [];
  try {
    // Check every modality against the model before writing anything.
    for (const name of pool.modalities) {
      if (!projection.modalities.includes(name)) {
        throw new PairpickError('E_SHAPE', `the model has no modality '${name}' (it has: ${projection.modalities.join(', ')})`);
      }
      const D = projection.inputDims[name];
      if (pool.source(name).dim !== D) {
        throw new PairpickError('E_SHAPE', `--modality ${name} (${pool.source(name).name}) has ${pool.source(name).dim} dimensions, the model expects ${D}`);
      }
    }
    const outputs = pool.modalities.map((name) => ({ modality: name, path: join(outDir, `${name}.npy`), rows: pool.rows, dim: projection.dim }));
    await refuseOverwritingInputs(
      outputs.map((o) => ({ label: `--out-dir ${outDir} (its file ${o.modality}.npy)`, path: o.path })),
      [{ label: `--model ${modelPath}`, path: modelPath }, ...poolFiles(pool, inputs)],
    );
    await mkdir(outDir, { recursive: true }).catch((e) => {
      throw new PairpickError('E_IO', `cannot create --out-dir ${outDir}: ${(e as Error).message}`, { cause: e });
    });
    const total = pool.rows * pool.modalities.length;
    let done = 0;
    await withInterrupt(context.signal, async (signal) => {
      for (const [m, name] of pool.modalities.entries()) {
        const phase = `${name} (${m + 1}/${pool.modalities.length})`;
        progress.update(done / total, phase);
        const temp = join(outDir, `.${name}.npy.${process.pid}-${randomBytes(4).toString('hex')}.part`);
        const writer: NpyWriter = await openNpyWriter(temp, { dim: projection.dim, rows: pool.rows });
        try {
          for await (const chunk of projection.embedChunks(name, pool.source(name), { backend, chunkRows, signal })) {
            await writer.append(chunk.data);
            done += chunk.count;
            progress.update(done / total, phase, `${done - m * pool.rows}/${pool.rows} rows`);
          }
          await writer.close();
        } catch (e) {
          await writer.abort();
          throw e;
        }
        staged.push({ temp, path: join(outDir, `${name}.npy`) });
      }
    });
    // Every modality is complete: now put them in place (a Ctrl-C here lets the renames finish).
    while (staged.length) {
      const { temp, path } = staged[0];
      await rename(temp, path).catch((e) => {
        throw new PairpickError('E_IO', `${path}: cannot write: ${(e as Error).message}`, { cause: e });
      });
      staged.shift();
    }
    progress.clear();
    if (json) write(`${JSON.stringify({ model: modelPath, outputs }, null, 2)}\n`);
    else for (const o of outputs) write(`${o.modality}: ${o.rows} × ${o.dim} float32 → ${o.path}\n`);
  } finally {
    progress.clear();
    await Promise.all(staged.map((s) => unlink(s.temp).catch(() => undefined)));
    await pool.close();
  }
}
