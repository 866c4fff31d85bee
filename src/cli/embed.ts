import { PairpickError } from '../errors.js';

export async function embedCommand(_argv: string[]): Promise<void> {
  throw new PairpickError('E_OPTION', 'pairpick embed: not implemented yet');
}
