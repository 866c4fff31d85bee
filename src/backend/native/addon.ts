// Loads build/Release/pairpick.node once. Everything native goes through `loadAddon()`.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { PairpickError, type ErrorCode } from '../../errors.js';
import { packageRoot } from '../../util/root.js';

/** The raw addon: `cpu.*` and `cuda.*` op tables plus build facts. Typed loosely on purpose —
 * each area's adapter (native/distance.ts, …) gives its functions their real signatures. */
export interface Addon {
  build: { flavour: string; cudaBuilt: boolean };
  threads: number;
  simd: string;
  cudaProbe(): { built: boolean; available: boolean; name?: string; memory?: number; computeCapability?: string; reason?: string };
  cpu: Record<string, (...args: any[]) => any>;
  cuda: Record<string, (...args: any[]) => any>;
  [area: string]: any;
}

let state: { addon: Addon | null; reason?: string } | undefined;

/** The addon, or null with the reason it could not be loaded (kept for `pairpick info`). */
export function loadAddon(): { addon: Addon | null; reason?: string } {
  if (state) return state;
  // Behave exactly as an install where no native build succeeded (used to test the pure-JS mode).
  if (process.env.PAIRPICK_NO_ADDON === '1') {
    return (state = { addon: null, reason: 'native addon disabled (PAIRPICK_NO_ADDON=1)' });
  }
  const root = packageRoot();
  const file = join(root, 'build', 'Release', 'pairpick.node');
  if (!existsSync(file)) {
    return (state = { addon: null, reason: `native addon not built (${buildReport(root) ?? 'run `npm run build:native`'})` });
  }
  try {
    const require = createRequire(import.meta.url);
    return (state = { addon: require(file) as Addon });
  } catch (e) {
    return (state = { addon: null, reason: `native addon failed to load: ${(e as Error).message}` });
  }
}

function buildReport(root: string): string | undefined {
  try {
    const report = JSON.parse(readFileSync(join(root, 'build', 'native-build.json'), 'utf8'));
    const failed = (report.attempts ?? []).filter((a: { ok: boolean }) => !a.ok);
    if (failed.length) return failed.map((a: { tool: string; reason: string }) => `${a.tool}: ${a.reason}`).join('; ');
  } catch {
    /* no report */
  }
  return undefined;
}

const CODES = new Set<ErrorCode>(['E_FORMAT', 'E_IO', 'E_SHAPE', 'E_NAN', 'E_BUDGET', 'E_OPTION', 'E_BACKEND', 'E_ABORTED', 'E_STATE', 'E_INTERNAL']);

/** Turns an error thrown by the addon (a JS Error with a `code`) into a PairpickError. */
export function fromNative(e: unknown, context?: string): PairpickError {
  if (e instanceof PairpickError) return e;
  const err = e as { code?: string; message?: string };
  const code = (err?.code && CODES.has(err.code as ErrorCode) ? err.code : 'E_INTERNAL') as ErrorCode;
  const message = context ? `${context}: ${err?.message ?? String(e)}` : (err?.message ?? String(e));
  return new PairpickError(code, message, { cause: e });
}

/** Calls a native function and converts what it throws or rejects with. */
export async function callNative<T>(fn: () => Promise<T> | T, context?: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fromNative(e, context);
  }
}
