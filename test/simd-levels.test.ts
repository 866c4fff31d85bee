// The native kernels at every SIMD level this CPU has (scalar, AVX2, AVX-512), each forced with
// PAIRPICK_SIMD in a child process that calls the addon directly: the GEMM (every transpose, fp16
// `a`, accumulate, shapes crossing each level's tiles and blocking) against the float64 reference,
// the fused facility-location gains against a float64 loop, and the k-means assignment (GEMM tiles
// plus the fused nearest-centre scan) against float64 distances, with exact ties broken to the
// lowest centre.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { backends } from '../src/backend/index.js';
import { floatArrayToHalf, halfArrayToFloat } from '../src/util/half.js';
import { packageRoot } from '../src/util/root.js';
import { randomMatrix, testRng } from './helpers/random.js';
import { simdLevels } from './helpers/simd.js';
import { matmulRef, relativeError } from './reference/loss.js';

const cpu = backends().find((b) => b.name === 'cpu');

const CHILD = `
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
const [addonPath, dir] = process.argv.slice(1);
const addon = createRequire(import.meta.url)(addonPath);
const spec = JSON.parse(readFileSync(dir + '/spec.json', 'utf8'));
const load = (name, Type) => { const b = readFileSync(dir + '/' + name); return new Type(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
const out = { simd: addon.simd, matmul: [], gains: [], assign: [] };
for (const c of spec.matmul) {
  const a = load(c.a, c.half ? Uint16Array : Float32Array), b = load(c.b, Float32Array), y = load(c.c, Float32Array);
  await addon.cpu.matmul(a, b, y, c.p);
  out.matmul.push(Array.from(y));
}
for (const c of spec.gains) {
  const table = load(c.table, Float32Array), cover = load(c.cover, Float32Array);
  const g = await addon.cpu.coverGains(table, cover, Int32Array.from(c.rows), { columns: c.columns, add: c.add });
  out.gains.push({ gains: Array.from(g), cover: Array.from(cover) });
}
for (const c of spec.assign) {
  const data = load(c.data, Float32Array), centroids = load(c.centroids, Float32Array);
  const sel = await addon.cpu.openSelection({ rows: c.rows, modalities: [{ data, dim: c.dim }] });
  await sel.prepare(0, c.rows, false);
  await sel.setCentroids(centroids, c.k);
  const labels = new Int32Array(c.rows).fill(-1), distances = new Float32Array(c.rows);
  await sel.assign(0, c.rows, labels, distances, new Float64Array(c.k * c.dim), new Float64Array(c.k));
  sel.close();
  out.assign.push({ labels: Array.from(labels), distances: Array.from(distances) });
}
writeFileSync(dir + '/out.json', JSON.stringify(out));
`;

describe.skipIf(!cpu?.available)('native kernels at every SIMD level of this CPU', () => {
  it.each(simdLevels())('PAIRPICK_SIMD=%s matches the float64 references', (level, reported) => {
    const rng = testRng();
    const dir = mkdtempSync(join(tmpdir(), `pairpick-simd-${level}-`));
    const save = (name: string, x: Float32Array | Uint16Array) => writeFileSync(join(dir, name), Buffer.from(x.buffer, x.byteOffset, x.byteLength));
    try {
      // GEMM: a shape over several tiles and KC slices of every level, and one smaller than a tile.
      const matmul: { ref: Float64Array; what: string }[] = [];
      const specMatmul: object[] = [];
      for (const [m, n, inner] of [
        [157 + rng.int(40), 70 + rng.int(40), 290 + rng.int(60)],
        [1 + rng.int(11), 1 + rng.int(31), 1 + rng.int(9)],
      ]) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const half = transA !== transB;
            const accumulate = transB;
            const a32 = randomMatrix(rng, transA ? inner : m, transA ? m : inner);
            const a = half ? floatArrayToHalf(a32) : a32;
            const aValues = half ? halfArrayToFloat(a as Uint16Array) : a32;
            const b = randomMatrix(rng, transB ? n : inner, transB ? inner : n);
            const c = randomMatrix(rng, m, n);
            const k = specMatmul.length;
            save(`a${k}`, a);
            save(`b${k}`, b);
            save(`c${k}`, c);
            specMatmul.push({ a: `a${k}`, b: `b${k}`, c: `c${k}`, half, p: { m, n, inner, transA, transB, accumulate } });
            matmul.push({ ref: matmulRef(aValues, b, m, n, inner, transA, transB, accumulate ? c : undefined), what: JSON.stringify({ m, n, inner, transA, transB, accumulate, half }) });
          }
        }
      }
      // Gains: a table with a column count that leaves a tail for every vector width.
      const specGains: object[] = [];
      const gains: { ref: Float64Array; cover: Float64Array }[] = [];
      for (const columns of [1013 + rng.int(7), 1 + rng.int(7)]) {
        const tableRows = 40;
        const table = new Float32Array(tableRows * columns);
        for (let i = 0; i < table.length; i++) table[i] = rng.next();
        const cover = new Float32Array(columns);
        for (let j = 0; j < columns; j++) cover[j] = 0.8 * rng.next();
        const add = rng.int(tableRows);
        const rows = Array.from({ length: 25 }, () => rng.int(tableRows));
        const k = specGains.length;
        save(`t${k}`, table);
        save(`v${k}`, cover);
        specGains.push({ table: `t${k}`, cover: `v${k}`, columns, rows, add });
        const merged = Float64Array.from(cover, (v, j) => Math.max(v, table[add * columns + j]));
        const ref = Float64Array.from(rows, (r) => {
          let g = 0;
          for (let j = 0; j < columns; j++) g += Math.max(0, table[r * columns + j] - merged[j]);
          return g;
        });
        gains.push({ ref, cover: merged });
      }
      // k-means assignment: unit rows near some of k unit centres (k crosses the 256-centre blocks and
      // leaves a tail for every vector width); some centres are exact copies of a lower-numbered
      // one, and rows near them must go to the lower index. Nearest vs runner-up is clear by
      // construction (‖noise‖ ≈ 0.3 against unrelated unit vectors at distance ≈ √2).
      const specAssign: object[] = [];
      const assign: { labels: number[]; distances: number[] }[] = [];
      for (const [rows, dim, k] of [
        [400 + rng.int(50), 24 + rng.int(20), 300 + rng.int(13)],
        [30 + rng.int(10), 5 + rng.int(4), 3 + rng.int(13)],
      ]) {
        const unit = (v: Float64Array) => {
          const n = Math.hypot(...v);
          return v.map((x) => x / n);
        };
        const centres: Float64Array[] = [];
        for (let c = 0; c < k; c++) {
          centres.push(c > 0 && rng.next() < 0.2 ? centres[rng.int(c)] : unit(Float64Array.from({ length: dim }, () => rng.normal())));
        }
        const data = new Float32Array(rows * dim);
        const rowsF64: Float64Array[] = [];
        for (let i = 0; i < rows; i++) {
          const near = centres[rng.int(k)];
          const u = unit(near.map((x) => x + (0.3 / Math.sqrt(dim)) * rng.normal()));
          data.set(u, i * dim);
          rowsF64.push(Float64Array.from(data.subarray(i * dim, (i + 1) * dim)));
        }
        const centroids = new Float32Array(k * dim);
        centres.forEach((c, j) => centroids.set(c, j * dim));
        const labels: number[] = [];
        const distances: number[] = [];
        for (const r of rowsF64) {
          let best = Infinity;
          let arg = -1;
          for (let j = 0; j < k; j++) {
            let d = 0;
            for (let t = 0; t < dim; t++) d += (r[t] - centroids[j * dim + t]) ** 2;
            if (d < best - 1e-3) {
              best = d;
              arg = j;
            }
          }
          labels.push(arg);
          distances.push(best);
        }
        const t = specAssign.length;
        save(`x${t}`, data);
        save(`m${t}`, centroids);
        specAssign.push({ data: `x${t}`, centroids: `m${t}`, rows, dim, k });
        assign.push({ labels, distances });
      }
      writeFileSync(join(dir, 'spec.json'), JSON.stringify({ matmul: specMatmul, gains: specGains, assign: specAssign }));
      const addonPath = join(packageRoot(), 'build', 'Release', 'pairpick.node');
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, addonPath, dir], {
        env: { ...process.env, PAIRPICK_SIMD: level },
        encoding: 'utf8',
      });
      expect(child.status, child.stderr).toBe(0);
      const out = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8'));
      expect(out.simd).toBe(reported);
      // fp32 products of inner ≤ 350 terms: a few units of 2⁻²⁴·√inner relative to the norm.
      matmul.forEach(({ ref, what }, k) => expect(relativeError(out.matmul[k], ref), what).toBeLessThanOrEqual(1e-5));
      // float64 differences and sums: only the summation order differs.
      gains.forEach(({ ref, cover }, k) => {
        expect(out.gains[k].cover).toEqual(Array.from(cover));
        ref.forEach((g, t) => expect(Math.abs(out.gains[k].gains[t] - g)).toBeLessThanOrEqual(1e-12 * Math.max(1, g)));
      });
      // The reference keeps the first centre unless another is clearly (1e-3) nearer: copies tie
      // exactly in fp32 too (same arithmetic), unrelated centres are ≫ 1e-3 apart. Distances are
      // 2 − 2·fp32 dot: a few 2⁻²⁴·√dim of absolute error.
      assign.forEach(({ labels, distances }, t) => {
        expect(out.assign[t].labels).toEqual(labels);
        distances.forEach((d, i) => expect(Math.abs(out.assign[t].distances[i] - d)).toBeLessThanOrEqual(1e-5));
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
