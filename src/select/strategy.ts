// A selection strategy described as data: its name, whether it needs a trained classifier (warm)
// or only the pool (cold), its options (rule, default, one line of docs), the per-row inputs a warm
// strategy reads, its progress phases, how its options resolve against the pool, and its driver.
// `select()` and `pairpick select` (flags, their checks and --help) are generated from these
// descriptors; src/select/registry.ts lists the built-in ones.
import type { PoolInput } from '../io/pool.js';
import type { TensorLike } from '../io/tensor.js';
import type { Rule } from '../util/validate.js';
import type { PhaseWeights, PoolLike, Run, RunBase } from './common.js';
import type { ClassifierModel } from '../train/types.js';
import type { MmcsalComponents, MmcsalRaw } from './mmcsal.js';

/** 'cold': needs only the pool. 'warm': also reads a trained classifier — its per-row outputs
 * (`inputs`) or the classifier itself (`model`). */
export type StrategyKind = 'cold' | 'warm';

/** How an option reads in --help and the docs. */
export interface OptionDocs<T> {
  /** The value when the option is not given. Without one the strategy decides (in `parse` or its
   * driver) and `shownDefault` says how. */
  default?: T;
  /** What --help shows as the default of an option without a `default`, e.g. 'exact' or 'auto'. */
  shownDefault?: string;
  /** Placeholder of the value in --help, e.g. 'K' or 'auto|G'. */
  value: string;
  /** One line: what the option does and its range. */
  doc: string;
}

/** One option of a strategy: the rule every value must pass (type and range), and its docs. */
export interface StrategyOption<T = unknown> extends OptionDocs<T> {
  rule: Rule<T>;
}

/** Declares an option, its default typed by its rule: `option(count(1), { default: 10, value: 'K', doc: '…' })`. */
export function option<T, const D extends OptionDocs<T>>(rule: Rule<T>, docs: D): { rule: Rule<T> } & D {
  return { rule, ...docs };
}

/** Float32 values, `dim` per row, one row per pool row: what a warm strategy reads besides the pool. */
export interface RowMatrix {
  data: Float32Array;
  dim: number;
}

/** A per-row input of a warm strategy (e.g. the class probabilities of the current classifier):
 * a required option whose value is a RowMatrix (`pairpick select --<name> FILE.npy`). */
export interface StrategyInput {
  /** One line: what the rows hold. */
  doc: string;
  /** Values per row when the strategy needs exactly this many (1: one score per row); else any ≥ 1. */
  dim?: number;
}

/**
 * A second pool a strategy may read besides the selection pool (e.g. MMCSAL's `inputs`: the
 * features stage 1 embedded): an optional option whose value is a pool with the same rows — an open
 * Pool (or anything with `rows`, `modalities`, `source()`) or what `openPool` accepts. select()
 * opens the latter (and closes it afterwards), checks its rows against the pool (E_SHAPE) and
 * passes it to `run`. Not a command line flag of its own: `pairpick select` reads each pool from
 * flags the command declares for it (`--input NAME=PATH`).
 */
export interface StrategyPool {
  /** One line: what the pool holds. */
  doc: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type OptionTable = Record<string, StrategyOption<any>>;
export type InputTable = Record<string, StrategyInput>;
export type PoolTable = Record<string, StrategyPool>;
export type OptionValue<S> = S extends { rule: Rule<infer T> } ? T : never;
/** A strategy's options as `select()` takes them: each optional. */
export type GivenOptions<O> = { [K in keyof O]?: OptionValue<O[K]> };
/** The options after their defaults: one without a default may still be undefined. */
export type DefaultedOptions<O> = { [K in keyof O]: O[K] extends { default: unknown } ? OptionValue<O[K]> : OptionValue<O[K]> | undefined };
/** The options that have a default, with its type. */
export type DefaultsOf<O> = { [K in keyof O as O[K] extends { default: unknown } ? K : never]: OptionValue<O[K]> };
/** A warm input as select() takes it: `{ data, dim }` or a 2-D float tensor (onnxruntime-node, transformers.js, tfjs). */
export type GivenInputs<I> = { [K in keyof I]?: RowMatrix | TensorLike };
export type Inputs<I> = { [K in keyof I]: RowMatrix };
/** A strategy's pools as select() takes them. */
export type GivenPools<L> = { [K in keyof L]?: PoolLike | PoolInput };
/** Its pools as `run` gets them: opened, rows checked; absent when not given. */
export type Pools<L> = { [K in keyof L]?: PoolLike };
/** Their shapes, as `parse` sees them. */
export type PoolsDims<L> = { [K in keyof L]?: PoolDims };

/** The pool a selection runs on, as `parse` sees it (nothing read yet). */
export interface PoolDims {
  rows: number;
  modalities: readonly string[];
  dims: readonly number[];
}

/** What a warm strategy that runs a trained classifier itself needs of it (select()'s `model` option). */
export interface ModelNeed {
  /** The downstream models it works with (spec §4, §6); another is refused with E_OPTION. */
  forms: readonly ClassifierModel[];
  /** Why it needs those forms, for that message (e.g. 'modality contributions need the per-modality parts of the fused input'). */
  why?: string;
  /** Most modalities it handles (more is refused with E_OPTION), with the reason. */
  maxModalities?: { count: number; why: string };
}

/** Per-pick values a strategy reports (Selection.components): MMCSAL's terms, or a warm
 * strategy's own (`uncertainty`; BADGE/BMMAL `gradNorm`, `distance`, `contribution:<modality>`,
 * `scale:<modality>`). */
export type SelectionComponents = Partial<MmcsalComponents> & { [component: string]: Float32Array | undefined };

/** Values reported in Selection.params. */
export type StrategyParams = Record<string, number | string | undefined>;

/** What a strategy's driver returns. */
export interface StrategyResult {
  /** Picked rows, in pick order. */
  indices: Int32Array;
  components?: SelectionComponents;
  raw?: MmcsalRaw;
  /** What the run settled (ProbCover's automatic radius, k-means iterations): added to Selection.params. */
  params?: StrategyParams;
}

interface Described<N extends string, O extends OptionTable, I extends InputTable, P, L extends PoolTable> {
  /** The `strategy` option's value (`--strategy NAME`): a camelCase word. */
  readonly name: N;
  readonly kind: StrategyKind;
  /** One line for --help. */
  readonly doc: string;
  /** Its options (camelCase; the command line flag is their kebab-case). */
  readonly options: O;
  /** Warm strategies: the per-row matrices they need, each a required option. */
  readonly inputs?: I;
  /** Pools it may read besides the selection pool (see StrategyPool), each an optional option. */
  readonly pools?: L;
  /** Warm strategies that run the classifier themselves: select()'s `model` option is then
   * required (a Classifier, src/train/types.ts), checked against the pool, and in `run.model`. */
  readonly model?: ModelNeed;
  /** Relative cost of its progress phases (the 'prepare' pass of the pool weighs 1). */
  readonly weights: PhaseWeights;
  /**
   * Resolves the options (already checked against their rules, defaults applied) against the pool:
   * 'auto' values, checks that depend on the dimensions (E_SHAPE, message starting `where: `) and
   * on which of its pools were given (`pools`: their shapes). What it returns is what `run` gets,
   * and is reported as Selection.params. Default: the options.
   */
  parse?(options: DefaultedOptions<O>, pool: PoolDims, where: string, pools: PoolsDims<L>): P;
}

/** A strategy that reads the embeddings: `run` gets the pool opened and prepared on the backend. */
export interface PoolStrategy<N extends string, O extends OptionTable, I extends InputTable, P, L extends PoolTable = PoolTable> extends Described<N, O, I, P, L> {
  readonly readsPool?: true;
  run(run: Run, budget: number, params: P, inputs: Inputs<I>, pools: Pools<L>): Promise<StrategyResult>;
}

/** A strategy that never reads the embeddings (random): no backend context is opened, no NaN scan. */
export interface ShapeOnlyStrategy<N extends string, O extends OptionTable, I extends InputTable, P, L extends PoolTable = PoolTable> extends Described<N, O, I, P, L> {
  readonly readsPool: false;
  run(run: RunBase, budget: number, params: P, inputs: Inputs<I>, pools: Pools<L>): Promise<StrategyResult>;
}

export type StrategyDescriptor<N extends string = string, O extends OptionTable = OptionTable, I extends InputTable = InputTable, P = unknown, L extends PoolTable = PoolTable> =
  | PoolStrategy<N, O, I, P, L>
  | ShapeOnlyStrategy<N, O, I, P, L>;

/** Types a strategy descriptor (its name a literal, `parse` and `run` checked against its options). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export function defineStrategy<N extends string, O extends OptionTable = {}, I extends InputTable = {}, P = DefaultedOptions<O>, L extends PoolTable = {}>(
  d: PoolStrategy<N, O, I, P, L>,
): PoolStrategy<N, O, I, P, L>;
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export function defineStrategy<N extends string, O extends OptionTable = {}, I extends InputTable = {}, P = DefaultedOptions<O>, L extends PoolTable = {}>(
  d: ShapeOnlyStrategy<N, O, I, P, L>,
): ShapeOnlyStrategy<N, O, I, P, L>;
export function defineStrategy(d: StrategyDescriptor): StrategyDescriptor {
  return d;
}

