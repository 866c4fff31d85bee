// Assertions on the PairpickErrors a call rejects with.
import { expect } from 'vitest';

import { PairpickError } from '../../src/errors.js';

/** Awaits `p`, expects it to reject with a PairpickError of `code` whose message matches every fragment; returns it. */
export async function rejectsWith(p: Promise<unknown>, code: string, ...fragments: (string | RegExp)[]): Promise<PairpickError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(PairpickError);
  expect((e as PairpickError).code, (e as Error).message).toBe(code);
  for (const f of fragments) expect((e as Error).message).toMatch(f);
  return e as PairpickError;
}
