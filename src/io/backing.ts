// Storage behind one shard: a native mapping, positional file reads, or a typed array in memory.
// All three copy only the rows asked for; none ever loads a whole file into the JS heap.
import type { FileHandle } from 'node:fs/promises';

import { fromNative } from '../native/addon.js';
import { PairpickError } from '../errors.js';
import { halfArrayToFloat } from '../util/half.js';
import { changedError, checkUnchanged, type FileStamp } from './files.js';
import type { NativeMapping } from './mmap.js';
import { dtypeBytes, type Dtype } from './types.js';

/** Row-level access to one shard's rows × dim matrix. Row numbers are local to the shard. */
export interface Backing {
  readonly access: 'mmap' | 'file' | 'memory';
  /** Copies rows [start, start + count) as fp32 into dst starting at row dstRow. */
  readRows(start: number, count: number, dst: Float32Array, dstRow: number): Promise<void>;
  /** For each i: row rows[i] → row dstRows[i] of dst. */
  gatherRows(rows: Float64Array, dst: Float32Array, dstRows: Int32Array): Promise<void>;
  /** Zero-copy view of rows [start, start + count), or undefined. */
  view(start: number, count: number): Float32Array | Uint16Array | undefined;
  /** Value index (from row `start`) of the first NaN/±Inf in the rows, or -1; undefined when this
   * backing has no fast scan (the caller then scans what read gives it). */
  firstNonFinite(start: number, count: number): Promise<number> | undefined;
  /** Access-pattern hint (mmap only). */
  advise(pattern: 'sequential' | 'random' | 'normal'): void;
  /** Throws E_IO when the file was truncated or rewritten since it was opened. Reads check this
   * themselves; users of view() call it when they are done with the memory. */
  checkIntact(): void;
  close(): Promise<void>;
}

/** fp16 bits → fp32 into an existing array (any backing buffer). */
function halfInto(src: Uint16Array, dst: Float32Array): void {
  halfArrayToFloat(src, dst as Float32Array<ArrayBuffer>);
}

/** Largest single positional read (Node refuses reads of 2 GiB and more). */
const MAX_READ = 1 << 30;
/** Temporary buffer size for fp16 conversion and gathers on the file path. */
const SCRATCH_BYTES = 8 << 20;
/** Positional reads a gather keeps in flight. */
const GATHER_CONCURRENCY = 16;

/** Native mapping of the file holding this shard. */
export class MmapBacking implements Backing {
  readonly access = 'mmap' as const;
  private readonly rowBytes: number;
  private bufferFailed = false;

  constructor(
    private readonly mapping: NativeMapping,
    private readonly path: string,
    private readonly dataOffset: number,
    private readonly dim: number,
    private readonly dtype: Dtype,
  ) {
    this.rowBytes = dim * dtypeBytes(dtype);
  }

  /** A native error as a PairpickError whose message names the file (once). */
  private error(e: unknown) {
    const message = (e as Error)?.message ?? '';
    return fromNative(e, message.includes(this.path) ? undefined : this.path);
  }

  async readRows(start: number, count: number, dst: Float32Array, dstRow: number): Promise<void> {
    if (count === 0) return;
    try {
      await this.mapping.read(this.dataOffset + start * this.rowBytes, count * this.dim, this.dtype === 'float16', dst, dstRow * this.dim);
    } catch (e) {
      throw this.error(e);
    }
  }

  async gatherRows(rows: Float64Array, dst: Float32Array, dstRows: Int32Array): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.mapping.gather(this.dataOffset, this.dim, this.dtype === 'float16', rows, dst, dstRows);
    } catch (e) {
      throw this.error(e);
    }
  }

  view(start: number, count: number): Float32Array | Uint16Array | undefined {
    if (this.bufferFailed || this.mapping.closed) return undefined;
    const item = dtypeBytes(this.dtype);
    const offset = this.dataOffset + start * this.rowBytes;
    if (offset % item !== 0) return undefined; // typed arrays need aligned offsets
    let buffer: ArrayBuffer;
    try {
      buffer = this.mapping.buffer();
    } catch {
      this.bufferFailed = true; // e.g. a runtime that forbids external buffers
      return undefined;
    }
    const length = count * this.dim;
    return this.dtype === 'float16' ? new Uint16Array(buffer, offset, length) : new Float32Array(buffer, offset, length);
  }

  firstNonFinite(start: number, count: number): Promise<number> {
    return this.mapping.firstNonFinite(this.dataOffset + start * this.rowBytes, count * this.dim, this.dtype === 'float16').catch((e) => {
      throw this.error(e);
    });
  }

  advise(pattern: 'sequential' | 'random' | 'normal'): void {
    try {
      this.mapping.advise(pattern, this.dataOffset, this.mapping.size - this.dataOffset);
    } catch {
      /* a hint only */
    }
  }

  checkIntact(): void {
    try {
      this.mapping.check();
    } catch (e) {
      throw this.error(e);
    }
  }

  async close(): Promise<void> {
    this.mapping.close();
  }
}

/** Positional reads through a FileHandle (the fallback without the native addon). */
export class FileBacking implements Backing {
  readonly access = 'file' as const;
  private readonly rowBytes: number;
  private pending = 0;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly dataOffset: number,
    private readonly dim: number,
    private readonly dtype: Dtype,
    /** The file as it was when its header was read: every read ends by checking it still is. */
    private readonly stamp: FileStamp,
  ) {
    this.rowBytes = dim * dtypeBytes(dtype);
  }

  /** Counts the operation as in flight so close() waits for it before closing the descriptor;
   * once it has read, checks that the file did not change meanwhile (a same-size rewrite would
   * otherwise hand back a mix of old and new rows). */
  private async track<T>(op: () => Promise<T>): Promise<T> {
    if (this.closing) throw new PairpickError('E_STATE', `${this.path}: read after close()`);
    this.pending++;
    try {
      const result = await op();
      checkUnchanged(this.fh, this.path, this.stamp);
      return result;
    } catch (e) {
      // A short read is the file shrinking under us: report it as such.
      if (e instanceof PairpickError && e.code === 'E_IO') checkUnchanged(this.fh, this.path, this.stamp);
      throw e;
    } finally {
      if (--this.pending === 0 && this.drained) this.drained();
    }
  }

  /** Reads exactly `length` bytes at file position `position` into `target`. */
  private async readBytes(target: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < target.length) {
      const want = Math.min(MAX_READ, target.length - done);
      let n: number;
      try {
        ({ bytesRead: n } = await this.fh.read(target, done, want, position + done));
      } catch (e) {
        throw new PairpickError('E_IO', `${this.path}: read failed at byte ${position + done}: ${(e as Error).message}`, { cause: e });
      }
      if (n === 0) throw changedError(this.path);
      done += n;
    }
  }

  readRows(start: number, count: number, dst: Float32Array, dstRow: number): Promise<void> {
    return this.track(async () => {
      if (count === 0) return;
      const position = this.dataOffset + start * this.rowBytes;
      if (this.dtype === 'float32') {
        // Little-endian hosts only (as is every platform Node supports in practice): read straight into dst.
        await this.readBytes(new Uint8Array(dst.buffer, dst.byteOffset + dstRow * this.rowBytes, count * this.rowBytes), position);
        return;
      }
      const rowsPerPiece = Math.max(1, Math.floor(SCRATCH_BYTES / this.rowBytes));
      const scratch = new Uint16Array(Math.min(count, rowsPerPiece) * this.dim);
      for (let done = 0; done < count; done += rowsPerPiece) {
        const n = Math.min(rowsPerPiece, count - done);
        const part = scratch.subarray(0, n * this.dim);
        await this.readBytes(new Uint8Array(part.buffer, 0, n * this.rowBytes), position + done * this.rowBytes);
        halfInto(part, dst.subarray((dstRow + done) * this.dim, (dstRow + done + n) * this.dim));
      }
    });
  }

  gatherRows(rows: Float64Array, dst: Float32Array, dstRows: Int32Array): Promise<void> {
    return this.track(async () => {
      // Sort by source row and merge consecutive rows into runs: one read per run.
      const order = Array.from(rows.keys()).sort((a, b) => rows[a] - rows[b]);
      const runs: { first: number; rows: number; items: number[] }[] = [];
      const maxRunRows = Math.max(1, Math.floor(SCRATCH_BYTES / this.rowBytes));
      for (const k of order) {
        const r = rows[k];
        const last = runs[runs.length - 1];
        if (last && r >= last.first && r < last.first + last.rows) last.items.push(k);
        else if (last && r === last.first + last.rows && last.rows < maxRunRows) {
          last.rows++;
          last.items.push(k);
        } else runs.push({ first: r, rows: 1, items: [k] });
      }
      const dim = this.dim;
      const half = this.dtype === 'float16';
      let next = 0;
      const worker = async () => {
        for (;;) {
          const run = runs[next++];
          if (!run) return;
          const bytes = new Uint8Array(run.rows * this.rowBytes);
          await this.readBytes(bytes, this.dataOffset + run.first * this.rowBytes);
          const values = half ? halfArrayToFloat(new Uint16Array(bytes.buffer)) : new Float32Array(bytes.buffer);
          for (const k of run.items) {
            const local = rows[k] - run.first;
            dst.set(values.subarray(local * dim, (local + 1) * dim), dstRows[k] * dim);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(GATHER_CONCURRENCY, runs.length) }, worker));
    });
  }

  view(): undefined {
    return undefined;
  }

  firstNonFinite(): undefined {
    return undefined;
  }

  advise(): void {}

  checkIntact(): void {
    if (this.closing) throw new PairpickError('E_STATE', `${this.path}: used after close()`);
    checkUnchanged(this.fh, this.path, this.stamp);
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        if (this.pending > 0) await new Promise<void>((resolve) => (this.drained = resolve));
        await this.fh.close();
      })();
    }
    return this.closing;
  }
}

/** A typed array already in memory (memorySource, pools built from arrays). */
export class MemoryBacking implements Backing {
  readonly access = 'memory' as const;
  private data: Float32Array | Uint16Array | undefined;

  constructor(
    data: Float32Array | Uint16Array,
    private readonly dim: number,
  ) {
    this.data = data;
  }

  private get values(): Float32Array | Uint16Array {
    if (!this.data) throw new PairpickError('E_STATE', 'memory source used after close()');
    return this.data;
  }

  async readRows(start: number, count: number, dst: Float32Array, dstRow: number): Promise<void> {
    const src = this.values.subarray(start * this.dim, (start + count) * this.dim);
    const out = dst.subarray(dstRow * this.dim, (dstRow + count) * this.dim);
    if (src instanceof Float32Array) out.set(src);
    else halfInto(src, out);
  }

  async gatherRows(rows: Float64Array, dst: Float32Array, dstRows: Int32Array): Promise<void> {
    const values = this.values;
    const dim = this.dim;
    for (let i = 0; i < rows.length; i++) {
      const src = values.subarray(rows[i] * dim, (rows[i] + 1) * dim);
      const out = dst.subarray(dstRows[i] * dim, (dstRows[i] + 1) * dim);
      if (src instanceof Float32Array) out.set(src);
      else halfInto(src, out);
    }
  }

  view(start: number, count: number): Float32Array | Uint16Array | undefined {
    return this.data?.subarray(start * this.dim, (start + count) * this.dim);
  }

  firstNonFinite(): undefined {
    return undefined;
  }

  advise(): void {}

  checkIntact(): void {
    this.values; // E_STATE after close(), like the other backings
  }

  async close(): Promise<void> {
    this.data = undefined;
  }
}
