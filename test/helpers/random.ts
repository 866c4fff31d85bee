// Fresh random test data: a new seed every run (printed, so a failure can be replayed with
// PAIRPICK_TEST_SEED=…), never zeros.
import { Rng } from '../../src/util/rng.js';

export const TEST_SEED = process.env.PAIRPICK_TEST_SEED ? Number(process.env.PAIRPICK_TEST_SEED) : (Date.now() ^ (process.pid << 8)) >>> 0;
// eslint-disable-next-line no-console
console.log(`test seed: ${TEST_SEED} (replay with PAIRPICK_TEST_SEED=${TEST_SEED})`);

let counter = 0;
/** A fresh generator derived from the run's seed (each call gets its own stream). */
export function testRng(): Rng {
  return new Rng(TEST_SEED + 7919 * ++counter);
}

/** rows × dim standard-normal float32 values. */
export function randomMatrix(rng: Rng, rows: number, dim: number, scale = 1): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * scale;
  return out;
}

/** rows × dim random unit-norm rows. */
export function randomUnitRows(rng: Rng, rows: number, dim: number): Float32Array {
  const out = randomMatrix(rng, rows, dim);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += out[r * dim + j] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dim; j++) out[r * dim + j] *= inv;
  }
  return out;
}
