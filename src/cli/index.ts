// The `pairpick` command: dispatches to one module per subcommand, prints errors once
// (`pairpick <command>: <message> (<CODE>)`) and sets the exit status.
import { PairpickError } from '../errors.js';
import { packageVersion } from '../util/root.js';
import { helpText, type CommandSpec } from './args.js';
import { guardStandardStreams, standardStreamFailure, writeStderr, writeStdout } from './context.js';
import { buildCommand, BUILD_SPEC } from './build.js';
import { demoCommand, DEMO_SPEC } from './demo.js';
import { embedCommand, EMBED_SPEC } from './embed.js';
import { evalCommand, evalSpec } from './eval.js';
import { formatError } from './errors.js';
import { fitCommand, FIT_SPEC } from './fit.js';
import { infoCommand, INFO_SPEC } from './info.js';
import { predictCommand, PREDICT_SPEC } from './predict.js';
import { selectCommand, selectSpec } from './select.js';
import { trainCommand, TRAIN_SPEC } from './train.js';

/** Each command and its flag table (select's is generated from the registered strategies). */
const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; spec: () => CommandSpec }> = {
  demo: { run: demoCommand, spec: () => DEMO_SPEC },
  fit: { run: fitCommand, spec: () => FIT_SPEC },
  embed: { run: embedCommand, spec: () => EMBED_SPEC },
  select: { run: selectCommand, spec: selectSpec },
  train: { run: trainCommand, spec: () => TRAIN_SPEC },
  predict: { run: predictCommand, spec: () => PREDICT_SPEC },
  eval: { run: evalCommand, spec: evalSpec },
  info: { run: infoCommand, spec: () => INFO_SPEC },
  build: { run: buildCommand, spec: () => BUILD_SPEC },
};

/** Exit status: 0 done, 1 error, 2 bad command line, 130 interrupted. */
const EXIT = { ok: 0, error: 1, usage: 2, interrupted: 130, internal: 70 } as const;

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.spec().summary}`);
  return (
    `usage: pairpick <command> [options]\n\ncommands:\n${rows.join('\n')}\n\n` +
    `  pairpick <command> --help   the flags of a command, with their defaults\n` +
    `  pairpick --version          the version\n`
  );
}

async function main(argv: string[]): Promise<number> {
  guardStandardStreams();
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-v') {
    writeStdout(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined;
    if (topic !== undefined && !COMMANDS[topic]) {
      writeStderr(`pairpick: unknown command '${topic}'\n\n${usage()}`);
      return EXIT.usage;
    }
    writeStdout(topic ? helpText(COMMANDS[topic].spec()) : usage());
    return EXIT.ok;
  }
  if (!command) {
    writeStderr(usage());
    return EXIT.usage;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    writeStderr(`pairpick: unknown command '${command}'\n\n${usage()}`);
    return EXIT.usage;
  }
  try {
    await entry.run(rest);
  } catch (e) {
    if (!(e instanceof PairpickError)) throw e;
    writeStderr(formatError(command, e));
    return e.code === 'E_ABORTED' ? EXIT.interrupted : e.code === 'E_OPTION' ? EXIT.usage : EXIT.error;
  }
  const failure = standardStreamFailure('stdout');
  if (failure) {
    writeStderr(formatError(command, new PairpickError('E_IO', `cannot write to standard output: ${failure.message}`)));
    return EXIT.error;
  }
  return EXIT.ok;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    writeStderr(`pairpick: internal error: ${(e as Error)?.stack ?? e}\n`);
    process.exitCode = EXIT.internal;
  },
);
