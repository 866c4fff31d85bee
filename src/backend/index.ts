// Backend registry: which backends exist here, and which one a call uses.
// Order: the `backend` option, else PAIRPICK_BACKEND, else cuda → cpu → js.
import { PairpickError } from '../errors.js';
import { nativeHint } from '../native/addon.js';
import { BACKEND, check, listOf, show } from '../util/validate.js';
import { jsBackend } from './js/index.js';
import { nativeBackend, nativeInfo } from './native/index.js';
import type { Backend, BackendInfo, BackendName } from './types.js';

export type { Backend, BackendInfo, BackendName } from './types.js';

const NAMES: readonly BackendName[] = ['cuda', 'cpu', 'js'];
const instances = new Map<BackendName, Backend>();

/** Every backend with its availability (and the reason when unavailable), in preference order. */
export function backends(): BackendInfo[] {
  return NAMES.map((name) => (name === 'js' ? { name, available: true } : nativeInfo(name)));
}

/** A backend option: a name, 'auto' (the default), or an already-resolved Backend. */
export type BackendChoice = BackendName | 'auto' | Backend;

/** The ops a Backend object must have (what `getBackend` checks of one passed in). */
const OPS = ['distances', 'knnMerge', 'minUpdate', 'coverGains', 'infoNCE', 'sinkhorn', 'prototypeLoss', 'matmul', 'openSelection', 'softmaxCrossEntropy', 'headProjection', 'entropyFusion', 'openGradient'] as const;

/**
 * Resolves a backend choice: a name, 'auto' / undefined (PAIRPICK_BACKEND, else cuda → cpu → js)
 * or a Backend object. An unknown name or anything else is `E_OPTION` naming `what` (the option,
 * e.g. "select: option 'backend'"); an unavailable backend is `E_BACKEND` with the reason.
 */
export function getBackend(choice?: BackendChoice, what = "getBackend: argument 'choice'"): Backend {
  if (typeof choice === 'object' && choice !== null && !Array.isArray(choice)) {
    const b = choice as unknown as Record<string, unknown>;
    const missing = OPS.find((op) => typeof b[op] !== 'function');
    if (!NAMES.includes(b.name as BackendName) || missing) {
      const why = !NAMES.includes(b.name as BackendName) ? `its name is ${show(b.name)}, not ${listOf(NAMES)}` : `it has no ${missing}() op`;
      throw new PairpickError('E_OPTION', `${what} must be ${BACKEND.expected} (got an object, but ${why})`);
    }
    return choice;
  }
  if (choice !== undefined && typeof choice !== 'string') check(BACKEND, choice, what);
  let name: string;
  if (choice === undefined) {
    name = process.env.PAIRPICK_BACKEND || 'auto';
    what = 'PAIRPICK_BACKEND';
  } else {
    name = choice as string;
  }
  if (name !== 'auto' && !NAMES.includes(name as BackendName)) {
    throw new PairpickError('E_OPTION', `${what}: unknown backend ${show(name)} (choose one of: auto, ${NAMES.join(', ')})`);
  }
  let resolved: BackendName;
  if (name === 'auto') {
    resolved = backends().find((b) => b.available)!.name;
    if (resolved === 'js') noteJsFallback();
  } else {
    resolved = name as BackendName;
    const info: BackendInfo = resolved === 'js' ? { name: resolved, available: true } : nativeInfo(resolved);
    if (!info.available) throw new PairpickError('E_BACKEND', `backend '${resolved}' is not available: ${info.reason}`);
  }
  let b = instances.get(resolved);
  if (!b) {
    b = resolved === 'js' ? jsBackend : nativeBackend(resolved);
    instances.set(resolved, b);
  }
  return b;
}

let notedFallback = false;

/** Says once per process, as a Node warning (silenced by --no-warnings), how to get the native backend. */
function noteJsFallback(): void {
  if (notedFallback) return;
  notedFallback = true;
  const hint = nativeHint();
  if (hint) process.emitWarning(`pairpick runs on its pure-JS backend, tens of times slower than the native one: ${hint}`, { code: 'PAIRPICK_JS_FALLBACK' });
}
