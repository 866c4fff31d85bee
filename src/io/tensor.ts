// The one place where in-memory matrices from other Node ML libraries become pairpick's
// row-major { data, rows, dim }: onnxruntime-node / transformers.js tensors ({ data, dims, type }),
// tfjs tensors (shape + dataSync()), and pairpick's own { data, dim }. Contiguous float32 and
// float16 data is passed through without copying.
import { PairpickError } from '../errors.js';
import { show } from '../util/validate.js';
import type { Dtype } from './types.js';

/** A tensor as onnxruntime-node and transformers.js make them: flat `data`, `dims`, element `type`. */
export interface DimsTensorLike {
  readonly data: unknown;
  readonly dims: readonly number[];
  /** Element type ('float32', 'float16', 'int64', …). Without it a Uint16Array is read as fp16 bits. */
  readonly type?: string;
}

/** A tfjs tensor: `shape`, `dtype` and `dataSync()` (a disposed one has `isDisposed` true). */
export interface ShapeTensorLike {
  readonly shape: readonly number[];
  readonly dtype?: string;
  readonly isDisposed?: boolean;
  dataSync(): unknown;
}

/** pairpick's own in-memory matrix: row-major values and the number of values per row. */
export interface DimMatrix {
  readonly data: Float32Array | Uint16Array;
  readonly dim: number;
}

/** Every in-memory matrix pairpick accepts: a tensor (onnxruntime-node, transformers.js, tfjs) or `{ data, dim }`. */
export type TensorLike = DimsTensorLike | ShapeTensorLike | DimMatrix;

/** A 2-D matrix read from a tensor-like: `data` aliases the caller's memory whenever it can. */
export interface RowMajorMatrix {
  /** rows × dim values, row-major; fp16 as its bit patterns in a Uint16Array. */
  readonly data: Float32Array | Uint16Array;
  readonly rows: number;
  readonly dim: number;
  readonly dtype: Dtype;
}

const FLOAT_TYPES = new Set(['float32', 'float16']);

/** Whether `value` has the shape of a tensor pairpick could read (it may still be refused by fromTensorLike). */
export function isTensorLike(value: unknown): value is TensorLike {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  if (typeof v.dataSync === 'function' && Array.isArray(v.shape)) return true;
  if (!('data' in v)) return false;
  return Array.isArray(v.dims) || ('dim' in v && !('path' in v));
}

/** The global Float16Array where the runtime has one (Node ≥ 24 with the flag, Node 25+). */
function float16ArrayClass(): (new (...args: never[]) => ArrayBufferView) | undefined {
  return (globalThis as { Float16Array?: new (...args: never[]) => ArrayBufferView }).Float16Array;
}

function describeData(data: unknown): string {
  return show(data);
}

/**
 * Reads a 2-D float matrix from any in-memory form pairpick accepts and checks it:
 *
 * * `{ data, dims, type }` — onnxruntime-node and transformers.js `Tensor`s (type 'float32' with a
 *   Float32Array, 'float16' with a Uint16Array or Float16Array of the same bits);
 * * tfjs tensors — `shape` and `dataSync()` (dtype 'float32');
 * * `{ data, dim }` — a Float32Array, or a Uint16Array of fp16 bits, rows × dim.
 *
 * Nothing is copied: the result's `data` is the tensor's own array (a Float16Array is viewed as a
 * Uint16Array over the same bytes). `what` names the argument in messages, e.g.
 * "openPool: modality 'image'". Refusals: `E_FORMAT` for an element type other than float32 /
 * float16 (int64 token ids, bool, …), a tensor whose data is not in CPU memory, or a disposed tfjs
 * tensor; `E_SHAPE` for anything but 2-D (a 3-D `[batch, tokens, dim]` output must be pooled
 * first), a zero or non-integer size, or data whose length is not the product of the dims;
 * `E_OPTION` for something that is no tensor at all.
 */
export function fromTensorLike(value: unknown, what: string): RowMajorMatrix {
  if (typeof value !== 'object' || value === null) {
    throw new PairpickError('E_OPTION', `${what} must be a tensor ({ data, dims, type }, a tfjs tensor) or { data, dim } (got ${show(value)})`);
  }
  const v = value as Record<string, unknown>;
  if (typeof v.dataSync === 'function' && Array.isArray(v.shape)) return fromShapeTensor(value as ShapeTensorLike, what);
  if (Array.isArray(v.dims)) return fromDimsTensor(value as DimsTensorLike, what);
  if ('data' in v && 'dim' in v) return fromDimMatrix(value as DimMatrix, what);
  throw new PairpickError('E_OPTION', `${what} must be a tensor ({ data, dims, type }, a tfjs tensor) or { data, dim } (got ${show(value)} without data/dims, shape/dataSync or data/dim)`);
}

function fromDimsTensor(t: DimsTensorLike, what: string): RowMajorMatrix {
  const type = t.type;
  const label = `a ${type === undefined ? '' : `${type} `}tensor of dims [${t.dims.map((d) => show(d)).join(', ')}]`;
  if (type !== undefined && !FLOAT_TYPES.has(type)) {
    throw new PairpickError('E_FORMAT', `${what}: ${label}: pairpick reads float32 or float16 embeddings (convert the tensor first)`);
  }
  const location = (t as { location?: unknown }).location;
  if (location !== undefined && location !== 'cpu' && location !== 'cpu-pinned') {
    throw new PairpickError('E_FORMAT', `${what}: ${label} lives in '${String(location)}' memory; download it to the CPU first (await tensor.getData())`);
  }
  let data: unknown;
  try {
    data = t.data;
  } catch (e) {
    throw new PairpickError('E_FORMAT', `${what}: ${label}: its data cannot be read (${(e as Error).message})`, { cause: e });
  }
  const [rows, dim] = twoDims(t.dims, what, label);
  return checked(typedData(data, type, what, label), rows, dim, what, label);
}

function fromShapeTensor(t: ShapeTensorLike, what: string): RowMajorMatrix {
  const label = `a tfjs ${t.dtype ?? ''} tensor of shape [${t.shape.map((d) => show(d)).join(', ')}]`.replace('  ', ' ');
  if (t.isDisposed === true) throw new PairpickError('E_FORMAT', `${what}: ${label} has been disposed; pass it before tensor.dispose()`);
  if (t.dtype !== undefined && t.dtype !== 'float32') {
    throw new PairpickError('E_FORMAT', `${what}: ${label}: pairpick reads float32 embeddings (use tensor.toFloat() / tf.cast(tensor, 'float32') first)`);
  }
  const [rows, dim] = twoDims(t.shape, what, label);
  let data: unknown;
  try {
    data = t.dataSync();
  } catch (e) {
    // tfjs throws when the tensor was disposed (or its backend cannot read back synchronously).
    throw new PairpickError('E_FORMAT', `${what}: ${label}: dataSync() failed (${(e as Error).message})`, { cause: e });
  }
  return checked(typedData(data, 'float32', what, label), rows, dim, what, label);
}

function fromDimMatrix(m: DimMatrix, what: string): RowMajorMatrix {
  const { data, dim } = m;
  if (!(data instanceof Float32Array || data instanceof Uint16Array)) {
    throw new PairpickError('E_OPTION', `${what}: data must be a Float32Array or a Uint16Array of fp16 values (got ${describeData(data)})`);
  }
  if (!(typeof dim === 'number' && Number.isSafeInteger(dim) && dim >= 1)) {
    throw new PairpickError('E_OPTION', `${what}: dim must be a positive integer (got ${show(dim)})`);
  }
  if (data.length % dim !== 0) {
    throw new PairpickError('E_SHAPE', `${what}: ${data.length} values are not a whole number of rows of dim ${dim}`);
  }
  return { data, rows: data.length / dim, dim, dtype: data instanceof Uint16Array ? 'float16' : 'float32' };
}

/** [rows, dim] of a 2-D shape; E_SHAPE for any other rank or a size that is not a positive integer. */
function twoDims(dims: readonly unknown[], what: string, label: string): [number, number] {
  if (dims.length !== 2) {
    const hint = dims.length === 3 ? ' (pool or select the tokens first, e.g. mean over axis 1)' : dims.length === 1 ? ' (reshape it to [1, dim] for one row)' : '';
    throw new PairpickError('E_SHAPE', `${what}: ${label} is ${dims.length}-D; pairpick takes a 2-D rows × dim matrix${hint}`);
  }
  const sizes = dims.map((d) => (typeof d === 'bigint' ? Number(d) : d));
  for (const [axis, d] of sizes.entries()) {
    if (!(typeof d === 'number' && Number.isSafeInteger(d) && d >= (axis === 0 ? 0 : 1))) {
      throw new PairpickError('E_SHAPE', `${what}: ${label}: dimension ${axis} is ${show(dims[axis])}, expected ${axis === 0 ? 'a row count ≥ 0' : 'a dim ≥ 1'}`);
    }
  }
  return sizes as [number, number];
}

/** The tensor's data as Float32Array (float32) or Uint16Array (float16 bits), without copying. */
function typedData(data: unknown, type: string | undefined, what: string, label: string): Float32Array | Uint16Array {
  const F16 = float16ArrayClass();
  if (F16 && data instanceof F16) {
    const h = data as unknown as { buffer: ArrayBufferLike; byteOffset: number; length: number };
    if (type === undefined || type === 'float16') return new Uint16Array(h.buffer, h.byteOffset, h.length);
  }
  if (data instanceof Float32Array && (type === undefined || type === 'float32')) return data;
  if (data instanceof Uint16Array && (type === undefined || type === 'float16')) return data;
  throw new PairpickError('E_FORMAT', `${what}: ${label} holds ${describeData(data)}; expected ${type === 'float16' ? 'a Uint16Array (or Float16Array) of fp16 values' : type === 'float32' ? 'a Float32Array' : 'a Float32Array or a Uint16Array of fp16 values'}`);
}

function checked(data: Float32Array | Uint16Array, rows: number, dim: number, what: string, label: string): RowMajorMatrix {
  if (data.length !== rows * dim) {
    throw new PairpickError('E_SHAPE', `${what}: ${label} has ${data.length} values, expected ${rows} × ${dim} = ${rows * dim}`);
  }
  return { data, rows, dim, dtype: data instanceof Uint16Array ? 'float16' : 'float32' };
}
