// Raw little-endian float32 (.f32) or float16 (.f16) files: no header, rows × dim values, so the
// caller supplies `dim` and the file size must be a whole number of rows.
import { PairpickError } from '../errors.js';
import type { Dtype, Layout } from './types.js';

/** The dtype a raw file's extension implies, if any. */
export function rawDtypeOf(path: string): Dtype | undefined {
  const lower = path.toLowerCase();
  if (lower.endsWith('.f32')) return 'float32';
  if (lower.endsWith('.f16')) return 'float16';
  return undefined;
}

export function rawLayout(path: string, fileSize: number, dim: number | undefined, dtype: Dtype): Layout {
  if (dim === undefined) {
    throw new PairpickError('E_OPTION', `${path}: a raw ${dtype} file has no header; pass the row width with the 'dim' option`);
  }
  const rowBytes = dim * (dtype === 'float16' ? 2 : 4);
  if (fileSize % rowBytes !== 0) {
    throw new PairpickError(
      'E_FORMAT',
      `${path}: size ${fileSize} bytes is not a whole number of ${dtype} rows of dim ${dim} (${rowBytes} bytes each; ${fileSize % rowBytes} bytes left over): wrong dim, wrong dtype, or a truncated file`,
    );
  }
  return { path, dataOffset: 0, rows: fileSize / rowBytes, dim, dtype, fileSize };
}
