// Backend registry: which backends exist here, and which one a call uses.
// Order: the `backend` option, else PAIRPICK_BACKEND, else cuda → cpu → js.
import { PairpickError } from '../errors.js';
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

/** Resolves a backend choice; throws `E_BACKEND` naming the reason when it is unavailable. */
export function getBackend(choice?: BackendChoice): Backend {
  if (choice && typeof choice === 'object') return choice;
  let name = choice ?? (process.env.PAIRPICK_BACKEND as BackendName | 'auto' | undefined) ?? 'auto';
  if (name === ('' as string)) name = 'auto';
  if (name !== 'auto' && !NAMES.includes(name)) {
    throw new PairpickError('E_OPTION', `unknown backend '${name}' (choose one of: auto, ${NAMES.join(', ')})`);
  }
  if (name === 'auto') {
    const first = backends().find((b) => b.available)!;
    name = first.name;
  } else {
    const info: BackendInfo = name === 'js' ? { name, available: true } : nativeInfo(name);
    if (!info.available) throw new PairpickError('E_BACKEND', `backend '${name}' is not available: ${info.reason}`);
  }
  let b = instances.get(name);
  if (!b) {
    b = name === 'js' ? jsBackend : nativeBackend(name);
    instances.set(name, b);
  }
  return b;
}
