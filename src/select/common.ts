// What every strategy driver shares: the opened pool (a SelectionContext with inverse norms
// computed), the labelled set, cancellation, progress, and adaptive chunking of backend calls.
import type { Backend } from '../backend/index.js';
import type { MatrixData } from '../backend/ops-distance.js';
import type { PairMetric, PairReduction, RowSet, SelectionContext } from '../backend/ops-select.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import type { EmbeddingSource } from '../io/types.js';
import type { Classifier } from '../train/types.js';

/** Euclidean distance on the concatenated normalised rows u (k-center, k-means, TypiClust, ProbCover). */
export const EUCLIDEAN: PairMetric = { form: 'euclidean', gamma: 0 };
/** Similarity (1 + cos) / 2 on u (facility location). */
export const SIMILARITY: PairMetric = { form: 'similarity', gamma: 0 };

/** What selection reads from a pool: its modalities in order and one source per modality. */
export interface PoolLike {
  readonly rows: number;
  readonly modalities: readonly string[];
  source(name: string): EmbeddingSource;
}

/** Progress of a selection. */
export interface SelectProgress {
  /** `prepare` = norms and NaN scan, `density` = kNN density, `kmeans` = clustering, `radius` =
   * ProbCover's automatic radius, `coverage` = initial coverage counts/gains, `select` = picking. */
  phase: 'prepare' | 'density' | 'kmeans' | 'radius' | 'coverage' | 'select';
  /** Units done and their total in this phase (rows, iterations or picks). */
  done: number;
  total: number;
  /** Overall progress in [0, 1]. */
  fraction: number;
}

/** Relative weights of a strategy's phases (for the overall fraction). */
export type PhaseWeights = Partial<Record<SelectProgress['phase'], number>>;

/** What every strategy gets: the pool's shape, the labelled set, the seed, cancellation and progress. */
export interface RunBase {
  /** The pool being selected from (warm strategies run their classifier over it). */
  pool: PoolLike;
  /** The backend select() resolved (a strategy with readsPool: false opens what it needs on it). */
  backend: Backend;
  /** The trained classifier of a strategy that declares `model` (checked against the pool). */
  model?: Classifier;
  rows: number;
  dims: number[];
  modalities: readonly string[];
  /** Sorted labelled indices and their mask (1 = labelled). */
  labeled: Int32Array;
  labeledMask: Uint8Array;
  seed: number;
  signal?: AbortSignal;
  /** Reports progress; `phaseFraction` (default done / total) is the share of the phase's work
   * done, when units of work differ in cost. */
  report(phase: SelectProgress['phase'], done: number, total: number, phaseFraction?: number): void;
  /**
   * Re-plans the relative cost of the phases still to come (once the driver can estimate them
   * from the pool), keeping the overall fraction already reported: later reports share what is
   * left of the bar in proportion to `work`, so the fraction (and an ETA drawn from it) follows
   * the time.
   */
  plan(work: PhaseWeights): void;
  /** Throws E_ABORTED when the signal fired. */
  checkAbort(): void;
  /** Throws E_IO when a file the run reads through a zero-copy view was truncated or rewritten
   * meanwhile (its pages would have read as zeros): call before handing out results. */
  checkSources(): void;
}

/** A strategy that reads the embeddings also gets the pool opened (and prepared) on the backend. */
export interface Run extends RunBase {
  ctx: SelectionContext;
  /** Σ dims (length of a concatenated row u). */
  total: number;
  /** a(i) for every row, when defined (≥ 2 modalities of one dimension). */
  alignment?: Float32Array;
  /** Σ_i u_i (float64), for the pool mean. */
  sums: Float64Array;
}

/** Work budget of one backend call, in multiply-adds: keeps each call around 50–100 ms. */
export function callBudget(backend: Backend): number {
  return backend.name === 'cuda' ? 4e12 : backend.name === 'cpu' ? 2e9 : 4e7;
}

/**
 * Runs `fn(start, count)` over [0, total) in chunks, starting at `initial` items and adapting the
 * size to keep each call near `targetMs`; checks the signal and reports after every call.
 */
export async function inChunks(
  run: Pick<Run, 'checkAbort'>,
  total: number,
  initial: number,
  fn: (start: number, count: number) => Promise<void>,
  onDone?: (done: number) => void,
  targetMs = 80,
): Promise<void> {
  let size = Math.max(1, Math.min(total, Math.floor(initial)));
  for (let start = 0; start < total; ) {
    // Let timers and signal handlers (an abort, Ctrl-C) run between calls: the js backend's ops
    // complete synchronously, so without this nothing else would get a turn until the end.
    await new Promise<void>((resolve) => setImmediate(resolve));
    run.checkAbort();
    const count = Math.min(size, total - start);
    const t0 = performance.now();
    await fn(start, count);
    const ms = performance.now() - t0;
    start += count;
    onDone?.(start);
    if (ms < targetMs / 2) size = Math.min(size * 2, Math.max(size, Math.floor((size * targetMs) / Math.max(ms, 1))));
    else if (ms > targetMs * 2) size = Math.max(1, Math.floor(size / 2));
  }
}

/**
 * A pairwise reduction for every query of `queries` (a range or index list), chunked. `onDone`
 * gets the queries done, their total and the share of the pass's work done (which differs from
 * done / total on a symmetric kNN pass, where the first queries cost the most).
 */
export async function reduceAll(
  run: Run,
  queries: RowSet,
  refs: RowSet | undefined,
  metric: PairMetric,
  reduction: PairReduction,
  onDone?: (done: number, total: number, workFraction: number) => void,
): Promise<Float64Array> {
  const nq = queries instanceof Int32Array ? queries.length : queries.count;
  const nr = refs === undefined ? run.rows : refs instanceof Int32Array ? refs.length : refs.count;
  const work = (s: number) => pairsComputed(run, queries, refs, reduction, s);
  const out = new Float64Array(nq);
  const perQuery = Math.max(1, nr * pairCost(run, metric));
  await inChunks(
    run,
    nq,
    Math.max(1, callBudget(run.backend) / perQuery),
    async (start, count) => {
      const q: RowSet = queries instanceof Int32Array ? queries.subarray(start, start + count) : { start: queries.start + start, count };
      out.set(await run.ctx.pairReduce(q, refs, metric, reduction), start);
    },
    (done) => onDone?.(done, nq, nq > 0 ? work(done) / work(nq) : 1),
  );
  return out;
}

/**
 * Pairs of rows a reduceAll pass has computed once its first `s` queries are done: s · refs, or
 * Σ_{i<s} (N − i) on an engine that runs a whole-pool kNN pass symmetrically (each pair once).
 */
export function pairsComputed(run: Pick<Run, 'rows' | 'ctx'>, queries: RowSet, refs: RowSet | undefined, reduction: PairReduction, s: number): number {
  const nr = refs === undefined ? run.rows : refs instanceof Int32Array ? refs.length : refs.count;
  const symmetric =
    reduction.kind === 'knnMean' &&
    refs === undefined &&
    !(queries instanceof Int32Array) &&
    queries.start === 0 &&
    queries.count === run.rows &&
    run.ctx.symmetricKnn?.(reduction.k) === true;
  return symmetric ? s * nr - (s * (s - 1)) / 2 : s * nr;
}

/** Multiply-adds per pair of rows for a metric. */
export function pairCost(run: Pick<Run, 'dims'>, metric: PairMetric): number {
  const sum = run.dims.reduce((s, d) => s + d, 0);
  return metric.form === 'multimodal' && metric.gamma > 0 ? sum * run.dims.length : sum;
}

/** Indices of the rows not labelled (the candidate pool), ascending. */
export function candidates(run: Pick<RunBase, 'rows' | 'labeled' | 'labeledMask'>): Int32Array {
  const out = new Int32Array(run.rows - run.labeled.length);
  let n = 0;
  for (let i = 0; i < run.rows; i++) if (!run.labeledMask[i]) out[n++] = i;
  return out;
}

/** Whole-pool data of a source: a zero-copy view when the source offers one, else a copy read in chunks. */
async function wholeData(source: EmbeddingSource, rows: number, run: Pick<Run, 'checkAbort'>): Promise<MatrixData> {
  const view = source.view?.(0, rows);
  if (view && view.length === rows * source.dim) return view;
  const out = new Float32Array(rows * source.dim);
  const step = Math.max(1, Math.floor((1 << 22) / Math.max(1, source.dim)));
  for (let start = 0; start < rows; start += step) {
    run.checkAbort();
    const count = Math.min(step, rows - start);
    out.set(await source.read(start, count), start * source.dim);
  }
  return out;
}

export interface RunBaseOptions {
  backend: Backend;
  model?: Classifier;
  labeled: Int32Array;
  seed: number;
  signal?: AbortSignal;
  onProgress?: (p: SelectProgress) => void;
  weights: PhaseWeights;
  where: string;
}

export type OpenRunOptions = RunBaseOptions;

/** The run of a strategy that does not read the embeddings: the pool's shape, labelled set, progress. */
export function runBase(pool: PoolLike, o: RunBaseOptions): RunBase {
  const rows = pool.rows;
  const labeledMask = new Uint8Array(rows);
  for (const i of o.labeled) labeledMask[i] = 1;

  const order: SelectProgress['phase'][] = ['prepare', 'radius', 'kmeans', 'density', 'coverage', 'select'];
  const weights = { prepare: 1, ...o.weights };
  const checkAbort = () => throwIfAborted(o.signal, o.where);
  // The bar from `base` to 1 is shared by the phases in proportion to `shares` (set by plan()).
  let base = 0;
  let shares: PhaseWeights = weights;
  let reached = 0;
  const report = (phase: SelectProgress['phase'], done: number, total: number, phaseFraction?: number) => {
    if (!o.onProgress) return;
    let before = 0;
    let sum = 0;
    for (const p of order) {
      if (p === phase) before = sum;
      sum += shares[p] ?? 0;
    }
    const f = Math.min(1, phaseFraction ?? (total > 0 ? done / total : 1));
    const within = sum > 0 ? (before + (shares[phase] ?? 0) * f) / sum : 1;
    reached = Math.max(reached, Math.min(1, base + (1 - base) * within));
    o.onProgress({ phase, done, total, fraction: reached });
  };
  const plan = (work: PhaseWeights) => {
    base = reached;
    shares = work;
  };
  return {
    pool,
    backend: o.backend,
    model: o.model,
    rows,
    dims: pool.modalities.map((n) => pool.source(n).dim),
    modalities: pool.modalities,
    labeled: o.labeled,
    labeledMask,
    seed: o.seed,
    signal: o.signal,
    report,
    plan,
    checkAbort,
    checkSources: () => pool.modalities.forEach((n) => pool.source(n).checkIntact?.()),
  };
}

/** Opens the pool on the backend and prepares it (norms, NaN scan, alignment, sums). */
export async function openRun(pool: PoolLike, o: OpenRunOptions): Promise<Run> {
  const rows = pool.rows;
  const names = pool.modalities;
  const sources = names.map((n) => pool.source(n));
  sources.forEach((s, m) => {
    if (s.rows !== rows) throw new PairpickError('E_SHAPE', `${o.where}: modality '${names[m]}' has ${s.rows} rows, the pool has ${rows}`);
  });
  const base = runBase(pool, o);
  const { dims, checkAbort } = base;

  checkAbort();
  const data: MatrixData[] = [];
  for (const s of sources) data.push(await wholeData(s, rows, { checkAbort }));
  const ctx = await o.backend.openSelection({ rows, modalities: data.map((d, m) => ({ data: d, dim: dims[m] })) });
  const total = dims.reduce((s, d) => s + d, 0);
  const run: Run = { ...base, ctx, backend: o.backend, total, sums: new Float64Array(total) };
  try {
    const sameDims = dims.length >= 2 && dims.every((d) => d === dims[0]);
    const alignment = sameDims ? new Float32Array(rows) : undefined;
    await inChunks(
      run,
      rows,
      Math.max(1, callBudget(o.backend) / 8 / Math.max(1, total)),
      async (start, count) => {
        const r = await ctx.prepare(start, count);
        r.badRows.forEach((bad, m) => {
          if (bad >= 0) {
            throw new PairpickError('E_NAN', `${o.where}: modality '${names[m]}' (${sources[m].name}) has NaN or ±Inf in row ${bad}`);
          }
        });
        if (alignment && r.alignment) alignment.set(r.alignment, start);
        for (let t = 0; t < total; t++) run.sums[t] += r.sums[t];
      },
      (done) => run.report('prepare', done, rows),
    );
    run.alignment = alignment;
  } catch (e) {
    ctx.close();
    throw e;
  }
  return run;
}

/** Min–max normalisation to [0, 1] over the candidates (0 where max = min); other rows get 0. */
export function minMaxOverCandidates(values: ArrayLike<number>, mask: Uint8Array): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (mask[i]) continue;
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Float32Array(values.length);
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return out;
  for (let i = 0; i < values.length; i++) if (!mask[i]) out[i] = (values[i] - lo) / span;
  return out;
}

/** Index of the largest value among rows with mask 0 (lowest index on ties), −1 if none. */
export function argmaxUnmasked(values: ArrayLike<number>, mask: Uint8Array): number {
  let best = -1;
  let bestV = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (mask[i]) continue;
    if (best < 0 || values[i] > bestV) {
      best = i;
      bestV = values[i];
    }
  }
  return best;
}

/** Picks made by the backend's greedy loop, in order, with δ and max δ at pick time. */
export interface GreedyPicks {
  picks: Int32Array;
  diversity: Float32Array;
  diversityMax: Float32Array;
}

/** Adds centres to the greedy state (labelled rows, a first pick) in bounded calls. */
export async function addCenters(run: Run, indices: Int32Array, metric: PairMetric): Promise<void> {
  const perCenter = Math.max(1, run.rows * pairCost(run, metric));
  await inChunks(run, indices.length, Math.max(1, callBudget(run.backend) / perCenter), async (start, count) => {
    await run.ctx.greedyAddCenters(indices.subarray(start, start + count));
  });
}

/**
 * Runs up to `count` greedy picks on the backend, a bounded number per call (the loop itself stays
 * on the backend: on CUDA each call performs many picks without returning to the host).
 */
export async function greedyPicks(
  run: Run,
  count: number,
  metric: PairMetric,
  opts: { uniforms?: Float64Array; phase?: SelectProgress['phase']; reportTotal?: number; reportOffset?: number } = {},
): Promise<GreedyPicks> {
  const picks = new Int32Array(count);
  const diversity = new Float32Array(count);
  const diversityMax = new Float32Array(count);
  let made = 0;
  const perPick = Math.max(1, run.rows * pairCost(run, metric));
  const phase = opts.phase ?? 'select';
  const total = opts.reportTotal ?? count;
  const offset = opts.reportOffset ?? 0;
  let stopped = false;
  await inChunks(
    run,
    count,
    Math.max(1, Math.min(64, callBudget(run.backend) / perPick)),
    async (start, n) => {
      if (stopped) return;
      const r = await run.ctx.greedyStep(n, opts.uniforms?.subarray(start, start + n));
      picks.set(r.picks, made);
      diversity.set(r.diversity, made);
      diversityMax.set(r.diversityMax, made);
      made += r.picks.length;
      if (r.picks.length < n) stopped = true;
    },
    (done) => run.report(phase, offset + Math.min(done, made), total),
  );
  return { picks: picks.slice(0, made), diversity: diversity.slice(0, made), diversityMax: diversityMax.slice(0, made) };
}

/** A binary heap ordered by `before(a, b)` (true when a comes out first). */
export class Heap<T> {
  private items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  peek(): T | undefined {
    return this.items[0];
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l], a[m])) m = l;
        if (r < a.length && this.before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
