// Bad arguments and options to every public function outside io: each must be refused with a
// PairpickError carrying the expected code and a message that names the argument or option —
// never a TypeError/RangeError, never silent acceptance, never an absurd allocation. The cases
// are generated from tables: each option or argument × the wrong values for its kind.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { getBackend } from '../src/backend/index.js';
import { PairpickError, type ErrorCode } from '../src/errors.js';
import {
  classCoverage,
  coldStartExperiment,
  hzToMel,
  loadDataset,
  melToHz,
  mfcc,
  mfccSummary,
  mfccSummaryDim,
  readWav,
  ridgeProbeAccuracy,
  summarise,
  type Dataset,
} from '../src/eval/index.js';
import { openPool, type Pool } from '../src/io/pool.js';
import * as kernels from '../src/kernels/index.js';
import { select, validateLabeled } from '../src/select/index.js';
import { fitProjection, initProjection, loadProjection, modalityGap, type Projection } from '../src/ssl/index.js';
import { show } from '../src/util/validate.js';
import { randomMatrix, testRng } from './helpers/random.js';

// ---- harness ----------------------------------------------------------------------------------

interface Case {
  /** How the case reads in a failure report. */
  what: string;
  run: () => unknown;
  code: ErrorCode;
  /** Fragments the message must contain (the argument or option at fault). */
  names: string[];
}

/** Runs one case: undefined when it fails as expected, else what went wrong. */
async function outcome(c: Case): Promise<string | undefined> {
  let error: unknown;
  let threw = false;
  try {
    const r = c.run();
    // Async generators fail on their first step.
    if (r && typeof (r as AsyncGenerator)[Symbol.asyncIterator] === 'function') await (r as AsyncGenerator).next();
    else await r;
  } catch (e) {
    error = e;
    threw = true;
  }
  if (!threw) return `${c.what}: accepted, expected ${c.code}`;
  if (!(error instanceof PairpickError)) return `${c.what}: ${(error as Error)?.constructor?.name}: ${(error as Error)?.message}, expected PairpickError ${c.code}`;
  if (error.code !== c.code) return `${c.what}: ${error.code} (${error.message}), expected ${c.code}`;
  const missing = c.names.filter((n) => !error.message.includes(n));
  if (missing.length) return `${c.what}: the message does not name ${missing.join(', ')}: ${error.message}`;
  return undefined;
}

/** Runs every case and reports all that did not fail as expected at once. */
async function expectAll(cases: Case[]): Promise<void> {
  expect(cases.length).toBeGreaterThan(0);
  const failures: string[] = [];
  for (const c of cases) {
    const f = await outcome(c);
    if (f) failures.push(f);
  }
  expect(failures).toEqual([]);
}

const fn = () => 1;

/** Wrong values for each kind of option or argument. */
const NOT_OBJECT = [5, 'x', true, 5n, fn, [], Symbol('s')];
const BAD_COUNT = [0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 53, 5n, '5', null, {}, [], fn, true];
const BAD_POSITIVE = [0, -1, NaN, Infinity, -Infinity, 5n, '0.1', null, {}, [], fn, true];
const BAD_NON_NEGATIVE = [-1, -1e-9, NaN, Infinity, -Infinity, 5n, '1', null, {}, [], fn, true];
const BAD_BOOLEAN = [1, 0, 'true', null, {}, [], fn, 5n, NaN];
const BAD_SIGNAL = [true, {}, { aborted: false }, 'signal', 1, null, fn, 5n, []];
const BAD_FUNCTION = [true, {}, 'f', 1, null, [], 5n];
const BAD_BACKEND = [{}, { name: 'js' }, { ...getBackend('js'), name: 'tpu' }, 5, null, [], 5n, 'tpu', '', 'JS', fn, true, NaN];
const BAD_SEED = [1.5, NaN, Infinity, -Infinity, 2 ** 32, -(2 ** 31) - 1, 2 ** 53, 5n, '1', null, {}, [], fn, true];
const BAD_STRING = [5, '', null, {}, [], 5n, fn, true];

interface OptionSpec {
  bad: unknown[];
  /** Default E_OPTION. */
  code?: ErrorCode;
  /** What the message must contain (default "'name'"). */
  names?: string[];
}

/**
 * Cases for one function's options: each option × its bad values, an unknown key, a non-object
 * options argument, and each required option left out.
 */
function optionCases(fname: string, call: (options: unknown) => unknown, base: Record<string, unknown>, table: Record<string, OptionSpec>, required: string[] = []): Case[] {
  const cases: Case[] = [];
  for (const [name, spec] of Object.entries(table)) {
    for (const bad of spec.bad) {
      cases.push({ what: `${fname} ${name}: ${show(bad)}`, run: () => call({ ...base, [name]: bad }), code: spec.code ?? 'E_OPTION', names: spec.names ?? [`'${name}'`] });
    }
  }
  cases.push({ what: `${fname} unknown option`, run: () => call({ ...base, bogus: 1 }), code: 'E_OPTION', names: ["'bogus'"] });
  for (const bad of NOT_OBJECT) cases.push({ what: `${fname} options = ${show(bad)}`, run: () => call(bad), code: 'E_OPTION', names: ['options'] });
  for (const name of required) {
    const without = { ...base };
    delete without[name];
    cases.push({ what: `${fname} without ${name}`, run: () => call(without), code: table[name]?.code ?? 'E_OPTION', names: [`'${name}'`] });
  }
  if (required.length) cases.push({ what: `${fname} options = undefined`, run: () => call(undefined), code: 'E_OPTION', names: ['options'] });
  return cases;
}

/** Cases for one positional argument: each bad value in its place. */
function argumentCases(fname: string, name: string, bad: unknown[], call: (value: unknown) => unknown, code: ErrorCode = 'E_OPTION', names = [name]): Case[] {
  return bad.map((value) => ({ what: `${fname} ${name} = ${show(value)}`, run: () => call(value), code, names }));
}

// ---- fixtures ---------------------------------------------------------------------------------

const ROWS = 24;
let pool: Pool;
let projection: Projection;
let dir: string;

beforeAll(async () => {
  const rng = testRng();
  pool = await openPool({ m0: { data: randomMatrix(rng, ROWS, 4), dim: 4 }, m1: { data: randomMatrix(rng, ROWS, 4), dim: 4 } });
  projection = await initProjection(pool, { dim: 4, hidden: 8, prototypes: 3, backend: 'js' });
  dir = await mkdtemp(join(tmpdir(), 'pairpick-api-errors-'));
});
afterAll(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

/** Things that are not pools, or pools whose parts do not fit. */
function badPools(): [unknown, ErrorCode][] {
  const source = (rows: unknown, dim: unknown) => ({ rows, dim, name: 's', chunks: fn, read: fn, readRows: fn });
  return [
    [null, 'E_OPTION'],
    [5, 'E_OPTION'],
    [5n, 'E_OPTION'],
    [fn, 'E_OPTION'],
    [{ rows: -1, modalities: ['a', 'b'], source: () => source(-1, 4) }, 'E_OPTION'],
    [{ rows: 2.5, modalities: ['a', 'b'], source: () => source(2.5, 4) }, 'E_OPTION'],
    [{ rows: '5', modalities: ['a', 'b'], source: () => source('5', 4) }, 'E_OPTION'],
    [{ rows: 5, modalities: [5, 'b'], source: () => source(5, 4) }, 'E_OPTION'],
    [{ rows: 5, modalities: ['a', 'a'], source: () => source(5, 4) }, 'E_OPTION'],
    [{ rows: 5, modalities: ['a', 'b'], source: () => null }, 'E_OPTION'],
    [{ rows: 5, modalities: ['a', 'b'], source: () => source(5, 0) }, 'E_OPTION'],
    [{ rows: 5, modalities: ['a', 'b'], source: () => source(5, 2 ** 31) }, 'E_OPTION'],
    [{ rows: 5, modalities: ['a', 'b'], source: (m: string) => source(m === 'a' ? 5 : 6, 4) }, 'E_SHAPE'],
  ];
}

// ---- reported defects (each failed before its fix) --------------------------------------------

/** Expects `fn` to fail with a PairpickError of `code` whose message contains every fragment. */
async function expectError(run: () => unknown, code: ErrorCode, ...names: string[]): Promise<void> {
  expect(await outcome({ what: names.join(', '), run, code, names })).toBeUndefined();
}

describe('reported defects', () => {
  it('select: a BigInt budget is E_BUDGET naming budget', async () => {
    await expectError(() => select(pool, { budget: 5n as never, backend: 'js' }), 'E_BUDGET', "'budget'");
  });

  it('select: backend {} is E_OPTION naming backend', async () => {
    await expectError(() => select(pool, { budget: 5, backend: {} as never }), 'E_OPTION', "'backend'");
  });

  it('select: labeled { length: -1 } is E_OPTION naming labeled', async () => {
    await expectError(() => select(pool, { budget: 5, backend: 'js', labeled: { length: -1 } as never }), 'E_OPTION', "'labeled'");
    await expectError(() => select(pool, { budget: 5, backend: 'js', labeled: { length: 2 ** 40 } as never }), 'E_OPTION', "'labeled'");
  });

  it('select: signal true is E_OPTION naming signal', async () => {
    await expectError(() => select(pool, { budget: 5, backend: 'js', signal: true as never }), 'E_OPTION', "'signal'");
  });

  it('fitProjection: dim 2^31 is E_OPTION naming dim, before allocating', async () => {
    await expectError(() => fitProjection(pool, { dim: 2 ** 31, epochs: 1, backend: 'js' }), 'E_OPTION', "'dim'");
    await expectError(() => fitProjection(pool, { dim: 2 ** 30, epochs: 1, backend: 'js' }), 'E_OPTION', "'dim'");
  });
});

// ---- selection --------------------------------------------------------------------------------

describe('select', () => {
  const call = (options: unknown) => select(pool, options as never);
  const common: Record<string, OptionSpec> = {
    budget: { bad: [...BAD_COUNT, 2 ** 40, ROWS + 1], code: 'E_BUDGET' },
    seed: { bad: BAD_SEED },
    backend: { bad: BAD_BACKEND },
    signal: { bad: BAD_SIGNAL },
    onProgress: { bad: BAD_FUNCTION },
    strategy: { bad: ['coreset', 'MMCSAL', 5, null, {}, 5n, fn] },
    labeled: {
      bad: [5, 'abc', {}, { length: -1 }, { length: 2 ** 40 }, [1.5], [NaN], [-1], [ROWS], ['a'], [5n], [null], [1, 1], Float64Array.of(0.5), new BigInt64Array(1), null, true, fn],
      names: ['labeled'],
    },
  };
  const weight = { bad: [...BAD_NON_NEGATIVE, 1e7, 'AUTO'] };

  it('mmcsal options', async () => {
    await expectAll(
      optionCases(
        'select(mmcsal)',
        call,
        { budget: 3, backend: 'js' },
        {
          ...common,
          distribution: { bad: ['typicality', 'DENSITY', 1, null, fn] },
          space: { bad: ['euclidean', 0, null, fn] },
          alignment: { bad: ['penalty', 'none', 1, null, fn] },
          alignQuantile: { bad: [-0.1, 1, 2, NaN, Infinity, '0.2', null, fn] },
          k: { bad: BAD_COUNT },
          gamma: weight, lambdaAlign: weight, wDensity: { bad: [...BAD_NON_NEGATIVE, 1e7] }, wDiversity: { bad: [...BAD_NON_NEGATIVE, 1e7] }, densitySample: { bad: [1, ...BAD_COUNT] } },
        ['budget'],
      ),
    );
  });

  it('options of other strategies, ProbCover and facility options', async () => {
    await expectAll([
      ...optionCases('select(probcover)', call, { budget: 3, backend: 'js', strategy: 'probcover' }, { radius: { bad: BAD_POSITIVE } }),
      ...optionCases('select(facility)', call, { budget: 3, backend: 'js', strategy: 'facility' }, {
        optimizer: { bad: ['greedy', 'LAZY', 1, null, {}, true, 5n] },
        memoryBudget: { bad: [-1, 1.5, NaN, Infinity, '1024', null, 2 ** 31] },
      }),
      ...optionCases('select(kmeans)', call, { budget: 3, backend: 'js', strategy: 'kmeans' }, {
        seeding: { bad: ['kmeans', 'random', 1, null, true] },
        iterations: { bad: [0, -1, 1.5, 101, NaN, '20', null] },
      }),
      ...['k', 'gamma', 'radius', 'optimizer', 'densitySample'].map((name) => ({
        what: `select(kcenter) ${name}`,
        run: () => call({ budget: 3, backend: 'js', strategy: 'kcenter', [name]: 1 }),
        code: 'E_OPTION' as ErrorCode,
        names: [`'${name}'`, 'does not apply'],
      })),
    ]);
  });

  it('the pool argument', async () => {
    await expectAll([
      ...argumentCases('select', 'pool', [undefined, 'x', true], (p) => select(p as never, { budget: 3, backend: 'js' }), 'E_OPTION', ["'pool'"]),
      ...badPools().map(([p, code]) => ({ what: `select pool ${show(p)}`, run: () => select(p as never, { budget: 1, backend: 'js' }), code, names: [code === 'E_SHAPE' ? "modality 'b'" : 'pool'] })),
    ]);
  });

  it('validateLabeled', async () => {
    await expectAll([
      ...argumentCases('validateLabeled', 'rows', [-1, 1.5, NaN, '5', 5n, null, 2 ** 40], (rows) => validateLabeled([0], rows as number), 'E_OPTION', ["'rows'"]),
      ...argumentCases('validateLabeled', 'labeled', [5, null, { length: 3 }, [7]], (l) => validateLabeled(l as never, 5), 'E_OPTION', ['labeled']),
    ]);
  });
});

// ---- stage 1 ----------------------------------------------------------------------------------

describe('stage 1', () => {
  const table: Record<string, OptionSpec> = {
    epochs: { bad: BAD_COUNT },
    dim: { bad: [...BAD_COUNT, 2 ** 30] },
    hidden: { bad: [-1, 1.5, NaN, Infinity, 'linea', 'LINEAR', null, 2 ** 31, 2 ** 28, 5n, {}, fn] },
    prototypes: { bad: [...BAD_COUNT, 2 ** 28] },
    beta: { bad: BAD_NON_NEGATIVE },
    temperature: { bad: BAD_POSITIVE },
    protoTemperature: { bad: BAD_POSITIVE },
    epsilon: { bad: BAD_POSITIVE },
    sinkhornIterations: { bad: [...BAD_COUNT, 10_001] },
    swap: { bad: BAD_BOOLEAN },
    batch: { bad: [1, ...BAD_COUNT] },
    lr: { bad: BAD_POSITIVE },
    weightDecay: { bad: BAD_NON_NEGATIVE },
    seed: { bad: BAD_SEED },
    backend: { bad: BAD_BACKEND },
    signal: { bad: BAD_SIGNAL },
    onProgress: { bad: BAD_FUNCTION },
    onEpoch: { bad: BAD_FUNCTION },
  };

  it('fitProjection options', async () => {
    await expectAll(optionCases('fitProjection', (o) => fitProjection(pool, o as never), { epochs: 1, backend: 'js' }, table));
  });

  it('initProjection options', async () => {
    const { onEpoch: _, ...rest } = table;
    await expectAll(optionCases('initProjection', (o) => initProjection(pool, o as never), { backend: 'js' }, rest));
  });

  it('the pool argument', async () => {
    const one = await openPool({ a: { data: randomMatrix(testRng(), 5, 3), dim: 3 } });
    await expectAll([
      ...argumentCases('fitProjection', 'pool', [undefined, 'x', [], {}], (p) => fitProjection(p as never, { epochs: 1 }), 'E_OPTION', ["'pool'"]),
      ...badPools().map(([p, code]) => ({ what: `fitProjection pool ${show(p)}`, run: () => fitProjection(p as never, { epochs: 1, backend: 'js' }), code, names: [code === 'E_SHAPE' ? "modality 'b'" : 'pool'] })),
      { what: 'fitProjection one modality', run: () => fitProjection(one, { epochs: 1, backend: 'js' }), code: 'E_SHAPE', names: ['2 modalities'] },
      ...badPools().map(([p, code]) => ({ what: `initProjection pool ${show(p)}`, run: () => initProjection(p as never, { backend: 'js' }), code, names: [code === 'E_SHAPE' ? "modality 'b'" : 'pool'] })),
    ]);
  });

  it('Projection.embed, embedChunks, embedRows, save and loadProjection', async () => {
    const x = randomMatrix(testRng(), 3, 4);
    const source = pool.source('m0');
    const huge = { ...source, name: 'huge', rows: 2 ** 27, dim: 4, chunks: source.chunks.bind(source) };
    await expectAll([
      ...optionCases('embed', (o) => projection.embed(pool, o as never), { backend: 'js' }, {
        chunkRows: { bad: BAD_COUNT },
        backend: { bad: BAD_BACKEND },
        signal: { bad: BAD_SIGNAL },
        onProgress: { bad: BAD_FUNCTION },
      }),
      ...argumentCases('embed', 'input', [null, 5, 'x', 5n, fn, { m0: 5 }, { m0: {} }, { m0: null }], (input) => projection.embed(input as never, { backend: 'js' }), 'E_OPTION', ["'input'"]),
      ...badPools().map(([p, code]) => ({ what: `embed input ${show(p)}`, run: () => projection.embed(p as never), code, names: [code === 'E_SHAPE' ? "modality 'b'" : 'input'] })),
      // Blocks of 2^27 rows × 8 values (the head's widest layer) exceed 2^28 values: refused before reading.
      { what: 'embed chunkRows 2^30 on a huge source', run: () => projection.embed({ m0: huge }, { chunkRows: 2 ** 30 }), code: 'E_OPTION', names: ["'chunkRows'"] },
      { what: 'embedChunks chunkRows 2^30 on a huge source', run: () => projection.embedChunks('m0', huge, { chunkRows: 2 ** 30 }), code: 'E_OPTION', names: ["'chunkRows'"] },
      ...optionCases('embedChunks', (o) => projection.embedChunks('m0', source, o as never), {}, {
        chunkRows: { bad: BAD_COUNT },
        backend: { bad: BAD_BACKEND },
        signal: { bad: BAD_SIGNAL },
      }),
      ...argumentCases('embedChunks', 'modality', [5, null, '', {}, 5n], (m) => projection.embedChunks(m as never, source), 'E_OPTION', ["'modality'"]),
      ...argumentCases('embedChunks', 'source', [null, 5, {}, 'x', [], 5n], (s) => projection.embedChunks('m0', s as never), 'E_OPTION', ["'source'"]),
      ...optionCases('embedRows', (o) => projection.embedRows('m0', x, 3, o as never), {}, { backend: { bad: BAD_BACKEND } }),
      ...argumentCases('embedRows', 'modality', [5, null, '', 5n], (m) => projection.embedRows(m as never, x, 3), 'E_OPTION', ["'modality'"]),
      ...argumentCases('embedRows', 'rows', [-1, 1.5, NaN, Infinity, '3', 5n, null, 2 ** 31], (r) => projection.embedRows('m0', x, r as never), 'E_OPTION', ["'rows'"]),
      ...argumentCases('embedRows', 'x', [null, [1, 2], Float64Array.from(x), new Uint16Array(12), 'x'], (v) => projection.embedRows('m0', v as never, 3), 'E_OPTION', ['x must be']),
      { what: 'embedRows x too short', run: () => projection.embedRows('m0', x.subarray(1), 3), code: 'E_SHAPE', names: ['x has 11'] },
      { what: 'embedRows x NaN', run: () => projection.embedRows('m0', Float32Array.from(x, (v, i) => (i === 5 ? NaN : v)), 3), code: 'E_NAN', names: ['x row 1'] },
      { what: 'embedRows unknown modality', run: () => projection.embedRows('m9', x, 3), code: 'E_SHAPE', names: ["'m9'"] },
      ...argumentCases('Projection.save', 'path', [undefined, null, 5, '', {}, 5n, fn], (p) => projection.save(p as never), 'E_OPTION', ["'path'"]),
      ...argumentCases('loadProjection', 'path', [undefined, null, 5, '', {}, 5n, fn], (p) => loadProjection(p as never), 'E_OPTION', ["'path'"]),
      { what: 'loadProjection missing file', run: () => loadProjection(join(dir, 'missing.safetensors')), code: 'E_IO', names: ['missing.safetensors'] },
    ]);
  });

  it('modalityGap', async () => {
    await expectAll([
      ...optionCases('modalityGap', (o) => modalityGap(pool, o as never), {}, { chunkRows: { bad: BAD_COUNT }, signal: { bad: BAD_SIGNAL } }),
      ...argumentCases('modalityGap', 'embeddings', [null, undefined, 5, 'x', {}, []], (e) => modalityGap(e as never), 'E_OPTION', ["'embeddings'"]),
    ]);
  });
});

// ---- kernels ----------------------------------------------------------------------------------

describe('kernels', () => {
  const rng = testRng();
  const a = randomMatrix(rng, 6, 5);
  const b = randomMatrix(rng, 9, 5);
  /** Wrong matrix types: not typed arrays, or typed arrays of another kind. */
  const BAD_MATRIX = [null, undefined, 5, 'x', 5n, {}, [1, 2], new Float64Array(30), new Int32Array(30), new Uint8Array(30)];
  const shape = { bad: BAD_COUNT };

  it('distances', async () => {
    const base = { rowsA: 6, rowsB: 9, dim: 5, backend: 'js' };
    const big = new Float32Array(2 ** 15);
    await expectAll([
      ...optionCases('distances', (o) => kernels.distances(a, b, o as never), base, {
        rowsA: shape,
        rowsB: shape,
        dim: shape,
        metric: { bad: ['manhattan', 'COSINE', 5, null, {}, 5n] },
        backend: { bad: BAD_BACKEND },
        signal: { bad: BAD_SIGNAL },
        onProgress: { bad: BAD_FUNCTION },
      }, ['rowsA', 'rowsB', 'dim']),
      ...argumentCases('distances', 'a', BAD_MATRIX, (m) => kernels.distances(m as never, b, base as never), 'E_OPTION', ['a must be']),
      ...argumentCases('distances', 'b', BAD_MATRIX, (m) => kernels.distances(a, m as never, base as never), 'E_OPTION', ['b must be']),
      { what: 'distances a too short', run: () => kernels.distances(a.subarray(5), b, base as never), code: 'E_SHAPE', names: ['a has 25'] },
      { what: 'distances too large a result', run: () => kernels.distances(big, big, { rowsA: 2 ** 15, rowsB: 2 ** 15, dim: 1 }), code: 'E_SHAPE', names: ['kernels.knn'] },
    ]);
  });

  it('knn', async () => {
    const base = { rowsQ: 6, rowsR: 9, dim: 5, k: 2, backend: 'js' };
    await expectAll([
      ...optionCases('knn', (o) => kernels.knn(a, b, o as never), base, {
        rowsQ: shape,
        rowsR: shape,
        dim: shape,
        k: { bad: BAD_COUNT },
        metric: { bad: ['manhattan', 5, null, {}] },
        excludeSelf: { bad: BAD_BOOLEAN },
        backend: { bad: BAD_BACKEND },
        signal: { bad: BAD_SIGNAL },
        onProgress: { bad: BAD_FUNCTION },
      }, ['rowsQ', 'rowsR', 'dim', 'k']),
      { what: 'knn k × rowsQ too large', run: () => kernels.knn(a, b, { ...base, k: 2 ** 27 } as never), code: 'E_SHAPE', names: ["'k'"] },
      ...argumentCases('knn', 'query', BAD_MATRIX, (m) => kernels.knn(m as never, b, base as never), 'E_OPTION', ['query must be']),
      ...argumentCases('knn', 'ref', BAD_MATRIX, (m) => kernels.knn(a, m as never, base as never), 'E_OPTION', ['ref must be']),
      { what: 'knn ref too short', run: () => kernels.knn(a, b.subarray(1), base as never), code: 'E_SHAPE', names: ['ref has 44'] },
    ]);
  });

  it('minUpdate', async () => {
    const center = b.subarray(0, 5);
    const minDist = () => new Float32Array(9).fill(Infinity);
    const base = { rows: 9, dim: 5, backend: 'js' };
    await expectAll([
      ...optionCases('minUpdate', (o) => kernels.minUpdate(b, center, minDist(), o as never), base, {
        rows: shape,
        dim: shape,
        metric: { bad: ['manhattan', 5, null] },
        exclude: { bad: [new Int8Array(9), new Uint16Array(9), [0, 1], null, 5, 'x', {}] },
        backend: { bad: BAD_BACKEND },
      }, ['rows', 'dim']),
      ...argumentCases('minUpdate', 'points', BAD_MATRIX, (m) => kernels.minUpdate(m as never, center, minDist(), base as never), 'E_OPTION', ['points must be']),
      ...argumentCases('minUpdate', 'center', BAD_MATRIX, (m) => kernels.minUpdate(b, m as never, minDist(), base as never), 'E_OPTION', ['center must be']),
      ...argumentCases('minUpdate', 'minDist', [null, [1], new Float64Array(9), 5, 'x'], (m) => kernels.minUpdate(b, center, m as never, base as never), 'E_OPTION', ['minDist must be']),
      { what: 'minUpdate exclude too short', run: () => kernels.minUpdate(b, center, minDist(), { ...base, exclude: new Uint8Array(3) } as never), code: 'E_SHAPE', names: ['exclude'] },
    ]);
  });

  it('infoNCE, sinkhorn, prototypeLoss, matmul', async () => {
    const rows = 6;
    const dim = 5;
    const k = 3;
    const z = randomMatrix(rng, rows, dim);
    const scores = randomMatrix(rng, rows, k);
    const protos = randomMatrix(rng, k, dim);
    const targets = Float32Array.from({ length: rows * k }, () => 1 / k);
    const BAD_F32 = [null, undefined, 5, 'x', {}, [1, 2], new Float64Array(30), new Uint16Array(30), 5n];
    await expectAll([
      ...optionCases('infoNCE', (o) => kernels.infoNCE(z, z, o as never), { rows, dim, backend: 'js' }, {
        rows: shape,
        dim: shape,
        temperature: { bad: BAD_POSITIVE },
        backend: { bad: BAD_BACKEND },
      }, ['rows', 'dim']),
      ...argumentCases('infoNCE', 'za', BAD_F32, (m) => kernels.infoNCE(m as never, z, { rows, dim }), 'E_OPTION', ['za must be']),
      ...argumentCases('infoNCE', 'zb', BAD_F32, (m) => kernels.infoNCE(z, m as never, { rows, dim }), 'E_OPTION', ['zb must be']),
      ...optionCases('sinkhorn', (o) => kernels.sinkhorn(scores, o as never), { rows, k, backend: 'js' }, {
        rows: shape,
        k: shape,
        epsilon: { bad: BAD_POSITIVE },
        iterations: { bad: [...BAD_COUNT, 10_001] },
        backend: { bad: BAD_BACKEND },
      }, ['rows', 'k']),
      ...argumentCases('sinkhorn', 'scores', BAD_F32, (m) => kernels.sinkhorn(m as never, { rows, k }), 'E_OPTION', ['scores must be']),
      ...optionCases('prototypeLoss', (o) => kernels.prototypeLoss(z, protos, targets, o as never), { rows, dim, k, backend: 'js' }, {
        rows: shape,
        dim: shape,
        k: shape,
        temperature: { bad: BAD_POSITIVE },
        backend: { bad: BAD_BACKEND },
      }, ['rows', 'dim', 'k']),
      ...argumentCases('prototypeLoss', 'z', BAD_F32, (m) => kernels.prototypeLoss(m as never, protos, targets, { rows, dim, k }), 'E_OPTION', ['z must be']),
      ...argumentCases('prototypeLoss', 'prototypes', BAD_F32, (m) => kernels.prototypeLoss(z, m as never, targets, { rows, dim, k }), 'E_OPTION', ['prototypes must be']),
      ...argumentCases('prototypeLoss', 'targets', BAD_F32, (m) => kernels.prototypeLoss(z, protos, m as never, { rows, dim, k }), 'E_OPTION', ['targets must be']),
      ...optionCases('matmul', (o) => kernels.matmul(z, protos, new Float32Array(rows * k), o as never), { m: rows, n: k, inner: dim, transB: true, backend: 'js' }, {
        m: shape,
        n: shape,
        inner: shape,
        transA: { bad: BAD_BOOLEAN },
        transB: { bad: BAD_BOOLEAN },
        accumulate: { bad: BAD_BOOLEAN },
        backend: { bad: BAD_BACKEND },
      }, ['m', 'n', 'inner']),
      ...argumentCases('matmul', 'a', BAD_MATRIX, (m) => kernels.matmul(m as never, protos, new Float32Array(rows * k), { m: rows, n: k, inner: dim, transB: true }), 'E_OPTION', ['a must be']),
      ...argumentCases('matmul', 'c', BAD_F32, (m) => kernels.matmul(z, protos, m as never, { m: rows, n: k, inner: dim, transB: true }), 'E_OPTION', ['c must be']),
    ]);
  });

  it('getBackend', async () => {
    await expectAll(argumentCases('getBackend', 'choice', BAD_BACKEND, (c) => getBackend(c as never), 'E_OPTION', ["'choice'"]));
  });
});

// ---- evaluation -------------------------------------------------------------------------------

describe('evaluation helpers', () => {
  /** A small labelled dataset over the test pool: 2 classes, 16 train and 8 test rows. */
  function dataset(): Dataset {
    const labels = Int32Array.from({ length: ROWS }, (_, i) => i % 2);
    const train = Int32Array.from({ length: 16 }, (_, i) => i);
    const test = Int32Array.from({ length: ROWS - 16 }, (_, i) => 16 + i);
    return { name: 'tiny', pool, labels, split: { train, test }, classes: ['a', 'b'] };
  }
  const arm = { label: 'random', strategy: 'random' };

  it('loadDataset', async () => {
    await expectAll([
      ...argumentCases('loadDataset', 'name', [5, null, undefined, '', 'mnist', 5n, {}], (n) => loadDataset(n as never), 'E_OPTION', ["'name'"]),
      ...optionCases('loadDataset', (o) => loadDataset('av-digits', o as never), {}, { dir: { bad: BAD_STRING }, mmap: { bad: BAD_BOOLEAN } }),
    ]);
  });

  it('coldStartExperiment', async () => {
    const ds = dataset();
    const base = { arms: [arm], budgets: [2], seeds: [0], backend: 'js' };
    const run = (o: unknown) => coldStartExperiment(ds, o as never);
    await expectAll([
      ...optionCases('coldStartExperiment', run, base, {
        arms: { bad: [[], 5, null, [5], [null], {}, 'random'] },
        budgets: { bad: [[], [0], [1.5], [NaN], [5n], ['2'], 5, null, [2 ** 40], [17]], code: 'E_BUDGET' },
        seeds: { bad: [[], [1.5], [2 ** 40], ['0'], 5, null] },
        stage1: { bad: [5, null, 'x', [], { dim: 0 }, { epochz: 1 }, { seed: 3 }, { signal: true }] },
        evaluate: { bad: ['train', 5, null, true] },
        probeLambda: { bad: BAD_POSITIVE },
        backend: { bad: BAD_BACKEND },
        signal: { bad: BAD_SIGNAL },
        onProgress: { bad: BAD_FUNCTION },
      }, ['arms', 'budgets', 'seeds']),
      ...[
        [{ label: 5, strategy: 'random' }, 'label'],
        [{ label: 'x', strategy: 'coreset' }, "'coreset'"],
        [{ label: 'x', strategy: 'kcenter', options: { k: 3 } }, "'k'"],
        [{ label: 'x', strategy: 'mmcsal', options: { k: 0 } }, "'k'"],
        [{ label: 'x', strategy: 'random', options: { budget: 3 } }, "'budget'"],
        [{ label: 'x', strategy: 'random', options: { seed: 3 } }, "'seed'"],
        [{ label: 'x', strategy: 'random', options: 5 }, 'options'],
        [{ label: 'x', strategy: 'random', stage1: { dim: -1 } }, "'dim'"],
        [{ label: 'x', strategy: 'random', stage1: { backend: 'js' } }, "'backend'"],
      ].map(([a, name]) => ({ what: `coldStartExperiment arm ${JSON.stringify(a)}`, run: () => run({ ...base, arms: [a] }), code: 'E_OPTION' as ErrorCode, names: ['arms[0]', name as string] })),
      ...argumentCases('coldStartExperiment', 'dataset', [null, 5, {}, { ...ds, labels: [0, 1] }, { ...ds, split: null }, { ...ds, split: { train: [99], test: [] } }, { ...ds, classes: [] }, { ...ds, pool: {} }], (d) => coldStartExperiment(d as never, base as never), 'E_OPTION', ['dataset']),
    ]);
  });

  it('ridgeProbeAccuracy, classCoverage, summarise', async () => {
    const rng = testRng();
    const rows = 12;
    const dim = 3;
    const data = { features: randomMatrix(rng, rows, dim), dim, labels: Int32Array.from({ length: rows }, (_, i) => i % 3), classes: 3 };
    const train = [0, 1, 2, 3, 4, 5];
    const evalRows = [6, 7, 8];
    const probe = (d: unknown, t: unknown = train, e: unknown = evalRows, o?: unknown) => ridgeProbeAccuracy(d as never, t as never, e as never, o as never);
    const result = { label: 'x', strategy: 'random', budget: 2, seed: 0, accuracy: 0.5, covered: 1, entropy: 0, alignment: 0, seconds: 0, gap: 0 };
    await expectAll([
      ...optionCases('ridgeProbeAccuracy', (o) => probe(data, train, evalRows, o), {}, { lambda: { bad: BAD_POSITIVE } }),
      ...argumentCases('ridgeProbeAccuracy', 'data', [null, 5, 'x', {}], (d) => probe(d), 'E_OPTION', ['data']),
      ...[
        [{ ...data, dim: 0 }, 'data.dim'],
        [{ ...data, dim: 1.5 }, 'data.dim'],
        [{ ...data, classes: 0 }, 'data.classes'],
        [{ ...data, classes: 2 ** 40 }, 'data.classes'],
        [{ ...data, features: Array.from(data.features) }, 'data.features'],
        [{ ...data, labels: Array.from(data.labels) }, 'data.labels'],
      ].map(([d, name]) => ({ what: `ridgeProbeAccuracy ${name}`, run: () => probe(d), code: 'E_OPTION' as ErrorCode, names: [name as string] })),
      { what: 'ridgeProbeAccuracy features not whole rows', run: () => probe({ ...data, features: data.features.subarray(1) }), code: 'E_SHAPE', names: ['data.features'] },
      { what: 'ridgeProbeAccuracy labels short', run: () => probe({ ...data, labels: data.labels.subarray(1) }), code: 'E_SHAPE', names: ['data.labels'] },
      { what: 'ridgeProbeAccuracy label out of range', run: () => probe({ ...data, classes: 2 }), code: 'E_SHAPE', names: ['data.labels[2]'] },
      { what: 'ridgeProbeAccuracy NaN feature', run: () => probe({ ...data, features: data.features.map((v, i) => (i === 4 ? NaN : v)) }), code: 'E_NAN', names: ['data.features row 1'] },
      ...argumentCases('ridgeProbeAccuracy', 'trainRows', [null, 5, 'x', [-1], [1.5], [rows], [5n]], (t) => probe(data, t), 'E_OPTION', ['trainRows']),
      { what: 'ridgeProbeAccuracy no train rows', run: () => probe(data, []), code: 'E_BUDGET', names: ['trainRows'] },
      ...argumentCases('ridgeProbeAccuracy', 'evalRows', [null, 5, [-1], [rows]], (e) => probe(data, train, e), 'E_OPTION', ['evalRows']),
      { what: 'ridgeProbeAccuracy no eval rows', run: () => probe(data, train, []), code: 'E_SHAPE', names: ['evalRows'] },
      ...argumentCases('classCoverage', 'classes', [0, -1, 1.5, NaN, 2 ** 40, '3', null, 5n], (c) => classCoverage(data.labels, [0, 1], c as never), 'E_OPTION', ["'classes'"]),
      ...argumentCases('classCoverage', 'labels', [null, [0, 1], new Float32Array(3), 5], (l) => classCoverage(l as never, [0], 3), 'E_OPTION', ['labels']),
      ...argumentCases('classCoverage', 'picks', [null, 'x', [-1], [rows], [0.5]], (p) => classCoverage(data.labels, p as never, 3), 'E_OPTION', ['picks']),
      { what: 'classCoverage label ≥ classes', run: () => classCoverage(data.labels, [2], 2), code: 'E_SHAPE', names: ['labels[2]'] },
      ...argumentCases('summarise', 'results', [null, 5, 'x', [null], [{ ...result, label: 5 }], [{ ...result, budget: 0 }], [{ ...result, accuracy: NaN }]], (r) => summarise(r as never), 'E_OPTION', ['results']),
    ]);
  });

  it('readWav, mfcc, mfccSummary, mfccSummaryDim, hzToMel, melToHz', async () => {
    const rng = testRng();
    const signal = Float32Array.from({ length: 4000 }, () => rng.normal() * 0.1);
    const frames = mfcc(signal, 16000);
    await expectAll([
      ...argumentCases('readWav', 'bytes', [null, undefined, 'RIFF', [1, 2], new Uint16Array(8), 5n, {}], (b) => readWav(b as never), 'E_OPTION', ["'bytes'"]),
      ...argumentCases('readWav', 'name', [5, '', null, {}], (n) => readWav(new Uint8Array(12), n as never), 'E_OPTION', ["'name'"]),
      ...optionCases('mfcc', (o) => mfcc(signal, 16000, o as never), {}, {
        frameMs: { bad: [...BAD_POSITIVE, 0.01, 1e9] },
        hopMs: { bad: [...BAD_POSITIVE, 0.001] },
        fftSize: { bad: [...BAD_COUNT, 300, 256, 2 ** 30] },
        melBands: { bad: [...BAD_COUNT, 2 ** 28] },
        coefficients: { bad: [...BAD_COUNT, 41] },
        minHz: { bad: [...BAD_NON_NEGATIVE, 9000] },
        maxHz: { bad: [...BAD_POSITIVE, 9000] },
        preEmphasis: { bad: [1, ...BAD_NON_NEGATIVE] },
        logFloor: { bad: BAD_POSITIVE },
      }),
      ...argumentCases('mfcc', 'sampleRate', [0, -1, NaN, Infinity, '16000', null, undefined, 5n], (r) => mfcc(signal, r as never), 'E_OPTION', ["'sampleRate'"]),
      ...argumentCases('mfcc', 'signal', [null, undefined, 5, 'abc', {}, new BigInt64Array(3)], (s) => mfcc(s as never, 16000), 'E_OPTION', ["'signal'"]),
      { what: 'mfcc NaN sample', run: () => mfcc(signal.map((v, i) => (i === 7 ? NaN : v)), 16000), code: 'E_NAN', names: ['sample 7'] },
      ...argumentCases('mfccSummary', 'frames', [null, 5, 'x'], (f) => mfccSummary(f as never), 'E_OPTION', ["'frames'"]),
      ...[
        [{ ...frames, frames: 0 }, 'frames.frames', 'E_OPTION'],
        [{ ...frames, coefficients: 1.5 }, 'frames.coefficients', 'E_OPTION'],
        [{ ...frames, data: Array.from(frames.data) }, 'frames.data', 'E_OPTION'],
        [{ ...frames, data: frames.data.subarray(1) }, 'frames.data', 'E_SHAPE'],
        [{ ...frames, data: frames.data.map((v, i) => (i === 3 ? Infinity : v)) }, 'frames.data', 'E_NAN'],
      ].map(([f, name, code]) => ({ what: `mfccSummary ${name} (${code})`, run: () => mfccSummary(f as never), code: code as ErrorCode, names: [name as string] })),
      ...argumentCases('mfccSummaryDim', 'coefficients', [0, -1, 1.5, NaN, '20', null, 5n, 2 ** 31], (c) => mfccSummaryDim(c as never), 'E_OPTION', ["'coefficients'"]),
      ...argumentCases('hzToMel', 'hz', [-1, NaN, Infinity, '100', null, undefined, 5n], (h) => hzToMel(h as never), 'E_OPTION', ["'hz'"]),
      ...argumentCases('melToHz', 'mel', [-1, NaN, Infinity, '100', null, undefined, 5n], (m) => melToHz(m as never), 'E_OPTION', ["'mel'"]),
    ]);
  });
});
