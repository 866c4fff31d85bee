// Warm-start selection (spec §5): the gradient-embedding op on every backend against a float64
// reference (per-row ŷ, c, s, ‖g‖², factorised ⟨g_i, g_j⟩ vs the materialised embedding, k-means++
// picks for given uniforms), the strategies through select() with a random-weight classifier
// (test/helpers/classifier.ts, late fusion and MLA), identical picks on js and cpu, and bad input.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { selectCommand, selectionJson } from '../src/cli/select.js';
import { writeNpy } from '../src/io/index.js';

import { backends, getBackend, type BackendName } from '../src/backend/index.js';
import { openPool, type Pool } from '../src/io/pool.js';
import { activeLearningRound, select } from '../src/select/index.js';
import type { ClassifierModel } from '../src/train/types.js';
import { Rng } from '../src/util/rng.js';
import { randomClassifier, type RandomClassifier } from './helpers/classifier.js';
import { rejectsWith } from './helpers/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';
import { dot, kmeansppReference, rowReference, uncertaintyReference } from './reference/warm.js';

const BACKENDS: BackendName[] = backends()
  .filter((b) => b.available)
  .map((b) => b.name);

const EPS32 = 2 ** -24;

// ---- the op on lattice data: every product and sum exact in float32 ---------------------------

/** Head weights k/8 (|k| ≤ 8), biases k/4, features k/4 (k ∈ 0…7, ~30 % zeros; with `signed`
 * also −k/4, as MLA's fused features can be): every logit is exact in float32 whatever the
 * summation order, so every backend stores the same r and x̂ up to the last bit of exp, and the
 * reference can round them as the op does. */
function lattice(rng: Rng, rows: number, classes: number, blocks: number, blockDim: number, signed = false) {
  const F = blocks * blockDim;
  const weight = Float32Array.from({ length: classes * F }, () => (rng.int(17) - 8) / 8);
  const bias = Float32Array.from({ length: classes }, () => (rng.int(9) - 4) / 4);
  const feature = () => (rng.next() < 0.3 ? 0 : ((signed && rng.next() < 0.5 ? -1 : 1) * (1 + rng.int(7))) / 4);
  const features = Array.from({ length: blocks }, () => Float32Array.from({ length: rows * blockDim }, feature));
  return { weight, bias, features, F };
}

function softmax(l: Float64Array): Float64Array {
  const m = Math.max(...l);
  const e = l.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** §5.2/5.3 of one lattice row in float64, then rounded to float32 where the op stores values. */
function latticeRow(d: ReturnType<typeof lattice>, classes: number, blocks: number, blockDim: number, i: number, balance: boolean) {
  const { weight, bias, features, F } = d;
  const part = (T: number) => {
    const l = Float64Array.from(bias);
    for (let c = 0; c < classes; c++)
      for (let k = 0; k < blocks; k++) if ((T >> k) & 1) for (let j = 0; j < blockDim; j++) l[c] += weight[c * F + k * blockDim + j] * features[k][i * blockDim + j];
    return l;
  };
  const logits = part((1 << blocks) - 1);
  let yhat = 0;
  for (let c = 1; c < classes; c++) if (logits[c] > logits[yhat]) yhat = c;
  const p = softmax(logits);
  const r = Float32Array.from(p, (v, c) => v - (c === yhat ? 1 : 0));
  let c = new Float64Array(blocks).fill(1 / blocks);
  let s = new Float64Array(blocks).fill(1);
  if (balance) {
    const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));
    const v = (T: number) => softmax(part(T))[yhat];
    const phi = new Float64Array(blocks);
    for (let k = 0; k < blocks; k++)
      for (let T = 0; T < 1 << blocks; T++) {
        if ((T >> k) & 1) continue;
        let n = 0;
        for (let q = 0; q < blocks; q++) n += (T >> q) & 1;
        phi[k] += ((fact(n) * fact(blocks - n - 1)) / fact(blocks)) * (v(T | (1 << k)) - v(T));
      }
    const total = phi.reduce((a, b) => a + Math.abs(b), 0);
    c = phi.map((f) => (total > 0 ? Math.abs(f) / total : 1 / blocks));
    const cmax = Math.max(...c);
    s = c.map((x) => 1 - (cmax - x));
  }
  const s32 = Float32Array.from(s);
  const x = new Float32Array(F);
  for (let k = 0; k < blocks; k++) for (let j = 0; j < blockDim; j++) x[k * blockDim + j] = s32[k] * features[k][i * blockDim + j];
  // g = r ⊗ x̂ materialised (class-major), from the stored float32 factors.
  const g = new Float64Array(classes * F);
  for (let q = 0; q < classes; q++) for (let f = 0; f < F; f++) g[q * F + f] = r[q] * x[f];
  return { yhat, c, s, g };
}

describe.each(BACKENDS)('gradient embedding op on %s', (backend) => {
  // The picks also check the engines' pruning (a skipped update must never have lowered D²):
  // nonnegative features take the max(⟨r_i, r_c⟩, 0) bounds, signed ones the |⟨r_i, r_c⟩| bounds.
  // Two classes with signed features: ⟨r_i, r_c⟩ = −2·q_i·q_c across predictions, the case where
  // only the lower bound on it keeps the pruning exact.
  for (const [blocks, balance, signed, classes] of [
    [2, false, false, 6],
    [2, true, false, 6],
    [3, true, false, 6],
    [2, false, true, 6],
    [3, true, true, 6],
    [2, false, true, 2],
  ] as const) {
    it(`${blocks} blocks, C ${classes}, balance ${balance}, ${signed ? 'signed' : 'nonnegative'} features: ŷ, c, s, ‖g‖², factorised dots and k-means++ picks match the float64 reference`, async () => {
      const rng = testRng();
      const rows = 140;
      const blockDim = 9;
      const d = lattice(rng, rows, classes, blocks, blockDim, signed);
      const ctx = await getBackend(backend).openGradient({ rows, classes, blocks, blockDim, weight: d.weight, bias: d.bias, balance });
      try {
        // Loaded in two chunks, the second first (any order is allowed).
        const split = 57;
        const second = await ctx.load(split, rows - split, d.features.map((f) => f.subarray(split * blockDim)));
        const first = await ctx.load(0, split, d.features.map((f) => f.subarray(0, split * blockDim)));
        const ref = Array.from({ length: rows }, (_, i) => latticeRow(d, classes, blocks, blockDim, i, balance));
        for (let i = 0; i < rows; i++) {
          const out = i < split ? first : second;
          const at = i < split ? i : i - split;
          expect(out.pred[at]).toBe(ref[i].yhat);
          // ‖g‖² from the same float32 factors: only float64 summation order differs.
          expect(Math.abs(out.norm2[at] - dot(ref[i].g, ref[i].g))).toBeLessThanOrEqual(1e-12 * dot(ref[i].g, ref[i].g) + 1e-300);
          if (balance) {
            for (let k = 0; k < blocks; k++) {
              // c and s are float32 roundings of float64 values; exp may differ in its last bit.
              expect(Math.abs(out.contributions![at * blocks + k] - ref[i].c[k])).toBeLessThanOrEqual(2 * EPS32);
              expect(Math.abs(out.scales![at * blocks + k] - ref[i].s[k])).toBeLessThanOrEqual(2 * EPS32);
            }
          } else {
            expect(out.contributions).toBeUndefined();
          }
        }
        // Factorised ⟨g_i, g_j⟩ against the materialised embedding's dot products.
        const a = Int32Array.from({ length: 300 }, () => rng.int(rows));
        const b = Int32Array.from({ length: 300 }, () => rng.int(rows));
        const dots = await ctx.dots(a, b);
        for (let t = 0; t < a.length; t++) {
          const ga = ref[a[t]].g;
          const gb = ref[b[t]].g;
          const scale = Math.sqrt(dot(ga, ga) * dot(gb, gb));
          expect(Math.abs(dots[t] - dot(ga, gb))).toBeLessThanOrEqual(1e-5 * scale);
        }
        // k-means++ picks for given uniforms: redrawn until no draw lands within 1e-6 of a
        // boundary of the cumulative D² (the stored factors differ at most in exp's last bit).
        const exclude = new Uint8Array(rows);
        for (let t = 0; t < 12; t++) exclude[rng.int(rows)] = 1;
        const budget = 40;
        let uniforms = new Float64Array(budget);
        let expected: number[] = [];
        for (let attempt = 0; ; attempt++) {
          uniforms = Float64Array.from({ length: budget }, () => rng.next());
          const k = kmeansppReference(ref.map((r) => r.g), exclude, uniforms, budget);
          // The first pick (largest ‖g‖) involves no draw: a near tie there is cleared by
          // excluding that row, not by new uniforms.
          if (k.firstMargin <= 1e-6) exclude[k.picks[0]] = 1;
          else if (k.drawMargin > 1e-6) {
            expected = k.picks;
            break;
          }
          expect(attempt).toBeLessThan(50);
        }
        await ctx.sampleInit(exclude);
        const got: number[] = [];
        const distance2: number[] = [];
        for (const steps of [1, 7, budget - 8]) {
          const r = await ctx.sampleStep(steps, uniforms.subarray(got.length, got.length + steps));
          got.push(...r.picks);
          distance2.push(...r.distance2);
        }
        expect(got).toEqual(expected);
        expect(distance2[0]).toBe(Infinity);
        // D² at pick time = the smallest squared distance to an earlier pick.
        for (let t = 1; t < budget; t++) {
          const gi = ref[got[t]].g;
          const want = Math.min(...got.slice(0, t).map((c) => dot(gi, gi) + dot(ref[c].g, ref[c].g) - 2 * dot(gi, ref[c].g)));
          expect(Math.abs(distance2[t] - want)).toBeLessThanOrEqual(1e-9 * (dot(gi, gi) + Math.max(...got.slice(0, t).map((c) => dot(ref[c].g, ref[c].g)))));
        }
      } finally {
        ctx.close();
      }
    });
  }

  it('refuses use after close (E_STATE)', async () => {
    const rng = testRng();
    const d = lattice(rng, 8, 3, 2, 4);
    const ctx = await getBackend(backend).openGradient({ rows: 8, classes: 3, blocks: 2, blockDim: 4, weight: d.weight, bias: d.bias, balance: false });
    await ctx.load(0, 8, d.features);
    ctx.close();
    ctx.close();
    await rejectsWith(ctx.sampleInit(new Uint8Array(8)), 'E_STATE', 'after close()');
  });

  it('refuses balance over more than 4 blocks (E_OPTION)', async () => {
    const rng = testRng();
    const d = lattice(rng, 5, 3, 5, 2);
    await rejectsWith(
      getBackend(backend).openGradient({ rows: 5, classes: 3, blocks: 5, blockDim: 2, weight: d.weight, bias: d.bias, balance: true }).then((c) => c.close()),
      'E_OPTION',
      'at most 4 modalities',
    );
  });
});

// ---- the strategies through select(), random-weight classifier -----------------------------------

const MODALITIES = [
  { name: 'audio', dim: 12 },
  { name: 'image', dim: 9 },
];

interface WarmCase {
  pool: Pool;
  x: Float32Array[];
  model: RandomClassifier;
}

/**
 * A pool and a random classifier whose rows are away from the knife edges by construction: the
 * top two logits at least 1e-3 apart (ŷ cannot flip under float32 rounding) and, for BMMAL,
 * Σ_m |φ_m| ≥ 0.05 (c = |φ| / Σ|φ| is well conditioned). Rows failing that are redrawn.
 */
async function warmCase(rng: Rng, form: ClassifierModel, rows: number, balance: boolean, modalities = MODALITIES, classes = 5): Promise<WarmCase> {
  const model = randomClassifier(rng, form, modalities, 10, classes);
  const x = modalities.map((m) => new Float32Array(rows * m.dim));
  for (let i = 0; i < rows; i++) {
    for (let attempt = 0; ; attempt++) {
      modalities.forEach((m, k) => x[k].set(randomMatrix(rng, 1, m.dim), i * m.dim));
      const r = rowReference(model, x, i, balance);
      const sorted = Array.from(r.logits).sort((a, b) => b - a);
      const ok = sorted[0] - sorted[1] >= 1e-3 && (!balance || r.phi!.reduce((s, f) => s + Math.abs(f), 0) >= 0.05);
      if (ok) break;
      if (attempt > 200) throw new Error('could not draw a row away from the knife edges');
    }
  }
  const pool = await openPool(Object.fromEntries(modalities.map((m, k) => [m.name, { data: x[k], dim: m.dim }])));
  return { pool, x, model };
}

describe('warm strategies through select()', () => {
  for (const [strategy, form] of [
    ['badge', 'late-fusion'],
    ['badge', 'mla'],
    ['bmmal', 'late-fusion'],
  ] as const) {
    it(`${strategy} (${form}): the float64 reference's picks on every backend, identical across backends`, async () => {
      const rng = testRng();
      const rows = 110;
      const budget = 14;
      const balance = strategy === 'bmmal';
      // Data whose first pick (largest ‖g‖, no seed involved) is clear of the runner-up by 1e-4,
      // then a seed whose draws are ≥ 1e-4 of Σ D² from any boundary: the backends' float32
      // features and logits move D² by ~1e-6 relative at most.
      let seed = 0;
      let expected: number[] = [];
      let drawn: Awaited<ReturnType<typeof warmCase>> | undefined;
      let ref: ReturnType<typeof rowReference>[] = [];
      let labeled: number[] = [];
      for (let dataAttempt = 0; !drawn; dataAttempt++) {
        expect(dataAttempt).toBeLessThan(20);
        const c = await warmCase(rng, form, rows, balance);
        ref = Array.from({ length: rows }, (_, i) => rowReference(c.model, c.x, i, balance));
        labeled = Array.from(new Set(Array.from({ length: 9 }, () => rng.int(rows))));
        const exclude = new Uint8Array(rows);
        for (const i of labeled) exclude[i] = 1;
        for (let attempt = 0; attempt < 50; attempt++) {
          seed = rng.int(2 ** 31);
          const u = new Rng(seed);
          const uniforms = Float64Array.from({ length: budget }, () => u.next());
          const k = kmeansppReference(ref.map((r) => r.g), exclude, uniforms, budget);
          if (k.firstMargin <= 1e-4) break;
          if (k.drawMargin > 1e-4) {
            expected = k.picks;
            drawn = c;
            break;
          }
        }
        if (!drawn) await c.pool.close();
      }
      const { pool, model } = drawn;
      for (const backend of BACKENDS) {
        const sel = await select(pool, { strategy, budget, labeled, model, seed, backend });
        expect(Array.from(sel.indices), backend).toEqual(expected);
        const gradNorm = sel.components!.gradNorm!;
        sel.indices.forEach((i, t) => {
          const g = Math.sqrt(dot(ref[i].g, ref[i].g));
          expect(Math.abs(gradNorm[t] - g)).toBeLessThanOrEqual(1e-4 * g + 1e-6);
        });
        if (balance) {
          MODALITIES.forEach((m, k) => {
            const c = sel.components![`contribution:${m.name}`]!;
            const s = sel.components![`scale:${m.name}`]!;
            sel.indices.forEach((i, t) => {
              // float32 logits move v(T) by ≲ 1e-5; c = |φ|/Σ|φ| with Σ|φ| ≥ 0.05.
              const total = ref[i].phi!.reduce((a, f) => a + Math.abs(f), 0);
              const tol = (4 * 2e-5) / total;
              expect(Math.abs(c[t] - ref[i].c![k])).toBeLessThanOrEqual(tol);
              expect(Math.abs(s[t] - ref[i].s![k])).toBeLessThanOrEqual(2 * tol);
            });
          });
        }
      }
      await pool.close();
    });
  }

  for (const measure of ['entropy', 'margin', 'leastConfidence'] as const) {
    for (const form of ['late-fusion', 'mla'] as const) {
      it(`${measure} (${form}): the B most uncertain unlabelled rows by the float64 reference`, async () => {
        const rng = testRng();
        const rows = 90;
        const budget = 12;
        const { pool, x, model } = await warmCase(rng, form, rows, false);
        const score = Array.from({ length: rows }, (_, i) => uncertaintyReference(rowReference(model, x, i, false).logits, measure));
        const labeled = [rng.int(rows), rng.int(rows)].filter((v, k, a) => a.indexOf(v) === k);
        const sel = await select(pool, { strategy: measure, budget, labeled, model, backend: 'js' });
        const picked = new Set(sel.indices);
        expect(picked.size).toBe(budget);
        // float32 logits against float64: scores agree to 1e-5; picks are the top B within that.
        const tol = 1e-5;
        sel.indices.forEach((i, t) => {
          expect(labeled).not.toContain(i);
          expect(Math.abs(sel.components!.uncertainty![t] - score[i])).toBeLessThanOrEqual(tol);
          if (t > 0) expect(score[i]).toBeLessThanOrEqual(score[sel.indices[t - 1]] + tol);
          for (let j = 0; j < rows; j++) if (!picked.has(j) && !labeled.includes(j)) expect(score[i]).toBeGreaterThanOrEqual(score[j] - tol);
        });
        await pool.close();
      });
    }
  }

  it('an empty labelled set is allowed: the seeding runs over every row', async () => {
    const rng = testRng();
    const { pool, model } = await warmCase(rng, 'late-fusion', 60, true);
    for (const strategy of ['badge', 'bmmal'] as const) {
      const sel = await select(pool, { strategy, budget: 60, model, seed: 3, backend: BACKENDS[BACKENDS.length - 1] });
      expect(new Set(sel.indices).size).toBe(60);
    }
    await pool.close();
  });
});

describe('warm strategies: bad input', () => {
  it('a warm strategy without a model, a model for a cold strategy → E_OPTION', async () => {
    const rng = testRng();
    const { pool, model } = await warmCase(rng, 'late-fusion', 20, false);
    for (const strategy of ['entropy', 'margin', 'leastConfidence', 'badge', 'bmmal'] as const) {
      await rejectsWith(select(pool, { strategy, budget: 3 }), 'E_OPTION', `strategy '${strategy}' needs option 'model'`);
    }
    await rejectsWith(select(pool, { strategy: 'kcenter', budget: 3, model }), 'E_OPTION', "option 'model' does not apply to strategy 'kcenter'");
    await rejectsWith(select(pool, { strategy: 'badge', budget: 3, model: { forward: 1 } as never }), 'E_OPTION', "option 'model'", 'Classifier');
    await pool.close();
  });

  it('bmmal with an MLA model, or with more than 4 modalities → E_OPTION', async () => {
    const rng = testRng();
    const mla = await warmCase(rng, 'mla', 20, false);
    await rejectsWith(select(mla.pool, { strategy: 'bmmal', budget: 3, model: mla.model }), 'E_OPTION', 'late-fusion', "'mla'");
    await mla.pool.close();
    const five = Array.from({ length: 5 }, (_, m) => ({ name: `m${m}`, dim: 3 }));
    const wide = await warmCase(rng, 'late-fusion', 12, false, five);
    await rejectsWith(select(wide.pool, { strategy: 'bmmal', budget: 3, model: wide.model }), 'E_OPTION', 'at most 4 modalities');
    // badge takes any number of modalities.
    expect((await select(wide.pool, { strategy: 'badge', budget: 3, model: wide.model, backend: 'js' })).indices.length).toBe(3);
    await wide.pool.close();
  });

  it('a model whose modalities or dimensions do not match the pool → E_SHAPE naming the modality', async () => {
    const rng = testRng();
    const { pool } = await warmCase(rng, 'late-fusion', 20, false);
    const otherDim = randomClassifier(rng, 'late-fusion', [MODALITIES[0], { name: 'image', dim: 8 }], 6, 4);
    await rejectsWith(select(pool, { strategy: 'badge', budget: 3, model: otherDim }), 'E_SHAPE', "modality 'image'", '9 dimensions', 'trained on 8');
    const otherName = randomClassifier(rng, 'late-fusion', [MODALITIES[0], { name: 'text', dim: 9 }], 6, 4);
    await rejectsWith(select(pool, { strategy: 'entropy', budget: 3, model: otherName }), 'E_SHAPE', "modality 'text'");
    const fewer = randomClassifier(rng, 'late-fusion', [MODALITIES[0]], 6, 4);
    await rejectsWith(select(pool, { strategy: 'bmmal', budget: 3, model: fewer }), 'E_SHAPE', "modality 'image' is not one");
    await pool.close();
  });

  it('NaN in a row (not a whole missing modality) → E_NAN naming the row', async () => {
    const rng = testRng();
    const { x, model } = await warmCase(rng, 'late-fusion', 30, false);
    const bad = 7 + rng.int(20);
    x[0][bad * MODALITIES[0].dim + 2] = NaN;
    const pool = await openPool(Object.fromEntries(MODALITIES.map((m, k) => [m.name, { data: x[k], dim: m.dim }])));
    for (const strategy of ['entropy', 'badge'] as const) {
      for (const backend of BACKENDS) await rejectsWith(select(pool, { strategy, budget: 3, model, backend }), 'E_NAN', `row ${bad}`);
    }
    await pool.close();
  });
});

describe('pairpick select with a warm strategy', () => {
  it('--model is required by a warm strategy and refused by a cold one; JSON components carry c_m, s_m and uncertainty', async () => {
    const rng = testRng();
    const { pool, x, model } = await warmCase(rng, 'late-fusion', 40, true);
    const dir = await mkdtemp(join(tmpdir(), 'pairpick-warm-'));
    try {
      const flags: string[] = [];
      for (const [k, m] of MODALITIES.entries()) {
        const path = join(dir, `${m.name}.npy`);
        await writeNpy(path, x[k], [40, m.dim]);
        flags.push('--modality', `${m.name}=${path}`);
      }
      const quiet = { stdout: () => undefined, stderr: () => undefined };
      await rejectsWith(selectCommand([...flags, '--budget', '3', '--strategy', 'bmmal'], quiet), 'E_OPTION', '--model FILE', '--strategy bmmal');
      await rejectsWith(selectCommand([...flags, '--budget', '3', '--strategy', 'kcenter', '--model', join(dir, 'clf.safetensors')], quiet), 'E_OPTION', '--model applies only');

      const bmmal = selectionJson(await select(pool, { strategy: 'bmmal', budget: 4, model, backend: 'js' }), 4);
      for (const m of MODALITIES) {
        expect(bmmal.components![`contribution:${m.name}`]).toHaveLength(4);
        expect(bmmal.components![`scale:${m.name}`]).toHaveLength(4);
      }
      const c = MODALITIES.map((m) => bmmal.components![`contribution:${m.name}`]!);
      c[0].forEach((v, t) => expect(v + c[1][t]).toBeCloseTo(1, 6));
      const margin = selectionJson(await select(pool, { strategy: 'margin', budget: 4, model }), 4);
      expect(margin.components!.uncertainty).toHaveLength(4);
    } finally {
      await pool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('activeLearningRound', () => {
  it('with a trained classifier: the strategy picks with it, and the labelled set grows by the picks', async () => {
    const rng = testRng();
    const { pool, model } = await warmCase(rng, 'late-fusion', 50, true);
    const labeled = [3, 17, 41];
    const labels = Int32Array.from({ length: 50 }, () => rng.int(5));
    const round = await activeLearningRound({ pool, labels, labeled, strategy: 'bmmal', budget: 6, model, seed: 9, backend: 'js' });
    const direct = await select(pool, { strategy: 'bmmal', budget: 6, labeled, model, seed: 9, backend: 'js' });
    expect(Array.from(round.picks)).toEqual(Array.from(direct.indices));
    expect(Array.from(round.labeled)).toEqual([...labeled, ...direct.indices].sort((a, b) => a - b));
    expect(round.classifier).toBe(model);
    await rejectsWith(activeLearningRound({ pool, labels: labels.subarray(1), labeled, strategy: 'badge', budget: 2, model }), 'E_SHAPE', "'labels' has 49");
    await pool.close();
  });
});
