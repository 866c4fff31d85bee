// Turning what the user names (a file, a folder of shards, a list) into opened, validated shards.
import { readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';

import { PairpickError, throwIfAborted } from '../errors.js';
import { checkPath, describeValue } from './args.js';
import { FileBacking, MmapBacking, type Backing } from './backing.js';
import { changedError, openRegularFile, requireRegularFile } from './files.js';
import { nativeMmap } from './mmap.js';
import { readNpyLayout } from './npy.js';
import { rawDtypeOf, rawLayout } from './raw.js';
import { readSafetensorsLayout } from './safetensors.js';
import type { Layout, OpenSourceOptions } from './types.js';

/** File extensions a folder of shards is scanned for (case-insensitive). */
export const SHARD_EXTENSIONS = ['.npy', '.safetensors', '.f32', '.f16'] as const;

/**
 * Natural order: digit runs compare by value, so `emb_2.npy` < `emb_10.npy` (LAION-style shard
 * names are not zero-padded). Ties (e.g. `1` vs `01`) fall back to plain code-unit order.
 */
export function naturalCompare(a: string, b: string): number {
  if (typeof a !== 'string' || typeof b !== 'string') {
    throw new PairpickError('E_OPTION', `naturalCompare: expected two strings (got ${describeValue(a)} and ${describeValue(b)})`);
  }
  const re = /(\d+)|(\D+)/g;
  const pa = a.match(re) ?? [];
  const pb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const sx = x.replace(/^0+(?=\d)/, '');
      const sy = y.replace(/^0+(?=\d)/, '');
      if (sx.length !== sy.length) return sx.length - sy.length;
      if (sx !== sy) return sx < sy ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  if (pa.length !== pb.length) return pa.length - pb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

async function statOrFail(path: string) {
  try {
    return await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file or folder' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new PairpickError('E_IO', `${path}: ${why}`, { cause: e });
  }
}

/** The shard files of a folder: files with a shard extension, natural-sorted; dotfiles skipped. */
export async function listShardFolder(folder: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (e) {
    throw new PairpickError('E_IO', `${folder}: cannot list the folder: ${(e as Error).message}`, { cause: e });
  }
  const files: string[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    if (!(SHARD_EXTENSIONS as readonly string[]).includes(extname(name).toLowerCase())) continue;
    const s = await statOrFail(join(folder, name));
    if (s.isFile()) files.push(name);
  }
  if (files.length === 0) {
    throw new PairpickError('E_IO', `${folder}: the folder holds no embedding files (${SHARD_EXTENSIONS.join(', ')})`);
  }
  return files.sort(naturalCompare).map((name) => join(folder, name));
}

/** Files named by a path or list of paths: folders expand to their sorted shards, lists keep their
 * order. Anything that is neither a folder nor a regular file (a named pipe, a socket, a device)
 * is refused here, before any attempt to open it. */
export async function resolveShardPaths(input: string | readonly string[]): Promise<string[]> {
  if (typeof input !== 'string' && !Array.isArray(input)) {
    throw new PairpickError('E_OPTION', `openSource: path must be a path string or an array of them (got ${describeInput(input)})`);
  }
  const list: unknown[] = typeof input === 'string' ? [input] : [...input];
  if (list.length === 0) throw new PairpickError('E_OPTION', 'openSource: the list of paths is empty');
  const out: string[] = [];
  for (const [k, p] of list.entries()) {
    checkPath(p, 'openSource', typeof input === 'string' ? 'path' : `path [${k}]`);
    const path = p as string;
    const s = await statOrFail(path);
    if (s.isDirectory()) out.push(...(await listShardFolder(path)));
    else {
      requireRegularFile(path, s);
      out.push(path);
    }
  }
  return out;
}

function describeInput(v: unknown): string {
  return v === null || typeof v !== 'object' ? String(v) : 'an object';
}

/** Reads and checks the header of one file, whatever its format. */
export async function readLayout(fh: FileHandle, path: string, fileSize: number, opts: OpenSourceOptions): Promise<Layout> {
  const ext = extname(path).toLowerCase();
  let layout: Layout;
  if (ext === '.npy') layout = await readNpyLayout(fh, path, fileSize);
  else if (ext === '.safetensors') layout = await readSafetensorsLayout(fh, path, fileSize, opts.tensor);
  else {
    const implied = rawDtypeOf(path);
    if (implied && opts.dtype && opts.dtype !== implied) {
      throw new PairpickError('E_OPTION', `${path}: the extension says ${implied} but the 'dtype' option says ${opts.dtype}`);
    }
    const dtype = implied ?? opts.dtype;
    if (!dtype) {
      throw new PairpickError(
        'E_FORMAT',
        `${path}: unknown file type '${ext || basename(path)}' (pairpick reads .npy, .safetensors, raw .f32/.f16; for another raw file pass 'dtype' and 'dim')`,
      );
    }
    return rawLayout(path, fileSize, opts.dim, dtype);
  }
  if (opts.dim !== undefined && layout.dim !== opts.dim) {
    throw new PairpickError('E_SHAPE', `${path}: rows have dim ${layout.dim} but the 'dim' option says ${opts.dim}`);
  }
  if (opts.dtype !== undefined && layout.dtype !== opts.dtype) {
    throw new PairpickError('E_SHAPE', `${path}: the data is ${layout.dtype} but the 'dtype' option says ${opts.dtype}`);
  }
  return layout;
}

/** One opened file. */
export interface Shard {
  layout: Layout;
  backing: Backing;
}

/** Opens one file: parses its header through a file handle, then maps that same open file (or
 * keeps the handle for positional reads). */
export async function openShard(path: string, opts: OpenSourceOptions, useMmap: boolean): Promise<Shard> {
  const { fh, stamp, size } = await openRegularFile(path);
  let keepHandle = false;
  try {
    const layout = await readLayout(fh, path, size, opts);
    const mmap = useMmap ? nativeMmap() : undefined;
    if (mmap) {
      let mapping;
      try {
        mapping = mmap.open(path, fh.fd);
      } catch (e) {
        const message = (e as Error).message ?? String(e);
        throw new PairpickError('E_IO', message.includes(path) ? message : `${path}: cannot memory-map: ${message}`, { cause: e });
      }
      // The header was checked against the file as fstat saw it then: it must be the same file now.
      if (BigInt(mapping.size) !== stamp.size || mapping.mtimeNs !== stamp.mtimeNs) {
        mapping.close();
        throw changedError(path);
      }
      return { layout, backing: new MmapBacking(mapping, path, layout.dataOffset, layout.dim, layout.dtype) };
    }
    keepHandle = true;
    return { layout, backing: new FileBacking(fh, path, layout.dataOffset, layout.dim, layout.dtype, stamp) };
  } finally {
    if (!keepHandle) await fh.close().catch(() => undefined);
  }
}

/** Opens every file, checking that they agree on dim and dtype (E_SHAPE naming the two files). */
export async function openShards(paths: readonly string[], opts: OpenSourceOptions, useMmap: boolean): Promise<Shard[]> {
  const shards: Shard[] = [];
  try {
    for (const path of paths) {
      throwIfAborted(opts.signal, 'openSource');
      const shard = await openShard(path, opts, useMmap);
      shards.push(shard);
      const first = shards[0].layout;
      const l = shard.layout;
      if (l.dim !== first.dim) {
        throw new PairpickError('E_SHAPE', `shards disagree on dim: ${first.path} has dim ${first.dim}, ${l.path} has dim ${l.dim}`);
      }
      if (l.dtype !== first.dtype) {
        throw new PairpickError('E_SHAPE', `shards disagree on dtype: ${first.path} is ${first.dtype}, ${l.path} is ${l.dtype}`);
      }
    }
  } catch (e) {
    await Promise.all(shards.map((s) => s.backing.close().catch(() => undefined)));
    throw e;
  }
  return shards;
}
