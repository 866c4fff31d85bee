// The `pairpick` command: dispatches to one module per subcommand.
import { PairpickError } from '../errors.js';
import { demoCommand } from './demo.js';
import { embedCommand } from './embed.js';
import { fitCommand } from './fit.js';
import { infoCommand } from './info.js';
import { selectCommand } from './select.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; help: string }> = {
  demo: { run: demoCommand, help: 'fit stage 1 on AV-Digits and compare selection strategies' },
  fit: { run: fitCommand, help: 'stage 1: train projection heads  --modality NAME=PATH … --out model.safetensors' },
  embed: { run: embedCommand, help: 'project a pool with a trained model  --model FILE --modality NAME=PATH … --out-dir DIR' },
  select: { run: selectCommand, help: 'pick samples to label  --modality NAME=PATH … --budget B [--strategy S] [--out FILE]' },
  info: { run: infoCommand, help: 'version, build, backends and hardware  [--json]' },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  pairpick ${name.padEnd(7)} ${c.help}`);
  return `usage: pairpick <command> [options]\n\n${rows.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage());
    return command ? 0 : 2;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`pairpick: unknown command '${command}'\n\n${usage()}`);
    return 2;
  }
  try {
    await entry.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof PairpickError) {
      process.stderr.write(`pairpick ${command}: ${e.code}: ${e.message}\n`);
      return e.code === 'E_ABORTED' ? 130 : 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`pairpick: internal error: ${(e as Error)?.stack ?? e}\n`);
    process.exitCode = 70;
  },
);
