// Float64 reference of the selection strategies, written straight from spec/methods.md §2–3 with
// full distance tables (small pools only). Random choices consume the seeded Rng in the order
// src/select documents: k-means++ = rng.int(N) for the first centre then one rng.next() per further
// centre (cumulative D² in row order, first row whose running sum exceeds u·ΣD²), greedy k-means++
// the same with 2 + ⌊ln k⌋ draws per further centre; random picks and
// ProbCover's tail = partial Fisher–Yates over the remaining rows in ascending order.
//
// Knife edges. The backends compute every distance in float32, so a decision between two values
// closer than their rounding errors (a near-tie in an argmax, a distance next to a radius, a
// k-means++ draw next to a cumulative boundary) may go either way on a backend, and backends may
// legitimately disagree there. Next to each exact value the reference therefore carries a bound on
// the float32 error of the backends' value of it (Float32Errors, derived below), propagates these
// as intervals through min / max / k-NN means / normalisations, and reports to a `Margins` every
// decision whose outcome the intervals do not settle. Tests draw their inputs until no decision is
// that close (`drawClear`), so an exact comparison of picks is meaningful on every seed.
import { Rng } from '../../src/util/rng.js';

export interface RefPool {
  rows: number;
  /** Per modality rows × dim values (float32 or float64). */
  data: ArrayLike<number>[];
  dims: number[];
}

/** Unit roundoff of float32. */
export const U32 = 2 ** -24;
/** Relative slack for float64 sums and quotients the backends do in double (N ≤ 10⁴ terms). */
const F64_SLACK = 1e-12;

/**
 * Worst-case absolute errors of the float32 values the backends (js, cpu, cuda) compute from
 * float32 rows, with u = 2⁻²⁴, modality dims d_m, D = Σ d_m, M modalities:
 * * z = fl(x·fl(1/‖x‖)) has relative error ≤ 2u per component, so a cosine ⟨z_i^a, z_j^b⟩ (a float32
 *   dot of d terms with Σ|z||z'| ≤ 1, or a double dot rounded once) is off by ≤ (d + 4)u + u;
 *   we use (d + 8)u.
 * * e = fl(√max(0, fl(2 − 2c))): the argument is off by δx ≤ 2·(d + 8)u + 4u, and
 *   |√(x + δ) − √x| ≤ min(√δ, δ/√x); the final rounding adds ≤ u·e ≤ 2u.
 * * Euclidean on u = [z^1; …; z^M]: 2M − 2Σ_m cos_m, from per-modality cosines (float32 sum) or one
 *   dot over D terms with Σ|u||u'| ≤ M: δx ≤ 2M(D + 8)u + (4M + M²)u; rounding of e ≤ 2√M·u.
 * * similarity (1 + Σcos/M)/2: ≤ (M(D + 8) + M²)u / (2M) + u.
 * * k-means ‖u − c‖² as fl(fl(M − 2⟨u,c⟩) + fl(‖c‖²)) with ‖c‖ ≤ √M: the dot is off by ≤ (D + 6)u·M,
 *   each of the two roundings by ≤ u·4M, and the backend's centre (float32 mean of its rounded rows)
 *   differs from the exact one by ≤ 3u·√M, moving ‖u − c‖² by ≤ 12Mu: in all ≤ (2D + 32)·M·u.
 * * alignment: a mean of float32-rounded double dots: ≤ (d + 9)u.
 * Multimodal distances add their terms' bounds plus (M² + 2)u·d for the float32 accumulations.
 * Each bound of a distance is a non-increasing function of the exact value, so a min, a max or an
 * order statistic of computed values lies between that of the lower and of the upper bounds.
 */
export class Float32Errors {
  readonly M: number;
  readonly D: number;
  /** `inputError`: a further bound on every similarity, for rows the engine derived from the
   * pool's values before the backend saw them (standardised input features, rounded to float32). */
  constructor(
    readonly dims: readonly number[],
    readonly inputError = 0,
  ) {
    this.M = dims.length;
    this.D = dims.reduce((s, d) => s + d, 0);
  }

  cosine(d: number): number {
    return (d + 8) * U32;
  }

  unitDistance(e: number, d: number): number {
    const dx = 2 * this.cosine(d) + 4 * U32;
    return Math.min(Math.sqrt(dx), dx / e) + 2 * U32;
  }

  euclidean(e: number): number {
    const { M, D } = this;
    const dx = (2 * M * (D + 8) + 4 * M + M * M) * U32;
    return Math.min(Math.sqrt(dx), dx / e) + 2 * Math.sqrt(M) * U32;
  }

  similarity(): number {
    const { M, D } = this;
    return ((M * (D + 8) + M * M) / (2 * M) + 1) * U32 + this.inputError;
  }

  centreSquared(): number {
    return (2 * this.D + 32) * this.M * U32;
  }

  alignment(d: number): number {
    return (d + 9) * U32;
  }
}

/**
 * The decisions of a reference run that float32 rounding could settle either way. A run is
 * `clear` when there are none: then every backend must make exactly the reference's choices.
 */
export class Margins {
  count = 0;
  private readonly examples: string[] = [];

  get clear(): boolean {
    return this.count === 0;
  }

  close(what: string): void {
    this.count++;
    if (this.examples.length < 4) this.examples.push(what);
  }

  describe(): string {
    return this.count ? `${this.count} knife-edge decision(s), e.g. ${this.examples.join('; ')}` : 'no knife-edge decision';
  }

  /**
   * argmax over candidates (lowest index on exact ties) of values known within [lo, hi]: the
   * winner is certain when its lower bound beats every other candidate's upper bound.
   */
  argmax(lo: ArrayLike<number>, hi: ArrayLike<number>, best: number, isCandidate: (i: number) => boolean, what: string): void {
    let rival = -1;
    for (let i = 0; i < lo.length; i++) if (i !== best && isCandidate(i) && (rival < 0 || hi[i] > hi[rival])) rival = i;
    if (rival >= 0 && !(lo[best] > hi[rival])) this.close(`${what}: ${best} [${lo[best]}, ${hi[best]}] vs ${rival} [${lo[rival]}, ${hi[rival]}]`);
  }

  argmin(lo: ArrayLike<number>, hi: ArrayLike<number>, best: number, isCandidate: (i: number) => boolean, what: string): void {
    let rival = -1;
    for (let i = 0; i < lo.length; i++) if (i !== best && isCandidate(i) && (rival < 0 || lo[i] < lo[rival])) rival = i;
    if (rival >= 0 && !(hi[best] < lo[rival])) this.close(`${what}: ${best} [${lo[best]}, ${hi[best]}] vs ${rival} [${lo[rival]}, ${hi[rival]}]`);
  }

  /** `value < limit` for a value known within [lo, hi]. */
  below(lo: number, hi: number, limit: number, what: string): void {
    if (!(hi < limit || lo >= limit)) this.close(`${what}: [${lo}, ${hi}] against ${limit}`);
  }
}

/** What `drawClear` returns: the accepted input, its reference result, and how many draws it took. */
export interface ClearDraw<T, R> {
  input: T;
  ref: R;
  draws: number;
}

/**
 * Draws inputs from `rng` until the reference run on them has no knife-edge decision (see the
 * header). With continuous random data a draw is rejected only occasionally, so `attempts`
 * failures in a row mean a broken generator or error model: that throws, naming the decisions.
 */
export function drawClear<T, R>(rng: Rng, draw: (rng: Rng) => T, reference: (input: T, margins: Margins) => R, attempts = 30): ClearDraw<T, R> {
  let last = '';
  for (let n = 1; n <= attempts; n++) {
    const input = draw(rng);
    const margins = new Margins();
    const ref = reference(input, margins);
    if (margins.clear) return { input, ref, draws: n };
    last = margins.describe();
  }
  throw new Error(`no input clear of knife edges in ${attempts} draws; the last had ${last}`);
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

/** A symmetric table of pair values and the float32 error bound of each (row-major N × N). */
interface PairTable {
  value: Float64Array;
  err: Float64Array;
}

export class RefSpace {
  readonly z: Float64Array[][];
  /** u_i = [z_i^1; …; z_i^M]. */
  readonly u: Float64Array[];
  readonly rows: number;
  readonly M: number;
  readonly errors: Float32Errors;
  private readonly tables = new Map<string, PairTable>();

  constructor(
    readonly pool: RefPool,
    inputError = 0,
  ) {
    this.z = normalisedRows(pool);
    this.rows = pool.rows;
    this.M = pool.data.length;
    this.errors = new Float32Errors(pool.dims, inputError);
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
    return this.multimodalWithError(i, j, gamma)[0];
  }

  /** d(i,j) and the bound on its float32 error (0 for i = j: every backend returns exactly 0). */
  multimodalWithError(i: number, j: number, gamma: number): [number, number] {
    if (i === j) return [0, 0];
    let uni = 0;
    let cross = 0;
    let err = 0;
    for (let a = 0; a < this.M; a++) {
      const da = this.pool.dims[a];
      const ea = e(this.z[a][i], this.z[a][j]);
      uni += ea;
      err += this.errors.unitDistance(ea, da);
      if (gamma > 0) {
        for (let b = 0; b < this.M; b++) {
          if (b === a) continue;
          const eab = e(this.z[a][i], this.z[b][j]);
          cross += eab;
          err += gamma * this.errors.unitDistance(eab, da);
        }
      }
    }
    const value = uni + gamma * cross;
    return [value, err + (this.M * this.M + 2) * U32 * value];
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

  private table(key: string, pair: (i: number, j: number) => [number, number]): PairTable {
    let t = this.tables.get(key);
    if (!t) {
      const N = this.rows;
      t = { value: new Float64Array(N * N), err: new Float64Array(N * N) };
      for (let i = 0; i < N; i++) {
        for (let j = i + 1; j < N; j++) {
          const [v, r] = pair(i, j);
          t.value[i * N + j] = t.value[j * N + i] = v;
          t.err[i * N + j] = t.err[j * N + i] = r;
        }
        [t.value[i * N + i], t.err[i * N + i]] = pair(i, i);
      }
      this.tables.set(key, t);
    }
    return t;
  }

  /** All pairs under the multimodal distance (spec §2; symmetric for the metric's own terms). */
  multimodalTable(gamma: number): PairTable {
    return this.table(`multimodal:${gamma}`, (i, j) => this.multimodalWithError(i, j, gamma));
  }

  euclideanTable(): PairTable {
    return this.table('euclidean', (i, j) => {
      const v = this.euclidean(i, j);
      return [v, i === j ? 0 : this.errors.euclidean(v)];
    });
  }

  similarityTable(): PairTable {
    return this.table('similarity', (i, j) => [this.similarity(i, j), i === j ? 0 : this.errors.similarity()]);
  }
}

/** min–max normalisation to [0, 1] over the candidates (0 where max = min), with bounds. */
function minMax(values: ArrayLike<number>, lo: ArrayLike<number>, hi: ArrayLike<number>, isCandidate: (i: number) => boolean) {
  const N = values.length;
  let vMin = Infinity;
  let vMax = -Infinity;
  let minLo = Infinity;
  let minHi = Infinity;
  let maxLo = -Infinity;
  let maxHi = -Infinity;
  for (let i = 0; i < N; i++) {
    if (!isCandidate(i)) continue;
    vMin = Math.min(vMin, values[i]);
    vMax = Math.max(vMax, values[i]);
    minLo = Math.min(minLo, lo[i]);
    minHi = Math.min(minHi, hi[i]);
    maxLo = Math.max(maxLo, lo[i]);
    maxHi = Math.max(maxHi, hi[i]);
  }
  const value = new Float64Array(N);
  const outLo = new Float64Array(N);
  const outHi = new Float64Array(N);
  if (!(vMax > vMin)) return { value, lo: outLo, hi: outHi.fill(maxHi > minLo ? 1 : 0) };
  const spanLo = maxLo - minHi;
  const spanHi = maxHi - minLo;
  for (let i = 0; i < N; i++) {
    if (!isCandidate(i)) continue;
    value[i] = (values[i] - vMin) / (vMax - vMin);
    // The backends' value is (ρ̃ − min ρ̃)/(max ρ̃ − min ρ̃) ∈ [0, 1], rounded to float32.
    outLo[i] = spanLo > 0 ? Math.max(0, (lo[i] - minHi) / spanHi) * (1 - 2 * U32) : 0;
    outHi[i] = spanLo > 0 ? Math.min(1, Math.max(0, hi[i] - minLo) / spanLo) * (1 + 2 * U32) : 1;
  }
  return { value, lo: outLo, hi: outHi };
}

/** Mean of the k smallest values of `v` (ascending sort of a copy). */
function meanOfSmallest(v: Float64Array, k: number): number {
  const s = Float64Array.from(v).sort();
  let sum = 0;
  for (let t = 0; t < k; t++) sum += s[t];
  return sum / k;
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

/** A per-pick term with the interval its float32 value must lie in. */
export interface Bounded {
  value: number[];
  lo: number[];
  hi: number[];
}

/** MMCSAL stage 2 (§3.1). Returns picks and, per pick, ρ̂, δ̂, â with their float32 bounds. */
export function refMmcsal(s: RefSpace, budget: number, labeled: number[], o: RefMmcsal, margins = new Margins()) {
  const N = s.rows;
  const L = new Set(labeled);
  const cand = (i: number) => !L.has(i);
  const table = s.multimodalTable(o.gamma);
  let refs: number[] = [...Array(N).keys()];
  if (o.densitySample !== undefined && o.densitySample < N) {
    refs = Array.from(new Rng(o.seed ?? 0).permutation(N).subarray(0, o.densitySample)).sort((a, b) => a - b);
  }
  // ρ(i) = 1 / mean of the k smallest d(i, j), j ∈ refs \ {i}; stored as float32 by the backends.
  const rho = new Float64Array(N);
  const rhoLo = new Float64Array(N);
  const rhoHi = new Float64Array(N);
  if (o.wDensity !== 0) {
    for (let i = 0; i < N; i++) {
      const others = refs.filter((j) => j !== i);
      const k = Math.min(o.k, Math.max(1, refs.length - 1), others.length);
      const v = Float64Array.from(others, (j) => table.value[i * N + j]);
      const r = Float64Array.from(others, (j) => table.err[i * N + j]);
      const mean = meanOfSmallest(v, k);
      const meanLo = meanOfSmallest(v.map((x, t) => x - r[t]), k) * (1 - F64_SLACK);
      const meanHi = meanOfSmallest(v.map((x, t) => x + r[t]), k) * (1 + F64_SLACK);
      rho[i] = 1 / mean;
      rhoLo[i] = (1 / meanHi) * (1 - U32);
      rhoHi[i] = (1 / Math.max(meanLo, 1e-12)) * (1 + U32);
    }
  }
  const rhoHat = o.wDensity !== 0 ? minMax(rho, rhoLo, rhoHi, cand) : { value: rho, lo: rhoLo, hi: rhoHi };
  let alignHat = { value: new Float64Array(N), lo: new Float64Array(N), hi: new Float64Array(N) };
  if (o.lambdaAlign !== 0) {
    const a = Float64Array.from({ length: N }, (_, i) => s.alignment(i));
    const ra = s.errors.alignment(s.pool.dims[0]);
    alignHat = minMax(
      a,
      a.map((x) => x - ra),
      a.map((x) => x + ra),
      cand,
    );
  }
  // base = w_ρ·ρ̂ + λ·â, stored as float32.
  const scaled = (w: number, lo: number, hi: number): [number, number] => (w >= 0 ? [w * lo, w * hi] : [w * hi, w * lo]);
  const base = new Float64Array(N);
  const baseLo = new Float64Array(N);
  const baseHi = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    base[i] = o.wDensity * rhoHat.value[i] + o.lambdaAlign * alignHat.value[i];
    const [d0, d1] = scaled(o.wDensity, rhoHat.lo[i], rhoHat.hi[i]);
    const [a0, a1] = scaled(o.lambdaAlign, alignHat.lo[i], alignHat.hi[i]);
    baseLo[i] = d0 + a0 - 2 * U32 * Math.abs(base[i]) - 1e-300;
    baseHi[i] = d1 + a1 + 2 * U32 * Math.abs(base[i]) + 1e-300;
  }
  // δ(i) = min over S ∪ L of d(i, ·), with its bounds (a min of computed values).
  const delta = new Float64Array(N).fill(Infinity);
  const deltaLo = new Float64Array(N).fill(Infinity);
  const deltaHi = new Float64Array(N).fill(Infinity);
  const addCentre = (c: number) => {
    for (let i = 0; i < N; i++) {
      const v = table.value[i * N + c];
      const r = table.err[i * N + c];
      delta[i] = Math.min(delta[i], v);
      deltaLo[i] = Math.min(deltaLo[i], v - r);
      deltaHi[i] = Math.min(deltaHi[i], v + r);
    }
  };
  for (const l of labeled) addCentre(l);
  const taken = new Set(labeled);
  const picks: number[] = [];
  const components = {
    density: { value: [], lo: [], hi: [] } as Bounded,
    diversity: { value: [], lo: [], hi: [] } as Bounded,
    alignment: { value: [], lo: [], hi: [] } as Bounded,
  };
  const score = new Float64Array(N);
  const scoreLo = new Float64Array(N);
  const scoreHi = new Float64Array(N);
  const dhat = new Float64Array(N);
  const dhatLo = new Float64Array(N);
  const dhatHi = new Float64Array(N);
  for (let t = 0; t < budget; t++) {
    const empty = taken.size === 0;
    let dmax = -Infinity;
    let dmaxLo = -Infinity;
    let dmaxHi = -Infinity;
    for (let i = 0; i < N; i++) {
      if (taken.has(i)) continue;
      dmax = Math.max(dmax, delta[i]);
      dmaxLo = Math.max(dmaxLo, deltaLo[i]);
      dmaxHi = Math.max(dmaxHi, deltaHi[i]);
    }
    const useDiversity = !empty && dmax > 0;
    if (useDiversity && !(dmaxLo > 0)) margins.close(`mmcsal step ${t}: max δ [${dmaxLo}, ${dmaxHi}] may be 0`);
    for (let i = 0; i < N; i++) {
      if (taken.has(i)) continue;
      dhat[i] = useDiversity ? delta[i] / dmax : 0;
      dhatLo[i] = useDiversity ? (Math.max(0, deltaLo[i]) / dmaxHi) * (1 - F64_SLACK) : 0;
      dhatHi[i] = useDiversity ? (deltaHi[i] / Math.max(dmaxLo, 1e-300)) * (1 + F64_SLACK) : 0;
      score[i] = base[i] + o.wDiversity * dhat[i];
      const [v0, v1] = scaled(o.wDiversity, dhatLo[i], dhatHi[i]);
      scoreLo[i] = baseLo[i] + v0 - F64_SLACK * Math.abs(score[i]);
      scoreHi[i] = baseHi[i] + v1 + F64_SLACK * Math.abs(score[i]);
    }
    const p = argmax(score, (i) => taken.has(i));
    margins.argmax(scoreLo, scoreHi, p, (i) => !taken.has(i), `mmcsal pick ${t}`);
    picks.push(p);
    const push = (b: Bounded, v: number, lo: number, hi: number) => {
      b.value.push(v);
      b.lo.push(lo);
      b.hi.push(hi);
    };
    push(components.density, rhoHat.value[p], rhoHat.lo[p], rhoHat.hi[p]);
    push(components.diversity, dhat[p], dhatLo[p] * (1 - 2 * U32), dhatHi[p] * (1 + 2 * U32)); // reported as float32
    push(components.alignment, alignHat.value[p], alignHat.lo[p], alignHat.hi[p]);
    taken.add(p);
    addCentre(p);
  }
  return { picks, components };
}

function argmax(values: ArrayLike<number>, skip: (i: number) => boolean): number {
  let best = -1;
  for (let i = 0; i < values.length; i++) {
    if (skip(i)) continue;
    if (best < 0 || values[i] > values[best]) best = i;
  }
  return best;
}

/** k-center greedy (§3.2). */
export function refKcenter(s: RefSpace, budget: number, labeled: number[], margins = new Margins()): number[] {
  const N = s.rows;
  const table = s.euclideanTable();
  const taken = new Set(labeled);
  const picks: number[] = [];
  const minDist = new Float64Array(N).fill(Infinity);
  const minLo = new Float64Array(N).fill(Infinity);
  const minHi = new Float64Array(N).fill(Infinity);
  const add = (c: number) => {
    taken.add(c);
    for (let i = 0; i < N; i++) {
      const v = table.value[i * N + c];
      const r = table.err[i * N + c];
      minDist[i] = Math.min(minDist[i], v);
      minLo[i] = Math.min(minLo[i], v - r);
      minHi[i] = Math.min(minHi[i], v + r);
    }
  };
  for (const l of labeled) add(l);
  if (labeled.length === 0) {
    // The row nearest the pool mean, by ‖u_i − μ‖² as k-means computes it (Float32Errors).
    const mean = new Float64Array(s.u[0].length);
    for (const u of s.u) for (let t = 0; t < mean.length; t++) mean[t] += u[t] / N;
    const d = Float64Array.from(s.u, (u) => {
      let x = 0;
      for (let t = 0; t < mean.length; t++) x += (u[t] - mean[t]) ** 2;
      return x;
    });
    const best = argmax(
      d.map((x) => -x),
      () => false,
    );
    const r = s.errors.centreSquared();
    margins.argmin(
      d.map((x) => x - r),
      d.map((x) => x + r),
      best,
      () => true,
      'k-center first pick (nearest the mean)',
    );
    picks.push(best);
    add(best);
  }
  while (picks.length < budget) {
    const p = argmax(minDist, (i) => taken.has(i));
    margins.argmax(minLo, minHi, p, (i) => !taken.has(i), `k-center pick ${picks.length}`);
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

/** k-means options the reference follows (src/select/kmeans.ts ClusterOptions). */
export interface RefKmeansOptions {
  seeding?: 'greedy-kmeans++' | 'kmeans++' | 'kmeans||';
  iterations?: number;
}

/**
 * k-means|| seeding as src/select/kmeans.ts documents it, in float64: rounds of independent D²
 * draws (ℓ = k, 3 rounds), ownership by strictly nearer candidates, weights = rows owned, then
 * greedy weighted k-means++ with 2 + ⌊ln k⌋ trials. Every decision is checked against the
 * float32 error of the squared distances the backends compute (±r each).
 */
function refParallelSeeding(s: RefSpace, k: number, rng: Rng, margins: Margins): number[] {
  const N = s.rows;
  const r = s.errors.centreSquared();
  const d2 = new Float64Array(N).fill(Infinity);
  const owner = new Int32Array(N).fill(-1);
  const cands: number[] = [];
  const inC = new Set<number>();
  const addBatch = (batch: number[]) => {
    const offset = cands.length;
    batch.forEach((i) => {
      cands.push(i);
      inC.add(i);
    });
    for (let i = 0; i < N; i++) {
      if (inC.has(i)) continue;
      let best = -1;
      let bestD = Infinity;
      let secondD = Infinity;
      batch.forEach((c, t) => {
        const d = sqDist(s.u[i], s.u[c]);
        if (d < bestD) {
          secondD = bestD;
          bestD = d;
          best = t;
        } else if (d < secondD) secondD = d;
      });
      if (!(secondD - bestD > 2 * r)) margins.close(`k-means|| batch: row ${i} between two candidates`);
      if (d2[i] !== Infinity && !(Math.abs(bestD - d2[i]) > 2 * r)) margins.close(`k-means|| batch: row ${i} as near the new candidates as its owner`);
      if (bestD < d2[i]) {
        d2[i] = bestD;
        owner[i] = offset + best;
      }
    }
    batch.forEach((c, t) => {
      d2[c] = 0;
      owner[c] = offset + t;
    });
  };
  addBatch([rng.int(N)]);
  for (let round = 0; round < 3 || cands.length < k; round++) {
    let phi = 0;
    for (let i = 0; i < N; i++) phi += d2[i];
    if (!(phi > 0)) break;
    const batch: number[] = [];
    for (let i = 0; i < N; i++) {
      const u = rng.next();
      if (inC.has(i)) continue;
      // u·φ < k·D²(i), with φ and D² each within their float32 errors.
      const gap = u * phi - k * d2[i];
      if (!(Math.abs(gap) > u * N * r + k * r + F64_SLACK * phi)) margins.close(`k-means|| round ${round}: row ${i} at its sampling threshold`);
      if (gap < 0) batch.push(i);
    }
    if (batch.length) addBatch(batch);
  }
  const C = cands.length;
  if (C <= k) {
    const out = [...cands];
    for (let i = 0; out.length < k; i++) if (!inC.has(i)) out.push(i);
    return out;
  }
  const w = new Float64Array(C);
  for (let i = 0; i < N; i++) w[owner[i]]++;
  const cd2 = new Float64Array(C).fill(Infinity);
  const isCentre = new Uint8Array(C);
  const pd = (a: number, b: number) => (a === b ? 0 : sqDist(s.u[cands[a]], s.u[cands[b]]));
  const chosen: number[] = [];
  const add = (c: number) => {
    chosen.push(cands[c]);
    isCentre[c] = 1;
    for (let x = 0; x < C; x++) cd2[x] = Math.min(cd2[x], pd(x, c));
    cd2[c] = 0;
  };
  // Walks the cumulative mass to u·total; the draw is certain when the mass before the pick stays
  // surely below the target and the mass up to it surely above (each mass within ±err).
  const draw = (mass: Float64Array, err: Float64Array, u: number, what: string): number => {
    let total = 0;
    for (const m of mass) total += m;
    const target = u * total;
    let acc = 0;
    let pick = -1;
    for (let c = 0; c < C; c++) {
      if (!(mass[c] > 0)) continue;
      acc += mass[c];
      if (acc > target) {
        pick = c;
        break;
      }
    }
    let upTo = 0;
    let before = 0;
    let errAll = 0;
    for (let c = 0; c < C; c++) {
      if (c <= pick) upTo += mass[c];
      if (c < pick) before += mass[c];
      errAll += err[c];
    }
    const slack = 2 * errAll + F64_SLACK * total;
    if (!(before < target - slack && upTo > target + slack)) margins.close(`${what}: candidate ${pick} at a cumulative boundary`);
    return pick;
  };
  add(draw(w, new Float64Array(C), rng.next(), 'k-means|| first centre'));
  const trials = 2 + Math.floor(Math.log(k));
  while (chosen.length < k) {
    const mass = Float64Array.from(cd2, (v, c) => (isCentre[c] ? 0 : w[c] * v));
    const err = Float64Array.from(w, (v, c) => (isCentre[c] ? 0 : v * r));
    const picks: number[] = [];
    for (let t = 0; t < trials; t++) picks.push(draw(mass, err, rng.next(), `k-means|| centre ${chosen.length} trial ${t}`));
    const pots = picks.map((c) => {
      let pot = 0;
      for (let x = 0; x < C; x++) pot += w[x] * Math.min(cd2[x], pd(x, c));
      return pot;
    });
    let best = 0;
    for (let t = 1; t < pots.length; t++) if (pots[t] < pots[best]) best = t;
    const potErr = 2 * N * r;
    pots.forEach((p, t) => {
      if (picks[t] !== picks[best] && !(Math.abs(p - pots[best]) > 2 * potErr)) margins.close(`k-means|| centre ${chosen.length}: trials ${best} and ${t} leave near-equal potentials`);
    });
    add(picks[best]);
  }
  return chosen;
}

/**
 * A D² draw as src/select/kmeans.ts documents it: the first unchosen row whose running Σ D² (rows
 * in order) exceeds u·Σ D². Each D²(i) as a backend has it lies in [lo(i), hi(i)]; the draw is
 * certain when acc − target = (1 − u)·Σ_{j ≤ i} D²_j − u·Σ_{j > i} D²_j is surely ≤ 0 at the row
 * before the pick and surely > 0 at the pick (sums over unchosen rows).
 */
function refDrawBySquares(d2: Float64Array, lo: Float64Array, hi: Float64Array, isChosen: Set<number>, u: number, margins: Margins, what: string): number {
  const N = d2.length;
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
  let upToPickLo = 0;
  let beforePickHi = 0;
  let fromPickLo = 0;
  let afterPickHi = 0;
  for (let i = 0; i < N; i++) {
    if (isChosen.has(i)) continue;
    if (i <= pick) upToPickLo += lo[i];
    if (i < pick) beforePickHi += hi[i];
    if (i >= pick) fromPickLo += lo[i];
    if (i > pick) afterPickHi += hi[i];
  }
  const slack = F64_SLACK * total;
  const beforeSure = (1 - u) * beforePickHi - u * fromPickLo < -slack;
  const atPickSure = (1 - u) * upToPickLo - u * afterPickHi > slack;
  if (pick < 0 || !beforeSure || !atPickSure) margins.close(`${what}: row ${pick} at a cumulative boundary`);
  return pick;
}

/** k-means++ seeding (the spec's): rng.int(N), then one D² draw per centre; D²(i) is the square of
 * the backends' float32 euclidean min distance. */
function refPlusPlusSeeding(s: RefSpace, k: number, rng: Rng, margins: Margins): number[] {
  const N = s.rows;
  const table = s.euclideanTable();
  const chosen = [rng.int(N)];
  const isChosen = new Set(chosen);
  const d2 = new Float64Array(N).fill(Infinity);
  const d2Lo = new Float64Array(N).fill(Infinity);
  const d2Hi = new Float64Array(N).fill(Infinity);
  const update = (c: number) => {
    for (let i = 0; i < N; i++) {
      const v = table.value[i * N + c];
      const r = table.err[i * N + c];
      d2[i] = Math.min(d2[i], v * v);
      d2Lo[i] = Math.min(d2Lo[i], Math.max(0, v - r) ** 2);
      d2Hi[i] = Math.min(d2Hi[i], (v + r) ** 2);
    }
  };
  update(chosen[0]);
  while (chosen.length < k) {
    const pick = refDrawBySquares(d2, d2Lo, d2Hi, isChosen, rng.next(), margins, `k-means++ draw ${chosen.length}`);
    chosen.push(pick);
    isChosen.add(pick);
    update(pick);
  }
  return chosen;
}

/**
 * Greedy k-means++ as src/select/kmeans.ts documents it, in float64 on the exact ‖u_i − u_j‖²:
 * rng.int(N), then per centre L = 2 + ⌊ln k⌋ D² draws (one rng.next() each, in order) and the
 * draw leaving the smallest Σ_i min(D²(i), d²(i, c)), the earliest on ties. The backends hold
 * D² = 4M(1 − s) with s the float32 similarity (1 + cos)/2, so each D² is within 4M·ε_s
 * (ε_s = Float32Errors.similarity); they compare potentials through Σ_i max(0, s(c, i) − cover(i))
 * with float32 differences (each within 2ε_s + u), so a potential is within N·4M·(2ε_s + u).
 */
function refGreedySeeding(s: RefSpace, k: number, rng: Rng, margins: Margins): number[] {
  const N = s.rows;
  const r = 4 * s.M * s.errors.similarity();
  const potErr = N * 4 * s.M * (2 * s.errors.similarity() + U32);
  const chosen = [rng.int(N)];
  const isChosen = new Set(chosen);
  const d2 = new Float64Array(N).fill(Infinity);
  const update = (c: number) => {
    for (let i = 0; i < N; i++) d2[i] = i === c ? 0 : Math.min(d2[i], sqDist(s.u[i], s.u[c]));
  };
  update(chosen[0]);
  const trials = 2 + Math.floor(Math.log(k));
  while (chosen.length < k) {
    const lo = Float64Array.from(d2, (v, i) => (isChosen.has(i) ? 0 : Math.max(0, v - r)));
    const hi = Float64Array.from(d2, (v, i) => (isChosen.has(i) ? 0 : v + r));
    const picks: number[] = [];
    for (let t = 0; t < trials; t++) picks.push(refDrawBySquares(d2, lo, hi, isChosen, rng.next(), margins, `greedy k-means++ centre ${chosen.length} draw ${t}`));
    const pots = picks.map((c) => refPotential(s, d2, c));
    let best = 0;
    for (let t = 1; t < trials; t++) if (pots[t] < pots[best]) best = t;
    pots.forEach((p, t) => {
      if (picks[t] !== picks[best] && !(Math.abs(p - pots[best]) > 2 * potErr)) margins.close(`greedy k-means++ centre ${chosen.length}: draws ${best} and ${t} leave near-equal potentials`);
    });
    chosen.push(picks[best]);
    isChosen.add(picks[best]);
    update(picks[best]);
  }
  return chosen;
}

/** Σ_i min(D²(i), ‖u_i − u_c‖²) in float64. */
export function refPotential(s: RefSpace, d2: Float64Array, c: number): number {
  let pot = 0;
  for (let i = 0; i < s.rows; i++) pot += i === c ? 0 : Math.min(d2[i], sqDist(s.u[i], s.u[c]));
  return pot;
}

/** The k seed rows of a seeding (default greedy k-means++, like src/select/kmeans.ts). */
export function refSeedCentres(s: RefSpace, k: number, rng: Rng, margins: Margins, seeding: RefKmeansOptions['seeding'] = 'greedy-kmeans++'): number[] {
  if (seeding === 'kmeans||') return refParallelSeeding(s, k, rng, margins);
  if (seeding === 'kmeans++') return refPlusPlusSeeding(s, k, rng, margins);
  return refGreedySeeding(s, k, rng, margins);
}

/** k-means (§3.3): seeding then Lloyd; returns labels and squared distances to the final centres. */
export function refKmeansCluster(s: RefSpace, k: number, seed: number, margins = new Margins(), options: RefKmeansOptions = {}) {
  const N = s.rows;
  const rng = new Rng(seed);
  const iterations = options.iterations ?? 100;
  const chosen = refSeedCentres(s, k, rng, margins, options.seeding);
  let centres = chosen.map((i) => Float64Array.from(s.u[i]));
  const labels = new Int32Array(N).fill(-1);
  const dist = new Float64Array(N);
  const r = s.errors.centreSquared();
  for (let it = 0; it < iterations; it++) {
    let changed = 0;
    for (let i = 0; i < N; i++) {
      let best = -1;
      let bestD = Infinity;
      let secondD = Infinity;
      centres.forEach((c, j) => {
        const d = sqDist(s.u[i], c);
        if (d < bestD) {
          secondD = bestD;
          bestD = d;
          best = j;
        } else if (d < secondD) secondD = d;
      });
      if (!(secondD - bestD > 2 * r)) margins.close(`k-means iteration ${it}: row ${i} between two centres (gap ${secondD - bestD})`);
      if (labels[i] !== best) changed++;
      labels[i] = best;
      dist[i] = bestD;
    }
    if (changed === 0 || it === iterations - 1) break;
    const sums = centres.map((c) => new Float64Array(c.length));
    const counts = new Array(k).fill(0);
    for (let i = 0; i < N; i++) {
      counts[labels[i]]++;
      for (let t = 0; t < sums[0].length; t++) sums[labels[i]][t] += s.u[i][t];
    }
    const far = [...Array(N).keys()].sort((a, b) => dist[b] - dist[a] || a - b);
    const empty = counts.filter((c) => c === 0).length;
    if (empty && !(dist[far[empty - 1]] - dist[far[empty]] > 2 * r)) margins.close(`k-means iteration ${it}: the farthest rows for ${empty} empty cluster(s) tie`);
    let f = 0;
    centres = sums.map((sum, j) => (counts[j] ? sum.map((v) => v / counts[j]) : Float64Array.from(s.u[far[f++]])));
  }
  return { labels, dist, distErr: r };
}

/** The tie tolerance of src/select/kmeans.ts rankAscending (relative, plus the same absolute). */
const RANK_TIE = 1e-5;

/** Ascending by key, with keys within a relative 1e-5 of the previous one treated as ties (lowest index first). */
function rankWithTies(rows: number[], key: (i: number) => number): number[] {
  const out = [...rows].sort((a, b) => key(a) - key(b) || a - b);
  const result: number[] = [];
  for (let lo = 0; lo < out.length; ) {
    let hi = lo + 1;
    while (hi < out.length && key(out[hi]) - key(out[hi - 1]) <= RANK_TIE * (1 + Math.abs(key(out[hi - 1])))) hi++;
    result.push(...out.slice(lo, hi).sort((a, b) => a - b));
    lo = hi;
  }
  return result;
}

/**
 * The ranking of `rows` by computed keys (each within ±err of the exact key) is certain up to
 * position `upTo` when every gap between consecutive order statistics that decides the groups
 * of near-ties there is surely within the tie tolerance or surely beyond it. Order statistics of
 * the computed keys lie between those of the lower and of the upper bounds.
 */
function checkRanking(rows: number[], key: (i: number) => number, err: (i: number) => number, upTo: number, margins: Margins, what: string): void {
  const out = [...rows].sort((a, b) => key(a) - key(b) || a - b);
  const lo = out.map((i) => key(i) - err(i)).sort((a, b) => a - b);
  const hi = out.map((i) => key(i) + err(i)).sort((a, b) => a - b);
  const tied = (p: number) => key(out[p]) - key(out[p - 1]) <= RANK_TIE * (1 + Math.abs(key(out[p - 1])));
  for (let start = 0; start < out.length && start <= upTo; ) {
    let end = start + 1;
    while (end < out.length && tied(end)) end++;
    for (let p = start + 1; p <= Math.min(end, out.length - 1); p++) {
      const gapLo = lo[p] - hi[p - 1];
      const gapHi = hi[p] - lo[p - 1];
      const surelyTied = gapHi <= RANK_TIE * (1 + Math.abs(lo[p - 1]));
      const surelyApart = gapLo > RANK_TIE * (1 + Math.abs(hi[p - 1]));
      if (!surelyTied && !surelyApart) margins.close(`${what}: gap [${gapLo}, ${gapHi}] at rank ${p} is at the tie tolerance`);
    }
    start = end;
  }
}

/**
 * One pick per cluster by priority (fewest labelled/picked members, largest, lowest id), best
 * member by `order`; then `check(members, upTo)` for each cluster that gave picks, upTo being the
 * position of its last pick in its ranking.
 */
function perCluster(
  N: number,
  labels: Int32Array,
  k: number,
  budget: number,
  labeled: number[],
  order: (members: number[]) => number[],
  check: (members: number[], upTo: number) => void,
): number[] {
  const members: number[][] = Array.from({ length: k }, () => []);
  for (let i = 0; i < N; i++) members[labels[i]].push(i);
  const taken = new Array(k).fill(0);
  for (const l of labeled) taken[labels[l]]++;
  const L = new Set(labeled);
  const ranked = members.map((m) => (m.length ? order(m) : []));
  const used = new Set<number>();
  const upTo = new Array(k).fill(-1);
  const picks: number[] = [];
  while (picks.length < budget) {
    const open = [...Array(k).keys()].filter((c) => ranked[c].some((i) => !L.has(i) && !used.has(i)));
    if (!open.length) break;
    open.sort((a, b) => taken[a] - taken[b] || members[b].length - members[a].length || a - b);
    const c = open[0];
    const p = ranked[c].findIndex((x) => !L.has(x) && !used.has(x));
    const i = ranked[c][p];
    picks.push(i);
    used.add(i);
    taken[c]++;
    upTo[c] = p;
  }
  for (let c = 0; c < k; c++) if (upTo[c] >= 0) check(members[c], upTo[c]);
  return picks;
}

export function refKmeans(s: RefSpace, budget: number, labeled: number[], seed: number, margins = new Margins(), options: RefKmeansOptions = {}): number[] {
  const k = labeled.length + budget;
  const { labels, dist, distErr } = refKmeansCluster(s, k, seed, margins, options);
  const key = (i: number) => dist[i];
  return perCluster(
    s.rows,
    labels,
    k,
    budget,
    labeled,
    (m) => rankWithTies(m, key),
    (m, upTo) => checkRanking(m, key, () => distErr, upTo, margins, 'k-means member ranking'),
  );
}

export function refTypiclust(s: RefSpace, budget: number, labeled: number[], seed: number, margins = new Margins()): number[] {
  const k = labeled.length + budget;
  const { labels } = refKmeansCluster(s, k, seed, margins);
  const table = s.euclideanTable();
  const N = s.rows;
  // Typicality key: mean distance to the min(20, |cluster| − 1) nearest members. Its computed value
  // is a mean of computed order statistics, so within the means of the bounds' order statistics.
  const mean = new Float64Array(N);
  const err = new Float64Array(N);
  const members: number[][] = Array.from({ length: k }, () => []);
  for (let i = 0; i < N; i++) members[labels[i]].push(i);
  for (const m of members) {
    if (m.length < 2) continue;
    const nn = Math.min(20, m.length - 1);
    for (const i of m) {
      const others = m.filter((j) => j !== i);
      const v = Float64Array.from(others, (j) => table.value[i * N + j]);
      const r = Float64Array.from(others, (j) => table.err[i * N + j]);
      mean[i] = meanOfSmallest(v, nn);
      const lo = meanOfSmallest(
        v.map((x, t) => x - r[t]),
        nn,
      );
      const hi = meanOfSmallest(
        v.map((x, t) => x + r[t]),
        nn,
      );
      err[i] = Math.max(mean[i] - lo, hi - mean[i]) + F64_SLACK * mean[i];
    }
  }
  const key = (i: number) => mean[i];
  return perCluster(
    N,
    labels,
    k,
    budget,
    labeled,
    (m) => (m.length < 2 ? [...m] : rankWithTies(m, key)),
    (m, upTo) => {
      if (m.length >= 2) checkRanking(m, key, (i) => err[i], upTo, margins, 'TypiClust typicality ranking');
    },
  );
}

/** ProbCover's automatic radius (largest δ on the 0.01 grid with ≥ 95% pure balls). */
/** ProbCover's automatic radius with `clusters` k-means pseudo-labels (the budget, or the `classes` option). */
export function refProbcoverRadius(s: RefSpace, clusters: number, seed: number, margins = new Margins()): number {
  const { labels } = refKmeansCluster(s, clusters, seed, margins);
  const N = s.rows;
  const table = s.euclideanTable();
  // r_i = distance to the nearest row of another label; ball i is pure for δ ≤ r_i.
  const r = new Float64Array(N).fill(Infinity);
  const rLo = new Float64Array(N).fill(Infinity);
  const rHi = new Float64Array(N).fill(Infinity);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      if (labels[j] === labels[i]) continue;
      const v = table.value[i * N + j];
      const e = table.err[i * N + j];
      r[i] = Math.min(r[i], v);
      rLo[i] = Math.min(rLo[i], v - e);
      rHi[i] = Math.min(rHi[i], v + e);
    }
  }
  const purity = (delta: number) => {
    let pure = 0;
    for (let i = 0; i < N; i++) if (!(r[i] < delta)) pure++;
    return pure / N;
  };
  const max = Math.floor((2 * Math.sqrt(s.M)) / 0.01);
  let radius = 0.01;
  for (let g = max; g >= 1; g--) {
    if (purity(g * 0.01) >= 0.95) {
      radius = g * 0.01;
      break;
    }
  }
  // The answer follows from the ⌊0.05·N⌋-th smallest r_i: certain when no grid point lies within
  // that order statistic's bounds (widened by 1e-8, beyond the implementation's 1e-9 grid fudge).
  const q = Math.floor(0.05 * N);
  const limLo = Float64Array.from(rLo).sort()[q];
  const limHi = Float64Array.from(rHi).sort()[q];
  if (Number.isFinite(limHi) && Math.floor(limLo / 0.01 - 1e-6) !== Math.floor(limHi / 0.01 + 1e-6)) {
    margins.close(`ProbCover radius: the limiting distance [${limLo}, ${limHi}] straddles a grid point`);
  }
  return radius;
}

export function refProbcover(s: RefSpace, budget: number, labeled: number[], radius: number, seed: number, margins = new Margins()): number[] {
  const N = s.rows;
  const table = s.euclideanTable();
  // Every edge ‖u_i − u_j‖ < δ must be certain (counts and coverage depend on all of them).
  for (let i = 0; i < N; i++) {
    for (let j = i + 1; j < N; j++) {
      const v = table.value[i * N + j];
      const e = table.err[i * N + j];
      margins.below(v - e, v + e, radius, `ProbCover edge ${i}–${j}`);
    }
  }
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

/** Gains within this of the best tie, lowest index first (src/select/facility.ts gainTolerance). */
function gainTolerance(best: number): number {
  return 1e-5 * Math.abs(best) + 1e-6;
}

/**
 * Facility-location gains Σ_j max(0, sim(c, j) − cover_j) of `cands`, with bounds: each term from
 * the bounds of sim and of cover (a max of computed similarities), rounded once in float32.
 */
class FacilityState {
  readonly cover: Float64Array;
  readonly coverLo: Float64Array;
  readonly coverHi: Float64Array;
  private readonly table: PairTable;
  /** The rows whose coverage counts (every row by default). */
  private readonly ground: number[];
  /** Error bound of sim(i, i): 0 on the cached table (set to 1 there), computed like any pair on a ground set. */
  private readonly selfErr: number;
  constructor(
    private readonly s: RefSpace,
    labeled: number[],
    ground?: number[],
  ) {
    const N = s.rows;
    this.table = s.similarityTable();
    this.ground = ground ?? [...Array(N).keys()];
    this.selfErr = ground ? s.errors.similarity() : 0;
    this.cover = new Float64Array(N);
    this.coverLo = new Float64Array(N);
    this.coverHi = new Float64Array(N);
    for (const l of labeled) this.add(l);
  }

  private sim(i: number, j: number): [number, number] {
    const N = this.s.rows;
    return [this.table.value[i * N + j], i === j ? this.selfErr : this.table.err[i * N + j]];
  }

  add(c: number): void {
    for (const i of this.ground) {
      const [v, r] = this.sim(i, c);
      this.cover[i] = Math.max(this.cover[i], v);
      this.coverLo[i] = Math.max(this.coverLo[i], v - r);
      this.coverHi[i] = Math.max(this.coverHi[i], v + r);
    }
  }

  gains(cands: number[]): { g: number[]; lo: number[]; hi: number[] } {
    const g: number[] = [];
    const lo: number[] = [];
    const hi: number[] = [];
    for (const c of cands) {
      let x = 0;
      let a = 0;
      let b = 0;
      for (const i of this.ground) {
        const [v, r] = this.sim(c, i);
        x += Math.max(0, v - this.cover[i]);
        a += Math.max(0, v - r - this.coverHi[i]) * (1 - U32);
        b += Math.max(0, v + r - this.coverLo[i]) * (1 + U32);
      }
      g.push(x);
      lo.push(a * (1 - F64_SLACK));
      hi.push(b * (1 + F64_SLACK));
    }
    return { g, lo, hi };
  }
}

/**
 * The lowest-index candidate within gainTolerance of the best gain. With computed gains g̃ (each
 * within its bounds) the backend picks w iff g̃_w ≥ T̃ = max g̃ − tol(max g̃) and g̃_j < T̃ for every
 * lower-index j. Since x − tol(x) increases with x, that is certain when lo_w ≥ hi_j − tol(hi_j)
 * for every other j (w qualifies whichever row holds the max), and hi_j < lo_w − tol(lo_w) for
 * every lower-index j (as max g̃ ≥ g̃_w ≥ lo_w).
 */
function tiedArgmax(cands: number[], gains: { g: number[]; lo: number[]; hi: number[] }, margins: Margins, what: string): number {
  const { g, lo, hi } = gains;
  const max = Math.max(...g);
  let best = -1;
  for (let t = 0; t < cands.length; t++) if (g[t] >= max - gainTolerance(max) && (best < 0 || cands[t] < cands[best])) best = t;
  const below = (x: number) => x - gainTolerance(x);
  for (let t = 0; t < cands.length; t++) {
    if (t === best) continue;
    if (!(lo[best] >= below(hi[t]))) margins.close(`${what}: winner ${cands[best]} may fall outside the tolerance of ${cands[t]}`);
    if (cands[t] < cands[best] && !(hi[t] < below(lo[best]))) margins.close(`${what}: ${cands[t]} may tie with winner ${cands[best]}`);
  }
  return best;
}

/** Facility location, plain greedy on F(S) = Σ_i max_{s ∈ S ∪ L} sim(i, s) (what lazy greedy
 * computes exactly); rows in `excluded` are never picked (they still count as covered rows). */
export function refFacility(
  s: RefSpace,
  budget: number,
  labeled: number[],
  margins = new Margins(),
  excluded: ReadonlySet<number> = new Set(),
  ground?: number[],
): number[] {
  const N = s.rows;
  const state = new FacilityState(s, labeled, ground);
  const taken = new Set([...labeled, ...excluded]);
  const picks: number[] = [];
  while (picks.length < budget) {
    const cands = [...Array(N).keys()].filter((i) => !taken.has(i));
    const best = tiedArgmax(cands, state.gains(cands), margins, `facility pick ${picks.length}`);
    const p = cands[best];
    picks.push(p);
    taken.add(p);
    state.add(p);
  }
  return picks;
}

/**
 * MMCSAL's alignment filter: the min(⌊q·n⌋, n − B) candidates (rows not labelled) of lowest
 * alignment a(i), lowest index first among equals. When the float32 a of the last one left out
 * and of the first one kept could swap order, the draw is a knife edge.
 */
export function refAlignmentFilter(s: RefSpace, labeled: number[], quantile: number, budget: number, margins = new Margins()): Set<number> {
  const L = new Set(labeled);
  const cands = [...Array(s.rows).keys()].filter((i) => !L.has(i));
  const a = new Map(cands.map((i) => [i, s.alignment(i)]));
  const order = [...cands].sort((x, y) => a.get(x)! - a.get(y)! || x - y);
  const cut = Math.max(0, Math.min(Math.floor(quantile * cands.length), cands.length - budget));
  const err = s.errors.alignment(s.pool.dims[0]);
  if (cut > 0 && cut < order.length && a.get(order[cut])! - a.get(order[cut - 1])! <= 2 * err) {
    margins.close(`alignment filter: a(${order[cut - 1]}) and a(${order[cut]}) within float32 error at the cut`);
  }
  return new Set(order.slice(0, cut));
}

/**
 * MMCSAL with distribution 'coverage' and alignment 'filter': facility location over the rows the
 * filter keeps, its objective summed over every row, or over the first `coverageSample` rows of
 * the seeded permutation when the pool has more (the spec's ground sample).
 */
export function refMmcsalCoverage(
  s: RefSpace,
  budget: number,
  labeled: number[],
  quantile: number,
  margins = new Margins(),
  coverage?: { sample: number; seed: number },
): number[] {
  const ground = coverage && coverage.sample < s.rows ? [...new Rng(coverage.seed).permutation(s.rows).subarray(0, coverage.sample)].sort((x, y) => x - y) : undefined;
  return refFacility(s, budget, labeled, margins, refAlignmentFilter(s, labeled, quantile, budget, margins), ground);
}

/**
 * Every column of every modality standardised over the pool in float64: (x − mean)/std with the
 * population std; a column whose values are all equal is left at 0.
 */
export function standardisedColumns(pool: RefPool): RefPool {
  const data = pool.data.map((x, m) => {
    const d = pool.dims[m];
    const out = new Float64Array(pool.rows * d);
    for (let j = 0; j < d; j++) {
      let sum = 0;
      let constant = true;
      for (let i = 0; i < pool.rows; i++) {
        sum += x[i * d + j];
        if (x[i * d + j] !== x[j]) constant = false;
      }
      const mean = sum / pool.rows;
      let ss = 0;
      for (let i = 0; i < pool.rows; i++) ss += (x[i * d + j] - mean) ** 2;
      const std = Math.sqrt(ss / pool.rows);
      for (let i = 0; i < pool.rows; i++) out[i * d + j] = constant ? 0 : (x[i * d + j] - mean) / std;
    }
    return out;
  });
  return { rows: pool.rows, dims: pool.dims, data };
}

/**
 * MMCSAL's default with input features (space 'embedding+inputs'): the alignment filter on the
 * embedding, then facility location on the joint space — the embedding's modalities and the input
 * modalities standardised per column (standardisedColumns), every block unit-normalised per row,
 * sim = (1 + mean of the per-block cosines)/2.
 *
 * Error model: the engine rounds each standardised value to float32 (relative error ≤ u, its
 * float64 mean and std differ from these only in the last bits), so an input block's unit row moves
 * by ≤ 2u·(1 + 1e-6), its cosines by ≤ 4u(1 + 1e-6), and a similarity by ≤ 2u(1 + 1e-6) on top of
 * the backends' own error on float32 rows.
 */
export function refMmcsalCoverageJoint(
  embedding: RefPool,
  inputs: RefPool,
  budget: number,
  labeled: number[],
  quantile: number,
  margins = new Margins(),
  coverage?: { sample: number; seed: number },
): number[] {
  const x = standardisedColumns(inputs);
  const joint: RefPool = { rows: embedding.rows, dims: [...embedding.dims, ...x.dims], data: [...embedding.data, ...x.data] };
  const ground = coverage && coverage.sample < embedding.rows ? [...new Rng(coverage.seed).permutation(embedding.rows).subarray(0, coverage.sample)].sort((a, b) => a - b) : undefined;
  const filtered = refAlignmentFilter(new RefSpace(embedding), labeled, quantile, budget, margins);
  return refFacility(new RefSpace(joint, 2 * U32 * (1 + 1e-6)), budget, labeled, margins, filtered, ground);
}

/** Stochastic greedy with the documented sampling: partial Fisher–Yates over the remaining rows. */
export function refFacilityStochastic(s: RefSpace, budget: number, labeled: number[], seed: number, margins = new Margins()): number[] {
  const N = s.rows;
  const L = new Set(labeled);
  const state = new FacilityState(s, labeled);
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
    const best = tiedArgmax(sample, state.gains(sample), margins, `stochastic facility pick ${n}`);
    const p = sample[best];
    picks.push(p);
    rest[best] = rest[remaining - 1];
    rest[remaining - 1] = p;
    remaining--;
    state.add(p);
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
