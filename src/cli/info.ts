// `pairpick info [--json]`: version, build flavour, backends and hardware.
import { cpus } from 'node:os';

import { backends } from '../backend/index.js';
import { loadAddon, nativeHint } from '../native/addon.js';
import { packageVersion } from '../util/root.js';
import { HELP_FLAG, type CommandSpec, type ParsedArgs } from './args.js';
import { runCommand, streams, type CommandContext } from './context.js';

export const INFO_SPEC: CommandSpec = {
  name: 'info',
  summary: 'version, build, backends and hardware',
  synopsis: 'pairpick info [--json]',
  description: 'Prints the version, the build of the native addon, the CPU and every backend with whether it is available (and why not) on stdout.',
  flags: {
    json: { type: 'boolean', group: 'Output', help: 'print one JSON document instead of text' },
    help: HELP_FLAG,
  },
};

export async function infoCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return runCommand(INFO_SPEC, argv, context, (args) => infoBody(args, context));
}

async function infoBody(args: ParsedArgs, context: CommandContext): Promise<void> {
  const { out: write } = streams(context);
  const { addon, reason, origin, file } = loadAddon();
  const hint = nativeHint();
  const report = {
    version: packageVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    build: addon ? `${addon.build.flavour}${origin === 'prebuilt' ? ' (prebuilt)' : ''}` : `js only (${reason})`,
    addon: file ?? null,
    ...(hint && { hint }),
    cpu: { model: cpus()[0]?.model?.trim() ?? 'unknown', threads: addon?.threads ?? cpus().length, simd: addon?.simd ?? 'n/a (no addon)' },
    backends: backends(),
  };
  if (args.flag('json')) {
    write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const lines = [
    `pairpick ${report.version} (node ${report.node}, ${report.platform})`,
    `build:    ${report.build}${report.addon ? `, ${report.addon}` : ''}`,
    `cpu:      ${report.cpu.model}, ${report.cpu.threads} threads, SIMD ${report.cpu.simd}`,
    'backends:',
    ...report.backends.map((b) => {
      const mark = b.available ? 'available  ' : 'unavailable';
      const extra = b.device ?? (b.threads ? `${b.threads} threads, ${b.simd}` : '');
      return `  ${b.name.padEnd(5)} ${mark} ${b.available ? extra : b.reason ?? ''}`.trimEnd();
    }),
  ];
  if (hint) lines.push(`native:   ${hint}`);
  write(lines.join('\n') + '\n');
}
