// The shapes every embedding source shares, whatever file format or storage is behind it.

/** Element type of stored embeddings. fp16 values are converted to fp32 by `read*()`. */
export type Dtype = 'float32' | 'float16';

/** Bytes per element of a dtype. */
export function dtypeBytes(dtype: Dtype): 2 | 4 {
  return dtype === 'float16' ? 2 : 4;
}

/** One contiguous block of `{ start, count }` rows of a source, as fp32 (`data` is rows × dim). */
export interface Chunk {
  /** First row of the chunk in the source. */
  start: number;
  /** Rows in the chunk (the last chunk may be shorter). */
  count: number;
  /** count × dim values, row-major, fp32 (a fresh array the caller owns). */
  data: Float32Array;
}

/** Options of `EmbeddingSource.chunks()`. */
export interface ChunkOptions {
  /** First row to visit. Default 0. */
  start?: number;
  /** One past the last row to visit. Default `rows`. */
  end?: number;
  /** Cancels the iteration with `E_ABORTED` between chunks. */
  signal?: AbortSignal;
}

/**
 * A rows × dim matrix of embeddings stored somewhere (a memory-mapped file, a set of shards, a
 * typed array), read in row ranges without loading the whole of it.
 */
export interface EmbeddingSource {
  /** Number of rows (samples). */
  readonly rows: number;
  /** Values per row. */
  readonly dim: number;
  /** Stored element type. */
  readonly dtype: Dtype;
  /** The file, folder or label the rows came from, for error messages. */
  readonly name: string;
  /** How the rows are reached: `mmap` (native mapping), `file` (positional reads), `memory`.
   * Set by pairpick's own sources; optional so other code can implement the interface. */
  readonly access?: 'mmap' | 'file' | 'memory';
  /** The files behind the source, in row order (empty for memory sources; optional like `access`). */
  readonly files?: readonly string[];
  /** Rows [start, start + count) as fp32 (fp16 converted), in a fresh array the caller owns. */
  read(start: number, count: number): Promise<Float32Array>;
  /**
   * The stored values of rows [start, start + count) without copying (fp16 as its bit patterns in
   * a Uint16Array) when they lie in one mapped shard or in memory, suitably aligned; otherwise
   * undefined. The view aliases the source: do not write to it, and do not use it after close().
   */
  view?(start: number, count: number): Float32Array | Uint16Array | undefined;
  /** The given rows (any order, repeats allowed) as fp32, row i of the result = row indices[i]. */
  readRows(indices: ArrayLike<number>): Promise<Float32Array>;
  /** Visits rows in blocks of `rowsPerChunk` (the next block is read while the caller works). */
  chunks(rowsPerChunk: number, options?: ChunkOptions): AsyncIterable<Chunk>;
  /**
   * Throws `E_IO` naming the file when a file behind the source was truncated or rewritten since
   * it was opened. read(), readRows() and chunks() check this themselves; code that used view()
   * calls it once done with the view (a mapped file that shrank reads as zeros there).
   */
  checkIntact?(): void;
  /**
   * Releases the files. Reads already started finish normally (the mapping lives until the last
   * of them, and any view handed out, is done); reads started afterwards throw `E_STATE`.
   */
  close(): Promise<void> | void;
}

/** What openSource() and memorySource() return: an EmbeddingSource whose `access` and `files`
 * are always set and whose close() always returns a Promise. */
export interface OpenedSource extends EmbeddingSource {
  readonly access: 'mmap' | 'file' | 'memory';
  readonly files: readonly string[];
  checkIntact(): void;
  close(): Promise<void>;
}

/** Options of `openSource()`. */
export interface OpenSourceOptions {
  /** Values per row: required for raw .f32/.f16 files; for other formats, checked (`E_SHAPE`) when given. */
  dim?: number;
  /** Element type: for raw files with another extension; for other formats, checked when given. */
  dtype?: Dtype;
  /** The tensor to read from a .safetensors file. Default: its only 2-D tensor. */
  tensor?: string;
  /** Memory-map the files through the native addon. Default true (false when PAIRPICK_NO_MMAP=1
   * or the addon is missing); false reads with positional file reads instead. */
  mmap?: boolean;
  /** Cancels opening (many shards) with `E_ABORTED`. */
  signal?: AbortSignal;
}

/** Where one file's matrix lies: parsed from the file's header, validated against its size. */
export interface Layout {
  path: string;
  /** Byte offset of row 0 in the file. */
  dataOffset: number;
  rows: number;
  dim: number;
  dtype: Dtype;
  /** Total file size in bytes. */
  fileSize: number;
}
