// Embedding sources: memory-mapped .npy / .safetensors / raw files, shards, pools, and .npy output.
export type { Chunk, ChunkOptions, Dtype, EmbeddingSource, OpenedSource, OpenSourceOptions } from './types.js';
export { openSource, memorySource, checkFinite, type CheckFiniteOptions } from './source.js';
export { openPool, withPool, type Pool, type PoolInput, type PoolFileInput, type OpenPoolOptions } from './pool.js';
export { writeNpy, writeNpyRecords, openNpyWriter, writeSafetensors, type NpyRecordField, type WriteNpyOptions, type NpyWriter, type NpyWriteDtype, type SafetensorsTensor } from './write.js';
export { readNpy, type NpyArray } from './npy.js';
export { naturalCompare } from './shards.js';
export { readLabels, readSplit, type Labels, type Split } from './labels.js';
export {
  fromTensorLike,
  isTensorLike,
  type TensorLike,
  type DimsTensorLike,
  type ShapeTensorLike,
  type DimMatrix,
  type RowMajorMatrix,
} from './tensor.js';
export {
  readTable,
  readIds,
  readItems,
  rowsOfIds,
  TABLE_EXTENSIONS,
  ID_COLUMNS,
  type Table,
  type TableValue,
  type ReadTableOptions,
  type ItemIds,
  type Items,
  type ItemsSpec,
  type ItemRows,
} from './table.js';
