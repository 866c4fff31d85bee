// Pure-TypeScript selection ops: the same algorithms as native/core/select.cc (blocked reductions,
// the pruned greedy loop, the sampleSquared rule), written plainly. Values are rounded to float32
// at the same points as the native kernels (cosines, distances), so picks agree on separated data.
import { PairpickError } from '../../errors.js';
import { halfArrayToFloat } from '../../util/half.js';
import type { MatrixData } from '../ops-distance.js';
import {
  SAMPLE_BLOCK_ROWS,
  type GreedyConfig,
  type GreedyStepResult,
  type PairMetric,
  type PairReduction,
  type PrepareResult,
  type RowSet,
  type SelectionContext,
  type SelectOps,
  type SelectPoolSpec,
} from '../ops-select.js';

const fround = Math.fround;

// ---- triangle-inequality pruning of the greedy δ update (the same rule as native/core/select.cc) ----
// d(i,c) ≥ (d(s,c) − d(i,s)) / f for the centre s owning row i, where f = 1 for the euclidean form
// and f = 1 + γ(M−1) for the multimodal one (sum of uni-modal metrics plus cross terms bounded by
// them). Row i cannot get closer to the new centre c when d(s,c) ≥ (1+f)·δ(i) + margin, where the
// margin covers the float32 rounding of every distance involved, so pruning never changes a result.

/** Centres kept for pruning at most: beyond this the loop runs unpruned (brute force). */
export function pruneCenterCap(rows: number): number {
  return Math.max(256, Math.floor(rows / 4));
}
/** Memory for the centres' normalised rows at most (bytes). */
export const PRUNE_MAX_CENTER_BYTES = 64 * 2 ** 20;

export function pruneFactor(metric: PairMetric, modalities: number): number {
  return metric.form === 'multimodal' ? 1 + metric.gamma * (modalities - 1) : 1;
}

/** Worst-case absolute error of one float32 e(u,v) = sqrt(2 − 2⟨u,v⟩) for unit vectors of dim d. */
function unitDistanceError(dim: number): number {
  return Math.sqrt(2 * (dim + 8) * 2 ** -24) + 1e-6;
}

export function pruneMargin(metric: PairMetric, dims: readonly number[]): number {
  const f = pruneFactor(metric, dims.length);
  let eps: number;
  if (metric.form === 'multimodal') {
    eps = 0;
    for (const d of dims) eps += unitDistanceError(d) * (1 + metric.gamma * (dims.length - 1));
  } else {
    eps = Math.sqrt(2 * dims.reduce((s, d) => s + d + 8, 0) * 2 ** -24) + 1e-6;
  }
  return (2 + f) * eps;
}

function rowSetList(set: RowSet | undefined, rows: number): { count: number; at: (i: number) => number } {
  if (set === undefined) return { count: rows, at: (i) => i };
  if (set instanceof Int32Array) return { count: set.length, at: (i) => set[i] };
  const { start, count } = set;
  return { count, at: (i) => start + i };
}

class JsSelection implements SelectionContext {
  readonly rows: number;
  readonly dims: readonly number[];
  private readonly data: MatrixData[];
  private readonly m: number;
  private readonly offsets: number[];
  private readonly total: number;
  private readonly inv: Float32Array[];
  private readonly scratch: Float32Array[];
  private closed = false;

  // k-means centres
  private centroids = new Float32Array(0);
  private centroidNorms = new Float64Array(0);
  private k = 0;

  // greedy state
  private greedy:
    | {
        config: GreedyConfig;
        delta: Float32Array;
        owner: Int32Array;
        taken: Uint8Array;
        centers: Float64Array[];
        count: number;
        pruning: boolean;
        deltaMax: number;
        factor: number;
        margin: number;
      }
    | undefined;

  constructor(spec: SelectPoolSpec) {
    this.rows = spec.rows;
    this.m = spec.modalities.length;
    this.dims = spec.modalities.map((x) => x.dim);
    this.data = spec.modalities.map((x) => x.data);
    this.offsets = [];
    let off = 0;
    for (const d of this.dims) {
      this.offsets.push(off);
      off += d;
    }
    this.total = off;
    this.inv = this.dims.map(() => new Float32Array(this.rows));
    this.scratch = this.dims.map((d) => new Float32Array(d));
  }

  private check(): void {
    if (this.closed) throw new PairpickError('E_STATE', 'selection context used after close()');
  }

  /** Raw values of row i of modality m as fp32 (a view, or converted into a scratch buffer). */
  private raw(m: number, i: number, scratch: Float32Array = this.scratch[m]): Float32Array {
    const d = this.dims[m];
    const src = this.data[m];
    if (src instanceof Float32Array) return src.subarray(i * d, i * d + d);
    return halfArrayToFloat(src.subarray(i * d, i * d + d), scratch as Float32Array<ArrayBuffer>);
  }

  /** Normalised concatenated row u_i into out (float64). */
  private normalised(i: number, out: Float64Array): void {
    for (let m = 0; m < this.m; m++) {
      const x = this.raw(m, i);
      const s = this.inv[m][i];
      const o = this.offsets[m];
      for (let t = 0; t < x.length; t++) out[o + t] = fround(x[t] * s);
    }
  }

  /** cos[m*M+m'] = ⟨q^m, z_j^m'⟩ for the pairs the metric needs (q normalised, float64). */
  private cosines(q: Float64Array, j: number, cross: boolean, cos: Float64Array): void {
    const M = this.m;
    for (let mr = 0; mr < M; mr++) {
      const x = this.raw(mr, j);
      const s = this.inv[mr][j];
      for (let mq = 0; mq < M; mq++) {
        if (mq !== mr && !cross) continue;
        const o = this.offsets[mq];
        let acc = 0;
        for (let t = 0; t < x.length; t++) acc += q[o + t] * x[t];
        cos[mq * M + mr] = fround(acc * s);
      }
    }
  }

  private value(metric: PairMetric, cos: Float64Array): number {
    const M = this.m;
    if (metric.form === 'multimodal') {
      let uni = 0;
      let cross = 0;
      for (let a = 0; a < M; a++) {
        for (let b = 0; b < M; b++) {
          if (a !== b && metric.gamma === 0) continue;
          const e = fround(Math.sqrt(Math.max(0, fround(2 - 2 * cos[a * M + b]))));
          if (a === b) uni = fround(uni + e);
          else cross = fround(cross + e);
        }
      }
      return metric.gamma === 0 ? uni : fround(uni + fround(metric.gamma * cross));
    }
    let sum = 0;
    for (let a = 0; a < M; a++) sum = fround(sum + cos[a * M + a]);
    if (metric.form === 'euclidean') return fround(Math.sqrt(Math.max(0, fround(2 * M - 2 * sum))));
    return fround((1 + sum / M) / 2);
  }

  private selfValue(metric: PairMetric): number {
    return metric.form === 'similarity' ? 1 : 0;
  }

  /** Metric value between a normalised vector q (of global row qRow, −1 if none) and row j. */
  private pair(metric: PairMetric, q: Float64Array, qRow: number, j: number, cos: Float64Array): number {
    if (qRow === j) return this.selfValue(metric);
    this.cosines(q, j, metric.form === 'multimodal' && metric.gamma > 0, cos);
    return this.value(metric, cos);
  }

  async prepare(start: number, count: number): Promise<PrepareResult> {
    this.check();
    const M = this.m;
    const badRows = new Array<number>(M).fill(-1);
    const sums = new Float64Array(this.total);
    const sameDims = M >= 2 && this.dims.every((d) => d === this.dims[0]);
    const alignment = sameDims ? new Float32Array(count) : undefined;
    const u = new Float64Array(this.total);
    for (let r = 0; r < count; r++) {
      const i = start + r;
      for (let m = 0; m < M; m++) {
        const x = this.raw(m, i);
        let ss = 0;
        let finite = true;
        for (let t = 0; t < x.length; t++) {
          const v = x[t];
          if (v - v !== 0) finite = false;
          ss += v * v;
        }
        if (!finite && badRows[m] < 0) badRows[m] = i;
        this.inv[m][i] = finite && ss > 0 ? fround(1 / Math.sqrt(ss)) : 0;
      }
      this.normalised(i, u);
      for (let t = 0; t < this.total; t++) sums[t] += u[t];
      if (alignment) {
        const d = this.dims[0];
        let acc = 0;
        for (let a = 0; a < M; a++) {
          for (let b = a + 1; b < M; b++) {
            let dot = 0;
            for (let t = 0; t < d; t++) dot += u[a * d + t] * u[b * d + t];
            acc += fround(dot);
          }
        }
        alignment[r] = fround(acc / ((M * (M - 1)) / 2));
      }
    }
    return { badRows, alignment, sums };
  }

  async pairReduce(queries: RowSet, refs: RowSet | undefined, metric: PairMetric, reduction: PairReduction): Promise<Float64Array> {
    this.check();
    const Q = rowSetList(queries, this.rows);
    const R = rowSetList(refs, this.rows);
    const out = new Float64Array(Q.count);
    const q = new Float64Array(this.total);
    const cos = new Float64Array(this.m * this.m);
    const k = reduction.kind === 'knnMean' ? Math.max(1, reduction.k) : 0;
    const best = new Float64Array(k + 1);
    for (let a = 0; a < Q.count; a++) {
      const qi = Q.at(a);
      this.normalised(qi, q);
      switch (reduction.kind) {
        case 'knnMean': {
          let filled = 0;
          for (let b = 0; b < R.count; b++) {
            const j = R.at(b);
            if (j === qi) continue;
            const v = this.pair(metric, q, qi, j, cos);
            if (filled === k && v >= best[k - 1]) continue;
            let p = filled < k ? filled++ : k - 1;
            while (p > 0 && best[p - 1] > v) {
              best[p] = best[p - 1];
              p--;
            }
            best[p] = v;
          }
          let s = 0;
          for (let t = 0; t < filled; t++) s += best[t];
          out[a] = filled ? s / filled : Infinity;
          break;
        }
        case 'countWithin': {
          const mask = reduction.refMask;
          let n = 0;
          for (let b = 0; b < R.count; b++) {
            const j = R.at(b);
            if (mask && !mask[j]) continue;
            if (this.pair(metric, q, qi, j, cos) < reduction.radius) n++;
          }
          out[a] = n;
          break;
        }
        case 'minOtherLabel': {
          const labels = reduction.labels;
          let best1 = Infinity;
          for (let b = 0; b < R.count; b++) {
            const j = R.at(b);
            if (labels[j] === labels[qi]) continue;
            const v = this.pair(metric, q, qi, j, cos);
            if (v < best1) best1 = v;
          }
          out[a] = best1;
          break;
        }
        case 'max': {
          let best1 = -Infinity;
          for (let b = 0; b < R.count; b++) {
            const v = this.pair(metric, q, qi, R.at(b), cos);
            if (v > best1) best1 = v;
          }
          out[a] = best1;
          break;
        }
        case 'gain': {
          const cover = reduction.cover;
          let s = 0;
          for (let b = 0; b < R.count; b++) {
            const j = R.at(b);
            const g = this.pair(metric, q, qi, j, cos) - cover[j];
            if (g > 0) s += fround(g);
          }
          out[a] = s;
          break;
        }
        default:
          throw new PairpickError('E_INTERNAL', `unknown reduction ${(reduction as { kind: string }).kind}`);
      }
    }
    return out;
  }

  async distancesFrom(row: number, metric: PairMetric): Promise<Float32Array> {
    this.check();
    const q = new Float64Array(this.total);
    const cos = new Float64Array(this.m * this.m);
    this.normalised(row, q);
    const out = new Float32Array(this.rows);
    for (let j = 0; j < this.rows; j++) out[j] = this.pair(metric, q, row, j, cos);
    return out;
  }

  async gather(indices: Int32Array): Promise<Float32Array> {
    this.check();
    const out = new Float32Array(indices.length * this.total);
    const u = new Float64Array(this.total);
    for (let a = 0; a < indices.length; a++) {
      this.normalised(indices[a], u);
      out.set(u, a * this.total);
    }
    return out;
  }

  async setCentroids(centroids: Float32Array, k: number): Promise<void> {
    this.check();
    this.centroids = Float32Array.from(centroids.subarray(0, k * this.total));
    this.k = k;
    this.centroidNorms = new Float64Array(k);
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let t = 0; t < this.total; t++) s += this.centroids[c * this.total + t] ** 2;
      this.centroidNorms[c] = fround(s);
    }
  }

  async assign(start: number, count: number, labels: Int32Array, distances: Float32Array, sums: Float64Array, counts: Float64Array): Promise<number> {
    this.check();
    const D = this.total;
    const u = new Float64Array(D);
    let changed = 0;
    for (let r = 0; r < count; r++) {
      const i = start + r;
      this.normalised(i, u);
      let best = Infinity;
      let bestC = -1;
      for (let c = 0; c < this.k; c++) {
        let dot = 0;
        for (let t = 0; t < D; t++) dot += u[t] * this.centroids[c * D + t];
        const d = fround(Math.max(0, fround(fround(this.m - 2 * fround(dot)) + this.centroidNorms[c])));
        if (d < best) {
          best = d;
          bestC = c;
        }
      }
      if (labels[r] !== bestC) changed++;
      labels[r] = bestC;
      distances[r] = best;
      counts[bestC] += 1;
      for (let t = 0; t < D; t++) sums[bestC * D + t] += u[t];
    }
    return changed;
  }

  async greedyInit(config: GreedyConfig): Promise<void> {
    this.check();
    const delta = new Float32Array(this.rows).fill(Infinity);
    this.greedy = {
      config: { ...config },
      delta,
      owner: new Int32Array(this.rows).fill(-1),
      taken: Uint8Array.from(config.exclude),
      centers: [],
      count: 0,
      pruning: true,
      deltaMax: Infinity,
      factor: pruneFactor(config.metric, this.m),
      margin: pruneMargin(config.metric, this.dims),
    };
  }

  /** Adds row c as a centre: δ ← min(δ, d(·, c)) over rows not taken (pruned), then refreshes max δ. */
  private addCenter(c: number): void {
    const g = this.greedy!;
    const metric = g.config.metric;
    const cv = new Float64Array(this.total);
    this.normalised(c, cv);
    const cos = new Float64Array(this.m * this.m);
    g.taken[c] = 1;
    const id = g.count++;
    if (g.pruning && (id + 1 > pruneCenterCap(this.rows) || (id + 1) * this.total * 4 > PRUNE_MAX_CENTER_BYTES)) g.pruning = false;
    let cd: Float32Array | undefined;
    if (g.pruning) {
      cd = new Float32Array(id);
      for (let s = 0; s < id; s++) cd[s] = this.vecPair(metric, g.centers[s], cv, cos);
      g.centers.push(cv);
    }
    const { delta, owner, taken } = g;
    const slack = 1 + g.factor;
    for (let i = 0; i < this.rows; i++) {
      if (taken[i]) continue;
      if (cd && owner[i] >= 0 && cd[owner[i]] >= slack * delta[i] * (1 + 1e-5) + g.margin) continue;
      const v = this.pair(metric, cv, c, i, cos);
      if (v < delta[i]) {
        delta[i] = v;
        owner[i] = cd ? id : -1;
      }
    }
    this.refreshMax();
  }

  /** Metric value between two normalised vectors (centre to centre). */
  private vecPair(metric: PairMetric, a: Float64Array, b: Float64Array, cos: Float64Array): number {
    const M = this.m;
    const cross = metric.form === 'multimodal' && metric.gamma > 0;
    for (let x = 0; x < M; x++) {
      for (let y = 0; y < M; y++) {
        if (x !== y && !cross) continue;
        let acc = 0;
        const ox = this.offsets[x];
        const oy = this.offsets[y];
        for (let t = 0; t < this.dims[x]; t++) acc += a[ox + t] * b[oy + t];
        cos[x * M + y] = fround(acc);
      }
    }
    return this.value(metric, cos);
  }

  private refreshMax(): void {
    const g = this.greedy!;
    let mx = -Infinity;
    for (let i = 0; i < this.rows; i++) if (!g.taken[i] && g.delta[i] > mx) mx = g.delta[i];
    g.deltaMax = mx;
  }

  async greedyAddCenters(indices: Int32Array): Promise<void> {
    this.check();
    if (!this.greedy) throw new PairpickError('E_STATE', 'greedyAddCenters before greedyInit');
    for (const c of indices) this.addCenter(c);
  }

  private choose(uniform: number): number {
    const g = this.greedy!;
    const { delta, taken } = g;
    const base = g.config.base;
    if (g.config.mode === 'sampleSquared') return sampleSquared(delta, taken, uniform);
    let best = -1;
    let bestScore = -Infinity;
    const dmax = g.deltaMax;
    const useDiv = g.count > 0 && dmax > 0 && Number.isFinite(dmax);
    for (let i = 0; i < this.rows; i++) {
      if (taken[i]) continue;
      let s: number;
      if (base) {
        const dhat = useDiv ? delta[i] / dmax : 0;
        s = base[i] + g.config.wDiversity * dhat;
      } else {
        s = delta[i];
      }
      if (best < 0 || s > bestScore) {
        best = i;
        bestScore = s;
      }
    }
    return best;
  }

  async greedyStep(steps: number, uniforms?: Float64Array): Promise<GreedyStepResult> {
    this.check();
    const g = this.greedy;
    if (!g) throw new PairpickError('E_STATE', 'greedyStep before greedyInit');
    const picks: number[] = [];
    const div: number[] = [];
    const divMax: number[] = [];
    for (let t = 0; t < steps; t++) {
      const p = this.choose(uniforms ? uniforms[t] : 0);
      if (p < 0) break;
      picks.push(p);
      div.push(g.delta[p]);
      divMax.push(g.deltaMax);
      this.addCenter(p);
    }
    return { picks: Int32Array.from(picks), diversity: Float32Array.from(div), diversityMax: Float32Array.from(divMax) };
  }

  close(): void {
    this.closed = true;
    this.greedy = undefined;
  }
}

/** The sampleSquared rule of SelectionContext.greedyStep (the native kernels follow it exactly). */
export function sampleSquared(delta: Float32Array, taken: Uint8Array, uniform: number): number {
  const n = delta.length;
  const blocks = Math.ceil(n / SAMPLE_BLOCK_ROWS);
  const blockSums = new Float64Array(blocks);
  let first = -1;
  let lastPositive = -1;
  for (let b = 0; b < blocks; b++) {
    let s = 0;
    const end = Math.min(n, (b + 1) * SAMPLE_BLOCK_ROWS);
    for (let i = b * SAMPLE_BLOCK_ROWS; i < end; i++) {
      if (taken[i]) continue;
      if (first < 0) first = i;
      const d = delta[i];
      if (d > 0) lastPositive = i;
      s += d * d;
    }
    blockSums[b] = s;
  }
  let total = 0;
  for (let b = 0; b < blocks; b++) total += blockSums[b];
  if (first < 0) return -1;
  if (!(total > 0) || !Number.isFinite(total)) return first;
  const target = uniform * total;
  let acc = 0;
  let b = 0;
  for (; b < blocks; b++) {
    if (acc + blockSums[b] > target) break;
    acc += blockSums[b];
  }
  if (b === blocks) return lastPositive;
  let lastInBlock = -1;
  const end = Math.min(n, (b + 1) * SAMPLE_BLOCK_ROWS);
  for (let i = b * SAMPLE_BLOCK_ROWS; i < end; i++) {
    if (taken[i]) continue;
    const d = delta[i];
    if (d > 0) lastInBlock = i;
    acc += d * d;
    if (acc > target) return i;
  }
  return lastInBlock >= 0 ? lastInBlock : lastPositive;
}

export const jsSelectOps: SelectOps = {
  async openSelection(spec: SelectPoolSpec): Promise<SelectionContext> {
    return new JsSelection(spec);
  },
};
