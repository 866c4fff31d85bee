// report.html of an `evaluate()` run: one self-contained page (inline CSS and SVG, no script, no
// network) drawn from results.json — learning curves with mean ± std bands, the ranked summary
// table, class balance of the picks, the picks' modality gap and alignment, per-modality accuracy,
// timing, and the command. Arms are told apart by the Okabe–Ito colours AND by a dash pattern
// and a marker each, so the charts stay readable in greyscale and for colour-blind readers.
import type { ArmSummary, EvaluateResults } from './evaluate.js';

/** Okabe–Ito colours (yellow last: faint on white). */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];
const DASHES = ['', '7 3', '2 3', '9 3 2 3', '4 4', '12 3 2 3 2 3', '1 2', '6 2 6 6'];
const MARKERS = ['circle', 'square', 'triangle', 'diamond', 'down', 'cross', 'plus', 'star'] as const;

interface Style {
  colour: string;
  dash: string;
  marker: (typeof MARKERS)[number];
}

function styleOf(index: number): Style {
  // Beyond 8 arms the colour cycles but the (colour, dash, marker) triple stays distinct for 64.
  return { colour: COLOURS[index % 8], dash: DASHES[(index + Math.floor(index / 8)) % 8], marker: MARKERS[(index + 3 * Math.floor(index / 8)) % 8] };
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const f = (v: number, digits = 1) => v.toFixed(digits);
/** Accuracy-like values in percent, one decimal. */
export const pct = (v: number) => f(100 * v, 1);
/** A signed difference in percentage points. */
export const points = (v: number) => `${v >= 0 ? '+' : '−'}${f(Math.abs(100 * v), 1)}`;

function marker(kind: Style['marker'], x: number, y: number, colour: string, r = 4): string {
  const p = (pts: [number, number][]) => `<polygon points="${pts.map(([a, b]) => `${f(x + a, 2)},${f(y + b, 2)}`).join(' ')}" fill="${colour}" stroke="#fff" stroke-width="0.8"/>`;
  switch (kind) {
    case 'circle':
      return `<circle cx="${f(x, 2)}" cy="${f(y, 2)}" r="${r}" fill="${colour}" stroke="#fff" stroke-width="0.8"/>`;
    case 'square':
      return p([[-r, -r], [r, -r], [r, r], [-r, r]]);
    case 'triangle':
      return p([[0, -r * 1.2], [r * 1.1, r * 0.8], [-r * 1.1, r * 0.8]]);
    case 'down':
      return p([[0, r * 1.2], [r * 1.1, -r * 0.8], [-r * 1.1, -r * 0.8]]);
    case 'diamond':
      return p([[0, -r * 1.3], [r * 1.1, 0], [0, r * 1.3], [-r * 1.1, 0]]);
    case 'star': {
      const pts: [number, number][] = [];
      for (let k = 0; k < 10; k++) {
        const a = (Math.PI * k) / 5 - Math.PI / 2;
        const rr = k % 2 ? r * 0.55 : r * 1.35;
        pts.push([rr * Math.cos(a), rr * Math.sin(a)]);
      }
      return p(pts);
    }
    case 'cross':
      return `<path d="M${f(x - r, 2)},${f(y - r, 2)}L${f(x + r, 2)},${f(y + r, 2)}M${f(x - r, 2)},${f(y + r, 2)}L${f(x + r, 2)},${f(y - r, 2)}" stroke="${colour}" stroke-width="2.2"/>`;
    case 'plus':
      return `<path d="M${f(x - r, 2)},${f(y, 2)}L${f(x + r, 2)},${f(y, 2)}M${f(x, 2)},${f(y - r, 2)}L${f(x, 2)},${f(y + r, 2)}" stroke="${colour}" stroke-width="2.2"/>`;
  }
}

/**
 * About five round tick values covering [lo, hi]. A span that is float noise around one value
 * (identical accuracies whose std is 1e-17, not 0) is widened to a readable one first: a step
 * below the values' own resolution would never advance `v += step`. Ticks are counted, never
 * accumulated, so at most a dozen come back.
 */
export function axisTicks(lo: number, hi: number): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  const scale = Math.max(Math.abs(lo), Math.abs(hi));
  if (hi - lo <= scale * 1e-9) {
    const half = scale * 0.05 || 0.05;
    lo -= half;
    hi += half;
  }
  const raw = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const first = Math.ceil(lo / step);
  const out: number[] = [];
  for (let i = 0; i < 12; i++) {
    const v = (first + i) * step;
    if (v > hi + step * 1e-9) break;
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

interface Series {
  arm: string;
  label: string;
  style: Style;
  points: { x: number; mean: number; std: number }[];
}

const W = 900;
const H = 360;
const M = { left: 60, right: 200, top: 16, bottom: 46 };

/** A line chart: one curve per series, its mean ± std band, markers, axes and a legend. */
function lineChart(o: { id: string; title: string; xLabel: string; yLabel: string; series: Series[]; logX: boolean; xs: number[]; yFormat: (v: number) => string; clamp?: [number, number] }): string {
  const all = o.series.flatMap((s) => s.points.flatMap((p) => [p.mean - p.std, p.mean + p.std]));
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  // A span of float noise (equal values) gets the fixed pad, not 8 % of the noise.
  const pad = hi - lo > Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9 ? (hi - lo) * 0.08 : 0.05;
  lo -= pad;
  hi += pad;
  if (o.clamp) {
    lo = Math.max(o.clamp[0], lo);
    hi = Math.min(o.clamp[1], hi);
  }
  const tx = (v: number) => (o.logX ? Math.log(v) : v);
  const x0 = tx(Math.min(...o.xs));
  const x1 = tx(Math.max(...o.xs));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (v: number) => M.left + (x1 === x0 ? pw / 2 : ((tx(v) - x0) / (x1 - x0)) * pw);
  const sy = (v: number) => M.top + ph - ((v - lo) / (hi - lo)) * ph;
  const parts: string[] = [];
  for (const t of axisTicks(lo, hi)) {
    if (t < lo || t > hi) continue;
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${f(sy(t), 2)}" y2="${f(sy(t), 2)}" class="grid"/>`);
    parts.push(`<text x="${M.left - 6}" y="${f(sy(t) + 4, 2)}" text-anchor="end">${escapeHtml(o.yFormat(t))}</text>`);
  }
  for (const b of o.xs) {
    parts.push(`<line x1="${f(sx(b), 2)}" x2="${f(sx(b), 2)}" y1="${M.top}" y2="${M.top + ph}" class="grid"/>`);
    parts.push(`<text x="${f(sx(b), 2)}" y="${M.top + ph + 16}" text-anchor="middle">${b}</text>`);
  }
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" class="frame"/>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle" class="axis">${escapeHtml(o.xLabel)}${o.logX ? ' (log scale)' : ''}</text>`);
  parts.push(`<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" class="axis">${escapeHtml(o.yLabel)}</text>`);
  for (const s of o.series) {
    const upper = s.points.map((p) => `${f(sx(p.x), 2)},${f(sy(Math.min(hi, p.mean + p.std)), 2)}`);
    const lower = s.points.map((p) => `${f(sx(p.x), 2)},${f(sy(Math.max(lo, p.mean - p.std)), 2)}`).reverse();
    parts.push(`<polygon class="band" data-arm="${escapeHtml(s.arm)}" points="${[...upper, ...lower].join(' ')}" fill="${s.style.colour}" fill-opacity="0.13"/>`);
  }
  for (const s of o.series) {
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${f(sx(p.x), 2)},${f(sy(p.mean), 2)}`).join('');
    parts.push(`<path class="curve" data-arm="${escapeHtml(s.arm)}" d="${d}" fill="none" stroke="${s.style.colour}" stroke-width="2"${s.style.dash ? ` stroke-dasharray="${s.style.dash}"` : ''}/>`);
    for (const p of s.points) parts.push(marker(s.style.marker, sx(p.x), sy(p.mean), s.style.colour));
  }
  parts.push(legend(o.series.map((s) => ({ label: s.label, style: s.style })), W - M.right + 14, M.top + 4, 'line'));
  return figure(o.id, o.title, `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(o.title)}">${parts.join('')}</svg>`);
}

function legend(entries: { label: string; style?: Style; fill?: string }[], x: number, y: number, kind: 'line' | 'box'): string {
  const rows = entries.map((e, i) => {
    const yy = y + 18 * i + 8;
    const key =
      kind === 'line' && e.style
        ? `<line x1="${x}" x2="${x + 30}" y1="${yy}" y2="${yy}" stroke="${e.style.colour}" stroke-width="2"${e.style.dash ? ` stroke-dasharray="${e.style.dash}"` : ''}/>${marker(e.style.marker, x + 15, yy, e.style.colour)}`
        : `<rect x="${x + 6}" y="${yy - 6}" width="18" height="12" fill="${e.fill}" stroke="#333" stroke-width="0.8"/>`;
    return `${key}<text x="${x + 38}" y="${yy + 4}">${escapeHtml(e.label)}</text>`;
  });
  return `<g class="legend">${rows.join('')}</g>`;
}

function figure(id: string, title: string, svg: string, caption = ''): string {
  return `<figure class="chart" data-chart="${id}" id="chart-${id}"><figcaption><b>${escapeHtml(title)}</b>${caption ? ` — ${caption}` : ''}</figcaption>${svg}</figure>`;
}

/** Fill patterns for the bars (grey levels plus hatching, legible without colour). */
const PATTERN_DEFS = `<defs>
<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#333" stroke-width="2.4"/></pattern>
<pattern id="dots" width="5" height="5" patternUnits="userSpaceOnUse"><rect width="5" height="5" fill="#fff"/><circle cx="2.5" cy="2.5" r="1.3" fill="#333"/></pattern>
<pattern id="cross" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#ddd"/><path d="M0,3H6M3,0V6" stroke="#333" stroke-width="1"/></pattern>
</defs>`;
const FILLS = ['#444', 'url(#hatch)', 'url(#dots)', '#aaa', 'url(#cross)', '#fff'];

/** Grouped horizontal bars: one group per arm, one bar per part (fills from FILLS), stacked when `stacked`. */
function barChart(o: { id: string; title: string; caption: string; groups: { label: string; values: number[] }[]; parts: string[]; stacked: boolean; format: (v: number) => string; xLabel: string; max?: number }): string {
  const bar = 14;
  const gap = 10;
  const per = o.stacked ? bar : bar * o.parts.length;
  const top = 12;
  const left = 150;
  const right = 200;
  const height = top + o.groups.length * (per + gap) + 40;
  const pw = W - left - right;
  const totals = o.groups.map((g) => (o.stacked ? g.values.reduce((s, v) => s + v, 0) : Math.max(...g.values)));
  const max = o.max ?? (Math.max(...totals) || 1);
  const sx = (v: number) => (v / max) * pw;
  const parts: string[] = [PATTERN_DEFS];
  for (const t of axisTicks(0, max)) {
    if (t > max) continue;
    parts.push(`<line x1="${f(left + sx(t), 2)}" x2="${f(left + sx(t), 2)}" y1="${top - 4}" y2="${height - 36}" class="grid"/>`);
    parts.push(`<text x="${f(left + sx(t), 2)}" y="${height - 22}" text-anchor="middle">${escapeHtml(o.format(t))}</text>`);
  }
  o.groups.forEach((g, i) => {
    const y = top + i * (per + gap);
    parts.push(`<text x="${left - 8}" y="${y + per / 2 + 4}" text-anchor="end">${escapeHtml(g.label)}</text>`);
    let offset = 0;
    g.values.forEach((v, k) => {
      const yy = o.stacked ? y : y + k * bar;
      const xx = left + (o.stacked ? sx(offset) : 0);
      parts.push(`<rect class="bar" data-group="${escapeHtml(g.label)}" data-part="${escapeHtml(o.parts[k])}" data-value="${v}" x="${f(xx, 2)}" y="${yy}" width="${f(Math.max(0, sx(v)), 2)}" height="${bar - 1}" fill="${FILLS[k % FILLS.length]}" stroke="#222" stroke-width="0.7"/>`);
      if (!o.stacked) parts.push(`<text x="${f(xx + sx(v) + 4, 2)}" y="${yy + bar - 4}" class="small">${escapeHtml(o.format(v))}</text>`);
      if (o.stacked) offset += v;
    });
    if (o.stacked) parts.push(`<text x="${f(left + sx(offset) + 4, 2)}" y="${y + bar - 4}" class="small">${escapeHtml(o.format(offset))}</text>`);
  });
  parts.push(`<text x="${left + pw / 2}" y="${height - 6}" text-anchor="middle" class="axis">${escapeHtml(o.xLabel)}</text>`);
  parts.push(legend(o.parts.map((p, k) => ({ label: p, fill: FILLS[k % FILLS.length] })), W - right + 14, top, 'box'));
  return figure(o.id, o.title, `<svg viewBox="0 0 ${W} ${height}" width="${W}" height="${height}" role="img" aria-label="${escapeHtml(o.title)}">${parts.join('')}</svg>`, o.caption);
}

/** Small multiples: per arm, the mean picks per class at the largest budget, with the balanced count dashed. */
function classBalance(results: EvaluateResults, styles: Map<string, Style>): string {
  const budget = results.options.budgets[results.options.budgets.length - 1];
  const classes = results.dataset.classes;
  const cols = 3;
  const pw = 220;
  const ph = 110;
  const rows = Math.ceil(results.summary.length / cols);
  const width = cols * (pw + 30) + 20;
  const legendH = 46;
  const height = rows * (ph + 50) + legendH;
  const maxCount = Math.max(budget / classes.length, ...results.summary.flatMap((s) => s.points[s.points.length - 1].histogram));
  const parts: string[] = [];
  results.summary.forEach((s, i) => {
    const ox = 30 + (i % cols) * (pw + 30);
    const oy = 22 + Math.floor(i / cols) * (ph + 50);
    const st = styles.get(s.arm)!;
    const hist = s.points[s.points.length - 1].histogram;
    const bw = pw / classes.length;
    parts.push(`<g class="panel" data-arm="${escapeHtml(s.arm)}"><text x="${ox}" y="${oy - 6}" class="axis">${escapeHtml(s.label)}</text>`);
    parts.push(`<rect x="${ox}" y="${oy}" width="${pw}" height="${ph}" class="frame"/>`);
    hist.forEach((h, c) => {
      const bh = (h / maxCount) * ph;
      parts.push(`<rect class="bar" data-class="${escapeHtml(classes[c])}" data-value="${h}" x="${f(ox + c * bw + 1, 2)}" y="${f(oy + ph - bh, 2)}" width="${f(Math.max(0.5, bw - 2), 2)}" height="${f(bh, 2)}" fill="${st.colour}" stroke="#222" stroke-width="0.5"/>`);
      if (classes.length <= 20) parts.push(`<text x="${f(ox + c * bw + bw / 2, 2)}" y="${oy + ph + 12}" text-anchor="middle" class="small">${escapeHtml(classes[c].slice(0, 4))}</text>`);
    });
    const even = oy + ph - (budget / classes.length / maxCount) * ph;
    parts.push(`<line x1="${ox}" x2="${ox + pw}" y1="${f(even, 2)}" y2="${f(even, 2)}" stroke="#000" stroke-width="1.4" stroke-dasharray="5 3"/></g>`);
  });
  const ly = height - legendH + 14;
  parts.push(
    `<g class="legend"><rect x="30" y="${ly - 8}" width="18" height="12" fill="#888" stroke="#222" stroke-width="0.5"/><text x="54" y="${ly + 2}">mean picks per class at B = ${budget} (panel colour = strategy)</text>` +
      `<line x1="30" x2="48" y1="${ly + 20}" y2="${ly + 20}" stroke="#000" stroke-width="1.4" stroke-dasharray="5 3"/><text x="54" y="${ly + 24}">balanced: B / ${classes.length} classes</text></g>`,
  );
  return figure('class-balance', 'Class balance of the picks', `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="class balance">${parts.join('')}</svg>`);
}

function series(summary: ArmSummary[], styles: Map<string, Style>, pick: (p: ArmSummary['points'][number]) => { mean: number; std: number } | null): Series[] {
  return summary.flatMap((s) => {
    const pts = s.points.map((p) => ({ x: p.budget, v: pick(p) }));
    if (pts.some((p) => p.v === null)) return [];
    return [{ arm: s.arm, label: s.label, style: styles.get(s.arm)!, points: pts.map((p) => ({ x: p.x, mean: p.v!.mean, std: p.v!.std })) }];
  });
}

/** The summary table, ranked by AUC; every number is a `td` with `data-field` and the exact value in `data-value`. */
function summaryTable(results: EvaluateResults): string {
  const last = results.options.budgets.length - 1;
  const ranked = [...results.summary].sort((a, b) => a.rank - b.rank);
  const head = ['#', 'strategy', 'mean accuracy (%)', 'AUC (%)', `gain over random (points)`, `macro-F1 at B=${results.options.budgets[last]} (%)`, `classes covered at B=${results.options.budgets[last]}`];
  const cell = (field: string, value: number, text: string) => `<td class="num" data-field="${field}" data-value="${value}">${escapeHtml(text)}</td>`;
  const rows = ranked.map((s) => {
    const p = s.points[last];
    const gain = s.gainOverRandom;
    return (
      `<tr data-arm="${escapeHtml(s.arm)}"><td class="num">${s.rank}</td><td>${escapeHtml(s.label)}</td>` +
      cell('meanAccuracy', s.meanAccuracy.mean, `${pct(s.meanAccuracy.mean)} ± ${pct(s.meanAccuracy.std)}`) +
      cell('auc', s.auc, pct(s.auc)) +
      (gain ? cell('gainOverRandom', gain.mean, `${points(gain.mean)} ± ${f(100 * gain.std, 1)}`) : '<td class="num">—</td>') +
      cell('macroF1', p.macroF1.mean, `${pct(p.macroF1.mean)} ± ${pct(p.macroF1.std)}`) +
      cell('covered', p.covered.mean, `${f(p.covered.mean, 1)} / ${results.dataset.classes.length}`) +
      '</tr>'
    );
  });
  return `<table class="summary"><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111;background:#fff;margin:24px auto;max-width:1000px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:3px}
.meta{color:#444;margin:0 0 12px}code,pre{font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace}pre{background:#f4f4f4;padding:10px;white-space:pre-wrap;word-break:break-all}
table.summary{border-collapse:collapse;margin:8px 0}table.summary th,table.summary td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
table.summary th{background:#f4f4f4;font-weight:600}table.summary td.num{text-align:right;font-variant-numeric:tabular-nums}
figure.chart{margin:14px 0}figcaption{margin:0 0 4px}svg{max-width:100%;height:auto;font-size:12px}svg text{fill:#111}
.grid{stroke:#e3e3e3;stroke-width:1}.frame{fill:none;stroke:#777;stroke-width:1}.axis{font-weight:600}.small{font-size:10.5px}
.note{color:#444;font-size:13px}
`;

/** The report page for a results.json. */
export function renderReport(results: EvaluateResults): string {
  const styles = new Map(results.summary.map((s, i) => [s.arm, styleOf(i)] as const));
  const xs = results.options.budgets;
  const common = { xLabel: 'labelled samples', xs, logX: results.logX };
  const last = xs.length - 1;
  const budget = xs[last];
  const charts: string[] = [];
  charts.push(lineChart({ ...common, id: 'accuracy', title: 'Test accuracy vs labels (mean ± std over seeds)', yLabel: 'accuracy (%)', series: series(results.summary, styles, (p) => p.accuracy), yFormat: pct, clamp: [0, 1] }));
  charts.push(lineChart({ ...common, id: 'macro-f1', title: 'Test macro-F1 vs labels (mean ± std over seeds)', yLabel: 'macro-F1 (%)', series: series(results.summary, styles, (p) => p.macroF1), yFormat: pct, clamp: [0, 1] }));
  const balance = classBalance(results, styles);
  const gapSeries = series(results.summary, styles, (p) => p.gap);
  const geometry = gapSeries.length
    ? lineChart({ ...common, id: 'gap', title: 'Modality gap of the picks (lower: the pairs agree more)', yLabel: 'gap ‖mean_a − mean_b‖', series: gapSeries, yFormat: (v) => f(v, 2) }) +
      lineChart({ ...common, id: 'alignment', title: 'Mean alignment of the picks (cosine of each pair)', yLabel: 'alignment', series: series(results.summary, styles, (p) => p.alignment), yFormat: (v) => f(v, 2) })
    : `<p class="note">No modality gap or alignment: the selection ran on raw features whose modalities have different dimensions (no stage 1).</p>`;
  const modalities = results.dataset.modalities.map((m) => m.name);
  const perModality = barChart({
    id: 'per-modality',
    title: `Test accuracy at B = ${budget}: fused and each modality alone`,
    caption: `model: ${escapeHtml(results.options.model)}`,
    groups: results.summary.map((s) => ({ label: s.label, values: [s.points[last].accuracy.mean, ...modalities.map((m) => s.points[last].perModality[m])] })),
    parts: ['fused', ...modalities.map((m) => `${m} alone`)],
    stacked: false,
    format: pct,
    xLabel: 'accuracy (%)',
    max: 1,
  });
  const times = results.summary.map((s) => {
    const cells = results.cells.filter((c) => c.arm === s.arm).map((c) => results.times.cells[c.id]).filter(Boolean);
    const mean = (k: 'selection' | 'training') => (cells.length ? cells.reduce((a, c) => a + c[k], 0) / cells.length : 0);
    return { label: s.label, values: [mean('selection'), mean('training')] };
  });
  const stage1Times = Object.values(results.times.stage1);
  const timing = barChart({
    id: 'timing',
    title: 'Time per cell (mean over budgets and seeds)',
    caption: stage1Times.length ? `stage 1: ${f(stage1Times.reduce((a, b) => a + b, 0) / stage1Times.length, 1)} s per seed, shared by every strategy` : 'no stage 1',
    groups: times,
    parts: ['selection', 'training + scoring'],
    stacked: true,
    format: (v) => `${f(v, v < 10 ? 2 : 1)} s`,
    xLabel: 'seconds',
  });
  const stage1 = results.stage1.length ? `stage-1 modality gap ${results.stage1.map((s) => f(s.gap, 3)).join(' / ')} (seeds ${results.stage1.map((s) => s.seed).join(' / ')})` : 'no stage 1 (raw features)';
  const d = results.dataset;
  const meta =
    `${escapeHtml(d.name)}: ${d.train} train pairs (the pool) and ${d.test} test pairs, ${d.classes.length} classes, modalities ${d.modalities.map((m) => `${escapeHtml(m.name)} (${m.dim}-D)`).join(', ')}. ` +
    `Model: ${escapeHtml(results.options.model)}; seeds ${results.options.seeds.join(', ')}; budgets ${xs.join(', ')}; ${stage1}. ` +
    `Backend ${escapeHtml(results.backend)} on ${escapeHtml(results.machine.cpuModel)} (${results.machine.cpus} CPUs); pairpick ${escapeHtml(results.versions.pairpick)}, Node ${escapeHtml(results.versions.node)}; total ${f(results.times.totalSeconds, 1)} s (this run).`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>pairpick eval — ${escapeHtml(d.name)}</title><style>${CSS}</style></head>
<body>
<h1>Which strategy picks the most useful pairs? — ${escapeHtml(d.name)}</h1>
<p class="meta">${meta}</p>
<h2>Summary</h2>
${summaryTable(results)}
<p class="note">Ranked by AUC: the area under the mean accuracy curve divided by the width of the budget range${results.logX ? ' (on log budget)' : ''}. Mean accuracy: over budgets, then mean ± std over seeds. Gain over random: per seed, the mean accuracy over budgets minus ${results.reference ? `that of <code>${escapeHtml(results.reference)}</code>` : 'random'} on the same seed; mean ± std over seeds.</p>
<h2>Learning curves</h2>
${charts.join('\n')}
<h2>Class balance</h2>
${balance}
<h2>Modality gap and alignment of the picks</h2>
${geometry}
<h2>Per-modality accuracy</h2>
${perModality}
<h2>Timing</h2>
${timing}
<h2>Command</h2>
<pre>${escapeHtml(results.command ?? '(called from code: evaluate())')}</pre>
<p class="note">Generated by pairpick ${escapeHtml(results.versions.pairpick)} from results.json (format ${escapeHtml(results.format)}).</p>
</body></html>
`;
}
