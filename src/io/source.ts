// EmbeddingSource over one or more shards (files or a typed array), concatenated by rows.
import { PairpickError, throwIfAborted } from '../errors.js';
import {
  checkIndexList,
  checkInteger,
  checkSignal,
  describeValue,
  optionalBoolean,
  optionalChoice,
  optionalFunction,
  optionalInteger,
  optionalString,
  optionsObject,
} from './args.js';
import { MemoryBacking, type Backing } from './backing.js';
import { nativeMmap } from './mmap.js';
import { openShards, resolveShardPaths } from './shards.js';
import type { Chunk, ChunkOptions, Dtype, EmbeddingSource, OpenedSource, OpenSourceOptions } from './types.js';

interface Segment {
  backing: Backing;
  /** First row of this shard in the source. */
  start: number;
  rows: number;
  /** File path (or the memory source's name). */
  label: string;
}

/** The one EmbeddingSource implementation: a list of segments laid end to end. */
class ShardedSource implements OpenedSource {
  readonly rows: number;
  readonly access: 'mmap' | 'file' | 'memory';
  readonly files: readonly string[];
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Row where each segment starts, plus `rows` at the end (for binary search). */
  private readonly starts: number[];

  constructor(
    private readonly segments: Segment[],
    readonly dim: number,
    readonly dtype: Dtype,
    readonly name: string,
    files: string[],
  ) {
    this.rows = segments.reduce((n, s) => n + s.rows, 0);
    this.access = segments[0]?.backing.access ?? 'memory';
    this.files = Object.freeze(files);
    this.starts = [...segments.map((s) => s.start), this.rows];
  }

  private checkOpen(): void {
    if (this.closed) throw new PairpickError('E_STATE', `${this.name}: source used after close()`);
  }

  /** start and count: numbers (E_OPTION otherwise), whole, and a row range inside the source (E_SHAPE). */
  private checkRange(where: string, start: unknown, count: unknown, names = ['start', 'count']): void {
    [start, count].forEach((v, k) => {
      if (typeof v !== 'number') throw new PairpickError('E_OPTION', `${this.name}: ${where}: ${names[k]} must be a number (got ${describeValue(v)})`);
      if (!Number.isSafeInteger(v) || v < 0) throw new PairpickError('E_SHAPE', `${this.name}: ${where}: ${names[k]} must be a non-negative integer (got ${v})`);
    });
    const [s, c] = [start as number, count as number];
    if (s + c > this.rows) {
      throw new PairpickError('E_SHAPE', `${this.name}: ${where}: rows [${s}, ${s + c}) are out of range (the source has ${this.rows} rows)`);
    }
  }

  /** Index of the segment holding `row` (row < rows). */
  private segmentOf(row: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= row) lo = mid;
      else hi = mid - 1;
    }
    // Empty shards share their start with the next one: step past them.
    while (this.segments[lo].rows === 0 || row >= this.starts[lo] + this.segments[lo].rows) lo++;
    return lo;
  }

  /** Reads rows [start, start + count) into dst from row dstRow on (several shards in parallel). */
  private readInto(start: number, count: number, dst: Float32Array, dstRow: number): Promise<void> {
    if (count === 0) return Promise.resolve();
    const jobs: Promise<void>[] = [];
    let row = start;
    let s = this.segmentOf(start);
    while (row < start + count) {
      const seg = this.segments[s++];
      if (seg.rows === 0) continue;
      const local = row - seg.start;
      const n = Math.min(seg.rows - local, start + count - row);
      jobs.push(seg.backing.readRows(local, n, dst, dstRow + (row - start)));
      row += n;
    }
    return jobs.length === 1 ? jobs[0] : Promise.all(jobs).then(() => undefined);
  }

  async read(start: number, count: number): Promise<Float32Array> {
    this.checkOpen();
    this.checkRange('read()', start, count);
    const dst = new Float32Array(count * this.dim);
    await this.readInto(start, count, dst, 0);
    return dst;
  }

  view(start: number, count: number): Float32Array | Uint16Array | undefined {
    this.checkOpen();
    this.checkRange('view()', start, count);
    if (count === 0) return this.dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    const s = this.segmentOf(start);
    const seg = this.segments[s];
    if (start + count > seg.start + seg.rows) return undefined;
    return seg.backing.view(start - seg.start, count);
  }

  async readRows(indices: ArrayLike<number>): Promise<Float32Array> {
    this.checkOpen();
    checkIndexList(indices, `${this.name}: readRows()`, 'indices');
    const n = indices.length;
    const dst = new Float32Array(n * this.dim);
    if (n === 0) return dst;
    const rows = this.rows;
    for (let i = 0; i < n; i++) {
      const r = indices[i];
      if (!(typeof r === 'number' && Number.isInteger(r) && r >= 0 && r < rows)) {
        throw new PairpickError('E_SHAPE', `${this.name}: readRows(): row index ${describeValue(r)} (at position ${i}) is out of range [0, ${rows})`);
      }
    }
    if (this.segments.length === 1) {
      await this.segments[0].backing.gatherRows(Float64Array.from(indices), dst, Int32Array.from({ length: n }, (_, i) => i));
      return dst;
    }
    // Group by shard: how many rows each shard serves, then fill per-shard index lists.
    const owner = new Int32Array(n);
    const counts = new Int32Array(this.segments.length);
    for (let i = 0; i < n; i++) counts[(owner[i] = this.segmentOf(indices[i]))]++;
    const local = this.segments.map((_, s) => new Float64Array(counts[s]));
    const positions = this.segments.map((_, s) => new Int32Array(counts[s]));
    const fill = new Int32Array(this.segments.length);
    for (let i = 0; i < n; i++) {
      const s = owner[i];
      local[s][fill[s]] = indices[i] - this.segments[s].start;
      positions[s][fill[s]++] = i;
    }
    await Promise.all(this.segments.map((seg, s) => (counts[s] ? seg.backing.gatherRows(local[s], dst, positions[s]) : undefined)));
    return dst;
  }

  chunks(rowsPerChunk: number, options?: ChunkOptions): AsyncIterable<Chunk> {
    const where = `${this.name}: chunks()`;
    const o = optionsObject(options, ['start', 'end', 'signal'], where);
    checkInteger(rowsPerChunk, where, 'rowsPerChunk', 1);
    const first = optionalInteger(o.start, where, "option 'start'") ?? 0;
    const end = optionalInteger(o.end, where, "option 'end'") ?? this.rows;
    if (end < first) throw new PairpickError('E_SHAPE', `${where}: end ${end} is before start ${first}`);
    this.checkRange('chunks()', first, end - first, ['start', 'end - start']);
    const signal = checkSignal(o.signal, where);
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        self.checkOpen();
        for (const seg of self.segments) seg.backing.advise('sequential');
        const fetch = (start: number): Promise<Chunk> => {
          const count = Math.min(rowsPerChunk, end - start);
          const p = self.read(start, count).then((data) => ({ start, count, data }));
          // A prefetch that fails while the caller is busy must not count as an unhandled
          // rejection; the error still surfaces when the loop awaits it.
          p.catch(() => undefined);
          return p;
        };
        // Double buffering: the next chunk is read while the caller works on this one.
        let next: Promise<Chunk> | undefined = first < end ? fetch(first) : undefined;
        try {
          while (next) {
            throwIfAborted(signal, `${self.name}: reading chunks`);
            const chunk: Chunk = await next;
            const after = chunk.start + chunk.count;
            next = after < end && !self.closed ? fetch(after) : undefined;
            yield chunk;
            if (after < end && !next) self.checkOpen();
          }
        } finally {
          next = undefined; // the caller stopped early: the prefetch is dropped (already handled)
        }
      },
    };
  }

  checkIntact(): void {
    this.checkOpen();
    for (const seg of this.segments) seg.backing.checkIntact();
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = Promise.all(this.segments.map((s) => s.backing.close())).then(() => undefined);
    }
    return this.closing;
  }

  /** Value index of the first NaN/±Inf in rows [start, start + count) when every shard involved
   * can scan natively, else undefined. */
  async nativeFirstNonFinite(start: number, count: number): Promise<number | undefined> {
    this.checkOpen();
    let row = start;
    let s = this.segmentOf(start);
    while (row < start + count) {
      const seg = this.segments[s++];
      if (seg.rows === 0) continue;
      const local = row - seg.start;
      const n = Math.min(seg.rows - local, start + count - row);
      const found = seg.backing.firstNonFinite(local, n);
      if (found === undefined) return undefined;
      const at = await found;
      if (at >= 0) return (row - start) * this.dim + at;
      row += n;
    }
    return -1;
  }

  /** The file (and the row within it) holding source row `row`, for messages. */
  locate(row: number): string {
    if (this.segments.length <= 1) return '';
    const seg = this.segments[this.segmentOf(row)];
    return ` (${seg.label}, row ${row - seg.start} of that file)`;
  }
}

function describeShards(files: string[], input: string | readonly string[]): string {
  if (typeof input === 'string') return input;
  if (files.length === 1) return files[0];
  return `${files[0]} … ${files[files.length - 1]} (${files.length} files)`;
}

/**
 * Opens embeddings stored in files: an `.npy` (format 1.0–3.0, '<f4'/'<f2', C order), a
 * `.safetensors` tensor (F32/F16), a raw `.f32`/`.f16` file (with `dim`), a folder of such
 * shards (natural name order, so `emb_2` comes before `emb_10`), or a list of paths (kept in the
 * given order; folders in it expand). Shards are concatenated by rows and must agree on dim and
 * dtype. Files are memory-mapped through the native addon when it is there; otherwise read with
 * positional reads. Nothing is loaded whole into memory.
 *
 * Errors: `E_IO` (missing/unreadable), `E_FORMAT` (malformed file, naming it and what is wrong),
 * `E_SHAPE` (shards disagree, `dim`/`dtype` option contradicted), `E_OPTION` (missing `dim` for raw
 * files, ambiguous safetensors tensor, unknown option).
 */
export async function openSource(path: string | readonly string[], options?: OpenSourceOptions): Promise<OpenedSource> {
  const opts = checkSourceOptions(options, 'openSource');
  throwIfAborted(opts.signal, 'openSource');
  const files = await resolveShardPaths(path);
  const useMmap = opts.mmap !== false && nativeMmap() !== undefined;
  const shards = await openShards(files, opts, useMmap);
  const segments: Segment[] = [];
  let start = 0;
  for (const s of shards) {
    segments.push({ backing: s.backing, start, rows: s.layout.rows, label: s.layout.path });
    start += s.layout.rows;
  }
  const { dim, dtype } = shards[0].layout;
  return new ShardedSource(segments, dim, dtype, describeShards(files, path), files);
}

/** Checks the options shared by openSource and openPool (E_OPTION naming the option). */
export function checkSourceOptions(options: OpenSourceOptions | null | undefined, where: string): OpenSourceOptions {
  const o = optionsObject(options, ['dim', 'dtype', 'tensor', 'mmap', 'signal'], where);
  optionalInteger(o.dim, where, "option 'dim'", 1);
  optionalChoice(o.dtype, ['float32', 'float16'], where, "option 'dtype'");
  optionalString(o.tensor, where, "option 'tensor'");
  optionalBoolean(o.mmap, where, "option 'mmap'");
  checkSignal(o.signal, where);
  return o;
}

/**
 * An EmbeddingSource over a typed array already in memory: Float32Array (fp32) or Uint16Array
 * (fp16 bit patterns), rows × dim, row-major. The array is not copied; `view()` aliases it.
 */
export function memorySource(data: Float32Array | Uint16Array, dim: number, name = 'memory'): OpenedSource {
  if (typeof name !== 'string') throw new PairpickError('E_OPTION', `memorySource: name must be a string (got ${describeValue(name)})`);
  if (!(data instanceof Float32Array || data instanceof Uint16Array)) {
    throw new PairpickError('E_OPTION', `${name}: data must be a Float32Array or a Uint16Array of fp16 values`);
  }
  if (!(Number.isSafeInteger(dim) && dim >= 1)) throw new PairpickError('E_OPTION', `${name}: dim must be a positive integer (got ${dim})`);
  if (data.length % dim !== 0) {
    throw new PairpickError('E_SHAPE', `${name}: ${data.length} values are not a whole number of rows of dim ${dim}`);
  }
  const rows = data.length / dim;
  return new ShardedSource([{ backing: new MemoryBacking(data, dim), start: 0, rows, label: name }], dim, data instanceof Uint16Array ? 'float16' : 'float32', name, []);
}

/** Options of `checkFinite()`. */
export interface CheckFiniteOptions {
  /** Rows scanned per step (between abort checks and progress reports). Default: 4M values' worth. */
  rowsPerChunk?: number;
  /** Cancels the scan with `E_ABORTED`. */
  signal?: AbortSignal;
  /** Called after each step with rows scanned so far and the total. */
  onProgress?: (rowsDone: number, rowsTotal: number) => void;
}

/**
 * Scans every value of a source and throws `E_NAN` naming the source, the first row (and the
 * shard file it lies in) and column holding a NaN or ±Inf. Mapped shards are scanned natively
 * without copying; others are read in chunks.
 */
export async function checkFinite(source: EmbeddingSource, options?: CheckFiniteOptions): Promise<void> {
  const o = optionsObject(options, ['rowsPerChunk', 'signal', 'onProgress'], 'checkFinite');
  if (!isSourceLike(source)) throw new PairpickError('E_OPTION', `checkFinite: source must be an embedding source (got ${describeValue(source)})`);
  const signal = checkSignal(o.signal, 'checkFinite');
  const onProgress = optionalFunction<(done: number, total: number) => void>(o.onProgress, 'checkFinite', "option 'onProgress'");
  const dim = source.dim;
  const rowsPerChunk = optionalInteger(o.rowsPerChunk, 'checkFinite', "option 'rowsPerChunk'", 1) ?? Math.max(1, Math.floor((4 << 20) / dim));
  const sharded = source instanceof ShardedSource ? source : undefined;
  const report = (row: number, column: number, value: number): never => {
    throw new PairpickError('E_NAN', `${source.name}: row ${row}${sharded?.locate(row) ?? ''}, column ${column} is ${Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf'}`);
  };
  for (let start = 0; start < source.rows; start += rowsPerChunk) {
    throwIfAborted(signal, `checkFinite(${source.name})`);
    const count = Math.min(rowsPerChunk, source.rows - start);
    const native = sharded ? await sharded.nativeFirstNonFinite(start, count) : undefined;
    if (native !== undefined) {
      if (native >= 0) {
        const row = start + Math.floor(native / dim);
        const value = (await source.read(row, 1))[native % dim];
        report(row, native % dim, value);
      }
    } else {
      const view = source.view?.(start, count);
      const data = view ?? (await source.read(start, count));
      if (data instanceof Uint16Array) {
        for (let i = 0; i < data.length; i++) {
          if ((data[i] & 0x7c00) === 0x7c00) {
            const row = start + Math.floor(i / dim);
            report(row, i % dim, (await source.read(row, 1))[i % dim]);
          }
        }
      } else {
        for (let i = 0; i < data.length; i++) {
          const v = data[i];
          if (v - v !== 0) report(start + Math.floor(i / dim), i % dim, v);
        }
      }
      if (view) source.checkIntact?.(); // what the view showed was the file as opened
    }
    onProgress?.(start + count, source.rows);
  }
}

/** An object that looks like an EmbeddingSource (rows, dim, read). */
export function isSourceLike(x: unknown): x is EmbeddingSource {
  if (!x || typeof x !== 'object') return false;
  const s = x as EmbeddingSource;
  return typeof s.read === 'function' && Number.isSafeInteger(s.rows) && s.rows >= 0 && Number.isSafeInteger(s.dim) && s.dim >= 1;
}
