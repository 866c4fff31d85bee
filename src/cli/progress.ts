// Progress of long commands on stderr: a redrawn bar with percent, elapsed time and ETA when stderr
// is a terminal; plain lines (one when a phase starts, then one every ~10 s) when it is not, so
// logs of long jobs show where they are; nothing with --quiet. stdout is never touched.

export type ProgressMode = 'bar' | 'lines' | 'off';

export interface Progress {
  /**
   * Overall `fraction` in [0, 1] and the current `phase` (a short name: a new phase starts a new
   * line in `lines` mode); `detail` (counts, a loss) is shown after it.
   */
  update(fraction: number, phase: string, detail?: string): void;
  /** A line of text on stderr (not in `off` mode), below the bar. */
  note(text: string): void;
  /** Erases the bar (before other output on the same terminal, and at the end). */
  clear(): void;
}

export interface ProgressOptions {
  mode: ProgressMode;
  /** Shown first: `pairpick select` … */
  label: string;
  /** Where the text goes (stderr). */
  write: (text: string) => void;
  /** Milliseconds between plain lines within a phase (default: PAIRPICK_PROGRESS_SECONDS × 1000, else 10 s). */
  intervalMs?: number;
  /** Clock in milliseconds (tests pass their own). */
  now?: () => number;
}

/** Milliseconds between plain progress lines: PAIRPICK_PROGRESS_SECONDS (a positive number), else 10 s. */
export function progressIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.PAIRPICK_PROGRESS_SECONDS);
  return env.PAIRPICK_PROGRESS_SECONDS && Number.isFinite(s) && s > 0 ? s * 1000 : 10_000;
}

/** `off` with --quiet, else `bar` on a terminal and `lines` elsewhere. */
export function progressMode(quiet: boolean, stderrIsTTY: boolean): ProgressMode {
  return quiet ? 'off' : stderrIsTTY ? 'bar' : 'lines';
}

/** 4.2s, 42s, 7m05s, 2h03m. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Remaining time when `gained` of the fraction took `spanMs` and `fraction` is done: linear
 * extrapolation; undefined until it means something.
 */
export function etaMs(spanMs: number, gained: number, fraction: number): number | undefined {
  if (!(gained > 0) || fraction >= 1 || spanMs < 1000) return undefined;
  return (spanMs * (1 - fraction)) / gained;
}

/** The ETA follows the rate of the last 30 s (or of the whole run while it is younger): the rate
 * since the start would be skewed by a fast first phase. */
const ETA_WINDOW_MS = 30_000;

/** Samples of (time, fraction), at most one a second, spanning the ETA window. */
function rateWindow(start: number) {
  const samples = [{ t: start, f: 0 }];
  return (t: number, f: number): number | undefined => {
    if (t - samples[samples.length - 1].t >= 1000) samples.push({ t, f });
    while (samples.length > 2 && samples[1].t <= t - ETA_WINDOW_MS) samples.shift();
    const anchor = samples[0];
    return etaMs(t - anchor.t, f - anchor.f, f);
  };
}

const BAR_WIDTH = 24;
const BAR_REDRAW_MS = 100;

export function createProgress(o: ProgressOptions): Progress {
  const now = o.now ?? (() => performance.now());
  const start = now();
  if (o.mode === 'off') return { update() {}, note() {}, clear() {} };

  // Every update feeds the rate window, shown or not.
  const remaining = rateWindow(start);
  const timing = (f: number, t: number) => {
    const eta = remaining(t, f);
    return () => ({ elapsed: formatDuration(t - start), eta: eta === undefined ? undefined : formatDuration(eta) });
  };
  const percent = (f: number) => `${Math.floor(100 * Math.max(0, Math.min(1, f)))}%`;

  if (o.mode === 'lines') {
    let phase: string | undefined;
    let lastLine = -Infinity;
    return {
      update(fraction, next, detail) {
        const t = now();
        const times = timing(fraction, t);
        if (next === phase && t - lastLine < (o.intervalMs ?? progressIntervalMs())) return;
        phase = next;
        lastLine = t;
        const { elapsed, eta } = times();
        o.write(`${o.label}: ${percent(fraction).padStart(4)} ${next}${detail ? ` ${detail}` : ''} (${elapsed} elapsed${eta ? `, ETA ${eta}` : ''})\n`);
      },
      note(text) {
        o.write(text.endsWith('\n') ? text : `${text}\n`);
      },
      clear() {},
    };
  }

  let drawn = false;
  let lastDraw = -Infinity;
  let lastPhase: string | undefined;
  const clear = () => {
    if (drawn) o.write('\r\x1b[K');
    drawn = false;
  };
  return {
    update(fraction, phase, detail) {
      const t = now();
      const f = Math.max(0, Math.min(1, fraction));
      const times = timing(f, t);
      if (t - lastDraw < BAR_REDRAW_MS && phase === lastPhase && fraction < 1) return;
      lastDraw = t;
      lastPhase = phase;
      const filled = Math.floor(f * BAR_WIDTH);
      const { elapsed, eta } = times();
      o.write(
        `\r${o.label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${percent(f).padStart(4)} ${elapsed}${eta ? ` ETA ${eta}` : ''}  ${phase}${detail ? ` ${detail}` : ''}\x1b[K`,
      );
      drawn = true;
    },
    note(text) {
      clear();
      o.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    clear,
  };
}
