// `pairpick info [--json]`: version, build flavour, backends and hardware.
import { cpus } from 'node:os';

import { backends } from '../backend/index.js';
import { loadAddon } from '../backend/native/addon.js';
import { packageVersion } from '../util/root.js';
import { parseCommand } from './args.js';

export async function infoCommand(argv: string[]): Promise<void> {
  const { values } = parseCommand(argv, { json: { type: 'boolean' } }, 'info');
  const { addon, reason } = loadAddon();
  const report = {
    version: packageVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    build: addon ? addon.build.flavour : `js only (${reason})`,
    cpu: { model: cpus()[0]?.model?.trim() ?? 'unknown', threads: addon?.threads ?? cpus().length, simd: addon?.simd ?? 'n/a (no addon)' },
    backends: backends(),
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const lines = [
    `pairpick ${report.version} (node ${report.node}, ${report.platform})`,
    `build:    ${report.build}`,
    `cpu:      ${report.cpu.model}, ${report.cpu.threads} threads, SIMD ${report.cpu.simd}`,
    'backends:',
    ...report.backends.map((b) => {
      const mark = b.available ? 'available  ' : 'unavailable';
      const extra = b.device ?? (b.threads ? `${b.threads} threads, ${b.simd}` : '');
      return `  ${b.name.padEnd(5)} ${mark} ${b.available ? extra : b.reason ?? ''}`.trimEnd();
    }),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
