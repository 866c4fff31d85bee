// The codes shared with the native addon, as the one TypeScript table of native/core/codes.h
// (src/backend/native/ops.ts checks at compile time that they cover the Backend ops' names).
// The adapters translate names to codes through it; `checkNativeCodes` compares it with the
// addon's own tables (`addon.codes`) when the addon loads, so the two cannot drift silently.
import { PairpickError, type ErrorCode } from '../errors.js';

export const NATIVE_CODES = {
  metrics: { sqeuclidean: 0, euclidean: 1, cosine: 2 },
  pairForms: { multimodal: 0, euclidean: 1, similarity: 2 },
  reductions: { knnMean: 0, countWithin: 1, minOtherLabel: 2, max: 3, gain: 4 },
  greedyModes: { argmax: 0, sampleSquared: 1 },
  fusionModes: { dynamic: 0, mean: 1 },
  errors: {
    E_FORMAT: 1,
    E_IO: 2,
    E_SHAPE: 3,
    E_NAN: 4,
    E_BUDGET: 5,
    E_OPTION: 6,
    E_BACKEND: 7,
    E_ABORTED: 8,
    E_STATE: 9,
    E_INTERNAL: 10,
  },
} as const satisfies {
  metrics: Record<string, number>;
  pairForms: Record<string, number>;
  reductions: Record<string, number>;
  greedyModes: Record<string, number>;
  fusionModes: Record<string, number>;
  errors: Record<ErrorCode, number>;
};

export type NativeCodes = { [T in keyof typeof NATIVE_CODES]: Record<string, number> };

/** Every way `codes` (what the addon exports) differs from NATIVE_CODES, one line each. */
export function codeDifferences(codes: unknown): string[] {
  if (!codes || typeof codes !== 'object') return ['the addon exports no code tables (addon.codes)'];
  const theirs = codes as Record<string, unknown>;
  const out: string[] = [];
  for (const [table, ours] of Object.entries(NATIVE_CODES) as [string, Record<string, number>][]) {
    const other = theirs[table];
    if (!other || typeof other !== 'object') {
      out.push(`codes.${table} is missing from the addon`);
      continue;
    }
    const t = other as Record<string, unknown>;
    for (const [name, value] of Object.entries(ours)) {
      if (!(name in t)) out.push(`codes.${table}.${name} is missing from the addon (expected ${value})`);
      else if (t[name] !== value) out.push(`codes.${table}.${name} is ${String(t[name])} in the addon, ${value} here`);
    }
    for (const name of Object.keys(t)) if (!(name in ours)) out.push(`codes.${table}.${name} exists only in the addon`);
  }
  for (const table of Object.keys(theirs)) if (!(table in NATIVE_CODES)) out.push(`codes.${table} exists only in the addon`);
  return out;
}

/** Throws E_BACKEND, naming what differs, unless the addon's code tables equal NATIVE_CODES. */
export function checkNativeCodes(codes: unknown, file: string): void {
  const diffs = codeDifferences(codes);
  if (diffs.length === 0) return;
  throw new PairpickError(
    'E_BACKEND',
    `the native addon ${file} does not match this version of pairpick (${diffs.join('; ')}); ` +
      'rebuild it with `npm run build:native`, or set PAIRPICK_NO_ADDON=1 to run on the JS backend',
  );
}
