// Flags and help text several subcommands share.
import type { FlagSpec } from './args.js';

export const BACKENDS = ['auto', 'cuda', 'cpu', 'js'] as const;

/** --backend, listed under `group`. */
export function backendFlag(group: string): FlagSpec {
  return {
    type: 'string',
    value: 'auto|cuda|cpu|js',
    group,
    default: 'auto',
    api: 'backend',
    help: 'where the heavy work runs; auto: $PAIRPICK_BACKEND when set, else the first available of cuda, cpu, js',
  };
}

/** The end of every long command's --help: streams, exit codes, environment. */
export const COMMON_NOTES = `Streams: results go to stdout and nothing else does; progress, notes and errors go to stderr.
Progress is a bar with percent, elapsed time and ETA when stderr is a terminal, otherwise a plain
line when a phase starts and every 10 s (PAIRPICK_PROGRESS_SECONDS changes the interval);
--quiet removes both. A closed stdout (e.g. '| head') ends the output quietly.

Exit status: 0 done, 1 error (bad file, data or budget), 2 bad command line, 130 interrupted
(Ctrl-C). Output files are written to a temporary name and renamed when complete: a failed or
interrupted command leaves none behind.`;
