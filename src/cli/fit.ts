import { PairpickError } from '../errors.js';

export async function fitCommand(_argv: string[]): Promise<void> {
  throw new PairpickError('E_OPTION', 'pairpick fit: not implemented yet');
}
