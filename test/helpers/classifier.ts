// A test-only downstream classifier with random weights, implementing the Classifier contract of
// src/train/types.ts exactly as its docs say (no training): per modality h^m = ReLU(x^m W_mᵀ + b_m);
// late fusion — fused logits = bias + Σ_m W[:, m·h …] h^m, auxiliary heads per modality; MLA — one
// shared head g, modality logits g(h^m), λ = softmax(−entropy) over the present modalities, fused
// logits = Σ_m λ_m g(h^m). A modality row that is all NaN is missing (h^m = 0, present 0).
// Arithmetic in float64, results rounded to float32 (as a float32 model would give them, near).
import type { Pool } from '../../src/io/pool.js';
import type { Classifier, ClassifierModel, ForwardResult, OutputLayer, Prediction } from '../../src/train/types.js';
import type { Rng } from '../../src/util/rng.js';

export interface RandomClassifierWeights {
  /** Per modality: hidden × dim encoder weight and hidden bias. */
  encoders: { weight: Float64Array; bias: Float64Array }[];
  /** Output layer (late fusion: classes × M·hidden; MLA: classes × hidden). */
  head: { weight: Float64Array; bias: Float64Array };
  /** Late fusion: per-modality auxiliary heads (classes × hidden). */
  aux: { weight: Float64Array; bias: Float64Array }[];
}

function gaussian(rng: Rng, n: number, scale: number, shift = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(shift + rng.normal() * scale);
  return out;
}

function softmax(l: Float64Array): Float64Array {
  let m = -Infinity;
  for (const v of l) m = Math.max(m, v);
  const e = l.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Random weights for the modalities (name, dim): encoders scaled 1/√dim (biases shifted up so most
 * units are active), heads scaled `headScale`/√(fan-in). All values are float32-representable. */
export function randomWeights(
  rng: Rng,
  model: ClassifierModel,
  modalities: { name: string; dim: number }[],
  hidden: number,
  classes: number,
  headScale = 3,
): RandomClassifierWeights {
  const M = modalities.length;
  const fanIn = model === 'late-fusion' ? M * hidden : hidden;
  return {
    encoders: modalities.map((m) => ({ weight: gaussian(rng, hidden * m.dim, 1 / Math.sqrt(m.dim)), bias: gaussian(rng, hidden, 0.3, 0.2) })),
    head: { weight: gaussian(rng, classes * fanIn, headScale / Math.sqrt(fanIn)), bias: gaussian(rng, classes, 0.3) },
    aux: model === 'late-fusion' ? modalities.map(() => ({ weight: gaussian(rng, classes * hidden, headScale / Math.sqrt(hidden)), bias: gaussian(rng, classes, 0.3) })) : [],
  };
}

export class RandomClassifier implements Classifier {
  readonly history = [];
  readonly options: Readonly<Record<string, unknown>>;
  constructor(
    readonly model: ClassifierModel,
    readonly modalities: readonly { name: string; dim: number }[],
    readonly hidden: number,
    readonly classes: number,
    readonly weights: RandomClassifierWeights,
  ) {
    this.options = { model, hidden };
  }

  /** h^m of one row in float64 (null when the row is all NaN: missing). */
  encode(m: number, x: Float32Array, offset: number): Float64Array | null {
    const { dim } = this.modalities[m];
    let allNaN = true;
    for (let j = 0; j < dim; j++) if (!Number.isNaN(x[offset + j])) allNaN = false;
    if (allNaN) return null;
    const { weight, bias } = this.weights.encoders[m];
    const h = new Float64Array(this.hidden);
    for (let u = 0; u < this.hidden; u++) {
      let a = bias[u];
      for (let j = 0; j < dim; j++) a += weight[u * dim + j] * x[offset + j];
      h[u] = Math.max(0, a);
    }
    return h;
  }

  private linear(w: Float64Array, b: Float64Array, fanIn: number, x: Float64Array, offset = 0): Float64Array {
    const out = new Float64Array(this.classes);
    for (let c = 0; c < this.classes; c++) {
      let a = b[c];
      for (let j = 0; j < x.length; j++) a += w[c * fanIn + offset + j] * x[j];
      out[c] = a;
    }
    return out;
  }

  async forward(pool: Pool, range?: { start: number; count: number }): Promise<ForwardResult> {
    const start = range?.start ?? 0;
    const rows = range?.count ?? pool.rows;
    const M = this.modalities.length;
    const C = this.classes;
    const H = this.hidden;
    const data = await Promise.all(this.modalities.map((m) => pool.source(m.name).read(start, rows)));
    const logits = new Float32Array(rows * C);
    const features = this.modalities.map(() => new Float32Array(rows * H));
    const present = new Uint8Array(rows * M);
    const modalityLogits = this.modalities.map(() => new Float32Array(rows * C));
    const fusionWeights = new Float32Array(rows * M);
    for (let i = 0; i < rows; i++) {
      const hs = this.modalities.map((m, k) => this.encode(k, data[k], i * m.dim));
      const fused = new Float64Array(C);
      const perModality: (Float64Array | null)[] = [];
      hs.forEach((h, m) => {
        present[i * M + m] = h ? 1 : 0;
        if (h) features[m].set(h, i * H);
        if (!h) return perModality.push(null);
        const l =
          this.model === 'late-fusion'
            ? this.linear(this.weights.aux[m].weight, this.weights.aux[m].bias, H, h)
            : this.linear(this.weights.head.weight, this.weights.head.bias, H, h);
        perModality.push(l);
        modalityLogits[m].set(l, i * C);
      });
      if (this.model === 'late-fusion') {
        fused.set(this.weights.head.bias);
        hs.forEach((h, m) => {
          fusionWeights[i * M + m] = h ? 1 : 0;
          if (!h) return;
          for (let c = 0; c < C; c++) for (let j = 0; j < H; j++) fused[c] += this.weights.head.weight[c * M * H + m * H + j] * h[j];
        });
      } else {
        const ent = perModality.map((l) => (l ? -softmax(l).reduce((s, p) => s + (p > 0 ? p * Math.log(p) : 0), 0) : Infinity));
        const emax = Math.max(...ent.filter(Number.isFinite));
        const e = ent.map((v) => (Number.isFinite(v) ? Math.exp(emax - v) : 0));
        const z = e.reduce((a, b) => a + b, 0);
        perModality.forEach((l, m) => {
          const lambda = e[m] / z;
          fusionWeights[i * M + m] = lambda;
          if (l) for (let c = 0; c < C; c++) fused[c] += lambda * l[c];
        });
      }
      logits.set(fused, i * C);
    }
    return { start, rows, classes: C, logits, features, present, modalityLogits, fusionWeights };
  }

  async predict(pool: Pool): Promise<Prediction> {
    const f = await this.forward(pool);
    const C = this.classes;
    const probs = new Float32Array(f.rows * C);
    const pred = new Int32Array(f.rows);
    for (let i = 0; i < f.rows; i++) {
      const p = softmax(Float64Array.from(f.logits.subarray(i * C, (i + 1) * C)));
      probs.set(p, i * C);
      pred[i] = p.indexOf(Math.max(...p));
    }
    return { rows: f.rows, classes: C, probs, pred, perModality: [], fusionWeights: f.fusionWeights };
  }

  async features(pool: Pool): Promise<Float32Array[]> {
    return (await this.forward(pool)).features;
  }

  head(): OutputLayer {
    return {
      model: this.model,
      classes: this.classes,
      hidden: this.hidden,
      modalities: this.modalities.length,
      weight: Float32Array.from(this.weights.head.weight),
      bias: Float32Array.from(this.weights.head.bias),
    };
  }

  async save(): Promise<void> {
    throw new Error('RandomClassifier is test-only: not saved');
  }
}

/** A random classifier over modalities (name, dim). */
export function randomClassifier(rng: Rng, model: ClassifierModel, modalities: { name: string; dim: number }[], hidden: number, classes: number, headScale = 3): RandomClassifier {
  return new RandomClassifier(model, modalities, hidden, classes, randomWeights(rng, model, modalities, hidden, classes, headScale));
}
