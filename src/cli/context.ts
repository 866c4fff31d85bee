// What a command needs from its surroundings: where results and notes go, whether stderr is a
// terminal, cancellation. The defaults are the process's own streams, written so that a reader
// that goes away (`pairpick select … | head -c 10`: EPIPE) ends the output quietly instead of
// raising an unhandled 'error' event.
import { helpText, parseCommand, type CommandSpec, type ParsedArgs } from './args.js';
import { withFlagWording } from './errors.js';
import { createProgress, progressMode, type Progress } from './progress.js';

export interface CommandContext {
  /** Aborts the command (in addition to Ctrl-C). */
  signal?: AbortSignal;
  /** Where results go (default: standard output). */
  stdout?: (text: string) => void;
  /** Where progress and notes go (default: standard error). */
  stderr?: (text: string) => void;
  /** Whether stderr is a terminal, i.e. progress as a bar rather than plain lines (default: process.stderr.isTTY). */
  stderrIsTTY?: boolean;
}

type Std = 'stdout' | 'stderr';
const closedStreams = new Set<Std>();
const streamFailures = new Map<Std, Error>();
let guarded = false;

/**
 * Keeps write errors on stdout/stderr from becoming unhandled 'error' events: a closed reader
 * (EPIPE) silently ends that stream's output, like standard tools; any other failure is kept for
 * `standardStreamFailure()` to report once the command ends.
 */
export function guardStandardStreams(): void {
  if (guarded) return;
  guarded = true;
  for (const which of ['stdout', 'stderr'] as const) {
    process[which].on('error', (e: NodeJS.ErrnoException) => {
      closedStreams.add(which);
      if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED' && !streamFailures.has(which)) streamFailures.set(which, e);
    });
  }
}

/** The first write failure of stdout other than a closed reader, if any. */
export function standardStreamFailure(which: Std): Error | undefined {
  return streamFailures.get(which);
}

function writer(which: Std): (text: string) => void {
  return (text) => {
    const stream = process[which];
    if (closedStreams.has(which) || stream.destroyed || stream.writableEnded) return;
    stream.write(text);
  };
}

export const writeStdout = writer('stdout');
export const writeStderr = writer('stderr');

/** The context's streams, with the process's as defaults. */
export function streams(context: CommandContext): { out: (text: string) => void; err: (text: string) => void; tty: boolean } {
  return {
    out: context.stdout ?? writeStdout,
    err: context.stderr ?? writeStderr,
    tty: context.stderrIsTTY ?? process.stderr.isTTY === true,
  };
}

/** Progress on the context's stderr: a bar on a terminal, plain lines elsewhere, nothing with --quiet. */
export function commandProgress(context: CommandContext, label: string, quiet: boolean): Progress {
  const { err, tty } = streams(context);
  return createProgress({ mode: progressMode(quiet, tty), label, write: err });
}

/**
 * Runs `fn` with an AbortSignal that fires on Ctrl-C (SIGINT) or when `outer` aborts; the
 * handler is removed afterwards, so a second Ctrl-C after the command ends behaves normally.
 */
export async function withInterrupt<T>(outer: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted (SIGINT)'));
  const onOuter = () => controller.abort(outer?.reason);
  process.on('SIGINT', onSigint);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  try {
    return await fn(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
    outer?.removeEventListener('abort', onOuter);
  }
}

/**
 * What every command does first: parses its flags, answers --help, and runs `body`, rewording
 * the library errors it throws with the command's flags.
 */
export function runCommand(spec: CommandSpec, argv: string[], context: CommandContext, body: (args: ParsedArgs) => Promise<void>): Promise<void> {
  return withFlagWording(spec, async () => {
    const args = parseCommand(argv, spec);
    if (args.flag('help')) {
      streams(context).out(helpText(spec));
      return;
    }
    await body(args);
  });
}
