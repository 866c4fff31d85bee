// Adapter: addon.{cpu,cuda}.select* (native/binding/select.cc) → SelectOps. The native handle keeps
// the data arrays alive; ops are awaited one at a time (the engine refuses overlapping calls).
import { PairpickError } from '../../errors.js';
import type {
  GreedyConfig,
  GreedyStepResult,
  PairForm,
  PairMetric,
  PairReduction,
  PrepareResult,
  RowSet,
  SelectionContext,
  SelectOps,
  SelectPoolSpec,
} from '../ops-select.js';
import { callNative } from './addon.js';

type Table = Record<string, (...args: any[]) => any>;

const FORMS: Record<PairForm, number> = { multimodal: 0, euclidean: 1, similarity: 2 };
const KINDS: Record<PairReduction['kind'], number> = { knnMean: 0, countWithin: 1, minOtherLabel: 2, max: 3, gain: 4 };

/** (indices | null, start, count) as the binding takes a RowSet. */
function rowSetArgs(set: RowSet | undefined, rows: number): [Int32Array | null, number, number] {
  if (set === undefined) return [null, 0, rows];
  if (set instanceof Int32Array) return [set, 0, set.length];
  return [null, set.start, set.count];
}

/** The CPU engine's symmetric kNN pass keeps rows × k float lists up to this size (kSymMaxBytes
 * of native/core/select.cc); beyond it every query range is computed against every row. */
const CPU_SYMMETRIC_KNN_MAX_BYTES = 512 * 2 ** 20;

class NativeSelection implements SelectionContext {
  private closed = false;
  constructor(
    private readonly table: Table,
    private readonly handle: object,
    private readonly where: string,
    private readonly engine: 'cpu' | 'cuda',
    readonly rows: number,
    readonly dims: readonly number[],
  ) {}

  symmetricKnn(k: number): boolean {
    return this.engine === 'cpu' && this.rows * Math.max(1, k) * 4 <= CPU_SYMMETRIC_KNN_MAX_BYTES;
  }

  private call<T>(name: string, ...args: unknown[]): Promise<T> {
    if (this.closed) return Promise.reject(new PairpickError('E_STATE', 'selection context used after close()'));
    return callNative(() => this.table[name](this.handle, ...args) as Promise<T>, this.where);
  }

  prepare(start: number, count: number): Promise<PrepareResult> {
    const wantAlignment = this.dims.length >= 2 && this.dims.every((d) => d === this.dims[0]);
    return this.call('selectPrepare', start, count, wantAlignment);
  }

  pairReduce(queries: RowSet, refs: RowSet | undefined, metric: PairMetric, reduction: PairReduction): Promise<Float64Array> {
    const r = reduction;
    return this.call(
      'selectPairReduce',
      ...rowSetArgs(queries, this.rows),
      ...rowSetArgs(refs, this.rows),
      FORMS[metric.form],
      metric.gamma,
      KINDS[r.kind],
      r.kind === 'knnMean' ? r.k : 1,
      r.kind === 'countWithin' ? r.radius : 0,
      r.kind === 'countWithin' ? (r.refMask ?? null) : null,
      r.kind === 'minOtherLabel' ? r.labels : null,
      r.kind === 'gain' ? r.cover : null,
    );
  }

  distancesFrom(row: number, metric: PairMetric): Promise<Float32Array> {
    return this.call('selectDistancesFrom', row, FORMS[metric.form], metric.gamma);
  }

  gather(indices: Int32Array): Promise<Float32Array> {
    return this.call('selectGather', indices);
  }

  setCentroids(centroids: Float32Array, k: number): Promise<void> {
    return this.call('selectSetCentroids', centroids, k);
  }

  assign(start: number, count: number, labels: Int32Array, distances: Float32Array, sums: Float64Array, counts: Float64Array): Promise<number> {
    return this.call('selectAssign', start, count, labels, distances, sums, counts);
  }

  greedyInit(c: GreedyConfig): Promise<void> {
    return this.call('selectGreedyInit', FORMS[c.metric.form], c.metric.gamma, c.base ?? null, c.wDiversity, c.exclude, c.mode === 'sampleSquared' ? 1 : 0);
  }

  greedyAddCenters(indices: Int32Array): Promise<void> {
    return this.call('selectGreedyAdd', indices);
  }

  greedyStep(steps: number, uniforms?: Float64Array): Promise<GreedyStepResult> {
    return this.call('selectGreedyStep', steps, uniforms ?? null);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.table.selectClose(this.handle);
  }
}

export function nativeSelectOps(table: Table, name: 'cpu' | 'cuda'): SelectOps {
  return {
    async openSelection(spec: SelectPoolSpec): Promise<SelectionContext> {
      const where = `select (${name})`;
      const handle = await callNative(
        () => table.selectOpen(spec.rows, spec.modalities.map((m) => m.data), spec.modalities.map((m) => m.dim)) as Promise<object>,
        where,
      );
      return new NativeSelection(table, handle, where, name, spec.rows, spec.modalities.map((m) => m.dim));
    },
  };
}
