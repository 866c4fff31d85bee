// The native addon's surface: its code tables agree with src/native/codes.ts (and a
// disagreement is refused, naming what differs), error codes cross the binding intact, and the
// wrapped selection object follows its close() rules.
import { describe, expect, it } from 'vitest';

import { backends } from '../src/backend/index.js';
import { nativeOps } from '../src/backend/native/ops.js';
import { loadAddon } from '../src/native/addon.js';
import { checkNativeCodes, codeDifferences, NATIVE_CODES } from '../src/native/codes.js';
import { PairpickError } from '../src/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';

const { addon } = loadAddon();
const withAddon = addon ? describe : describe.skip;

/** A deep, mutable copy of the TS tables. */
function copyOfCodes(): Record<string, Record<string, number>> {
  return JSON.parse(JSON.stringify(NATIVE_CODES));
}

/** What a call throws or rejects with (the addon throws argument errors synchronously). */
async function rejection(call: () => Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await call();
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

describe('native code tables', () => {
  it('reports each way an addon table can differ, naming the table and entry', () => {
    const rng = testRng();
    const tables = Object.keys(NATIVE_CODES);
    const table = tables[rng.int(tables.length)];
    const names = Object.keys(copyOfCodes()[table]);
    const name = names[rng.int(names.length)];

    const changed = copyOfCodes();
    changed[table][name] += 1 + rng.int(5);
    expect(codeDifferences(changed)).toEqual([
      `codes.${table}.${name} is ${changed[table][name]} in the addon, ${copyOfCodes()[table][name]} here`,
    ]);

    const missing = copyOfCodes();
    delete missing[table][name];
    expect(codeDifferences(missing)).toEqual([
      `codes.${table}.${name} is missing from the addon (expected ${copyOfCodes()[table][name]})`,
    ]);

    const extra = copyOfCodes();
    extra[table].notACode = 99;
    expect(codeDifferences(extra)).toEqual([`codes.${table}.notACode exists only in the addon`]);

    const noTable = copyOfCodes();
    delete noTable[table];
    expect(codeDifferences(noTable)).toEqual([`codes.${table} is missing from the addon`]);

    expect(codeDifferences(undefined)).toEqual(['the addon exports no code tables (addon.codes)']);
    expect(codeDifferences(copyOfCodes())).toEqual([]);
  });

  it('refuses a mismatching addon with E_BACKEND naming the file and the difference', async () => {
    const changed = copyOfCodes();
    changed.pairForms.similarity = 7;
    const error = await rejection(async () => checkNativeCodes(changed, '/x/pairpick.node'));
    expect(error).toBeInstanceOf(PairpickError);
    expect(error.code).toBe('E_BACKEND');
    expect(error.message).toContain('/x/pairpick.node');
    expect(error.message).toContain('codes.pairForms.similarity is 7 in the addon, 2 here');
    expect(() => checkNativeCodes(copyOfCodes(), '/x/pairpick.node')).not.toThrow();
  });

  withAddon('with the built addon', () => {
    it('exports exactly the TypeScript tables (native/core/codes.h)', () => {
      expect(addon!.codes).toEqual(NATIVE_CODES);
    });
  });
});

withAddon('native error codes and the selection object', () => {
  const rng = testRng();
  const rows = 40 + rng.int(30);
  const dim = 3 + rng.int(9);
  const data = randomMatrix(rng, rows, dim, 1);

  it('a bad metric code is E_OPTION, a core error keeps its code (E_STATE), a bad member is E_INTERNAL', async () => {
    const cpu = nativeOps('cpu');
    const badMetric = NATIVE_CODES.metrics.cosine + 1 + rng.int(10);
    const e1 = await rejection(() => cpu.distances(data, data, { rowsA: rows, rowsB: rows, dim, metric: badMetric }));
    expect(e1.code).toBe('E_OPTION');
    expect(e1.message).toContain(`unknown metric code ${badMetric}`);

    const sel = await cpu.openSelection({ rows, modalities: [{ data, dim }] });
    await sel.prepare(0, rows, false);
    // The CPU engine throws pp::Error(PP_E_STATE) on its worker thread.
    const e2 = await rejection(() => sel.greedyStep(1, null));
    expect(e2.code).toBe('E_STATE');
    expect(e2.message).toContain('greedyStep before greedyInit');

    const e3 = await rejection(() => sel.distancesFrom(0, { form: NATIVE_CODES.pairForms.euclidean } as never));
    expect(e3.code).toBe('E_INTERNAL');
    expect(e3.message).toContain('gamma');
    sel.close();
  });

  it('reads normalised rows; close() during an op lets it finish, later ops are E_STATE', async () => {
    const sel = await nativeOps('cpu').openSelection({ rows, modalities: [{ data, dim }] });
    expect(sel.rows).toBe(rows);
    const prepared = await sel.prepare(0, rows, false);
    expect(prepared.badRows).toEqual([-1]);
    const row = rng.int(rows);
    const u = await sel.gather(Int32Array.of(row));
    let norm = 0;
    for (let t = 0; t < dim; t++) norm += data[row * dim + t] ** 2;
    // fp32 norm (dim squares summed) and one scaling: a relative error of at most (dim + 4)·2⁻²⁴.
    for (let t = 0; t < dim; t++) {
      const ref = data[row * dim + t] / Math.sqrt(norm);
      expect(Math.abs(u[t] - ref)).toBeLessThanOrEqual((dim + 4) * 2 ** -24 * Math.abs(ref));
    }
    const running = sel.gather(Int32Array.of(row));
    sel.close();
    sel.close();
    expect(await running).toEqual(u);
    const after = await rejection(() => sel.gather(Int32Array.of(row)));
    expect(after.code).toBe('E_STATE');
    expect(after.message).toContain('after close()');
  });

  const cuda = backends().find((b) => b.name === 'cuda');
  (cuda?.available ? it.skip : it)('the cuda table rejects with E_BACKEND and the reason when CUDA is unusable', async () => {
    const e = await rejection(() => nativeOps('cuda').distances(data, data, { rowsA: rows, rowsB: rows, dim, metric: NATIVE_CODES.metrics.euclidean }));
    expect(e.code).toBe('E_BACKEND');
    expect(e.message).toMatch(/CUDA|cuda/);
    const s = await rejection(() => nativeOps('cuda').openSelection({ rows, modalities: [{ data, dim }] }));
    expect(s.code).toBe('E_BACKEND');
    const weight = randomMatrix(testRng(), 3, 2 * dim);
    const g = await rejection(() => nativeOps('cuda').openGradient({ rows, classes: 3, blocks: 2, blockDim: dim, weight, bias: new Float32Array(3), balance: true }));
    expect(g.code).toBe('E_BACKEND');
    const h = await rejection(() => nativeOps('cuda').holdRows(data, { rows, dim }));
    expect(h.code).toBe('E_BACKEND');
  });

  it('holdRows on the cpu table resolves with the array itself (the engine reads it in place)', async () => {
    expect(await nativeOps('cpu').holdRows(data, { rows, dim })).toBe(data);
    const e = await rejection(() => nativeOps('cpu').holdRows(data, { rows: rows + 1, dim }));
    expect(e.code).toBe('E_SHAPE');
  });
});
