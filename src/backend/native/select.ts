// Adapter: addon.{cpu,cuda}.openSelection (native/binding/select.cc) → SelectOps. The native
// selection object keeps the data arrays alive; ops are awaited one at a time (it refuses
// overlapping calls). Names of forms, reductions and modes become their codes here.
import { PairpickError } from '../../errors.js';
import type {
  GreedyConfig,
  GreedyStepResult,
  PairMetric,
  PairReduction,
  PrepareResult,
  RowSet,
  SelectionContext,
  SelectOps,
  SelectPoolSpec,
} from '../ops-select.js';
import { callNative } from '../../native/addon.js';
import { NATIVE_CODES } from '../../native/codes.js';
import type { NativeOps, NativePairMetric, NativeReduction, NativeSelection } from './ops.js';

function pairMetric(metric: PairMetric): NativePairMetric {
  return { form: NATIVE_CODES.pairForms[metric.form], gamma: metric.gamma };
}

function reduction(r: PairReduction): NativeReduction {
  return { ...r, kind: NATIVE_CODES.reductions[r.kind] };
}

/** The CPU engine's symmetric kNN pass keeps rows × k float lists up to this size (kSymMaxBytes
 * of native/core/select.cc); beyond it every query range is computed against every row. */
const CPU_SYMMETRIC_KNN_MAX_BYTES = 512 * 2 ** 20;

class NativeSelectionContext implements SelectionContext {
  private closed = false;
  constructor(
    private readonly native: NativeSelection,
    private readonly where: string,
    private readonly engine: 'cpu' | 'cuda',
    readonly rows: number,
    readonly dims: readonly number[],
  ) {}

  symmetricKnn(k: number): boolean {
    return this.engine === 'cpu' && this.rows * Math.max(1, k) * 4 <= CPU_SYMMETRIC_KNN_MAX_BYTES;
  }

  private call<T>(op: (s: NativeSelection) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new PairpickError('E_STATE', 'selection context used after close()'));
    return callNative(() => op(this.native), this.where);
  }

  prepare(start: number, count: number): Promise<PrepareResult> {
    const wantAlignment = this.dims.length >= 2 && this.dims.every((d) => d === this.dims[0]);
    return this.call((s) => s.prepare(start, count, wantAlignment));
  }

  pairReduce(queries: RowSet, refs: RowSet | undefined, metric: PairMetric, r: PairReduction): Promise<Float64Array> {
    return this.call((s) => s.pairReduce(queries, refs ?? null, pairMetric(metric), reduction(r)));
  }

  distancesFrom(row: number, metric: PairMetric): Promise<Float32Array> {
    return this.call((s) => s.distancesFrom(row, pairMetric(metric)));
  }

  gather(indices: Int32Array): Promise<Float32Array> {
    return this.call((s) => s.gather(indices));
  }

  setCentroids(centroids: Float32Array, k: number): Promise<void> {
    return this.call((s) => s.setCentroids(centroids, k));
  }

  assign(start: number, count: number, labels: Int32Array, distances: Float32Array, sums: Float64Array, counts: Float64Array): Promise<number> {
    return this.call((s) => s.assign(start, count, labels, distances, sums, counts));
  }

  greedyInit(c: GreedyConfig): Promise<void> {
    const config = { metric: pairMetric(c.metric), base: c.base ?? null, wDiversity: c.wDiversity, exclude: c.exclude, mode: NATIVE_CODES.greedyModes[c.mode] };
    return this.call((s) => s.greedyInit(config));
  }

  greedyAddCenters(indices: Int32Array): Promise<void> {
    return this.call((s) => s.greedyAddCenters(indices));
  }

  greedyStep(steps: number, uniforms?: Float64Array): Promise<GreedyStepResult> {
    return this.call((s) => s.greedyStep(steps, uniforms ?? null));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}

export function nativeSelectOps(ops: NativeOps, name: 'cpu' | 'cuda'): SelectOps {
  return {
    async openSelection(spec: SelectPoolSpec): Promise<SelectionContext> {
      const where = `select (${name})`;
      const native = await callNative(() => ops.openSelection(spec), where);
      return new NativeSelectionContext(native, where, name, spec.rows, spec.modalities.map((m) => m.dim));
    },
  };
}
