// Opening input files safely: only regular files (a named pipe, socket or device is refused at
// once instead of blocking or streaming forever), and a stamp of what was opened so that readers
// can notice a file truncated or rewritten while they use it.
import { constants, fstatSync, type BigIntStats, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

import { PairpickError } from '../errors.js';

/** What a non-regular file is, for messages. */
export function fileKind(s: Stats | BigIntStats): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a named pipe';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** E_IO naming the path when it is not a regular file. */
export function requireRegularFile(path: string, s: Stats | BigIntStats): void {
  if (!s.isFile()) throw new PairpickError('E_IO', `${path}: is ${fileKind(s)}, not a regular file (pairpick reads embeddings from regular files only)`);
}

/** Size and modification time of a file: a rewrite changes at least one of them. */
export interface FileStamp {
  size: bigint;
  mtimeNs: bigint;
}

export function stampOf(s: BigIntStats): FileStamp {
  return { size: s.size, mtimeNs: s.mtimeNs };
}

export function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs;
}

/** The error every reader throws for a file that changed under it. */
export function changedError(path: string, cause?: unknown): PairpickError {
  return new PairpickError('E_IO', `file ${path} changed or was truncated while pairpick was reading it`, cause === undefined ? undefined : { cause });
}

function openError(path: string, e: unknown): PairpickError {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a folder' : (e as Error).message;
  return new PairpickError('E_IO', `${path}: cannot open: ${why}`, { cause: e });
}

/**
 * Opens a regular file for reading. O_NONBLOCK makes opening a named pipe return at once (a
 * blocking open waits for a writer, forever); the fstat right after then refuses it. On a
 * regular file O_NONBLOCK changes nothing.
 */
export async function openRegularFile(path: string): Promise<{ fh: FileHandle; stamp: FileStamp; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw openError(path, e);
  }
  try {
    const s = await fh.stat({ bigint: true });
    requireRegularFile(path, s);
    if (s.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new PairpickError('E_IO', `${path}: file of ${s.size} bytes is too large`);
    return { fh, stamp: stampOf(s), size: Number(s.size) };
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e instanceof PairpickError ? e : new PairpickError('E_IO', `${path}: cannot stat: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Throws E_IO when the open file no longer matches `stamp` (checked after reading from it). A
 * synchronous fstat: about a microsecond, where an asynchronous one would cost a thread-pool
 * round trip per read and double the time of small reads.
 */
export function checkUnchanged(fh: FileHandle, path: string, stamp: FileStamp): void {
  let now: BigIntStats;
  try {
    now = fstatSync(fh.fd, { bigint: true });
  } catch (e) {
    throw changedError(path, e);
  }
  if (!sameStamp(stampOf(now), stamp)) throw changedError(path);
}

/**
 * The whole of a small regular file (labels, ids, manifests, index lists) as UTF-8 text, a leading
 * BOM dropped: E_IO when it cannot be read, E_FORMAT when it is not valid UTF-8.
 */
export async function readTextFile(path: string): Promise<string> {
  const { fh } = await openRegularFile(path);
  try {
    const bytes = await fh.readFile();
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
    } catch {
      throw new PairpickError('E_FORMAT', `${path}: not valid UTF-8 text`);
    }
  } catch (e) {
    if (e instanceof PairpickError) throw e;
    throw new PairpickError('E_IO', `${path}: cannot read: ${(e as Error).message}`, { cause: e });
  } finally {
    await fh.close();
  }
}

/** A small regular file parsed as JSON (readTextFile's rules): E_FORMAT naming the file when it is not JSON. */
export async function readJsonFile(path: string): Promise<unknown> {
  const text = await readTextFile(path);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new PairpickError('E_FORMAT', `${path}: not valid JSON (${(e as Error).message})`);
  }
}
