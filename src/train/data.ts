// What the classifiers read: rows of every modality with the missing ones found and zero-filled.
// A modality row is missing when all its values are NaN or when the caller's mask says so; a row
// with some but not all values non-finite is bad data (E_NAN naming it). Rows are read through
// the sources' own gathering (readRows / read), as stage 1 does.
import { PairpickError } from '../errors.js';
import type { EmbeddingSource } from '../io/types.js';
import { show } from '../util/validate.js';

/** One modality as a classifier reads it: its name, its source (absent = missing on every row), and its mask. */
export interface ModalityInput {
  name: string;
  dim: number;
  source?: EmbeddingSource;
  /** mask[row] = 1 marks the row missing (pool row numbering). */
  mask?: Uint8Array;
}

/**
 * Classifies the rows of one modality's block (rows × dim, row r is pool row rowOf(r)): a missing
 * row is zero-filled and gets present = 0 at present[r·M + m]. A partly non-finite row is E_NAN.
 */
export function markMissing(x: Float32Array, rows: number, input: ModalityInput, rowOf: (r: number) => number, present: Uint8Array, m: number, M: number, where: string): void {
  const D = input.dim;
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    const row = rowOf(r);
    let bad = 0;
    for (let j = 0; j < D; j++) if (x[o + j] - x[o + j] !== 0) bad++;
    const masked = input.mask !== undefined && input.mask[row] === 1;
    if (bad > 0 && bad < D && !masked) {
      let j = 0;
      while (x[o + j] - x[o + j] === 0) j++;
      throw new PairpickError(
        'E_NAN',
        `${where}: modality '${input.name}'${input.source ? ` (${input.source.name})` : ''} row ${row} holds ${show(x[o + j])} at column ${j} but is not all NaN (a missing modality is a row of NaN, or listed in the 'missing' mask)`,
      );
    }
    if (bad > 0 && !masked && !Number.isNaN(x[o])) {
      throw new PairpickError('E_NAN', `${where}: modality '${input.name}'${input.source ? ` (${input.source.name})` : ''} row ${row} holds ±Inf (a missing modality is a row of NaN)`);
    }
    if (bad === D || masked) {
      x.fill(0, o, o + D);
      present[r * M + m] = 0;
    } else {
      present[r * M + m] = 1;
    }
  }
}

/** Rows [start, start + count) of every modality, zero-filled where missing, with the present mask (count × M). */
export async function readBlock(inputs: readonly ModalityInput[], start: number, count: number, where: string): Promise<{ x: Float32Array[]; present: Uint8Array }> {
  const M = inputs.length;
  const present = new Uint8Array(count * M);
  const x: Float32Array[] = [];
  for (let m = 0; m < M; m++) {
    const input = inputs[m];
    if (!input.source) {
      x.push(new Float32Array(count * input.dim));
      continue;
    }
    const data = await input.source.read(start, count);
    markMissing(data, count, input, (r) => start + r, present, m, M, where);
    x.push(data);
  }
  return { x, present };
}

/** The given pool rows of every modality, zero-filled where missing, with the present mask (rows × M). */
export async function readRows(inputs: readonly ModalityInput[], rows: Int32Array, where: string): Promise<{ x: Float32Array[]; present: Uint8Array }> {
  const M = inputs.length;
  const present = new Uint8Array(rows.length * M);
  const x: Float32Array[] = [];
  for (let m = 0; m < M; m++) {
    const input = inputs[m];
    if (!input.source) {
      x.push(new Float32Array(rows.length * input.dim));
      continue;
    }
    const data = await input.source.readRows(rows);
    markMissing(data, rows.length, input, (r) => rows[r], present, m, M, where);
    x.push(data);
  }
  return { x, present };
}

/** E_NAN naming the first row of the block (pool numbering) with no modality present. */
export function checkSomePresent(present: Uint8Array, rows: number, M: number, rowOf: (r: number) => number, names: readonly string[], where: string): void {
  for (let r = 0; r < rows; r++) {
    let any = 0;
    for (let m = 0; m < M; m++) any |= present[r * M + m];
    if (!any) throw new PairpickError('E_NAN', `${where}: row ${rowOf(r)} has no modality present (${names.join(', ')} all missing); nothing to predict from`);
  }
}
