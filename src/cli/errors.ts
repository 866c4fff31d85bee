// Errors at the command line boundary: library messages speak of API options (`lambdaAlign`,
// option 'k') and start with the API function (`select: …`); the user typed flags and a command.
// Messages are reworded here — the library keeps its API names — and printed once, as
// `pairpick <command>: <message> (<CODE>)`.
import { PairpickError } from '../errors.js';
import type { CommandSpec } from './args.js';

/** Leading `function: ` (or `function (qualifier): `) of library messages. */
const API_PREFIX =
  /^(?:select|openPool|openSource|fitProjection|initProjection|embed|embedRows|loadProjection|loadCheckpoint|modalityGap|loadDataset|coldStartExperiment|evaluate|checkFinite)(?: \([^)]*\))?: /;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Rewords a library message for the command line: no API prefix, flags instead of option names. */
export function flagWording(message: string, spec: CommandSpec): string {
  let m = message;
  for (;;) {
    const next = m.replace(new RegExp(`^pairpick ${escape(spec.name)}: `), '').replace(API_PREFIX, '');
    if (next === m) break;
    m = next;
  }
  const flags = new Map<string, string>();
  for (const [name, f] of Object.entries(spec.flags)) if (f.api) flags.set(f.api, `--${name}`);
  const flagOf = (api: string, whole: string) => flags.get(api) ?? whole;
  m = m.replace(/\boption '(\w+)' = /g, (whole, api) => (flags.has(api) ? `${flags.get(api)} ` : whole));
  m = m.replace(/\boption '(\w+)'/g, (whole, api) => flagOf(api, whole));
  m = m.replace(/\b(?:the )?'(\w+)' option\b/g, (whole, api) => flagOf(api, whole));
  m = m.replace(/(?<![-\w])(\w+) = /g, (whole, api) => (flags.has(api) ? `${flags.get(api)} ` : whole));
  m = m.replace(/\b(\w+)\[(\d+)\]/g, (whole, api, i) => (flags.has(api) ? `${flags.get(api)} entry ${i}` : whole));
  // camelCase option names are unambiguous wherever they appear; plain words only at the start.
  m = m.replace(/(?<![-\w])([a-z]+[A-Z]\w*)\b/g, (whole, api) => flagOf(api, whole));
  m = m.replace(/^(\w+)(?= )/, (whole, api) => flagOf(api, whole));
  return m;
}

/**
 * Runs a command body, rewording the PairpickErrors it throws with the command's flags (same
 * code, the original as `cause`).
 */
export async function withFlagWording<T>(spec: CommandSpec, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    if (!(e instanceof PairpickError)) throw e;
    const message = flagWording(e.message, spec);
    if (message === e.message) throw e;
    throw new PairpickError(e.code, message, { cause: e });
  }
}

/** How the command line prints an error: once, the command first, the code last. */
export function formatError(command: string, e: PairpickError): string {
  const hint = e.code === 'E_OPTION' ? `\n(see 'pairpick ${command} --help')` : '';
  return `pairpick ${command}: ${e.message} (${e.code})${hint}\n`;
}
