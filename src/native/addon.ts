// Loads build/Release/pairpick.node once. Everything native — the memory mapping (src/io) and
// the op tables of the cpu and cuda backends (src/backend/native) — goes through `loadAddon()`.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { PairpickError, type ErrorCode } from '../errors.js';
import { packageRoot } from '../util/root.js';
import { checkNativeCodes, NATIVE_CODES, type NativeCodes } from './codes.js';

/** The addon: build facts, code tables, the memory mapping and one op table per native backend. */
export interface Addon {
  build: { flavour: string; cudaBuilt: boolean };
  threads: number;
  simd: string;
  codes: NativeCodes;
  cudaProbe(): { built: boolean; available: boolean; name?: string; memory?: number; computeCapability?: string; reason?: string };
  /** Typed where they are used: src/io/mmap.ts and src/backend/native/ops.ts. */
  mmap?: unknown;
  cpu: unknown;
  cuda: unknown;
}

let state: { addon: Addon | null; reason?: string } | undefined;

/**
 * The addon, or null with the reason it could not be loaded (kept for `pairpick info`). Throws
 * E_BACKEND when an addon loads but its code tables differ from this version's (a stale build).
 */
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
  let addon: Addon;
  try {
    const require = createRequire(import.meta.url);
    addon = require(file) as Addon;
  } catch (e) {
    return (state = { addon: null, reason: `native addon failed to load: ${(e as Error).message}` });
  }
  checkNativeCodes(addon.codes, file);
  return (state = { addon });
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

const ERROR_CODES: ReadonlySet<string> = new Set(Object.keys(NATIVE_CODES.errors));

/** Turns an error thrown by the addon (a JS Error with a `code`) into a PairpickError. */
export function fromNative(e: unknown, context?: string): PairpickError {
  if (e instanceof PairpickError) return e;
  const err = e as { code?: string; message?: string };
  const code = (err?.code && ERROR_CODES.has(err.code) ? err.code : 'E_INTERNAL') as ErrorCode;
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
