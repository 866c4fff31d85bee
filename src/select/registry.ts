// The strategies `select()` and `pairpick select` know: the built-in ones, one line each (the first
// is the default), and any registered at run time through the same `registerStrategy`.
import { PairpickError } from '../errors.js';
import { show } from '../util/validate.js';
import type { PhaseWeights } from './common.js';
import { badgeStrategy, bmmalStrategy } from './badge.js';
import { facilityStrategy } from './facility.js';
import { kcenterStrategy } from './kcenter.js';
import { kmeansStrategy } from './kmeans.js';
import { mmcsalStrategy } from './mmcsal.js';
import { probcoverStrategy } from './probcover.js';
import { randomStrategy } from './random.js';
import type { StrategyDescriptor, StrategyInput, StrategyOption, StrategyPool } from './strategy.js';
import { typiclustStrategy } from './typiclust.js';
import { entropyStrategy, leastConfidenceStrategy, marginStrategy } from './uncertainty.js';

export const BUILT_IN_STRATEGIES = [
  mmcsalStrategy,
  kcenterStrategy,
  kmeansStrategy,
  typiclustStrategy,
  probcoverStrategy,
  facilityStrategy,
  randomStrategy,
  entropyStrategy,
  marginStrategy,
  leastConfidenceStrategy,
  badgeStrategy,
  bmmalStrategy,
] as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyStrategy = StrategyDescriptor<string, Record<string, StrategyOption<any>>, Record<string, StrategyInput>, any, Record<string, StrategyPool>>;

/** Options every strategy takes (select() reads them itself); no strategy may declare one. */
export const COMMON_SELECT_OPTIONS = ['strategy', 'budget', 'labeled', 'model', 'seed', 'backend', 'signal', 'onProgress'] as const;

const PHASES: readonly (keyof PhaseWeights)[] = ['prepare', 'radius', 'kmeans', 'density', 'coverage', 'select'];

const registry = new Map<string, AnyStrategy>();

/** The registered strategies, built-in ones first, in the order they were registered. */
export function strategies(): AnyStrategy[] {
  return [...registry.values()];
}

/** Their names. */
export function strategyNames(): string[] {
  return [...registry.keys()];
}

/** The strategy called `name` (any value: undefined unless it is a registered name). */
export function findStrategy(name: unknown): AnyStrategy | undefined {
  return typeof name === 'string' ? registry.get(name) : undefined;
}

/** The registered strategies that run a trained classifier (select()'s `model` option). */
export function modelStrategies(): AnyStrategy[] {
  return strategies().filter((s) => s.model !== undefined);
}

/** The registered strategies that declare an option, input or pool called `name`. */
export function ownersOf(name: string): AnyStrategy[] {
  return strategies().filter((s) => Object.hasOwn(s.options, name) || Object.hasOwn(s.inputs ?? {}, name) || Object.hasOwn(s.pools ?? {}, name));
}

/**
 * Adds a strategy to `select()` and `pairpick select` (its flags and --help). Checks the
 * descriptor: a new lower-case name; 'warm' exactly when it declares inputs; camelCase option and
 * input names, none of select()'s own; an option shared with another strategy only as the same
 * declaration; every option's rule readable from the command line and its default accepted by it;
 * weights over the known progress phases. Returns a function that removes it again.
 */
export function registerStrategy(strategy: AnyStrategy): () => void {
  const d = strategy;
  const where = `registerStrategy(${show(d?.name)})`;
  const fail = (why: string): never => {
    throw new PairpickError('E_OPTION', `${where}: ${why}`);
  };
  if (typeof d !== 'object' || d === null) fail('the descriptor must be an object');
  if (typeof d.name !== 'string' || !/^[a-z][a-zA-Z0-9]*$/.test(d.name)) fail('name must be a word starting lower-case (camelCase letters and digits)');
  if (registry.has(d.name)) fail(`a strategy '${d.name}' is already registered`);
  if (d.kind !== 'cold' && d.kind !== 'warm') fail(`kind must be 'cold' or 'warm' (got ${show(d.kind)})`);
  if (typeof d.doc !== 'string' || d.doc.length === 0 || d.doc.includes('\n')) fail('doc must be one line');
  if (typeof d.run !== 'function') fail('run must be a function');
  if (d.parse !== undefined && typeof d.parse !== 'function') fail('parse must be a function');
  const inputs = Object.entries(d.inputs ?? {});
  if (d.model !== undefined && (typeof d.model !== 'object' || !Array.isArray(d.model.forms) || d.model.forms.length === 0)) {
    fail("model must be { forms: ['late-fusion' | 'mla', …] }");
  }
  if (d.kind === 'warm' && inputs.length === 0 && !d.model) fail('a warm strategy declares the classifier outputs it reads in `inputs`, or the classifier itself in `model`');
  if (d.kind === 'cold' && (inputs.length > 0 || d.model)) fail("a strategy with inputs or a model is 'warm'");
  const pools = Object.entries(d.pools ?? {});
  const declared: [string, StrategyOption | StrategyInput | StrategyPool][] = [...Object.entries(d.options ?? fail('options must be an object')), ...inputs, ...pools];
  for (const [name, spec] of declared) {
    if (!/^[a-z][a-zA-Z0-9]*$/.test(name)) fail(`option '${name}' must be camelCase (its flag is its kebab-case)`);
    if ((COMMON_SELECT_OPTIONS as readonly string[]).includes(name)) fail(`option '${name}' is one of select()'s own options`);
    if (typeof spec?.doc !== 'string' || spec.doc.length === 0 || spec.doc.includes('\n')) fail(`option '${name}' needs a one-line doc`);
    if (declared.filter(([n]) => n === name).length > 1) fail(`'${name}' is declared twice (as an option, an input or a pool)`);
    const other = ownersOf(name).find((s) => (s.options[name] ?? s.inputs?.[name] ?? s.pools?.[name]) !== spec);
    if (other) fail(`option '${name}' is declared differently by strategy '${other.name}' (share the declaration, or choose another name)`);
  }
  for (const [name, spec] of inputs) {
    if (spec.dim !== undefined && !(Number.isInteger(spec.dim) && spec.dim >= 1)) fail(`input '${name}': dim must be an integer ≥ 1 (got ${show(spec.dim)})`);
  }
  for (const [name, spec] of Object.entries(d.options)) {
    if (!spec.rule?.shape) fail(`option '${name}': its rule must be built by integer, number, oneOf or either (the command line reads it from text)`);
    if (spec.default !== undefined && !spec.rule.accepts(spec.default)) fail(`option '${name}': default ${show(spec.default)} is not ${spec.rule.expected}`);
    if (spec.default === undefined && !spec.shownDefault) fail(`option '${name}' needs a default, or a shownDefault saying what happens without one`);
  }
  for (const [phase, weight] of Object.entries(d.weights ?? fail('weights must be an object'))) {
    if (!PHASES.includes(phase as keyof PhaseWeights)) fail(`weights: unknown phase '${phase}' (phases: ${PHASES.join(', ')})`);
    if (typeof weight !== 'number' || !(weight >= 0) || !Number.isFinite(weight)) fail(`weights: '${phase}' must be a finite number ≥ 0`);
  }
  registry.set(d.name, d);
  return () => {
    if (registry.get(d.name) === d) registry.delete(d.name);
  };
}

for (const s of BUILT_IN_STRATEGIES) registerStrategy(s);
