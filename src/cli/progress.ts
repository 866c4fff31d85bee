// A one-line progress bar on stderr when it is a TTY; silent otherwise (logs, CI, --json).

export interface ProgressBar {
  /** fraction in [0, 1]; `detail` is shown after the bar. */
  update(fraction: number, detail?: string): void;
  done(): void;
}

export function progressBar(label: string, enabled = process.stderr.isTTY === true): ProgressBar {
  if (!enabled) return { update() {}, done() {} };
  let last = 0;
  const width = 28;
  const start = Date.now();
  return {
    update(fraction, detail = '') {
      const now = Date.now();
      if (now - last < 80 && fraction < 1) return;
      last = now;
      const f = Math.max(0, Math.min(1, fraction));
      const filled = Math.round(f * width);
      const secs = ((now - start) / 1000).toFixed(1);
      process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(f * 100).toFixed(0).padStart(3)}% ${secs}s ${detail}\x1b[K`);
    },
    done() {
      process.stderr.write('\r\x1b[K');
    },
  };
}
