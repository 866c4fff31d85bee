// The strategy registry: a strategy is one descriptor and one registerStrategy line. Two toy
// strategies defined here — a cold one with options (one resolved against the pool) and a warm one
// that reads a per-row input — run through select() and `pairpick select` (flags, their checks and
// --help generated from the descriptors), with no other change anywhere. Also: every built-in
// strategy is listed in --help with its options, defaults and doc, and bad descriptors are refused.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { helpText } from '../src/cli/args.js';
import { flagOf, selectCommand, selectSpec } from '../src/cli/select.js';
import { PairpickError } from '../src/errors.js';
import { writeNpy } from '../src/io/index.js';
import { backends } from '../src/backend/index.js';
import { select, type SelectOptions, type SelectProgress } from '../src/select/index.js';
import { registerStrategy, strategies, type AnyStrategy } from '../src/select/registry.js';
import { defineStrategy, option } from '../src/select/strategy.js';
import { count, either, oneOf } from '../src/util/validate.js';
import { rejectsWith as rejects } from './helpers/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';

// ---- the toy strategies: everything a new strategy needs ----------------------------------------

/** 'auto' stride: ⌈rows / STRIDE_AUTO_PARTS⌉. */
const STRIDE_AUTO_PARTS = 7;

/** Cold toy: the unlabelled rows in order of (row mod stride, row), ascending or descending. */
const strideStrategy = defineStrategy({
  name: 'stride',
  kind: 'cold',
  doc: 'test toy: every stride-th row, then the next residue class',
  options: {
    stride: option(either(oneOf(['auto'] as const), count(1)), { default: 'auto', value: 'auto|S', doc: 'step between picks (auto: a seventh of the rows)' }),
    order: option(oneOf(['ascending', 'descending'] as const), { default: 'ascending', value: 'ascending|descending', doc: 'order within a residue class' }),
  },
  weights: { select: 2 },
  parse(o, pool, where) {
    const stride = o.stride === 'auto' ? Math.ceil(pool.rows / STRIDE_AUTO_PARTS) : o.stride;
    if (stride > pool.rows) throw new PairpickError('E_SHAPE', `${where}: stride = ${stride} exceeds the ${pool.rows} rows`);
    return { stride, order: o.order };
  },
  async run(run, budget, p) {
    const keyed = Array.from({ length: run.rows }, (_, i) => i).filter((i) => !run.labeledMask[i]);
    keyed.sort((a, b) => (a % p.stride) - (b % p.stride) || (p.order === 'ascending' ? a - b : b - a));
    run.report('select', budget, budget);
    // run.ctx is the pool opened on the backend: the toy reads its dimensions through it.
    return { indices: Int32Array.from(keyed.slice(0, budget)), params: { total: run.total } };
  },
});

/** Warm toy: the unlabelled rows with the highest score (an input: one value per row). */
const topScoreStrategy = defineStrategy({
  name: 'topscore',
  kind: 'warm',
  doc: 'test toy: the highest scores of a trained classifier',
  options: {},
  inputs: { scores: { doc: "the classifier's score of each row", dim: 1 } },
  weights: { select: 1 },
  readsPool: false,
  async run(run, budget, _params, inputs) {
    const s = inputs.scores.data;
    const order = Array.from({ length: run.rows }, (_, i) => i).filter((i) => !run.labeledMask[i]);
    order.sort((a, b) => s[b] - s[a]);
    run.report('select', budget, budget);
    return { indices: Int32Array.from(order.slice(0, budget)) };
  },
});

// ---- independent references ---------------------------------------------------------------------

/** Residue classes of `stride` in turn, each walked up (or down) by `stride`, labelled rows skipped. */
function strideReference(rows: number, stride: number, descending: boolean, labeled: Set<number>, budget: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < stride; r++) {
    const members: number[] = [];
    for (let i = r; i < rows; i += stride) members.push(i);
    if (descending) members.reverse();
    for (const i of members) if (!labeled.has(i)) out.push(i);
  }
  return out.slice(0, budget);
}

/** Rows by falling score (distinct by construction: a permutation), labelled ones skipped. */
function topScoreReference(scores: Float32Array, labeled: Set<number>, budget: number): number[] {
  const out: number[] = [];
  for (let v = scores.length - 1; v >= 0 && out.length < budget; v--) {
    const i = scores.indexOf(v);
    if (!labeled.has(i)) out.push(i);
  }
  return out;
}

// ---- the tests ------------------------------------------------------------------------------------

const BACKENDS = backends()
  .filter((b) => b.available)
  .map((b) => b.name);
const rng = testRng();
const ROWS = 60 + rng.int(40);
const DIMS = [3 + rng.int(6), 3 + rng.int(6)];
const data = DIMS.map((d) => randomMatrix(rng, ROWS, d));
const pool = () => Object.fromEntries(DIMS.map((d, m) => [`m${m}`, { data: data[m], dim: d }]));
const labeled = Array.from(rng.permutation(ROWS).subarray(0, 3 + rng.int(8)));
const labeledSet = new Set(labeled);
const scores = Float32Array.from(rng.permutation(ROWS));
let dir: string;
const unregister: (() => void)[] = [];

beforeAll(async () => {
  unregister.push(registerStrategy(strideStrategy as AnyStrategy));
  unregister.push(registerStrategy(topScoreStrategy as AnyStrategy));
  dir = await mkdtemp(join(tmpdir(), 'pairpick-registry-'));
  await writeNpy(join(dir, 'a.npy'), data[0], [ROWS, DIMS[0]]);
  await writeNpy(join(dir, 'b.npy'), data[1], [ROWS, DIMS[1]]);
  await writeNpy(join(dir, 'scores.npy'), scores, [ROWS]);
  await writeNpy(join(dir, 'labeled.npy'), Int32Array.from(labeled), [labeled.length]);
});
afterAll(async () => {
  for (const u of unregister) u();
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  let out = '';
  return { stdout: (s: string) => void (out += s), stderr: () => undefined, stderrIsTTY: false, text: () => out };
}

const toyOptions = (o: Record<string, unknown>) => o as unknown as SelectOptions;
const files = () => ['--modality', `a=${join(dir, 'a.npy')}`, '--modality', `b=${join(dir, 'b.npy')}`];

describe('a toy strategy added by one registerStrategy line', () => {
  it.each(BACKENDS)('runs through select() on %s: options resolved against the pool, picks, params, progress', async (backend) => {
    const budget = 5 + rng.int(20);
    const progress: SelectProgress[] = [];
    const sel = await select(pool(), toyOptions({ strategy: 'stride', budget, labeled, backend, onProgress: (p: SelectProgress) => progress.push(p) }));
    const auto = Math.ceil(ROWS / STRIDE_AUTO_PARTS);
    expect(Array.from(sel.indices)).toEqual(strideReference(ROWS, auto, false, labeledSet, budget));
    expect(sel.strategy).toBe('stride');
    expect(sel.params).toEqual({ budget, seed: 0, stride: auto, order: 'ascending', total: DIMS[0] + DIMS[1] });
    expect(progress.map((p) => p.phase)).toContain('prepare');
    expect(progress.at(-1)).toEqual({ phase: 'select', done: budget, total: budget, fraction: 1 });

    const stride = 2 + rng.int(9);
    const given = await select(pool(), toyOptions({ strategy: 'stride', budget, labeled, backend, stride, order: 'descending' }));
    expect(Array.from(given.indices)).toEqual(strideReference(ROWS, stride, true, labeledSet, budget));
  });

  it('its options are checked by their rules, unknown ones listed, and refused by other strategies', async () => {
    const base = { budget: 3, backend: 'js' };
    await rejects(select(pool(), toyOptions({ ...base, strategy: 'stride', stride: 0 })), 'E_OPTION', "option 'stride' must be 'auto' or an integer ≥ 1");
    await rejects(select(pool(), toyOptions({ ...base, strategy: 'stride', order: 'up' })), 'E_OPTION', "option 'order' must be 'ascending' or 'descending'");
    await rejects(select(pool(), toyOptions({ ...base, strategy: 'stride', bogus: 1 })), 'E_OPTION', "unknown option 'bogus'", /allowed: .*budget.*stride, order/);
    await rejects(select(pool(), toyOptions({ ...base, strategy: 'kcenter', order: 'ascending' })), 'E_OPTION', "'order' does not apply to strategy 'kcenter' (it is a stride option)");
    await rejects(select(pool(), toyOptions({ ...base, strategy: 'stride', k: 3 })), 'E_OPTION', "'k' does not apply to strategy 'stride' (it is a mmcsal option)");
    await rejects(select(pool(), toyOptions({ ...base, strategy: 'stride', stride: ROWS + 1 })), 'E_SHAPE', `stride = ${ROWS + 1} exceeds the ${ROWS} rows`);
    const nan = Float32Array.from(data[1]);
    const row = rng.int(ROWS);
    nan[row * DIMS[1]] = NaN;
    await rejects(select({ m0: { data: data[0], dim: DIMS[0] }, m1: { data: nan, dim: DIMS[1] } }, toyOptions({ ...base, strategy: 'stride' })), 'E_NAN', `row ${row}`);
  });

  it('a warm toy reads its input through select(): picks, and its input checked against the pool', async () => {
    const budget = 4 + rng.int(15);
    const sel = await select(pool(), toyOptions({ strategy: 'topscore', budget, labeled, backend: 'js', scores: { data: scores, dim: 1 } }));
    expect(Array.from(sel.indices)).toEqual(topScoreReference(scores, labeledSet, budget));
    const base = { budget: 3, backend: 'js', strategy: 'topscore' };
    await rejects(select(pool(), toyOptions(base)), 'E_OPTION', "option 'scores'", 'required');
    await rejects(select(pool(), toyOptions({ ...base, scores: scores })), 'E_OPTION', "option 'scores' must be a matrix");
    await rejects(select(pool(), toyOptions({ ...base, scores: { data: scores.subarray(1), dim: 1 } })), 'E_SHAPE', "option 'scores' has", `${ROWS} × 1`);
    await rejects(select(pool(), toyOptions({ ...base, scores: { data: new Float32Array(ROWS * 2).fill(1), dim: 2 } })), 'E_SHAPE', 'reads 1');
    const bad = Float32Array.from(scores);
    bad[7] = Infinity;
    await rejects(select(pool(), toyOptions({ ...base, scores: { data: bad, dim: 1 } })), 'E_NAN', "option 'scores' row 7");
    await rejects(select(pool(), toyOptions({ budget: 3, backend: 'js', scores: { data: scores, dim: 1 } })), 'E_OPTION', "'scores' does not apply to strategy 'mmcsal' (it is a topscore option)");
  });

  it('appears in `pairpick select --help` with its options, defaults and doc, and its flags work', async () => {
    const c = capture();
    await selectCommand(['--help'], c);
    const help = c.text();
    expect(help).toBe(helpText(selectSpec()));
    const flat = help.replace(/\s+/g, ' ');
    expect(flat).toContain('Strategy stride: test toy: every stride-th row, then the next residue class');
    expect(flat).toMatch(/--stride auto\|S +step between picks \(auto: a seventh of the rows\) \(default: auto\)/);
    expect(flat).toMatch(/--order ascending\|descending +order within a residue class \(default: ascending\)/);
    expect(flat).toContain("Strategy topscore (warm: reads a trained classifier's outputs): test toy: the highest scores of a trained classifier");
    expect(flat).toMatch(/--scores FILE +the classifier's score of each row: a float32 \.npy file, one row per pool row \(1 value a row\); required by this strategy \(default: none\)/);
    expect(flat).toMatch(/--strategy S +mmcsal, kcenter, kmeans, typiclust, probcover, facility, random, entropy, margin, leastConfidence, badge, bmmal, stride, topscore;/);

    const budget = 3 + rng.int(10);
    const stride = 2 + rng.int(7);
    const out = capture();
    await selectCommand([...files(), '--budget', `${budget}`, '--strategy', 'stride', '--stride', `${stride}`, '--order', 'descending', '--labeled', join(dir, 'labeled.npy'), '--backend', 'js', '--json', '--quiet'], out);
    const json = JSON.parse(out.text());
    expect(json.indices).toEqual(strideReference(ROWS, stride, true, labeledSet, budget));
    expect(json.params).toMatchObject({ stride, order: 'descending' });

    const warm = capture();
    await selectCommand([...files(), '--budget', `${budget}`, '--strategy', 'topscore', '--scores', join(dir, 'scores.npy'), '--labeled', join(dir, 'labeled.npy'), '--backend', 'js', '--quiet'], warm);
    expect(warm.text().trim().split('\n').map(Number)).toEqual(topScoreReference(scores, labeledSet, budget));
  });

  it('its flags are checked from its descriptor and library messages name them', async () => {
    const run = (...flags: string[]) => selectCommand([...files(), '--budget', '3', '--backend', 'js', '--quiet', ...flags], capture());
    await rejects(run('--strategy', 'stride', '--stride', '0'), 'E_OPTION', '--stride must be ≥ 1, got 0');
    await rejects(run('--strategy', 'stride', '--stride', 'x'), 'E_OPTION', '--stride must be an integer');
    await rejects(run('--strategy', 'stride', '--order', 'up'), 'E_OPTION', "--order must be one of ascending, descending; got 'up'");
    await rejects(run('--strategy', 'kcenter', '--order', 'ascending'), 'E_OPTION', "--order does not apply to strategy 'kcenter' (it is a stride option)");
    await rejects(run('--strategy', 'stride', '--stride', `${ROWS + 1}`), 'E_SHAPE', `--stride ${ROWS + 1} exceeds`);
    await rejects(run('--strategy', 'topscore'), 'E_OPTION', '--scores FILE is required by --strategy topscore');
    await rejects(run('--strategy', 'topscore', '--scores', join(dir, 'labeled.npy')), 'E_FORMAT', 'expected float32');
    await rejects(run('--strategy', 'topscore', '--scores', join(dir, 'a.npy')), 'E_SHAPE', '--scores has', 'reads 1');
  });
});

describe('the registry', () => {
  it('`pairpick select --help` lists every strategy with its doc and every option with its default and doc', async () => {
    const c = capture();
    await selectCommand(['--help'], c);
    const flat = c.text().replace(/\s+/g, ' ');
    for (const s of strategies()) {
      expect(flat).toMatch(new RegExp(`Strategy ${s.name}( \\([^)]*\\))?: ${s.doc.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      for (const [name, o] of Object.entries(s.options)) {
        const shown = o.default ?? o.shownDefault;
        expect(flat).toContain(`--${flagOf(name)} ${o.value}`);
        expect(flat).toContain(`${o.doc} (default: ${shown})`);
      }
    }
  });

  it('refuses descriptors that would not work', () => {
    const ok = { name: 'fine', kind: 'cold', doc: 'one line', options: {}, weights: { select: 1 }, run: async () => ({ indices: new Int32Array(0) }) };
    const refused = (d: Record<string, unknown>, fragment: string) => {
      let error: unknown;
      try {
        registerStrategy(d as unknown as AnyStrategy)();
      } catch (e) {
        error = e;
      }
      expect(error, fragment).toBeInstanceOf(PairpickError);
      expect((error as Error).message).toContain(fragment);
    };
    refused({ ...ok, name: 'kcenter' }, "a strategy 'kcenter' is already registered");
    refused({ ...ok, name: 'Fine' }, 'starting lower-case');
    refused({ ...ok, kind: 'warm' }, 'a warm strategy declares');
    refused({ ...ok, inputs: { scores: { doc: 'x' } } }, "a strategy with inputs or a model is 'warm'");
    refused({ ...ok, options: { seed: option(count(0), { default: 1, value: 'N', doc: 'x' }) } }, "option 'seed' is one of select()'s own options");
    refused({ ...ok, options: { k: option(count(1), { default: 3, value: 'K', doc: 'x' }) } }, "option 'k' is declared differently by strategy 'mmcsal'");
    refused({ ...ok, options: { depth: option(count(1), { default: 0, value: 'D', doc: 'x' }) } }, "option 'depth': default 0 is not an integer ≥ 1");
    refused({ ...ok, options: { depth: option(count(1), { value: 'D', doc: 'x' }) } }, "option 'depth' needs a default, or a shownDefault");
    refused({ ...ok, options: { 'max-depth': option(count(1), { default: 2, value: 'D', doc: 'x' }) } }, 'camelCase');
    refused({ ...ok, weights: { warmup: 1 } }, "unknown phase 'warmup'");
    refused({ ...ok, pools: { inputs: { doc: 'other features' } } }, "option 'inputs' is declared differently by strategy 'mmcsal'");
    refused({ ...ok, options: { depth: option(count(1), { default: 2, value: 'D', doc: 'x' }) }, pools: { depth: { doc: 'x' } } }, "'depth' is declared twice");
    refused({ ...ok, pools: { extra: { doc: 'two\nlines' } } }, "option 'extra' needs a one-line doc");
    // A shared declaration is fine: both strategies take the same option.
    const shared = registerStrategy({ ...ok, name: 'sharesk', options: { k: strategies()[0].options.k } } as unknown as AnyStrategy);
    shared();
  });
});
