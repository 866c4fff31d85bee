/**
 * The quick downstream probe used to score a selection: ridge regression (one-vs-rest, one-hot
 * targets) trained on the raw features of the picked samples only, accuracy on held-out rows.
 * With B picked rows and D features it is solved in its dual form — (XXᵀ + λI)⁻¹Y, a B×B
 * system — so a probe costs O(B²·D + B³), not O(D³).
 */
import { PairpickError } from '../errors.js';
import { check, checkTensorSizes, integer, matrix, MAX_TENSOR_VALUES, number, OBJECT, readOptions, refuse, rowIndices } from '../util/validate.js';

/** A class count: its histogram and per-class scores are arrays of this length. */
const CLASS_COUNT = integer({ min: 1, max: MAX_TENSOR_VALUES });

/**
 * Checks probe data: features a rows × dim Float32Array of finite values, one label per row,
 * each a class in [0, classes). Returns the row count.
 */
function checkProbeData(data: ProbeData, where: string): number {
  check(OBJECT, data, `${where}: argument 'data'`);
  const dim = check(integer({ min: 1, max: MAX_TENSOR_VALUES }), data.dim, `${where}: data.dim`);
  const classes = check(CLASS_COUNT, data.classes, `${where}: data.classes`);
  if (!(data.features instanceof Float32Array)) refuse(`${where}: data.features`, 'a Float32Array', data.features);
  if (data.features.length % dim !== 0) {
    throw new PairpickError('E_SHAPE', `${where}: data.features has ${data.features.length} values, not a whole number of rows of data.dim = ${dim}`);
  }
  const rows = data.features.length / dim;
  matrix(data.features, 'data.features', where, rows, dim);
  if (!(data.labels instanceof Int32Array)) refuse(`${where}: data.labels`, 'an Int32Array', data.labels);
  if (data.labels.length !== rows) throw new PairpickError('E_SHAPE', `${where}: data.labels has ${data.labels.length} labels but data.features has ${rows} rows`);
  checkTensorSizes(where, [[`the classifier weights (data.dim × data.classes = ${dim} × ${classes})`, dim * classes]], 'E_SHAPE');
  for (let i = 0; i < rows; i++) {
    const label = data.labels[i];
    if (label < 0 || label >= classes) throw new PairpickError('E_SHAPE', `${where}: data.labels[${i}] = ${label} is not a class in [0, data.classes = ${classes})`);
  }
  return rows;
}

export interface ProbeData {
  /** Row-major features of every sample that can be trained on or tested (rows × dim). */
  features: Float32Array;
  dim: number;
  labels: Int32Array;
  classes: number;
}

export interface ProbeOptions {
  /** Ridge penalty λ (default 1). */
  lambda?: number;
}

/** Accuracy on `evalRows` of a ridge classifier trained on `trainRows` (indices into `data`). */
export function ridgeProbeAccuracy(data: ProbeData, trainRows: ArrayLike<number>, evalRows: ArrayLike<number>, options: ProbeOptions = {}): number {
  const pred = ridgeProbePredict(data, trainRows, evalRows, options, 'ridgeProbeAccuracy');
  let correct = 0;
  for (let e = 0; e < pred.length; e++) if (pred[e] === data.labels[evalRows[e]]) correct++;
  return correct / pred.length;
}

/** The class a ridge classifier trained on `trainRows` predicts for each of `evalRows` (indices into `data`). */
export function ridgeProbePredict(data: ProbeData, trainRows: ArrayLike<number>, evalRows: ArrayLike<number>, options: ProbeOptions = {}, where = 'ridgeProbePredict'): Int32Array {
  const lambda = readOptions(options, { lambda: number({ above: 0 }) }, where).lambda ?? 1;
  const rows = checkProbeData(data, where);
  const { features, dim, labels, classes } = data;
  trainRows = rowIndices(trainRows, rows, `${where}: argument 'trainRows'`, 'trainRows');
  evalRows = rowIndices(evalRows, rows, `${where}: argument 'evalRows'`, 'evalRows');
  const b = trainRows.length;
  if (b < 1) throw new PairpickError('E_BUDGET', `${where}: argument 'trainRows' is empty: no training rows`);
  if (evalRows.length < 1) throw new PairpickError('E_SHAPE', `${where}: argument 'evalRows' is empty: nothing to score`);
  checkTensorSizes(where, [[`the Gram matrix (trainRows × trainRows = ${b} × ${b})`, b * b]], 'E_SHAPE');
  // Standardise with the training rows' mean so the intercept is implicit.
  const mean = new Float64Array(dim);
  for (let t = 0; t < b; t++) {
    const o = trainRows[t] * dim;
    for (let j = 0; j < dim; j++) mean[j] += features[o + j];
  }
  for (let j = 0; j < dim; j++) mean[j] /= b;
  const centred = (row: number, out: Float64Array) => {
    const o = row * dim;
    for (let j = 0; j < dim; j++) out[j] = features[o + j] - mean[j];
  };
  const train = Array.from({ length: b }, (_, t) => {
    const v = new Float64Array(dim);
    centred(trainRows[t], v);
    return v;
  });
  // Gram matrix K = XXᵀ + λI, targets Y (one-hot minus class prior, so an empty class scores 0).
  const gram = new Float64Array(b * b);
  for (let i = 0; i < b; i++) {
    for (let j = i; j < b; j++) {
      let s = 0;
      const u = train[i], v = train[j];
      for (let d = 0; d < dim; d++) s += u[d] * v[d];
      gram[i * b + j] = s;
      gram[j * b + i] = s;
    }
    gram[i * b + i] += lambda;
  }
  const prior = new Float64Array(classes);
  for (let t = 0; t < b; t++) prior[labels[trainRows[t]]] += 1 / b;
  const y = new Float64Array(b * classes);
  for (let t = 0; t < b; t++) for (let c = 0; c < classes; c++) y[t * classes + c] = (labels[trainRows[t]] === c ? 1 : 0) - prior[c];
  const alpha = choleskySolve(gram, b, y, classes);
  // Primal weights W = Xᵀα (dim × classes), then predict.
  const w = new Float64Array(dim * classes);
  for (let t = 0; t < b; t++) {
    const x = train[t];
    for (let c = 0; c < classes; c++) {
      const a = alpha[t * classes + c];
      if (a === 0) continue;
      for (let d = 0; d < dim; d++) w[d * classes + c] += x[d] * a;
    }
  }
  const x = new Float64Array(dim);
  const scores = new Float64Array(classes);
  const pred = new Int32Array(evalRows.length);
  for (let e = 0; e < evalRows.length; e++) {
    centred(evalRows[e], x);
    for (let c = 0; c < classes; c++) scores[c] = prior[c];
    for (let d = 0; d < dim; d++) {
      const xd = x[d];
      if (xd === 0) continue;
      const o = d * classes;
      for (let c = 0; c < classes; c++) scores[c] += xd * w[o + c];
    }
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[c] > scores[best]) best = c;
    pred[e] = best;
  }
  return pred;
}

/** Solves A X = B for symmetric positive-definite A (n×n), B (n×m), in float64. */
function choleskySolve(a: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      if (i === j) {
        if (!(s > 0)) throw new PairpickError('E_INTERNAL', 'ridge probe: Gram matrix is not positive definite');
        l[i * n + i] = Math.sqrt(s);
      } else {
        l[i * n + j] = s / l[j * n + j];
      }
    }
  }
  const x = Float64Array.from(b);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = x[i * m + c];
      for (let k = 0; k < i; k++) s -= l[i * n + k] * x[k * m + c];
      x[i * m + c] = s / l[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = x[i * m + c];
      for (let k = i + 1; k < n; k++) s -= l[k * n + i] * x[k * m + c];
      x[i * m + c] = s / l[i * n + i];
    }
  }
  return x;
}

/** Class-histogram summary of a selection: classes covered and the entropy (nats) of the histogram. */
export function classCoverage(labels: Int32Array, picks: ArrayLike<number>, classes: number): { covered: number; entropy: number; histogram: number[] } {
  const where = 'classCoverage';
  check(CLASS_COUNT, classes, `${where}: argument 'classes'`);
  if (!(labels instanceof Int32Array)) refuse(`${where}: labels`, 'an Int32Array', labels);
  picks = rowIndices(picks, labels.length, `${where}: argument 'picks'`, 'picks');
  for (let i = 0; i < picks.length; i++) {
    const label = labels[picks[i]];
    if (label < 0 || label >= classes) throw new PairpickError('E_SHAPE', `${where}: labels[${picks[i]}] = ${label} is not a class in [0, ${classes})`);
  }
  const histogram = new Array<number>(classes).fill(0);
  for (let i = 0; i < picks.length; i++) histogram[labels[picks[i]]]++;
  let entropy = 0;
  for (const h of histogram) if (h > 0) entropy -= (h / picks.length) * Math.log(h / picks.length);
  return { covered: histogram.filter((h) => h > 0).length, entropy, histogram };
}
