// Float64 reference of the selection strategies, written straight from spec/methods.md §2–3 with
// full distance matrices (small pools only). Random choices consume the seeded Rng in the order
// src/select documents: k-means++ = rng.int(N) for the first centre then one rng.next() per further
// centre (cumulative D² in row order, first row whose running sum exceeds u·ΣD²); random picks and
// ProbCover's tail = partial Fisher–Yates over the remaining rows in ascending order.
import { Rng } from '../../src/util/rng.js';

export interface RefPool {
  rows: number;
  /** Per modality rows × dim values (float32 or float64). */
  data: ArrayLike<number>[];
  dims: number[];
}

/** z_i^m as float64 (zero rows stay zero). */
export function normalisedRows(pool: RefPool): Float64Array[][] {
  return pool.data.map((x, m) => {
    const d = pool.dims[m];
    const out: Float64Array[] = [];
    for (let i = 0; i < pool.rows; i++) {
      const r = new Float64Array(d);
      let s = 0;
      for (let t = 0; t < d; t++) {
        r[t] = x[i * d + t];
        s += r[t] * r[t];
      }
      const n = Math.sqrt(s);
      if (n > 0) for (let t = 0; t < d; t++) r[t] /= n;
      out.push(r);
    }
    return out;
  });
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let t = 0; t < a.length; t++) s += a[t] * b[t];
  return s;
}

/** e(u,v) = sqrt(max(0, 2 − 2⟨u,v⟩)) (spec §2). */
function e(u: Float64Array, v: Float64Array): number {
  return Math.sqrt(Math.max(0, 2 - 2 * dot(u, v)));
}

export class RefSpace {
  readonly z: Float64Array[][];
  /** u_i = [z_i^1; …; z_i^M]. */
  readonly u: Float64Array[];
  readonly rows: number;
  readonly M: number;
  constructor(readonly pool: RefPool) {
    this.z = normalisedRows(pool);
    this.rows = pool.rows;
    this.M = pool.data.length;
    this.u = [];
    for (let i = 0; i < pool.rows; i++) {
      const parts = this.z.map((zm) => zm[i]);
      const u = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        u.set(p, o);
        o += p.length;
      }
      this.u.push(u);
    }
  }

  /** d(i,j) = Σ_m e(z_i^m, z_j^m) + γ Σ_{m≠m'} e(z_i^m, z_j^m'); 0 for i = j. */
  multimodal(i: number, j: number, gamma: number): number {
    if (i === j) return 0;
    let uni = 0;
    let cross = 0;
    for (let a = 0; a < this.M; a++) {
      uni += e(this.z[a][i], this.z[a][j]);
      if (gamma > 0) for (let b = 0; b < this.M; b++) if (b !== a) cross += e(this.z[a][i], this.z[b][j]);
    }
    return uni + gamma * cross;
  }

  euclidean(i: number, j: number): number {
    if (i === j) return 0;
    let s = 0;
    const a = this.u[i];
    const b = this.u[j];
    for (let t = 0; t < a.length; t++) s += (a[t] - b[t]) ** 2;
    return Math.sqrt(s);
  }

  /** (1 + cos(u_i, u_j)) / 2. */
  similarity(i: number, j: number): number {
    if (i === j) return 1;
    const na = Math.sqrt(dot(this.u[i], this.u[i]));
    const nb = Math.sqrt(dot(this.u[j], this.u[j]));
    const cos = na > 0 && nb > 0 ? dot(this.u[i], this.u[j]) / (na * nb) : 0;
    return (1 + cos) / 2;
  }

  /** a(i): mean over unordered modality pairs of ⟨z_i^m, z_i^m'⟩. */
  alignment(i: number): number {
    let s = 0;
    let n = 0;
    for (let a = 0; a < this.M; a++) {
      for (let b = a + 1; b < this.M; b++) {
        s += dot(this.z[a][i], this.z[b][i]);
        n++;
      }
    }
    return s / n;
  }
}

function argmax(values: ArrayLike<number>, skip: (i: number) => boolean): number {
  let best = -1;
  for (let i = 0; i < values.length; i++) {
    if (skip(i)) continue;
    if (best < 0 || values[i] > values[best]) best = i;
  }
  return best;
}

function minMax(values: number[], isCandidate: (i: number) => boolean): number[] {
  let lo = Infinity;
  let hi = -Infinity;
  values.forEach((v, i) => {
    if (!isCandidate(i)) return;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  });
  return values.map((v) => (hi > lo ? (v - lo) / (hi - lo) : 0));
}

export interface RefMmcsal {
  k: number;
  gamma: number;
  lambdaAlign: number;
  wDensity: number;
  wDiversity: number;
  densitySample?: number;
  seed?: number;
}

/** MMCSAL stage 2 (§3.1). Returns picks and, per pick, ρ̂, δ̂, â. */
export function refMmcsal(s: RefSpace, budget: number, labeled: number[], o: RefMmcsal) {
  const N = s.rows;
  const L = new Set(labeled);
  const cand = (i: number) => !L.has(i);
  let refs: number[] = [...Array(N).keys()];
  if (o.densitySample !== undefined && o.densitySample < N) {
    refs = Array.from(new Rng(o.seed ?? 0).permutation(N).subarray(0, o.densitySample)).sort((a, b) => a - b);
  }
  const rho: number[] = [];
  for (let i = 0; i < N; i++) {
    const d = refs.filter((j) => j !== i).map((j) => s.multimodal(i, j, o.gamma));
    d.sort((a, b) => a - b);
    const k = Math.min(o.k, Math.max(1, refs.length - 1), d.length);
    const mean = d.slice(0, k).reduce((a, b) => a + b, 0) / k;
    rho.push(1 / mean);
  }
  const rhoHat = minMax(rho, cand);
  const alignHat = o.lambdaAlign !== 0 ? minMax([...Array(N).keys()].map((i) => s.alignment(i)), cand) : new Array(N).fill(0);
  const delta = new Array(N).fill(Infinity);
  for (const l of labeled) for (let i = 0; i < N; i++) delta[i] = Math.min(delta[i], s.multimodal(i, l, o.gamma));
  const taken = new Set(labeled);
  const picks: number[] = [];
  const comp = { density: [] as number[], diversity: [] as number[], alignment: [] as number[] };
  for (let t = 0; t < budget; t++) {
    const empty = taken.size === 0;
    let dmax = -Infinity;
    for (let i = 0; i < N; i++) if (!taken.has(i)) dmax = Math.max(dmax, delta[i]);
    const dhat = (i: number) => (empty || !(dmax > 0) ? 0 : delta[i] / dmax);
    const score = [...Array(N).keys()].map((i) => o.wDensity * rhoHat[i] + o.wDiversity * dhat(i) + o.lambdaAlign * alignHat[i]);
    const p = argmax(score, (i) => taken.has(i));
    picks.push(p);
    comp.density.push(rhoHat[p]);
    comp.diversity.push(dhat(p));
    comp.alignment.push(alignHat[p]);
    taken.add(p);
    for (let i = 0; i < N; i++) delta[i] = Math.min(delta[i], s.multimodal(i, p, o.gamma));
  }
  return { picks, components: comp };
}

/** k-center greedy (§3.2). */
export function refKcenter(s: RefSpace, budget: number, labeled: number[]): number[] {
  const N = s.rows;
  const taken = new Set(labeled);
  const picks: number[] = [];
  const minDist = new Array(N).fill(Infinity);
  const add = (c: number) => {
    taken.add(c);
    for (let i = 0; i < N; i++) minDist[i] = Math.min(minDist[i], s.euclidean(i, c));
  };
  for (const l of labeled) add(l);
  if (labeled.length === 0) {
    const mean = new Float64Array(s.u[0].length);
    for (const u of s.u) for (let t = 0; t < mean.length; t++) mean[t] += u[t] / N;
    let best = -1;
    let bestD = Infinity;
    for (let i = 0; i < N; i++) {
      let d = 0;
      for (let t = 0; t < mean.length; t++) d += (s.u[i][t] - mean[t]) ** 2;
      if (d < bestD) {
        bestD = d;
        best = i;
      }
    }
    picks.push(best);
    add(best);
  }
  while (picks.length < budget) {
    const p = argmax(minDist, (i) => taken.has(i));
    picks.push(p);
    add(p);
  }
  return picks;
}

function sqDist(a: Float64Array, b: Float64Array): number {
  let d = 0;
  for (let t = 0; t < a.length; t++) d += (a[t] - b[t]) ** 2;
  return d;
}

/** k-means (§3.3): k-means++ seeding then Lloyd; returns labels and squared distances to the final centres. */
export function refKmeansCluster(s: RefSpace, k: number, seed: number) {
  const N = s.rows;
  const rng = new Rng(seed);
  const chosen = [rng.int(N)];
  const isChosen = new Set(chosen);
  const d2 = new Array(N).fill(Infinity);
  const update = (c: number) => {
    for (let i = 0; i < N; i++) d2[i] = Math.min(d2[i], s.euclidean(i, c) ** 2);
  };
  update(chosen[0]);
  while (chosen.length < k) {
    const u = rng.next();
    let total = 0;
    for (let i = 0; i < N; i++) if (!isChosen.has(i)) total += d2[i];
    const target = u * total;
    let acc = 0;
    let pick = -1;
    for (let i = 0; i < N; i++) {
      if (isChosen.has(i)) continue;
      acc += d2[i];
      if (acc > target) {
        pick = i;
        break;
      }
    }
    chosen.push(pick);
    isChosen.add(pick);
    update(pick);
  }
  let centres = chosen.map((i) => Float64Array.from(s.u[i]));
  const labels = new Int32Array(N).fill(-1);
  const dist = new Float64Array(N);
  for (let it = 0; it < 100; it++) {
    let changed = 0;
    for (let i = 0; i < N; i++) {
      let best = -1;
      let bestD = Infinity;
      centres.forEach((c, j) => {
        const d = sqDist(s.u[i], c);
        if (d < bestD) {
          bestD = d;
          best = j;
        }
      });
      if (labels[i] !== best) changed++;
      labels[i] = best;
      dist[i] = bestD;
    }
    if (changed === 0 || it === 99) break;
    const sums = centres.map((c) => new Float64Array(c.length));
    const counts = new Array(k).fill(0);
    for (let i = 0; i < N; i++) {
      counts[labels[i]]++;
      for (let t = 0; t < sums[0].length; t++) sums[labels[i]][t] += s.u[i][t];
    }
    const far = [...Array(N).keys()].sort((a, b) => dist[b] - dist[a] || a - b);
    let f = 0;
    centres = sums.map((sum, j) => (counts[j] ? sum.map((v) => v / counts[j]) : Float64Array.from(s.u[far[f++]])));
  }
  return { labels, dist };
}

/** Ascending by key, with keys within a relative 1e-5 of the previous one treated as ties (lowest index first). */
function rankWithTies(rows: number[], key: (i: number) => number): number[] {
  const out = [...rows].sort((a, b) => key(a) - key(b) || a - b);
  const result: number[] = [];
  for (let lo = 0; lo < out.length; ) {
    let hi = lo + 1;
    while (hi < out.length && key(out[hi]) - key(out[hi - 1]) <= 1e-5 * (1 + Math.abs(key(out[hi - 1])))) hi++;
    result.push(...out.slice(lo, hi).sort((a, b) => a - b));
    lo = hi;
  }
  return result;
}

/** One pick per cluster by priority (fewest labelled/picked members, largest, lowest id), best member by `better`. */
function perCluster(N: number, labels: Int32Array, k: number, budget: number, labeled: number[], order: (members: number[]) => number[]): number[] {
  const members: number[][] = Array.from({ length: k }, () => []);
  for (let i = 0; i < N; i++) members[labels[i]].push(i);
  const taken = new Array(k).fill(0);
  for (const l of labeled) taken[labels[l]]++;
  const L = new Set(labeled);
  const ranked = members.map((m) => (m.length ? order(m) : []));
  const used = new Set<number>();
  const picks: number[] = [];
  while (picks.length < budget) {
    const open = [...Array(k).keys()].filter((c) => ranked[c].some((i) => !L.has(i) && !used.has(i)));
    if (!open.length) break;
    open.sort((a, b) => taken[a] - taken[b] || members[b].length - members[a].length || a - b);
    const c = open[0];
    const i = ranked[c].find((x) => !L.has(x) && !used.has(x))!;
    picks.push(i);
    used.add(i);
    taken[c]++;
  }
  return picks;
}

export function refKmeans(s: RefSpace, budget: number, labeled: number[], seed: number): number[] {
  const k = labeled.length + budget;
  const { labels, dist } = refKmeansCluster(s, k, seed);
  return perCluster(s.rows, labels, k, budget, labeled, (m) => rankWithTies(m, (i) => dist[i]));
}

export function refTypiclust(s: RefSpace, budget: number, labeled: number[], seed: number): number[] {
  const k = labeled.length + budget;
  const { labels } = refKmeansCluster(s, k, seed);
  return perCluster(s.rows, labels, k, budget, labeled, (m) => {
    if (m.length < 2) return [...m];
    const nn = Math.min(20, m.length - 1);
    const typ = new Map<number, number>();
    for (const i of m) {
      const d = m.filter((j) => j !== i).map((j) => s.euclidean(i, j)).sort((a, b) => a - b);
      typ.set(i, 1 / (d.slice(0, nn).reduce((a, b) => a + b, 0) / nn));
    }
    return rankWithTies(m, (i) => 1 / typ.get(i)!);
  });
}

/** ProbCover's automatic radius (largest δ on the 0.01 grid with ≥ 95% pure balls). */
export function refProbcoverRadius(s: RefSpace, budget: number, seed: number): number {
  const { labels } = refKmeansCluster(s, budget, seed);
  const N = s.rows;
  const purity = (delta: number) => {
    let pure = 0;
    for (let i = 0; i < N; i++) {
      let ok = true;
      for (let j = 0; j < N && ok; j++) if (labels[j] !== labels[i] && s.euclidean(i, j) < delta) ok = false;
      if (ok) pure++;
    }
    return pure / N;
  };
  const max = Math.floor((2 * Math.sqrt(s.M)) / 0.01);
  for (let g = max; g >= 1; g--) if (purity(g * 0.01) >= 0.95) return g * 0.01;
  return 0.01;
}

export function refProbcover(s: RefSpace, budget: number, labeled: number[], radius: number, seed: number): number[] {
  const N = s.rows;
  const covered = new Array(N).fill(false);
  const taken = new Set(labeled);
  const cover = (c: number) => {
    for (let j = 0; j < N; j++) if (s.euclidean(c, j) < radius) covered[j] = true;
  };
  labeled.forEach(cover);
  const picks: number[] = [];
  while (picks.length < budget) {
    const gain = [...Array(N).keys()].map((i) => {
      let n = 0;
      for (let j = 0; j < N; j++) if (!covered[j] && s.euclidean(i, j) < radius) n++;
      return n;
    });
    const p = argmax(gain, (i) => taken.has(i));
    if (gain[p] === 0) break;
    picks.push(p);
    taken.add(p);
    cover(p);
  }
  const rest = [...Array(N).keys()].filter((i) => !taken.has(i));
  const rng = new Rng(seed);
  for (let t = 0; picks.length < budget; t++) {
    const j = t + rng.int(rest.length - t);
    [rest[t], rest[j]] = [rest[j], rest[t]];
    picks.push(rest[t]);
  }
  return picks;
}

/** Facility location, plain greedy on F(S) = Σ_i max_{s ∈ S ∪ L} sim(i, s) (what lazy greedy computes exactly). */
export function refFacility(s: RefSpace, budget: number, labeled: number[]): number[] {
  const N = s.rows;
  const cur = new Array(N).fill(0);
  for (const l of labeled) for (let i = 0; i < N; i++) cur[i] = Math.max(cur[i], s.similarity(i, l));
  const taken = new Set(labeled);
  const picks: number[] = [];
  while (picks.length < budget) {
    const gain = [...Array(N).keys()].map((c) => {
      let g = 0;
      for (let i = 0; i < N; i++) g += Math.max(0, s.similarity(i, c) - cur[i]);
      return g;
    });
    const p = tiedArgmax(gain, (i) => taken.has(i));
    picks.push(p);
    taken.add(p);
    for (let i = 0; i < N; i++) cur[i] = Math.max(cur[i], s.similarity(i, p));
  }
  return picks;
}

/** Lowest index among the values within 1e-5·max + 1e-6 of the max (facility gains tie structurally). */
function tiedArgmax(values: number[], skip: (i: number) => boolean): number {
  let max = -Infinity;
  values.forEach((v, i) => {
    if (!skip(i)) max = Math.max(max, v);
  });
  return values.findIndex((v, i) => !skip(i) && v >= max - (1e-5 * Math.abs(max) + 1e-6));
}

/** Stochastic greedy with the documented sampling: partial Fisher–Yates over the remaining rows. */
export function refFacilityStochastic(s: RefSpace, budget: number, labeled: number[], seed: number): number[] {
  const N = s.rows;
  const L = new Set(labeled);
  const cur = new Array(N).fill(0);
  for (const l of labeled) for (let i = 0; i < N; i++) cur[i] = Math.max(cur[i], s.similarity(i, l));
  const rest = [...Array(N).keys()].filter((i) => !L.has(i));
  let remaining = rest.length;
  const size = Math.max(1, Math.ceil((N / budget) * Math.log(100)));
  const rng = new Rng(seed);
  const picks: number[] = [];
  for (let n = 0; n < budget; n++) {
    const m = Math.min(size, remaining);
    for (let t = 0; t < m; t++) {
      const j = t + rng.int(remaining - t);
      [rest[t], rest[j]] = [rest[j], rest[t]];
    }
    const sample = rest.slice(0, m);
    const gains = sample.map((c) => {
      let g = 0;
      for (let i = 0; i < N; i++) g += Math.max(0, s.similarity(i, c) - cur[i]);
      return g;
    });
    const max = Math.max(...gains);
    let best = -1;
    for (let t = 0; t < m; t++) if (gains[t] >= max - (1e-5 * Math.abs(max) + 1e-6) && (best < 0 || sample[t] < sample[best])) best = t;
    const p = sample[best];
    picks.push(p);
    rest[best] = rest[remaining - 1];
    rest[remaining - 1] = p;
    remaining--;
    for (let i = 0; i < N; i++) cur[i] = Math.max(cur[i], s.similarity(i, p));
  }
  return picks;
}

export function refRandom(rows: number, budget: number, labeled: number[], seed: number): number[] {
  const L = new Set(labeled);
  const rest = [...Array(rows).keys()].filter((i) => !L.has(i));
  const rng = new Rng(seed);
  for (let t = 0; t < budget; t++) {
    const j = t + rng.int(rest.length - t);
    [rest[t], rest[j]] = [rest[j], rest[t]];
  }
  return rest.slice(0, budget);
}
