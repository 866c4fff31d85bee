// report.html: parses as HTML, self-contained (no script, no network), one curve per strategy on
// the learning curves (log-x when the budgets span a decade), a legend on every chart, and table
// and bar numbers equal to results.json; and where Debian's `chromium` is installed, the page as
// a browser builds it (--headless --dump-dom) still shows every chart.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parse } from 'parse5';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { evaluate, type EvaluateResults } from '../src/eval/evaluate.js';
import { axisTicks } from '../src/eval/report.js';
import { evalDataset, makeEvalData } from './helpers/eval-data.js';
import { testRng } from './helpers/random.js';

interface Node {
  nodeName: string;
  attrs?: { name: string; value: string }[];
  childNodes?: Node[];
  value?: string;
  content?: Node;
}

const attr = (n: Node, name: string) => n.attrs?.find((a) => a.name === name)?.value;
function all(n: Node, pred: (x: Node) => boolean, out: Node[] = []): Node[] {
  if (pred(n)) out.push(n);
  for (const c of n.childNodes ?? []) all(c, pred, out);
  if (n.content) all(n.content, pred, out);
  return out;
}
const text = (n: Node): string => (n.nodeName === '#text' ? n.value! : (n.childNodes ?? []).map(text).join(''));
const hasClass = (n: Node, c: string) => (attr(n, 'class') ?? '').split(' ').includes(c);

let dir: string;
let results: EvaluateResults;
let html: string;
const CHARTS = ['accuracy', 'macro-f1', 'class-balance', 'gap', 'alignment', 'per-modality', 'timing'];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-report-'));
  const rng = testRng();
  const d = makeEvalData(rng, { perClass: 40 });
  const dataset = await evalDataset(d);
  try {
    results = await evaluate(dataset, {
      cold: ['mmcsal', 'kcenter', 'typiclust', 'random'],
      warm: ['random'],
      budgets: [4, 12, 40],
      model: 'ridge',
      seeds: [rng.int(1000), 1000 + rng.int(1000)],
      stage1: { epochs: 2, hidden: 16, dim: 8, prototypes: 4, batch: 32 },
      outDir: dir,
      command: 'pairpick eval --dataset synthetic <test> & "quoted"',
    });
  } finally {
    await dataset.pool.close();
  }
  html = await readFile(join(dir, 'report.html'), 'utf8');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Checks the charts of a parsed page; returns nothing, fails on the first difference. */
function checkCharts(doc: Node): void {
  const figures = all(doc, (n) => n.nodeName === 'figure' && hasClass(n, 'chart'));
  expect(figures.map((f) => attr(f, 'data-chart'))).toEqual(CHARTS);
  for (const f of figures) {
    const svg = all(f, (n) => n.nodeName === 'svg');
    expect(svg, attr(f, 'data-chart')).toHaveLength(1);
    const legend = all(svg[0], (n) => n.nodeName === 'g' && hasClass(n, 'legend'));
    expect(legend, `legend of ${attr(f, 'data-chart')}`).toHaveLength(1);
    expect(all(legend[0], (n) => n.nodeName === 'text').length).toBeGreaterThanOrEqual(2);
  }
  const arms = results.arms.map((a) => a.key);
  for (const id of ['accuracy', 'macro-f1', 'gap', 'alignment']) {
    const fig = figures.find((f) => attr(f, 'data-chart') === id)!;
    const curves = all(fig, (n) => n.nodeName === 'path' && hasClass(n, 'curve'));
    expect(curves.map((c) => attr(c, 'data-arm'))).toEqual(arms);
    expect(all(fig, (n) => hasClass(n, 'band'))).toHaveLength(arms.length);
  }
}

describe('report.html', () => {
  it('parses as HTML, needs nothing outside itself, and shows every chart with a legend and one curve per strategy', () => {
    const errors: string[] = [];
    const doc = parse(html, { onParseError: (e) => errors.push(`${e.code} at line ${e.startLine}`) }) as unknown as Node;
    expect(errors).toEqual([]);
    expect(all(doc, (n) => n.nodeName === 'script')).toHaveLength(0);
    expect(html).not.toMatch(/https?:|src=|<link|@import|url\((?!#)/);
    checkCharts(doc);
    // The command, escaped.
    expect(text(all(doc, (n) => n.nodeName === 'pre')[0])).toBe('pairpick eval --dataset synthetic <test> & "quoted"');
  });

  it('learning curves: x on log budget (the budgets span a decade), points ordered as the means', () => {
    expect(results.logX).toBe(true);
    const doc = parse(html) as unknown as Node;
    const fig = all(doc, (n) => attr(n, 'data-chart') === 'accuracy')[0];
    const curves = all(fig, (n) => hasClass(n, 'curve'));
    const coords = curves.map((c) => [...attr(c, 'd')!.matchAll(/[ML]([-\d.]+),([-\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]));
    const budgets = results.options.budgets;
    for (const pts of coords) {
      expect(pts).toHaveLength(budgets.length);
      // x ∝ log budget: (x1 − x0)/(x2 − x0) = log(b1/b0)/log(b2/b0) (coordinates rounded to 0.01 px).
      const want = Math.log(budgets[1] / budgets[0]) / Math.log(budgets[2] / budgets[0]);
      expect(Math.abs((pts[1][0] - pts[0][0]) / (pts[2][0] - pts[0][0]) - want)).toBeLessThan(0.02 / (pts[2][0] - pts[0][0]) + 1e-9);
    }
    // y is linear in the mean accuracy, the same map for every curve: y = a − s·mean.
    const ys = coords.flatMap((pts, i) => pts.map((p, k) => [results.summary[i].points[k].accuracy.mean, p[1]]));
    const [m0, y0] = ys[0];
    const far = ys.reduce((best, p) => (Math.abs(p[0] - m0) > Math.abs(best[0] - m0) ? p : best));
    if (far[0] !== m0) {
      const slope = (far[1] - y0) / (far[0] - m0);
      for (const [m, y] of ys) expect(Math.abs(y - (y0 + slope * (m - m0)))).toBeLessThan(0.02);
    }
  });

  it('the summary table and the bars carry the numbers of results.json', () => {
    const doc = parse(html) as unknown as Node;
    const rows = all(doc, (n) => n.nodeName === 'tr' && attr(n, 'data-arm') !== undefined);
    const ranked = [...results.summary].sort((a, b) => a.rank - b.rank);
    expect(rows.map((r) => attr(r, 'data-arm'))).toEqual(ranked.map((s) => s.arm));
    const last = results.options.budgets.length - 1;
    rows.forEach((row, i) => {
      const s = ranked[i];
      const want: Record<string, number> = {
        meanAccuracy: s.meanAccuracy.mean,
        auc: s.auc,
        gainOverRandom: s.gainOverRandom!.mean,
        macroF1: s.points[last].macroF1.mean,
        covered: s.points[last].covered.mean,
      };
      const cells = all(row, (n) => n.nodeName === 'td' && attr(n, 'data-field') !== undefined);
      expect(cells.map((c) => attr(c, 'data-field'))).toEqual(Object.keys(want));
      for (const c of cells) {
        const field = attr(c, 'data-field')!;
        expect(Number(attr(c, 'data-value')), field).toBe(want[field]);
        // The shown number is the value rounded to one decimal (percent / points, or classes).
        const shown = Number(text(c).replace('−', '-').replace('+', '').split(/ [±/] /)[0]);
        const scale = field === 'covered' ? 1 : 100;
        expect(Math.abs(shown - scale * want[field]), `${s.arm} ${field}: ${text(c)}`).toBeLessThanOrEqual(0.05 + 1e-9);
      }
    });
    // Class balance: each arm's bars are its mean histogram at the largest budget.
    for (const s of results.summary) {
      const panel = all(doc, (n) => hasClass(n, 'panel') && attr(n, 'data-arm') === s.arm)[0];
      expect(all(panel, (n) => hasClass(n, 'bar')).map((b) => Number(attr(b, 'data-value')))).toEqual(s.points[last].histogram);
    }
    // Timing: mean selection and training seconds per cell of each arm.
    const timing = all(doc, (n) => attr(n, 'data-chart') === 'timing')[0];
    for (const s of results.summary) {
      const cells = results.cells.filter((c) => c.arm === s.arm).map((c) => results.times.cells[c.id]);
      const bars = all(timing, (n) => hasClass(n, 'bar') && attr(n, 'data-group') === s.label);
      expect(bars.map((b) => Number(attr(b, 'data-value')))).toEqual([
        cells.reduce((a, c) => a + c.selection, 0) / cells.length,
        cells.reduce((a, c) => a + c.training, 0) / cells.length,
      ]);
    }
  });

  const chromium = ['chromium', 'chromium-browser'].find((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);
  it.skipIf(!chromium)('headless chromium (--dump-dom) builds every chart', () => {
    const r = spawnSync(chromium!, ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', `file://${join(dir, 'report.html')}`], { encoding: 'utf8', timeout: 90_000 });
    expect(r.status, r.stderr).toBe(0);
    checkCharts(parse(r.stdout) as unknown as Node);
  });
});

describe('chart axes', () => {
  // Equal accuracies across seeds give a band of float noise (std ~1e-17, not 0): the tick loop
  // once stepped by less than the values' resolution and never ended.
  it('ticks: a dozen at most, evenly spaced round values inside the range, for wide, tiny and float-noise spans', () => {
    const rng = testRng();
    for (let trial = 0; trial < 300; trial++) {
      const centre = trial % 3 === 0 ? rng.next() : (rng.next() - 0.5) * 200;
      const kind = trial % 4;
      const span = kind === 0 ? 0 : kind === 1 ? Math.abs(centre) * 1e-16 * (1 + rng.next()) : kind === 2 ? Math.abs(centre) * 1e-10 : (0.01 + rng.next()) * 50;
      const lo = centre - span / 2;
      const hi = centre + span / 2;
      const t = axisTicks(lo, hi);
      expect(t.length).toBeGreaterThanOrEqual(1);
      expect(t.length).toBeLessThanOrEqual(12);
      for (const v of t) expect(Number.isFinite(v)).toBe(true);
      for (let i = 2; i < t.length; i++) expect(Math.abs(t[i] - t[i - 1] - (t[1] - t[0]))).toBeLessThanOrEqual(Math.abs(t[1] - t[0]) * 1e-6);
      if (kind === 3) {
        // A real span: about five ticks, all inside it.
        expect(t.length).toBeGreaterThanOrEqual(2);
        const slack = (t[1] - t[0]) * 1e-9 + Math.max(Math.abs(lo), Math.abs(hi)) * 1e-11; // the loop's own end test, then 12-digit rounding
        for (const v of t) expect(v >= lo - slack && v <= hi + slack).toBe(true);
      } else {
        // A degenerate span is widened around its value: the ticks surround it.
        expect(t[0]).toBeLessThanOrEqual(centre + 1e-9);
        expect(t[t.length - 1]).toBeGreaterThanOrEqual(centre - 1e-9);
      }
    }
  });
});

