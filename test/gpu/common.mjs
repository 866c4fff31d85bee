// Shared pieces of the GPU parity tests (node:test, run on the GPU machine against the packed
// dist/): a seeded generator, fp16 conversion, float64 reference distances, and the check for
// whether the cuda backend is usable here. Self-contained: nothing from src/ or test/helpers.
import { backends } from '../../dist/index.js';

/**
 * The backend under test: 'cuda', or another one named by PAIRPICK_GPU_TEST_BACKEND (to check
 * the tests themselves on a machine without a GPU, e.g. PAIRPICK_GPU_TEST_BACKEND=cpu).
 */
export const BACKEND = process.env.PAIRPICK_GPU_TEST_BACKEND || 'cuda';

/** Why the tests skip, or false when the backend under test is available. */
export function cudaSkipReason() {
  const info = backends().find((b) => b.name === BACKEND);
  if (!info) return `no ${BACKEND} backend is listed`;
  if (!info.available) return `${BACKEND} backend unavailable: ${info.reason ?? 'no reason given'}`;
  return false;
}

export const TEST_SEED = process.env.PAIRPICK_TEST_SEED
  ? Number(process.env.PAIRPICK_TEST_SEED)
  : (Date.now() ^ (process.pid << 8)) >>> 0;

let streams = 0;
/** A fresh generator per call, derived from the run's seed (printed by each test file). */
export function makeRng() {
  let s = (TEST_SEED + 0x9e3779b9 * ++streams) >>> 0;
  const next = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare = null;
  return {
    uniform: next,
    normal() {
      if (spare !== null) {
        const v = spare;
        spare = null;
        return v;
      }
      let u = 0;
      while (u === 0) u = next();
      const r = Math.sqrt(-2 * Math.log(u)), a = 2 * Math.PI * next();
      spare = r * Math.sin(a);
      return r * Math.cos(a);
    },
    int(n) {
      return Math.floor(next() * n);
    },
  };
}

// ---- fp16 ----
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float → binary16 bits, round to nearest even. */
export function toHalf(x) {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const e = abs >>> 23;
    const m = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && h & 1)) h++;
    return sign | h;
  }
  let h = (abs - 0x38000000) >>> 13;
  const rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function fromHalf(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * A rows × dim matrix of normal values: `data` is what the kernel gets (Float32Array, or fp16
 * bits in a Uint16Array), `values` the exact numbers it represents (for the reference).
 */
export function randomMatrix(rng, rows, dim, half, scale = 1) {
  const values = new Float64Array(rows * dim);
  const data = half ? new Uint16Array(rows * dim) : new Float32Array(rows * dim);
  for (let i = 0; i < values.length; i++) {
    const v = rng.normal() * scale;
    if (half) {
      data[i] = toHalf(v);
      values[i] = fromHalf(data[i]);
    } else {
      data[i] = v;
      values[i] = data[i];
    }
  }
  return { data, values, rows, dim, half };
}

/** Copies row `from` of `src` over row `to` of `dst` (both randomMatrix results of one dim). */
export function copyRow(src, from, dst, to) {
  const d = src.dim;
  for (let j = 0; j < d; j++) {
    dst.data[to * d + j] = src.data[from * d + j];
    dst.values[to * d + j] = src.values[from * d + j];
  }
}

/** rows × dim float32 rows of unit length (as float32 values). */
export function unitRows(rng, rows, dim) {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const v = rng.normal();
      out[r * dim + j] = v;
      s += v * v;
    }
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dim; j++) out[r * dim + j] *= inv;
  }
  return out;
}

export const METRICS = ['sqeuclidean', 'euclidean', 'cosine'];

/** float64 distance between row i of `a` and row j of `b` (values arrays), spec §2 / ops-distance.ts. */
export function refDistance(a, i, b, j, dim, metric) {
  let s = 0, na = 0, nb = 0, dot = 0;
  for (let k = 0; k < dim; k++) {
    const x = a[i * dim + k], y = b[j * dim + k];
    s += (x - y) * (x - y);
    na += x * x;
    nb += y * y;
    dot += x * y;
  }
  if (metric === 'sqeuclidean') return s;
  if (metric === 'euclidean') return Math.sqrt(s);
  if (na === 0 || nb === 0) return 1; // a zero row: cosine 0, distance 1
  return 1 - dot / Math.sqrt(na * nb);
}

/** Relative error of `got` against `want`, with `floor` as the smallest scale (for values near 0). */
export function relError(got, want, floor = 0) {
  return Math.abs(got - want) / Math.max(Math.abs(want), floor);
}

/** ‖got − want‖ / max(‖want‖, floor) over two arrays (the floor for results that are ≈ 0). */
export function normRelError(got, want, floor = 1e-9) {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), floor);
}
