// Kernel operands: a typed array whose sizes come from the options, or a 2-D tensor (see
// io/tensor.ts) whose dims give them. Size options stay allowed next to tensors and must agree.
import { PairpickError } from '../errors.js';
import { fromTensorLike, isTensorLike, type TensorLike } from '../io/tensor.js';
import type { MatrixData } from '../backend/types.js';
import { halfArrayToFloat } from '../util/half.js';
import { count, optionName, refuse } from '../util/validate.js';

/** A matrix argument of a `kernels.*` function: a typed array (sizes from the options) or a 2-D tensor. */
export type MatrixInput = MatrixData | TensorLike;

/** One operand: its data (checked later by `matrix()`), and its rows and columns when it was a tensor. */
export interface Operand {
  readonly name: string;
  readonly data: MatrixData;
  readonly rows?: number;
  readonly cols?: number;
}

/**
 * Reads an operand: typed arrays pass as they are (their length is checked against the options
 * later); tensors are read by fromTensorLike. `accepts` says what the kernel reads: 'half' takes
 * fp16 as it is, 'float32' widens an fp16 tensor to fp32 (a copy), 'output' (an array the kernel
 * writes) refuses an fp16 tensor with E_FORMAT.
 */
export function operand(value: unknown, name: string, where: string, accepts: 'half' | 'float32' | 'output' = 'half'): Operand {
  if (!ArrayBuffer.isView(value) && isTensorLike(value)) {
    const m = fromTensorLike(value, `${where}: ${name}`);
    let data = m.data;
    if (data instanceof Uint16Array && accepts === 'float32') data = halfArrayToFloat(data);
    else if (data instanceof Uint16Array && accepts === 'output') {
      throw new PairpickError('E_FORMAT', `${where}: ${name} is a float16 tensor; the result is written as float32, so pass a float32 tensor`);
    }
    return { name, data, rows: m.rows, cols: m.dim };
  }
  return { name, data: value as MatrixData };
}

/** Where a size can be read from: an operand's rows or columns. */
export type SizeSource = readonly [Operand, 'rows' | 'cols'];

/**
 * A size option (`rowsA`, `dim`, `k`, …): the option when given, else the first tensor operand
 * that has it. Every tensor operand that has it must agree with the value used (E_SHAPE naming
 * both); with neither an option nor a tensor the option is required (E_OPTION).
 */
export function size(where: string, option: string, given: number | undefined, from: readonly SizeSource[]): number {
  const known = from.filter(([o]) => o.rows !== undefined);
  let value = given;
  let origin = `option '${option}' = ${given}`;
  for (const [o, axis] of known) {
    const v = o[axis]!;
    if (value === undefined) {
      value = v;
      origin = `${o.name} has ${v} ${axis === 'rows' ? 'rows' : 'columns'}`;
    } else if (v !== value) {
      throw new PairpickError('E_SHAPE', `${where}: ${o.name} has ${v} ${axis === 'rows' ? 'rows' : 'columns'}, but ${origin}`);
    }
  }
  if (value === undefined) {
    const tensors = from.map(([o]) => o.name).filter((n, i, all) => all.indexOf(n) === i);
    refuse(optionName(where, option), `${count(1).expected}, given in the options unless ${tensors.join(' or ')} is a tensor`, value);
  }
  if (value < 1) throw new PairpickError('E_SHAPE', `${where}: ${origin}; '${option}' must be ≥ 1`);
  return value;
}
