/**
 * The Backend interface: every heavy operation pairpick performs, implemented three times
 * (`js` — pure TypeScript, `cpu` — native C++, `cuda` — custom CUDA kernels). Strategies and
 * trainers are written once against this interface.
 *
 * Conventions shared by every op:
 * * Matrices are dense, row-major. `MatrixData` is a Float32Array, or a Uint16Array holding
 *   IEEE-754 binary16 ("half") bit patterns — kernels accumulate in fp32 either way.
 * * Ops are coarse and fused: a reduction (min, top-k, argmax, loss) happens inside the op,
 *   never through an N×N intermediate.
 * * Ops do one bounded chunk of work (≲ 100 ms); drivers in `src/` loop over chunks, check the
 *   AbortSignal and report progress between calls.
 * * Inputs are validated by the public API (`src/kernels.ts`, `src/select`, …); ops trust shapes.
 */

export type BackendName = 'js' | 'cpu' | 'cuda';

export * from './ops-distance.js';
export * from './ops-loss.js';
export * from './ops-select.js';
export * from './ops-train.js';
export * from './ops-warm.js';
import type { DistanceOps } from './ops-distance.js';
import type { LossOps } from './ops-loss.js';
import type { SelectOps } from './ops-select.js';
import type { TrainOps } from './ops-train.js';
import type { WarmOps } from './ops-warm.js';

/** One backend: every op of every area. */
export interface Backend extends DistanceOps, LossOps, SelectOps, TrainOps, WarmOps {
  readonly name: BackendName;
}

/** What `backends()` reports for each backend. */
export interface BackendInfo {
  name: BackendName;
  available: boolean;
  /** Why it is unavailable (or a note about it when available). */
  reason?: string;
  /** GPU name and memory, for cuda. */
  device?: string;
  /** Worker threads the backend uses. */
  threads?: number;
  /** SIMD level the cpu backend dispatched to (`avx2+fma`, `sse2`, …). */
  simd?: string;
}
