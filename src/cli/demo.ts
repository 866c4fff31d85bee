import { PairpickError } from '../errors.js';

export async function demoCommand(_argv: string[]): Promise<void> {
  throw new PairpickError('E_OPTION', 'pairpick demo: not implemented yet');
}
