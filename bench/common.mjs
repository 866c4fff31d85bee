// Shared by the bench scripts: loading the built package and seeded synthetic data.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Imports dist/index.js, or exits with a hint when dist/ has not been built. */
export async function importDist() {
  const entry = join(root, 'dist', 'index.js');
  if (!existsSync(entry)) {
    console.error('bench: dist/ is missing — build it first with `npx tsup` (or `npm run build`)');
    process.exit(1);
  }
  return import(pathToFileURL(entry).href);
}

/** n seeded standard normals × scale (xorshift32 + Box–Muller). */
export function normals(n, seed, scale = 1) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t) * scale;
    if (i + 1 < n) out[i + 1] = r * Math.sin(t) * scale;
  }
  return out;
}
