// The native memory mapping (native/binding/mmap.cc), when the addon has it and it is allowed.
// PAIRPICK_NO_MMAP=1 (or `{ mmap: false }`) forces positional file reads instead.
import { loadAddon } from '../native/addon.js';

/** A read-only mapping of one whole file, as the addon hands it out. The mapping is reference
 * counted: this handle, its ArrayBuffer and every job in flight each hold a reference, so close()
 * never pulls memory from under a read; munmap happens when the last reference goes. */
export interface NativeMapping {
  /** File size in bytes. */
  readonly size: number;
  /** The file's modification time when it was mapped, in ns (as fs.stat's bigint mtimeNs). */
  readonly mtimeNs: bigint;
  /** Throws E_IO when the file was truncated or rewritten since it was mapped (after a view was used). */
  check(): void;
  /** The whole mapping as one external ArrayBuffer (created once, on first use). Throws when the
   * runtime refuses external buffers or the handle is closed. */
  buffer(): ArrayBuffer;
  /** Copies `count` values (fp16 → fp32 when `half`) starting at `byteOffset` into dst[dstOffset…]. */
  read(byteOffset: number, count: number, half: boolean, dst: Float32Array, dstOffset: number): Promise<void>;
  /** For each i: copies row rows[i] (rows of `dim` values starting at `byteOffset`) into row dstRows[i] of dst. */
  gather(byteOffset: number, dim: number, half: boolean, rows: Float64Array, dst: Float32Array, dstRows: Int32Array): Promise<void>;
  /** Index (in values, from byteOffset) of the first NaN/±Inf among `count` values, or -1. */
  firstNonFinite(byteOffset: number, count: number, half: boolean): Promise<number>;
  /** madvise over a byte range: 'normal' | 'sequential' | 'random' | 'willneed' | 'dontneed'. */
  advise(kind: 'normal' | 'sequential' | 'random' | 'willneed' | 'dontneed', byteOffset: number, byteLength: number): void;
  /** Drops the handle's reference (idempotent). */
  close(): void;
  readonly closed: boolean;
}

interface MmapModule {
  /** Maps the file open as descriptor `fd` (the one its header was read through); `path` names it in messages. */
  open(path: string, fd?: number): NativeMapping;
  /** SIGBUS faults inside mappings that the addon's guard has turned into E_IO so far. */
  faultsAbsorbed(): number;
}

/** The addon's mmap module, or undefined (with PAIRPICK_NO_MMAP=1, or no addon / no mmap here). */
export function nativeMmap(): MmapModule | undefined {
  if (process.env.PAIRPICK_NO_MMAP === '1') return undefined;
  const { addon } = loadAddon();
  const mod = addon?.mmap as MmapModule | undefined;
  return mod && typeof mod.open === 'function' ? mod : undefined;
}
