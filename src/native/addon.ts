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

/** Where the loaded addon came from: a build from source (build/Release) or the prebuilt one shipped in the package. */
export type AddonOrigin = 'source' | 'prebuilt';

let state: { addon: Addon | null; reason?: string; origin?: AddonOrigin; file?: string } | undefined;

/** The prebuilt addon of this platform in the usual prebuild layout, when this platform has one (linux-x64 with glibc). */
export function prebuiltAddonPath(root = packageRoot()): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
  // musl (Alpine) cannot load a glibc build; the report's header says which libc this is.
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  if (!header?.glibcVersionRuntime) return undefined;
  return join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'pairpick.napi.glibc.node');
}

/**
 * The addon, or null with the reason it could not be loaded (kept for `pairpick info`). A build
 * from source (build/Release/pairpick.node) comes first; without one (install scripts blocked, no
 * compiler) the prebuilt CPU addon shipped in prebuilds/ is loaded. Throws E_BACKEND when an
 * addon loads but its code tables differ from this version's (a stale build) and nothing else loads.
 */
export function loadAddon(): { addon: Addon | null; reason?: string; origin?: AddonOrigin; file?: string } {
  if (state) return state;
  // Behave exactly as an install where no native build succeeded (used to test the pure-JS mode).
  if (process.env.PAIRPICK_NO_ADDON === '1') {
    return (state = { addon: null, reason: 'native addon disabled (PAIRPICK_NO_ADDON=1)' });
  }
  const root = packageRoot();
  const candidates: { file: string; origin: AddonOrigin }[] = [{ file: join(root, 'build', 'Release', 'pairpick.node'), origin: 'source' }];
  const prebuilt = process.env.PAIRPICK_NO_PREBUILT === '1' ? undefined : prebuiltAddonPath(root);
  if (prebuilt) candidates.push({ file: prebuilt, origin: 'prebuilt' });
  const reasons: string[] = [];
  let stale: PairpickError | undefined;
  for (const { file, origin } of candidates) {
    if (!existsSync(file)) {
      if (origin === 'source') reasons.push(`not built from source (${buildReport(root) ?? 'run `npx pairpick build`'})`);
      continue;
    }
    let addon: Addon;
    try {
      const require = createRequire(import.meta.url);
      addon = require(file) as Addon;
    } catch (e) {
      reasons.push(`${origin === 'source' ? 'the build from source' : 'the prebuilt addon'} failed to load: ${(e as Error).message}`);
      continue;
    }
    try {
      checkNativeCodes(addon.codes, file);
    } catch (e) {
      stale ??= e as PairpickError;
      reasons.push((e as Error).message);
      continue;
    }
    return (state = { addon, origin, file });
  }
  if (stale) throw stale;
  return (state = { addon: null, reason: `native addon ${reasons.join('; ') || 'not found'}` });
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

/**
 * The command that would give this install a (faster) native backend, for `pairpick info` and
 * the one-time note when work falls back to pure JS; undefined when there is nothing to suggest
 * (a build from source is loaded, or the addon was disabled on purpose).
 */
export function nativeHint(): string | undefined {
  if (process.env.PAIRPICK_NO_ADDON === '1') return undefined;
  let loaded: ReturnType<typeof loadAddon>;
  try {
    loaded = loadAddon();
  } catch {
    return 'the native addon is stale: `npx pairpick build` rebuilds it';
  }
  if (!loaded.addon) return '`npx pairpick build` builds the native backend from source (needs CMake or node-gyp and a C++17 compiler; add --verbose to watch)';
  if (loaded.origin === 'prebuilt') return 'this is the prebuilt CPU addon; `npx pairpick build --cuda` builds the CUDA backend from source (needs nvcc and an NVIDIA GPU)';
  return undefined;
}
