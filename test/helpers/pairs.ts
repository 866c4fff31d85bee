// Synthetic paired data for stage-1 tests: C classes, each modality an independent noisy linear
// image of a per-class latent centre, plus a large constant offset per modality (the "gap" a
// projection must learn to close). Pairs share only their class, like AV-Digits.
import type { Rng } from '../../src/util/rng.js';

export interface SyntheticPairs {
  rows: number;
  dims: number[];
  data: Float32Array[];
  labels: Int32Array;
}

export function syntheticPairs(rng: Rng, rows: number, dims: number[], classes = 6, latent = 8): SyntheticPairs {
  const centres = Array.from({ length: classes }, () => Array.from({ length: latent }, () => rng.normal() * 2));
  const maps = dims.map((D) => Float64Array.from({ length: D * latent }, () => rng.normal()));
  const offsets = dims.map((D, m) => Float64Array.from({ length: D }, () => rng.normal() * 3 + (m % 2 ? -2 : 2)));
  const data = dims.map((D) => new Float32Array(rows * D));
  const labels = new Int32Array(rows);
  const u = new Float64Array(latent);
  for (let i = 0; i < rows; i++) {
    const c = rng.int(classes);
    labels[i] = c;
    dims.forEach((D, m) => {
      for (let t = 0; t < latent; t++) u[t] = centres[c][t] + rng.normal() * 0.7;
      for (let j = 0; j < D; j++) {
        let s = offsets[m][j];
        for (let t = 0; t < latent; t++) s += maps[m][j * latent + t] * u[t];
        data[m][i * D + j] = s + rng.normal() * 0.5;
      }
    });
  }
  return { rows, dims, data, labels };
}
