import { PairpickError } from '../errors.js';

export async function selectCommand(_argv: string[]): Promise<void> {
  throw new PairpickError('E_OPTION', 'pairpick select: not implemented yet');
}
