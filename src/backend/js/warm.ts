// Warm-start ops in plain TypeScript (src/backend/ops-warm.ts): the gradient-embedding store and
// its k-means++ seeding. The native kernels (native/core/warm.cc) follow these loops exactly:
// float32 storage, float64 dot products, the same pruning test and the same draw.
import { PairpickError } from '../../errors.js';
import {
  GRADIENT_SAMPLE_BLOCK_ROWS,
  MAX_BALANCE_BLOCKS,
  type GradientContext,
  type GradientLoadResult,
  type GradientSampleResult,
  type GradientSpec,
  type WarmOps,
} from '../ops-warm.js';

/** Shapley weight |T|!(K−|T|−1)!/K! of a subset of `size` blocks out of K. */
export function shapleyWeight(size: number, blocks: number): number {
  const f = (n: number): number => (n <= 1 ? 1 : n * f(n - 1));
  return (f(size) * f(blocks - size - 1)) / f(blocks);
}

/**
 * Relative margin of the pruning test: a row is skipped only when a lower bound of its new D²
 * exceeds its running minimum by more than the float64 rounding of the full computation could
 * move it (≪ 1e-10 of ‖g_i‖² + ‖g_c‖²), so pruned and unpruned passes keep identical minima.
 */
export const PRUNE_RELATIVE_MARGIN = 1e-10;

class JsGradient implements GradientContext {
  readonly rows: number;
  private readonly C: number;
  private readonly K: number;
  private readonly bd: number;
  private readonly F: number;
  private readonly r: Float32Array;
  private readonly x: Float32Array;
  private readonly norm2: Float64Array;
  /** ‖x̂_i‖ (float64), for the pruning bound. */
  private readonly xnorm: Float64Array;
  private nonnegative = true;
  private readonly mind: Float64Array;
  private readonly taken: Uint8Array;
  private readonly blocks: number;
  private readonly blockSums: Float64Array;
  private readonly firstIn: Int32Array;
  private readonly lastPositiveIn: Int32Array;
  private centres = 0;
  private closed = false;

  constructor(private readonly spec: GradientSpec) {
    this.rows = spec.rows;
    this.C = spec.classes;
    this.K = spec.blocks;
    this.bd = spec.blockDim;
    this.F = this.K * this.bd;
    if (spec.balance && this.K > MAX_BALANCE_BLOCKS) {
      throw new PairpickError('E_OPTION', `gradient embedding: modality balance is exact over all subsets for at most ${MAX_BALANCE_BLOCKS} modalities (got ${this.K})`);
    }
    this.r = new Float32Array(this.rows * this.C);
    this.x = new Float32Array(this.rows * this.F);
    this.norm2 = new Float64Array(this.rows);
    this.xnorm = new Float64Array(this.rows);
    this.mind = new Float64Array(this.rows);
    this.taken = new Uint8Array(this.rows);
    this.blocks = Math.ceil(this.rows / GRADIENT_SAMPLE_BLOCK_ROWS);
    this.blockSums = new Float64Array(this.blocks);
    this.firstIn = new Int32Array(this.blocks);
    this.lastPositiveIn = new Int32Array(this.blocks);
  }

  private check(): void {
    if (this.closed) throw new PairpickError('E_STATE', 'gradient context used after close()');
  }

  async load(start: number, count: number, features: Float32Array[]): Promise<GradientLoadResult> {
    this.check();
    const { C, K, bd, F } = this;
    const { weight, bias, balance } = this.spec;
    const pred = new Int32Array(count);
    const norm2 = new Float64Array(count);
    const contributions = balance ? new Float32Array(count * K) : undefined;
    const scales = balance ? new Float32Array(count * K) : undefined;
    const z = new Float64Array(K * C); // per-block partial logits W_k x^k
    const logits = new Float64Array(C);
    const subsets = 1 << K;
    const v = new Float64Array(subsets);
    const phi = new Float64Array(K);
    const s = new Float32Array(K);
    for (let i = 0; i < count; i++) {
      const g = start + i;
      for (let k = 0; k < K; k++) {
        const xk = features[k];
        for (let c = 0; c < C; c++) {
          let acc = 0;
          const w = c * F + k * bd;
          for (let j = 0; j < bd; j++) acc += weight[w + j] * xk[i * bd + j];
          z[k * C + c] = Math.fround(acc);
        }
      }
      let yhat = 0;
      for (let c = 0; c < C; c++) {
        let l = bias[c];
        for (let k = 0; k < K; k++) l += z[k * C + c];
        logits[c] = l;
        if (l > logits[yhat]) yhat = c;
      }
      pred[i] = yhat;
      const p = softmaxInto(logits, C);
      let rr = 0;
      for (let c = 0; c < C; c++) {
        const rc = Math.fround(p[c] - (c === yhat ? 1 : 0));
        this.r[g * C + c] = rc;
        rr += rc * rc;
      }
      s.fill(1);
      if (balance) {
        for (let t = 0; t < subsets; t++) {
          for (let c = 0; c < C; c++) {
            let l = bias[c];
            for (let k = 0; k < K; k++) if (t & (1 << k)) l += z[k * C + c];
            logits[c] = l;
          }
          v[t] = softmaxInto(logits, C)[yhat];
        }
        let total = 0;
        for (let k = 0; k < K; k++) {
          let f = 0;
          for (let t = 0; t < subsets; t++) {
            if (t & (1 << k)) continue;
            f += shapleyWeight(popcount(t), K) * (v[t | (1 << k)] - v[t]);
          }
          phi[k] = Math.abs(f);
          total += phi[k];
        }
        let cmax = -Infinity;
        for (let k = 0; k < K; k++) {
          const c = total > 0 ? phi[k] / total : 1 / K;
          contributions![i * K + k] = c;
          if (c > cmax) cmax = c;
          phi[k] = c;
        }
        for (let k = 0; k < K; k++) {
          s[k] = 1 - (cmax - phi[k]);
          scales![i * K + k] = s[k];
        }
      }
      let xx = 0;
      for (let k = 0; k < K; k++) {
        const xk = features[k];
        for (let j = 0; j < bd; j++) {
          const val = Math.fround(s[k] * xk[i * bd + j]);
          this.x[g * F + k * bd + j] = val;
          xx += val * val;
          if (val < 0) this.nonnegative = false;
        }
      }
      norm2[i] = Number.isFinite(logits[yhat]) && Number.isFinite(rr) ? rr * xx : NaN;
      this.norm2[g] = norm2[i];
      this.xnorm[g] = Math.sqrt(xx);
    }
    return { pred, norm2, ...(balance && { contributions, scales }) };
  }

  private dot(i: number, j: number): number {
    const { C, F, r, x } = this;
    return dotLanes(r, i * C, r, j * C, C) * dotLanes(x, i * F, x, j * F, F);
  }

  async dots(a: Int32Array, b: Int32Array): Promise<Float64Array> {
    this.check();
    const out = new Float64Array(a.length);
    for (let t = 0; t < a.length; t++) out[t] = this.dot(a[t], b[t]);
    return out;
  }

  async sampleInit(exclude: Uint8Array): Promise<void> {
    this.check();
    this.taken.set(exclude.subarray(0, this.rows));
    this.mind.fill(Infinity);
    this.centres = 0;
  }

  async sampleStep(steps: number, uniforms: Float64Array): Promise<GradientSampleResult> {
    this.check();
    const picks = new Int32Array(steps);
    const distance2 = new Float64Array(steps);
    let made = 0;
    for (let t = 0; t < steps; t++) {
      const pick = this.centres === 0 ? this.largestNorm() : this.draw(uniforms[t]);
      if (pick < 0) break;
      picks[made] = pick;
      distance2[made] = this.mind[pick];
      made++;
      this.taken[pick] = 1;
      this.update(pick);
      this.centres++;
    }
    return { picks: picks.slice(0, made), distance2: distance2.slice(0, made) };
  }

  private largestNorm(): number {
    let best = -1;
    for (let i = 0; i < this.rows; i++) {
      if (this.taken[i]) continue;
      if (best < 0 || this.norm2[i] > this.norm2[best]) best = i;
    }
    return best;
  }

  /** D²(i) ← min(D²(i), ‖g_i − g_c‖²) for every candidate, block sums rebuilt on the way. */
  private update(c: number): void {
    const { C, F, r, x, norm2, xnorm, mind, taken } = this;
    const nc = norm2[c];
    const xc = xnorm[c];
    for (let b = 0; b < this.blocks; b++) {
      let sum = 0;
      let first = -1;
      let lastPositive = -1;
      const end = Math.min(this.rows, (b + 1) * GRADIENT_SAMPLE_BLOCK_ROWS);
      for (let i = b * GRADIENT_SAMPLE_BLOCK_ROWS; i < end; i++) {
        if (taken[i]) continue;
        if (first < 0) first = i;
        const a = dotLanes(r, i * C, r, c * C, C);
        const scale = norm2[i] + nc;
        const bound = scale - 2 * (this.nonnegative ? Math.max(a, 0) : Math.abs(a)) * xnorm[i] * xc;
        if (!(bound - PRUNE_RELATIVE_MARGIN * scale > mind[i])) {
          const dotx = dotLanes(x, i * F, x, c * F, F);
          let d = scale - 2 * a * dotx;
          if (d < 0) d = 0;
          if (d < mind[i]) mind[i] = d;
        }
        if (mind[i] > 0) lastPositive = i;
        sum += mind[i];
      }
      this.blockSums[b] = sum;
      this.firstIn[b] = first;
      this.lastPositiveIn[b] = lastPositive;
    }
  }

  private draw(uniform: number): number {
    const { blocks, blockSums, mind, taken } = this;
    let first = -1;
    let lastPositive = -1;
    let total = 0;
    for (let b = 0; b < blocks; b++) {
      if (first < 0) first = this.firstIn[b];
      if (this.lastPositiveIn[b] >= 0) lastPositive = this.lastPositiveIn[b];
      total += blockSums[b];
    }
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
    const end = Math.min(this.rows, (b + 1) * GRADIENT_SAMPLE_BLOCK_ROWS);
    for (let i = b * GRADIENT_SAMPLE_BLOCK_ROWS; i < end; i++) {
      if (taken[i]) continue;
      if (mind[i] > 0) lastInBlock = i;
      acc += mind[i];
      if (acc > target) return i;
    }
    return lastInBlock >= 0 ? lastInBlock : lastPositive;
  }

  close(): void {
    this.closed = true;
  }
}

/**
 * ⟨a[ao …], b[bo …]⟩ over n values in float64, element j in lane j mod 8, lanes summed as
 * ((0+1)+(2+3))+((4+5)+(6+7)) — the order the native kernels use (a float32 product is exact in
 * float64, so their fused multiply-adds round the same), so both give the same bits.
 */
export function dotLanes(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let l0 = 0, l1 = 0, l2 = 0, l3 = 0, l4 = 0, l5 = 0, l6 = 0, l7 = 0;
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    l0 += a[ao + j] * b[bo + j];
    l1 += a[ao + j + 1] * b[bo + j + 1];
    l2 += a[ao + j + 2] * b[bo + j + 2];
    l3 += a[ao + j + 3] * b[bo + j + 3];
    l4 += a[ao + j + 4] * b[bo + j + 4];
    l5 += a[ao + j + 5] * b[bo + j + 5];
    l6 += a[ao + j + 6] * b[bo + j + 6];
    l7 += a[ao + j + 7] * b[bo + j + 7];
  }
  for (let t = 0; j < n; j++, t++) {
    const p = a[ao + j] * b[bo + j];
    if (t === 0) l0 += p;
    else if (t === 1) l1 += p;
    else if (t === 2) l2 += p;
    else if (t === 3) l3 += p;
    else if (t === 4) l4 += p;
    else if (t === 5) l5 += p;
    else l6 += p;
  }
  return l0 + l1 + (l2 + l3) + (l4 + l5 + (l6 + l7));
}

/** softmax of v[0 … n) in float64 (max subtracted), written into a fresh array. */
function softmaxInto(v: Float64Array, n: number): Float64Array {
  let m = -Infinity;
  for (let c = 0; c < n; c++) if (v[c] > m) m = v[c];
  const out = new Float64Array(n);
  let sum = 0;
  for (let c = 0; c < n; c++) {
    out[c] = Math.exp(v[c] - m);
    sum += out[c];
  }
  for (let c = 0; c < n; c++) out[c] /= sum;
  return out;
}

function popcount(t: number): number {
  let n = 0;
  for (; t; t &= t - 1) n++;
  return n;
}

export const jsWarmOps: WarmOps = {
  async openGradient(spec: GradientSpec): Promise<GradientContext> {
    return new JsGradient(spec);
  },
};
