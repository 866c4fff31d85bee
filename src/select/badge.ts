// BADGE (spec §5.2) and BMMAL (§5.3) on a trained classifier: gradient embeddings of the output
// layer, g_i = r_i ⊗ x_i, kept factorised in a GradientContext on the backend (never the
// classes × features product), then k-means++ seeding over the whole pool — no partitioning.
// One forward pass in chunks feeds the context (p, r, the penultimate feature x and, for BMMAL,
// the subset values and scales come out of the op); then the picks are drawn on the backend, many
// per call, from seeded float64 uniforms (uniform t draws pick t; the first pick is the largest
// ‖g‖ and ignores its uniform).
//
// The penultimate feature x_i (src/train/types.ts OutputLayer): late fusion — the modalities'
// encoder outputs h^m side by side (one block each); MLA — Σ_m λ_m h^m (one block). BMMAL scales
// block m by s_m from the modality contributions, so it needs the late-fusion head's per-modality
// parts; for more than MAX_BALANCE_BLOCKS modalities it refuses (exact Shapley over all subsets).
//
// Labelled rows are never picked and are not centres (BADGE's seeding runs over the unlabelled
// pool; the classifier trained on them already shapes every g_i). An empty labelled set is
// allowed: the seeding then runs over every row of the pool.
import { PairpickError } from '../errors.js';
import { MAX_BALANCE_BLOCKS, type GradientContext } from '../backend/ops-warm.js';
import { Rng } from '../util/rng.js';
import { inChunks, type RunBase } from './common.js';
import { defineStrategy } from './strategy.js';
import { ANY_MODEL, forwardAll } from './uncertainty.js';

/** Picks per sampleStep call to start with (the chunk then adapts to ~80 ms a call). */
const STEPS_PER_CALL = 8;

export interface GradientPicks {
  indices: Int32Array;
  /** ‖g‖ of each pick. */
  gradNorm: Float32Array;
  /** Distance of each pick to the nearest earlier pick when drawn (+Infinity for the first). */
  distance: Float32Array;
  /** BMMAL: c_m and s_m of each pick, one array per modality (model order). */
  contributions?: Float32Array[];
  scales?: Float32Array[];
}

/** The penultimate features of a forward chunk as the head's blocks (see the file header). */
function headBlocks(run: RunBase, r: { rows: number; features: Float32Array[]; fusionWeights: Float32Array }): Float32Array[] {
  const model = run.model!;
  if (model.model === 'late-fusion') return r.features;
  const M = model.modalities.length;
  const h = model.hidden;
  const x = new Float32Array(r.rows * h);
  for (let i = 0; i < r.rows; i++) {
    for (let m = 0; m < M; m++) {
      const lambda = r.fusionWeights[i * M + m];
      if (lambda === 0) continue;
      const f = r.features[m];
      for (let j = 0; j < h; j++) x[i * h + j] += lambda * f[i * h + j];
    }
  }
  return [x];
}

export async function gradientPicks(run: RunBase, budget: number, balance: boolean): Promise<GradientPicks> {
  const model = run.model!;
  const head = model.head();
  const M = model.modalities.length;
  const blocks = head.model === 'late-fusion' ? M : 1;
  const C = head.classes;
  if (head.weight.length !== C * blocks * head.hidden || head.bias.length !== C) {
    throw new PairpickError('E_SHAPE', `select: option 'model' has an output layer of ${head.weight.length} weights and ${head.bias.length} biases (expected ${C} × ${blocks * head.hidden} and ${C})`);
  }
  if (balance && blocks > MAX_BALANCE_BLOCKS) throw new PairpickError('E_OPTION', `select: bmmal handles at most ${MAX_BALANCE_BLOCKS} modalities (got ${blocks})`);
  const ctx: GradientContext = await run.backend.openGradient({
    rows: run.rows,
    classes: C,
    blocks,
    blockDim: head.hidden,
    weight: head.weight,
    bias: head.bias,
    balance,
  });
  try {
    const norm2 = new Float64Array(run.rows);
    const contributions = balance ? new Float32Array(run.rows * blocks) : undefined;
    const scales = balance ? new Float32Array(run.rows * blocks) : undefined;
    await forwardAll(run, async (start, r) => {
      const loaded = await ctx.load(start, r.rows, headBlocks(run, r));
      for (let i = 0; i < r.rows; i++) {
        if (!Number.isFinite(loaded.norm2[i])) {
          throw new PairpickError('E_NAN', `select: the classifier's output for row ${start + i} is not finite (NaN or ±Inf in its features or logits)`);
        }
      }
      norm2.set(loaded.norm2, start);
      contributions?.set(loaded.contributions!, start * blocks);
      scales?.set(loaded.scales!, start * blocks);
    });
    run.checkAbort();

    await ctx.sampleInit(run.labeledMask);
    const rng = new Rng(run.seed);
    const uniforms = Float64Array.from({ length: budget }, () => rng.next());
    const indices = new Int32Array(budget);
    const distance = new Float32Array(budget);
    let made = 0;
    await inChunks(
      run,
      budget,
      STEPS_PER_CALL,
      async (start, n) => {
        if (made < start) return; // no candidate was left
        const r = await ctx.sampleStep(n, uniforms.subarray(start, start + n));
        indices.set(r.picks, made);
        for (let t = 0; t < r.picks.length; t++) distance[made + t] = Math.sqrt(r.distance2[t]);
        made += r.picks.length;
      },
      (done) => run.report('select', Math.min(done, made), budget),
    );
    const picks = indices.slice(0, made);
    const perModality = (a: Float32Array | undefined) => a && Array.from({ length: blocks }, (_, m) => Float32Array.from(picks, (i) => a[i * blocks + m]));
    return {
      indices: picks,
      gradNorm: Float32Array.from(picks, (i) => Math.sqrt(norm2[i])),
      distance: distance.slice(0, made),
      contributions: perModality(contributions),
      scales: perModality(scales),
    };
  } finally {
    ctx.close();
  }
}

export const badgeStrategy = defineStrategy({
  name: 'badge',
  kind: 'warm',
  doc: "BADGE: k-means++ seeding on the classifier's last-layer gradient embeddings (factorised, over the whole pool)",
  options: {},
  model: ANY_MODEL,
  weights: { select: 1 },
  readsPool: false,
  async run(run, budget) {
    const r = await gradientPicks(run, budget, false);
    return { indices: r.indices, components: { gradNorm: r.gradNorm, distance: r.distance } };
  },
});

export const bmmalStrategy = defineStrategy({
  name: 'bmmal',
  kind: 'warm',
  doc: 'BMMAL: BADGE whose per-modality blocks are balanced by Shapley modality contributions (the dominant modality keeps scale 1, the others shrink by their gap to it)',
  options: {},
  model: {
    forms: ['late-fusion'],
    why: 'modality contributions need the per-modality parts of the fused input',
    maxModalities: { count: MAX_BALANCE_BLOCKS, why: 'exact Shapley values over all modality subsets' },
  },
  weights: { select: 1 },
  readsPool: false,
  async run(run, budget) {
    const r = await gradientPicks(run, budget, true);
    const names = run.model!.modalities.map((m) => m.name);
    const components: Record<string, Float32Array> = { gradNorm: r.gradNorm, distance: r.distance };
    names.forEach((name, m) => {
      components[`contribution:${name}`] = r.contributions![m];
      components[`scale:${name}`] = r.scales![m];
    });
    return { indices: r.indices, components };
  },
});
