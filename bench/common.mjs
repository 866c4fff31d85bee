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

/**
 * Runs a cold-start experiment on AV-Digits (pp = the imported package) with a progress line
 * on stderr. Returns the per-selection results and the wall time.
 */
export async function runColdStart(pp, options) {
  const dataset = await pp.loadDataset('av-digits');
  const started = Date.now();
  try {
    const results = await pp.coldStartExperiment(dataset, {
      ...options,
      onProgress: (done, total, what) => process.stderr.write(`\r${done}/${total} ${what}\x1b[K`),
    });
    process.stderr.write('\n');
    return { results, seconds: (Date.now() - started) / 1000 };
  } finally {
    await dataset.pool.close();
  }
}

/** One row per arm (first-seen order): accuracy mean ± std per budget, the mean over budgets and
 * the classes covered at the largest budget (mean over seeds). */
export function armTable(pp, results, budgets) {
  const summary = pp.summarise(results);
  const largest = Math.max(...budgets);
  const labels = [...new Set(results.map((r) => r.label))];
  return labels.map((label) => {
    const perBudget = Object.fromEntries(budgets.map((b) => [b, summary.find((s) => s.label === label && s.budget === b)]));
    const atLargest = results.filter((r) => r.label === label && r.budget === largest);
    return {
      label,
      perBudget,
      meanOverBudgets: budgets.reduce((t, b) => t + perBudget[b].mean, 0) / budgets.length,
      classesAtLargest: atLargest.reduce((t, r) => t + r.covered, 0) / atLargest.length,
    };
  });
}

/** armTable rows as a markdown table (accuracy in %). */
export function markdownTable(rows, budgets, firstColumn) {
  const largest = Math.max(...budgets);
  const fmt = (s) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
  return [
    `| ${firstColumn} | ${budgets.map((b) => `B=${b}`).join(' | ')} | mean | classes at B=${largest} |`,
    `|---|${budgets.map(() => '---:').join('|')}|---:|---:|`,
    ...rows.map((r) => `| ${r.label} | ${budgets.map((b) => fmt(r.perBudget[b])).join(' | ')} | ${(100 * r.meanOverBudgets).toFixed(1)} | ${r.classesAtLargest.toFixed(1)} |`),
  ].join('\n');
}
