import { describe, expect, it } from 'vitest';

import { classCoverage, ridgeProbeAccuracy } from '../src/eval/probe.js';
import { randomMatrix, testRng } from './helpers/random.js';

// Independent reference: the primal ridge solution W = (XᵀX + λI)⁻¹ Xᵀ Y by Gaussian elimination.
// Also returns each eval row's gap between its best and second-best class score, and the largest |score|.
function primalPredict(
  x: Float32Array,
  dim: number,
  labels: Int32Array,
  classes: number,
  train: number[],
  evalRows: number[],
  lambda: number,
): { predicted: number[]; gaps: number[]; scale: number } {
  const mean = new Array(dim).fill(0);
  for (const r of train) for (let j = 0; j < dim; j++) mean[j] += x[r * dim + j] / train.length;
  const row = (r: number) => Array.from({ length: dim }, (_, j) => x[r * dim + j] - mean[j]);
  const prior = new Array(classes).fill(0);
  for (const r of train) prior[labels[r]] += 1 / train.length;
  const a = Array.from({ length: dim }, (_, i) => Array.from({ length: dim + classes }, (_, j) => (j === i ? lambda : 0)));
  for (const r of train) {
    const v = row(r);
    for (let i = 0; i < dim; i++) {
      for (let j = 0; j < dim; j++) a[i][j] += v[i] * v[j];
      for (let c = 0; c < classes; c++) a[i][dim + c] += v[i] * ((labels[r] === c ? 1 : 0) - prior[c]);
    }
  }
  for (let i = 0; i < dim; i++) {
    let p = i;
    for (let k = i + 1; k < dim; k++) if (Math.abs(a[k][i]) > Math.abs(a[p][i])) p = k;
    [a[i], a[p]] = [a[p], a[i]];
    for (let k = 0; k < dim; k++) {
      if (k === i) continue;
      const f = a[k][i] / a[i][i];
      for (let j = i; j < dim + classes; j++) a[k][j] -= f * a[i][j];
    }
  }
  const w = a.map((r, i) => r.slice(dim).map((v) => v / a[i][i]));
  const scores = evalRows.map((r) => {
    const v = row(r);
    return prior.map((p, c) => p + v.reduce((acc, vi, i) => acc + vi * w[i][c], 0));
  });
  return {
    predicted: scores.map((s) => s.indexOf(Math.max(...s))),
    gaps: scores.map((s) => {
      const sorted = [...s].sort((p, q) => q - p);
      return sorted[0] - sorted[1];
    }),
    scale: Math.max(...scores.flat().map(Math.abs)),
  };
}

/**
 * How far apart two class scores must be for the probe (a dual float64 solve of size |train|) and
 * the primal reference (size dim) to rank them alike: a backward-stable solve of a system of size
 * n with condition number κ ≤ (trace XᵀX + λ)/λ is off by ≲ n·2⁻⁵³·κ relative, so each side's
 * scores by that times the largest |score|.
 */
function scoreTolerance(x: Float32Array, dim: number, train: number[], lambda: number, scale: number): number {
  let trace = 0;
  for (const r of train) for (let j = 0; j < dim; j++) trace += x[r * dim + j] ** 2;
  return 2 * (train.length + dim) * 2 ** -53 * ((trace + lambda) / lambda) * scale;
}

describe('ridge probe', () => {
  it('matches the primal ridge solution on random data', () => {
    const rng = testRng();
    const rows = 60, dim = 7, classes = 4;
    const train = Array.from({ length: 23 }, (_, i) => i * 2);
    const evalRows = Array.from({ length: rows }, (_, i) => i).filter((i) => !train.includes(i));
    const lambdas = [0.1, 1, 10];
    // Data whose predictions are not decided by rounding: every eval row's best class score beats
    // the second by more than the two solvers can disagree (redrawn otherwise; scores are O(1)).
    let x: Float32Array;
    let labels: Int32Array;
    let refs: ReturnType<typeof primalPredict>[];
    do {
      x = randomMatrix(rng, rows, dim);
      labels = Int32Array.from({ length: rows }, () => rng.int(classes));
      for (let r = 0; r < rows; r++) x[r * dim + labels[r]] += 2; // some signal
      refs = lambdas.map((lambda) => primalPredict(x, dim, labels, classes, train, evalRows, lambda));
    } while (refs.some((ref, l) => Math.min(...ref.gaps) <= scoreTolerance(x, dim, train, lambdas[l], ref.scale)));
    lambdas.forEach((lambda, l) => {
      const expected = refs[l].predicted.filter((p, i) => p === labels[evalRows[i]]).length / evalRows.length;
      expect(ridgeProbeAccuracy({ features: x, dim, labels, classes }, train, evalRows, { lambda })).toBeCloseTo(expected, 12);
    });
  });

  it('class coverage counts classes and the histogram entropy', () => {
    const labels = Int32Array.from([0, 1, 1, 2, 2, 2]);
    const c = classCoverage(labels, [0, 1, 3, 4], 4);
    expect(c.covered).toBe(3);
    expect(c.histogram).toEqual([1, 1, 2, 0]);
    expect(c.entropy).toBeCloseTo(-(2 * 0.25 * Math.log(0.25) + 0.5 * Math.log(0.5)), 12);
  });
});
