/**
 * `evaluate()`: the active-learning experiment of spec §7 on a labelled dataset. Per seed, stage 1
 * is fitted on the train split (no labels); every cold strategy selects each budget from scratch,
 * every warm strategy starts from a seeded random set of the first budget and adds a round per
 * further budget; the downstream model is retrained on each labelled set and scored on the test
 * split. Each finished cell is written atomically to DIR/cells/, so a cancelled run resumes where
 * it stopped; results.json and report.html are written when every cell is done.
 */
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

import { getBackend } from '../backend/index.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import { openPool, type Pool } from '../io/pool.js';
import { readsInputs } from '../select/mmcsal.js';
import { findStrategy } from '../select/registry.js';
import { select, type SelectOptions } from '../select/select.js';
import { fitProjection, type FitOptions } from '../ssl/trainer.js';
import { packageVersion } from '../util/root.js';
import { optionName } from '../util/validate.js';
import { RunFolder, writeAtomic, type CellResult, type Stage1Result } from './cells.js';
import { loadDataset, type Dataset } from './datasets.js';
import { classHistogram, classificationScores, meanStd, pickGeometry } from './metrics.js';
import { modelPool, trainModel, warmSelectOptions, type ModelData, type TrainedModel } from './model.js';
import { resolvePlan, type Arm, type CellSpec, type EvaluateOptions, type Plan } from './plan.js';
import { renderReport } from './report.js';

export const RESULTS_FORMAT = 'pairpick-eval/1';

/** Mean ± standard deviation over seeds. */
export interface Spread {
  mean: number;
  std: number;
}

/** One arm at one budget, over the seeds. */
export interface SummaryPoint {
  budget: number;
  accuracy: Spread;
  macroF1: Spread;
  covered: Spread;
  gap: Spread | null;
  alignment: Spread | null;
  /** Mean picks per class over the seeds. */
  histogram: number[];
  /** Mean test accuracy of each modality alone. */
  perModality: Record<string, number>;
}

export interface ArmSummary {
  arm: string;
  label: string;
  kind: 'cold' | 'warm';
  strategy: string;
  points: SummaryPoint[];
  /** Accuracy averaged over budgets (each seed), then mean ± std over seeds. */
  meanAccuracy: Spread;
  /** Area under the mean accuracy curve, divided by the width of the x range (x = log budget when
   * `logX`): a mean accuracy weighted by how much of the range each budget covers. */
  auc: number;
  /** Per seed, the arm's accuracy averaged over budgets minus the random arm's on the same seed;
   * mean ± std over seeds. null without a random arm. */
  gainOverRandom: Spread | null;
  /** 1 = largest AUC. */
  rank: number;
}

/** results.json. Everything but `times` is the same for a resumed run as for an uninterrupted one. */
export interface EvaluateResults {
  format: typeof RESULTS_FORMAT;
  dataset: { name: string; rows: number; train: number; test: number; classes: string[]; modalities: { name: string; dim: number }[] };
  options: { cold: string[]; warm: string[]; budgets: number[]; seeds: number[]; model: string; stage1: unknown };
  command: string | null;
  machine: { platform: string; arch: string; cpus: number; cpuModel: string; memoryGiB: number };
  backend: string;
  versions: { pairpick: string; node: string };
  /** Whether the budgets span a decade or more (learning curves and AUC on log budget). */
  logX: boolean;
  /** The random arm gains are measured against ('cold:random', else 'warm:random'), or null. */
  reference: string | null;
  arms: Arm[];
  /** Stage 1 per seed (empty without stage 1). */
  stage1: Omit<Stage1Result, 'seconds'>[];
  cells: Omit<CellResult, 'seconds'>[];
  summary: ArmSummary[];
  /** Wall times (they differ between runs): per cell, per stage-1 fit, and this run's total. */
  times: { totalSeconds: number; stage1: Record<string, number>; cells: Record<string, { selection: number; training: number }> };
}

/** The per-round seed of a warm arm's selection (round 0, the random initial set, uses the seed itself). */
export function roundSeed(seed: number, round: number): number {
  return round === 0 ? seed : (seed + Math.imul(round, 0x9e3779b1)) >>> 0;
}

/**
 * Runs the experiment (see the module comment) and returns results.json's content. `dataset` is
 * a Dataset or the name of a bundled one (`'av-digits'`). The whole plan is checked first
 * (PairpickError before any work); cancelling with `signal` rejects with E_ABORTED and leaves
 * `outDir` resumable with `resume: true`.
 */
export async function evaluate(dataset: Dataset | string, options: EvaluateOptions): Promise<EvaluateResults> {
  if (typeof dataset === 'string') {
    const loaded = await loadDataset(dataset);
    try {
      return await evaluate(loaded, options);
    } finally {
      await loaded.pool.close();
    }
  }
  const started = performance.now();
  const plan = resolvePlan(dataset, options);
  const backend = getBackend(options.backend, optionName('evaluate', 'backend'));
  const { signal, onProgress } = options;
  const folder = new RunFolder(options.outDir);
  const modalities = dataset.pool.modalities.map((name) => ({ name, dim: dataset.pool.source(name).dim }));
  const datasetInfo = {
    name: dataset.name,
    rows: dataset.pool.rows,
    train: plan.trainRows.length,
    test: plan.testRows.length,
    classes: dataset.classes.map(String),
    modalities,
  };
  const planOptions = {
    cold: plan.arms.filter((a) => a.kind === 'cold').map((a) => a.strategy),
    warm: plan.arms.filter((a) => a.kind === 'warm').map((a) => a.strategy),
    budgets: plan.budgets,
    seeds: plan.seeds,
    model: plan.model,
    stage1: plan.stage1 === false ? false : withoutFunctions(plan.stage1),
  };
  await folder.open(
    {
      format: RESULTS_FORMAT,
      dataset: { ...datasetInfo, labels: fingerprint(dataset.labels), trainRows: fingerprint(plan.trainRows), testRows: fingerprint(plan.testRows) },
      options: planOptions,
      backend: backend.name,
    },
    options.resume ?? false,
  );

  // Finished cells (from an earlier run of this folder).
  const finished = new Map<string, CellResult>();
  for (const cell of plan.cells) {
    const saved = await folder.read<CellResult>(cell.id);
    if (saved !== undefined) finished.set(cell.id, checkSaved(saved, cell, folder));
  }
  const stage1Records = new Map<number, Stage1Result>();

  // Progress: a cell is one unit, a stage-1 fit as many as the cells of a seed.
  const perSeed = plan.cells.length / plan.seeds.length;
  const pendingSeeds = plan.seeds.filter((s) => plan.cells.some((c) => c.seed === s && !finished.has(c.id)));
  const skipped = finished.size;
  const units = plan.cells.length - skipped + (plan.stage1 === false ? 0 : perSeed * pendingSeeds.length);
  let unitsDone = 0;
  const report = (phase: string, detail: string, extra = 0) => {
    if (!onProgress) return;
    const done = unitsDone + extra;
    const elapsed = (performance.now() - started) / 1000;
    onProgress({
      fraction: units === 0 ? 1 : (skipped + done) / (skipped + units),
      done: finished.size,
      total: plan.cells.length,
      skipped,
      phase,
      detail,
      etaSeconds: done > 0 && elapsed > 1 ? (elapsed / done) * (units - done) : undefined,
    });
  };
  report('cells', skipped ? `${skipped} finished cells found` : 'starting');

  const data = pendingSeeds.length ? await modelData(dataset, plan) : undefined;
  for (const seed of pendingSeeds) {
    throwIfAborted(signal, 'evaluate');
    const space = await selectionSpace(data!, plan, seed, options, folder, (f) => report('stage 1', `seed ${seed}`, perSeed * f));
    if (plan.stage1 !== false) unitsDone += perSeed;
    if (space.stage1) stage1Records.set(seed, space.stage1);
    try {
      const runCell = async (cell: CellSpec, picks: Int32Array, selection: { seconds: number; params: Record<string, unknown> }): Promise<TrainedModel> => {
        const t0 = performance.now();
        const trained = await trainModel(plan.model, data!, picks, { seed, backend, signal });
        const trainingSeconds = (performance.now() - t0) / 1000;
        const result = scoreCell(cell, picks, trained, data!, plan, space, { selection: selection.seconds, training: trainingSeconds });
        if (cell.strategy === 'mmcsal' && typeof selection.params.space === 'string') result.space = selection.params.space;
        await folder.write(cell.id, result);
        finished.set(cell.id, result);
        unitsDone++;
        report('cells', `${cell.arm} B=${cell.budget} seed ${seed}`);
        return trained;
      };
      // Warm strategies read the classifier's outputs on the rows it reads: the z-scored train rows.
      let classifierPool: Pool | undefined;
      const selectFor = async (strategy: string, budget: number, selectSeed: number, labeled?: Int32Array, extra: Record<string, unknown> = {}) => {
        throwIfAborted(signal, 'evaluate');
        const warmKind = findStrategy(strategy)?.kind === 'warm';
        if (warmKind) classifierPool ??= await modelPool(data!, 'train');
        // MMCSAL's default covers the embedding joined with the raw features stage 1 embedded.
        const inputs = strategy === 'mmcsal' && space.inputs && readsInputs(extra) ? { inputs: space.inputs } : {};
        const selection = await select(warmKind ? classifierPool! : space.pool, {
          ...extra,
          ...inputs,
          strategy,
          budget,
          seed: selectSeed,
          ...(labeled && labeled.length ? { labeled } : {}),
          backend,
          signal,
        } as SelectOptions);
        return selection;
      };

      for (const arm of plan.arms) {
        const cells = plan.cells.filter((c) => c.arm === arm.key && c.seed === seed);
        if (arm.kind === 'cold') {
          for (const cell of cells) {
            if (finished.has(cell.id)) continue;
            const selection = await selectFor(arm.strategy, cell.budget, seed);
            await runCell(cell, selection.indices, selection);
          }
          continue;
        }
        // Warm: round 0 is the random initial set; each later round adds budget[r] − budget[r−1]
        // picks to the labelled set with the previous round's model.
        const descriptor = findStrategy(arm.strategy)!;
        let labeled: Int32Array = new Int32Array(0);
        let model: TrainedModel | undefined;
        for (const cell of cells) {
          const saved = finished.get(cell.id);
          if (saved) {
            labeled = toPositions(saved.picks, data!.positionOf);
            model = undefined; // retrained from `labeled` when a later round needs it
            continue;
          }
          let selection;
          if (cell.round === 0) {
            selection = await selectFor('random', cell.budget, seed);
          } else {
            if (descriptor.kind === 'warm') model ??= await trainModel(plan.model, data!, labeled, { seed, backend, signal });
            // A warm strategy reads the classifier; a labelled set of one class has none (see
            // trainModel), so that round's picks are random.
            const guided = descriptor.kind !== 'warm' || model?.classifier !== undefined;
            const extra = model && guided ? warmSelectOptions(descriptor, model) : {};
            selection = await selectFor(guided ? arm.strategy : 'random', cell.budget - labeled.length, roundSeed(seed, cell.round), labeled, extra);
          }
          const next = new Int32Array(labeled.length + selection.indices.length);
          next.set(labeled);
          next.set(selection.indices, labeled.length);
          labeled = next;
          model = await runCell(cell, labeled, selection);
        }
      }
      await classifierPool?.close();
    } finally {
      await space.pool.close();
      await space.inputs?.close();
    }
  }

  // Every cell is done: results.json and the report.
  for (const seed of plan.seeds) {
    if (plan.stage1 === false || stage1Records.has(seed)) continue;
    const saved = await folder.read<Stage1Result>(`stage1-s${seed}`);
    if (saved) stage1Records.set(seed, saved);
  }
  const cells = plan.cells.map((c) => finished.get(c.id)!);
  const logX = plan.budgets[plan.budgets.length - 1] / plan.budgets[0] >= 10;
  const reference = ['cold:random', 'warm:random'].find((k) => plan.arms.some((a) => a.key === k)) ?? null;
  const results: EvaluateResults = {
    format: RESULTS_FORMAT,
    dataset: datasetInfo,
    options: planOptions,
    command: options.command ?? null,
    machine: machine(),
    backend: backend.name,
    versions: { pairpick: packageVersion(), node: process.version },
    logX,
    reference,
    arms: plan.arms,
    stage1: plan.seeds.flatMap((s) => {
      const r = stage1Records.get(s);
      return r ? [{ seed: r.seed, gapBefore: r.gapBefore, gap: r.gap }] : [];
    }),
    cells: cells.map(({ seconds: _, ...rest }) => rest),
    summary: summarise(plan.arms, plan.budgets, plan.seeds, cells, logX, reference),
    times: {
      totalSeconds: (performance.now() - started) / 1000,
      stage1: Object.fromEntries([...stage1Records.values()].map((r) => [String(r.seed), r.seconds])),
      cells: Object.fromEntries(cells.map((c) => [c.id, c.seconds])),
    },
  };
  await writeAtomic(join(options.outDir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  await writeAtomic(join(options.outDir, 'report.html'), renderReport(results));
  report('cells', 'done');
  return results;
}

/** A cell file read back: it must be the cell it is named after. */
function checkSaved(saved: CellResult, cell: CellSpec, folder: RunFolder): CellResult {
  const ok = saved && typeof saved === 'object' && saved.id === cell.id && Array.isArray(saved.picks) && saved.picks.length === cell.budget && typeof saved.accuracy === 'number';
  if (!ok) throw new PairpickError('E_FORMAT', `evaluate: ${join(folder.cellsDir, `${cell.id}.json`)} is not the finished cell ${cell.id}: remove it to recompute it`);
  return saved;
}

function withoutFunctions(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v !== 'function'));
}

/** A short, stable digest of integers (FNV-1a over their values): plan.json tells datasets apart by it. */
function fingerprint(values: Int32Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < values.length; i++) {
    h = Math.imul(h ^ (values[i] & 0xffff), 0x01000193);
    h = Math.imul(h ^ (values[i] >>> 16), 0x01000193);
  }
  return `${values.length}:${(h >>> 0).toString(16)}`;
}

function machine(): EvaluateResults['machine'] {
  const list = cpus();
  return { platform: process.platform, arch: process.arch, cpus: list.length, cpuModel: list[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30) };
}

interface ExperimentData extends ModelData {
  /** Dataset row → position in the train split (−1 for other rows). */
  positionOf: Int32Array;
}

/** Reads the train and test rows of every modality and z-scores them with the train split's statistics. */
async function modelData(dataset: Dataset, plan: Plan): Promise<ExperimentData> {
  const { pool, labels } = dataset;
  const names = pool.modalities;
  const dims = names.map((m) => pool.source(m).dim);
  const trainRaw: Float32Array[] = [];
  const testRaw: Float32Array[] = [];
  const train: Float32Array[] = [];
  const test: Float32Array[] = [];
  for (const [m, name] of names.entries()) {
    const d = dims[m];
    const tr = await pool.source(name).readRows(plan.trainRows);
    const te = await pool.source(name).readRows(plan.testRows);
    const mean = new Float64Array(d);
    const sq = new Float64Array(d);
    const n = plan.trainRows.length;
    for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] += tr[r * d + j];
    for (let j = 0; j < d; j++) mean[j] /= n;
    for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) sq[j] += (tr[r * d + j] - mean[j]) ** 2;
    const scale = Float64Array.from(sq, (s) => (s > 0 ? 1 / Math.sqrt(s / n) : 0)); // a constant feature carries nothing
    const z = (x: Float32Array) => {
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = (x[i] - mean[i % d]) * scale[i % d];
      return out;
    };
    trainRaw.push(tr);
    testRaw.push(te);
    train.push(z(tr));
    test.push(z(te));
  }
  const positionOf = new Int32Array(pool.rows).fill(-1);
  plan.trainRows.forEach((row, p) => (positionOf[row] = p));
  return {
    modalities: names,
    dims,
    classes: plan.classes,
    trainRaw,
    testRaw,
    train,
    test,
    trainLabels: Int32Array.from(plan.trainRows, (r) => labels[r]),
    testLabels: Int32Array.from(plan.testRows, (r) => labels[r]),
    positionOf,
  };
}

function toPositions(rows: number[], positionOf: Int32Array): Int32Array {
  return Int32Array.from(rows, (r) => positionOf[r]);
}

interface SelectionSpace {
  /** The pool the strategies select from (rows = the train split). */
  pool: Pool;
  /** The raw train rows stage 1 embedded (when it ran): MMCSAL's `inputs`. */
  inputs?: Pool;
  /** Unit rows per modality for the picks' gap and alignment, when the modalities share a space. */
  geometry?: { rows: Float32Array[]; dim: number };
  stage1?: Stage1Result;
}

/** The seed's selection pool: the stage-1 embedding of the train split, or its raw features. */
async function selectionSpace(data: ExperimentData, plan: Plan, seed: number, options: EvaluateOptions, folder: RunFolder, progress: (fraction: number) => void): Promise<SelectionSpace> {
  const raw = await openPool(Object.fromEntries(data.modalities.map((m, i) => [m, { data: data.trainRaw[i], dim: data.dims[i] }])));
  if (plan.stage1 === false) {
    const same = data.dims.length >= 2 && data.dims.every((d) => d === data.dims[0]);
    return { pool: raw, geometry: same ? { rows: data.trainRaw.map((x) => unitRows(x, data.dims[0])), dim: data.dims[0] } : undefined };
  }
  try {
    const t0 = performance.now();
    const user = plan.stage1;
    const fit: FitOptions = {
      ...user,
      seed,
      backend: options.backend,
      signal: options.signal,
      onProgress: (p) => {
        user.onProgress?.(p);
        progress(p.fraction);
      },
    };
    const projection = await fitProjection(raw, fit);
    const pool = await projection.embed(raw, { backend: options.backend, signal: options.signal });
    const stage1: Stage1Result = { seed, gapBefore: projection.gapBefore, gap: projection.gap, seconds: (performance.now() - t0) / 1000 };
    await folder.write(`stage1-s${seed}`, stage1);
    const rows = await Promise.all(pool.modalities.map(async (m) => unitRows(await pool.source(m).read(0, pool.rows), projection.dim)));
    return { pool, inputs: raw, geometry: { rows, dim: projection.dim }, stage1 };
  } catch (e) {
    await raw.close();
    throw e;
  }
}

function unitRows(x: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[o + j] * x[o + j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) out[o + j] = x[o + j] * inv;
  }
  return out;
}

/** The metrics of one cell (spec §7; see CellResult). */
function scoreCell(cell: CellSpec, picks: Int32Array, trained: TrainedModel, data: ExperimentData, plan: Plan, space: SelectionSpace, seconds: CellResult['seconds']): CellResult {
  const scores = classificationScores(data.testLabels, trained.pred, plan.classes);
  const { histogram, covered } = classHistogram(data.trainLabels, picks, plan.classes);
  const geometry = space.geometry ? pickGeometry(space.geometry.rows, space.geometry.dim, picks) : undefined;
  const perModality: Record<string, number> = {};
  for (const name of data.modalities) perModality[name] = classificationScores(data.testLabels, trained.perModality[name], plan.classes).accuracy;
  return {
    id: cell.id,
    arm: cell.arm,
    kind: cell.kind,
    strategy: cell.strategy,
    seed: cell.seed,
    round: cell.round,
    budget: cell.budget,
    picks: Array.from(picks, (p) => plan.trainRows[p]),
    accuracy: scores.accuracy,
    macroF1: scores.macroF1,
    recall: scores.recall,
    covered,
    histogram,
    gap: geometry ? geometry.gap : null,
    alignment: geometry ? geometry.alignment : null,
    perModality,
    seconds,
  };
}

/** Per arm: mean ± std over seeds at each budget, mean over budgets, AUC, gain over the random arm, rank. */
export function summarise(arms: Arm[], budgets: number[], seeds: number[], cells: Omit<CellResult, 'seconds'>[], logX: boolean, reference: string | null): ArmSummary[] {
  const at = (arm: string, budget: number) => cells.filter((c) => c.arm === arm && c.budget === budget);
  const perSeedMean = (arm: string) => seeds.map((s) => meanStd(cells.filter((c) => c.arm === arm && c.seed === s).map((c) => c.accuracy)).mean);
  const x = budgets.map((b) => (logX ? Math.log(b) : b));
  const summaries = arms.map((arm) => {
    const points: SummaryPoint[] = budgets.map((budget) => {
      const g = at(arm.key, budget);
      const spread = (f: (c: Omit<CellResult, 'seconds'>) => number) => meanStd(g.map(f));
      const hasGeometry = g.every((c) => c.gap !== null && c.alignment !== null);
      const modalities = Object.keys(g[0].perModality);
      return {
        budget,
        accuracy: spread((c) => c.accuracy),
        macroF1: spread((c) => c.macroF1),
        covered: spread((c) => c.covered),
        gap: hasGeometry ? spread((c) => c.gap!) : null,
        alignment: hasGeometry ? spread((c) => c.alignment!) : null,
        histogram: g[0].histogram.map((_, k) => meanStd(g.map((c) => c.histogram[k])).mean),
        perModality: Object.fromEntries(modalities.map((m) => [m, meanStd(g.map((c) => c.perModality[m])).mean])),
      };
    });
    let auc = points[0].accuracy.mean;
    if (budgets.length > 1) {
      auc = 0;
      for (let i = 1; i < budgets.length; i++) auc += ((points[i - 1].accuracy.mean + points[i].accuracy.mean) / 2) * (x[i] - x[i - 1]);
      auc /= x[x.length - 1] - x[0];
    }
    const mine = perSeedMean(arm.key);
    let gainOverRandom: Spread | null = null;
    if (reference) {
      const theirs = perSeedMean(reference);
      gainOverRandom = meanStd(mine.map((v, i) => v - theirs[i]));
    }
    return { arm: arm.key, label: arm.label, kind: arm.kind, strategy: arm.strategy, points, meanAccuracy: meanStd(mine), auc, gainOverRandom, rank: 0 };
  });
  // Ties keep the plan's order (a stable sort).
  [...summaries].sort((a, b) => b.auc - a.auc).forEach((s, i) => (s.rank = i + 1));
  return summaries;
}
