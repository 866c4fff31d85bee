// `pairpick embed`: applies a stage-1 model to a pool, writing DIR/NAME.npy (float32, unit rows).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { getBackend, type BackendChoice } from '../backend/index.js';
import { PairpickError } from '../errors.js';
import { openPool } from '../io/pool.js';
import { openNpyWriter } from '../io/write.js';
import { loadProjection } from '../ssl/index.js';
import { modalityFlags, numberFlag, parseCommand } from './args.js';
import { withInterrupt, type CommandContext } from './fit.js';
import { progressBar } from './progress.js';

export const EMBED_USAGE = `usage: pairpick embed --model model.safetensors --modality NAME=PATH … --out-dir DIR
          [--backend auto|cuda|cpu|js] [--chunk-rows 4096] [--json]
`;

/** A modality name becomes a file name: refuse anything that could leave the output folder. */
function checkFileName(name: string): void {
  if (name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new PairpickError('E_OPTION', `pairpick embed: modality name '${name}' cannot be used as a file name in --out-dir`);
  }
}

export async function embedCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  const { values } = parseCommand(
    argv,
    {
      model: { type: 'string' },
      modality: { type: 'string', multiple: true },
      'out-dir': { type: 'string' },
      backend: { type: 'string' },
      'chunk-rows': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    'embed',
  );
  const write = context.stdout ?? ((s: string) => void process.stdout.write(s));
  if (values.help) {
    write(EMBED_USAGE);
    return;
  }
  const modelPath = values.model as string | undefined;
  if (!modelPath) throw new PairpickError('E_OPTION', `pairpick embed: --model FILE is required\n${EMBED_USAGE}`);
  const outDir = values['out-dir'] as string | undefined;
  if (!outDir) throw new PairpickError('E_OPTION', `pairpick embed: --out-dir DIR is required\n${EMBED_USAGE}`);
  const modalities = modalityFlags(values.modality as string[] | undefined);
  if (Object.keys(modalities).length === 0) throw new PairpickError('E_OPTION', `pairpick embed needs at least one --modality NAME=PATH\n${EMBED_USAGE}`);
  Object.keys(modalities).forEach(checkFileName);
  const chunkRows = numberFlag(values['chunk-rows'] as string | undefined, 'chunk-rows', { integer: true, min: 1 }) ?? 4096;
  const backend = getBackend(values.backend as BackendChoice | undefined);
  const json = values.json === true;

  const projection = await loadProjection(modelPath);
  const pool = await openPool(modalities);
  const bar = progressBar('embed', context.progress ?? (!json && process.stderr.isTTY === true));
  try {
    // Check every modality against the model before writing anything.
    for (const name of pool.modalities) {
      if (!projection.modalities.includes(name)) {
        throw new PairpickError('E_SHAPE', `pairpick embed: the model has no modality '${name}' (it has: ${projection.modalities.join(', ')})`);
      }
      const D = projection.inputDims[name];
      if (pool.source(name).dim !== D) {
        throw new PairpickError('E_SHAPE', `pairpick embed: --modality ${name} (${pool.source(name).name}) has ${pool.source(name).dim} dimensions, the model expects ${D}`);
      }
    }
    await mkdir(outDir, { recursive: true }).catch((e) => {
      throw new PairpickError('E_IO', `pairpick embed: cannot create --out-dir ${outDir}: ${(e as Error).message}`, { cause: e });
    });
    const written: { modality: string; path: string; rows: number; dim: number }[] = [];
    const total = pool.rows * pool.modalities.length;
    let done = 0;
    await withInterrupt(context.signal, async (signal) => {
      for (const name of pool.modalities) {
        const path = join(outDir, `${name}.npy`);
        const writer = await openNpyWriter(path, { dim: projection.dim, rows: pool.rows });
        try {
          for await (const chunk of projection.embedChunks(name, pool.source(name), { backend, chunkRows, signal })) {
            await writer.append(chunk.data);
            done += chunk.count;
            bar.update(done / total, name);
          }
          await writer.close();
        } catch (e) {
          await writer.abort();
          throw e;
        }
        written.push({ modality: name, path, rows: pool.rows, dim: projection.dim });
      }
    });
    bar.done();
    if (json) write(`${JSON.stringify({ model: modelPath, outputs: written }, null, 2)}\n`);
    else for (const w of written) write(`${w.modality}: ${w.rows} × ${w.dim} float32 → ${w.path}\n`);
  } finally {
    bar.done();
    await pool.close();
  }
}
