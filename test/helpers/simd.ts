// The SIMD levels this CPU runs, read from /proc/cpuinfo the way native/core/simd.cc decides them:
// each as [PAIRPICK_SIMD value, the name the addon reports]. Off Linux only scalar is listed.
import { readFileSync } from 'node:fs';

export function simdLevels(): [string, string][] {
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return [['scalar', 'scalar']];
  }
  const has = (f: string) => new RegExp(`\\b${f}\\b`).test(flags);
  const out: [string, string][] = [['scalar', 'scalar']];
  if (has('avx2') && has('fma') && has('f16c')) {
    out.push(['avx2', 'avx2+fma']);
    if (['avx512f', 'avx512vl', 'avx512bw', 'avx512dq'].every(has)) out.push(['avx512', 'avx512']);
  }
  return out;
}

/** The name the addon should report: the best level, or the one PAIRPICK_SIMD caps it at. */
export function expectedSimdLevel(): string {
  const levels = simdLevels();
  const forced = process.env.PAIRPICK_SIMD;
  const capped = forced ? levels.slice(0, levels.findIndex(([name]) => name === forced) + 1 || levels.length) : levels;
  return capped[capped.length - 1][1];
}
