// One stage-1 mini-batch: forward through every head, the objective of spec/methods.md §1.3
//   L = L_cm + β · Σ_m L_proto^m
// and the gradients of every parameter (heads and prototypes), chained through backend ops.
import type { Backend } from '../backend/types.js';
import { headBackward, headForward, type Head, type HeadCache, type HeadGrads, Workspace, zeroGrads } from './projection.js';

/** The trainable state of stage 1: one head and one prototype matrix (K × d) per modality. */
export interface Stage1State {
  modalities: readonly string[];
  heads: Head[];
  /** Per modality, K × d, rows of unit length. */
  prototypes: Float32Array[];
}

/** The loss hyper-parameters a step needs. */
export interface StepHyper {
  beta: number;
  temperature: number;
  protoTemperature: number;
  epsilon: number;
  sinkhornIterations: number;
  swap: boolean;
}

export interface StepResult {
  /** L = infoNCE + β·proto. */
  loss: number;
  /** L_cm, averaged over unordered modality pairs. */
  infoNCE: number;
  /** Σ_m L_proto^m (0 when β = 0: not computed). */
  proto: number;
  headGrads: HeadGrads[];
  /** ∂L/∂C^m per modality (zeros when β = 0). */
  prototypeGrads: Float32Array[];
  /** The Sinkhorn codes of each modality (empty when β = 0); kept for tests. */
  codes: Float32Array[];
}

function addScaled(dst: Float32Array, src: Float32Array, scale: number): void {
  for (let i = 0; i < dst.length; i++) dst[i] += scale * src[i];
}

/**
 * The prototype targets of each modality. Without `swap` each modality is its own target.
 * With `swap`, modality m is trained towards the codes of the other modalities: for M = 2 that
 * is the other one's codes (SwAV's swapped prediction); for M > 2, our choice is the mean of the
 * other M − 1 modalities' codes (each row still sums to 1).
 */
export function prototypeTargets(codes: readonly Float32Array[], swap: boolean): Float32Array[] {
  if (!swap) return codes.slice();
  const M = codes.length;
  return codes.map((_, m) => {
    if (M === 2) return codes[1 - m];
    const t = new Float32Array(codes[m].length);
    for (let o = 0; o < M; o++) if (o !== m) addScaled(t, codes[o], 1 / (M - 1));
    return t;
  });
}

/** Where a training loop wants a step's gradients written, and its reusable activation buffers. */
export interface StepOutput {
  headGrads: HeadGrads[];
  prototypeGrads: Float32Array[];
  workspace: Workspace;
}

/**
 * Loss and gradients of one batch: `inputs[m]` is rows × D_m (float32) of modality m. With `out`
 * the gradients are written into its arrays (and returned) and activations reuse its workspace.
 */
export async function stepLossAndGrads(
  backend: Backend,
  state: Stage1State,
  inputs: readonly Float32Array[],
  rows: number,
  hp: StepHyper,
  out?: StepOutput,
): Promise<StepResult> {
  const M = state.heads.length;
  const ws = out?.workspace;
  const caches: HeadCache[] = [];
  for (let m = 0; m < M; m++) caches.push(await headForward(backend, state.heads[m], inputs[m], rows, ws, `head${m}`));
  const dim = state.heads[0].dim;
  const gz = caches.map((_, m) => {
    const g = ws ? ws.take(`gz${m}`, rows * dim) : new Float32Array(rows * dim);
    return g.fill(0);
  });

  const pairs = (M * (M - 1)) / 2;
  let infoNCE = 0;
  for (let a = 0; a < M; a++) {
    for (let b = a + 1; b < M; b++) {
      const r = await backend.infoNCE(caches[a].z, caches[b].z, { rows, dim, temperature: hp.temperature });
      infoNCE += r.loss / pairs;
      addScaled(gz[a], r.gradA, 1 / pairs);
      addScaled(gz[b], r.gradB, 1 / pairs);
    }
  }

  let proto = 0;
  const prototypeGrads = out ? out.prototypeGrads.map((g) => g.fill(0)) : state.prototypes.map((c) => new Float32Array(c.length));
  const codes: Float32Array[] = [];
  if (hp.beta > 0) {
    for (let m = 0; m < M; m++) {
      const C = state.prototypes[m];
      const k = C.length / dim;
      const scores = ws ? ws.take(`scores${m}`, rows * k) : new Float32Array(rows * k);
      await backend.matmul(caches[m].z, C, scores, { m: rows, n: k, inner: dim, transA: false, transB: true, accumulate: false });
      codes.push(await backend.sinkhorn(scores, { rows, k, epsilon: hp.epsilon, iterations: hp.sinkhornIterations }));
    }
    const targets = prototypeTargets(codes, hp.swap);
    for (let m = 0; m < M; m++) {
      const C = state.prototypes[m];
      const k = C.length / dim;
      const r = await backend.prototypeLoss(caches[m].z, C, targets[m], { rows, dim, k, temperature: hp.protoTemperature });
      proto += r.loss;
      addScaled(gz[m], r.gradZ, hp.beta);
      addScaled(prototypeGrads[m], r.gradPrototypes, hp.beta);
    }
  }

  const headGrads: HeadGrads[] = [];
  for (let m = 0; m < M; m++) {
    const g = out ? out.headGrads[m] : zeroGrads(state.heads[m]);
    await headBackward(backend, state.heads[m], caches[m], gz[m], g, ws, `head${m}`);
    headGrads.push(g);
  }
  return { loss: infoNCE + hp.beta * proto, infoNCE, proto, headGrads, prototypeGrads, codes };
}

/** Re-normalises each prototype (row) to unit length, after every optimiser step (spec §1.2). */
export function normalizePrototypes(C: Float32Array, dim: number): void {
  for (let o = 0; o < C.length; o += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += C[o + j] * C[o + j];
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < dim; j++) C[o + j] *= inv;
  }
}
