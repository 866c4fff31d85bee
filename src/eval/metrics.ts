// What `evaluate()` measures for one cell: the downstream model's scores on the test split
// (accuracy, macro-F1, per-class recall) and the shape of the labelled set (class histogram, and
// the modality gap and mean cross-modal alignment of the picked pairs' embeddings).

/** Accuracy, macro-F1 and recall per class of `pred` against `truth` (same length, classes in [0, classes)). */
export function classificationScores(truth: Int32Array, pred: Int32Array, classes: number): { accuracy: number; macroF1: number; recall: number[] } {
  const support = new Float64Array(classes);
  const predicted = new Float64Array(classes);
  const hits = new Float64Array(classes);
  let correct = 0;
  for (let i = 0; i < truth.length; i++) {
    support[truth[i]]++;
    predicted[pred[i]]++;
    if (pred[i] === truth[i]) {
      hits[truth[i]]++;
      correct++;
    }
  }
  const recall: number[] = [];
  let f1Sum = 0;
  for (let c = 0; c < classes; c++) {
    recall.push(support[c] > 0 ? hits[c] / support[c] : 0);
    // F1 = 2·tp / (support + predicted); a class never present nor predicted scores 0 (it is still
    // one of the classes the macro average is over).
    f1Sum += support[c] + predicted[c] > 0 ? (2 * hits[c]) / (support[c] + predicted[c]) : 0;
  }
  return { accuracy: correct / truth.length, macroF1: f1Sum / classes, recall };
}

/** Picks per class, and how many classes have at least one. */
export function classHistogram(labels: Int32Array, rows: ArrayLike<number>, classes: number): { histogram: number[]; covered: number } {
  const histogram = new Array<number>(classes).fill(0);
  for (let i = 0; i < rows.length; i++) histogram[labels[rows[i]]]++;
  return { histogram, covered: histogram.filter((h) => h > 0).length };
}

/**
 * Geometry of the picked pairs in the embedding the selection ran on (`modalities` unit-norm
 * rows × dim, same dim): the modality gap of the picks, ‖mean_a − mean_b‖₂ over the picks (spec
 * §1.3 restricted to them; averaged over modality pairs when M > 2), and their mean alignment
 * a(i), the cosine between the pair's own embeddings (spec §3.1, averaged over modality pairs).
 */
export function pickGeometry(modalities: Float32Array[], dim: number, picks: ArrayLike<number>): { gap: number; alignment: number } {
  const m = modalities.length;
  let gap = 0;
  let alignment = 0;
  let pairs = 0;
  for (let a = 0; a < m; a++) {
    for (let b = a + 1; b < m; b++) {
      const diff = new Float64Array(dim);
      let align = 0;
      for (let t = 0; t < picks.length; t++) {
        const o = picks[t] * dim;
        let dot = 0;
        for (let j = 0; j < dim; j++) {
          const x = modalities[a][o + j];
          const y = modalities[b][o + j];
          diff[j] += x - y;
          dot += x * y;
        }
        align += dot;
      }
      let norm = 0;
      for (let j = 0; j < dim; j++) norm += (diff[j] / picks.length) ** 2;
      gap += Math.sqrt(norm);
      alignment += align / picks.length;
      pairs++;
    }
  }
  return { gap: gap / pairs, alignment: alignment / pairs };
}

/** Mean and sample standard deviation (0 for one value). */
export function meanStd(values: readonly number[]): { mean: number; std: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const std = values.length > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1)) : 0;
  return { mean, std };
}
