// The command line grammar: strict number grammars, negative numbers without '=', unknown or
// repeated flags, --help of every subcommand (every flag with its default), --version, and the
// one-line error format with flags (not API option names) in messages. Child processes run
// dist/cli.js, built by the global test setup.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseDecimal, parseInteger } from '../src/cli/args.js';
import { DEMO_SPEC } from '../src/cli/demo.js';
import { evalSpec } from '../src/cli/eval.js';
import { EMBED_SPEC } from '../src/cli/embed.js';
import { FIT_SPEC } from '../src/cli/fit.js';
import { INFO_SPEC } from '../src/cli/info.js';
import { selectCommand, selectSpec } from '../src/cli/select.js';
import { PairpickError } from '../src/errors.js';
import { openPool, writeNpy } from '../src/io/index.js';
import { FIT_DEFAULTS } from '../src/ssl/index.js';
import { select, SELECT_DEFAULTS } from '../src/select/index.js';
import { rejectsWith } from './helpers/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';

const root = join(__dirname, '..');
const cli = join(root, 'dist', 'cli.js');
let dir: string;
const ROWS = 97;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-cli-args-'));
  const rng = testRng();
  await writeNpy(join(dir, 'a.npy'), randomMatrix(rng, ROWS, 6), [ROWS, 6]);
  await writeNpy(join(dir, 'b.npy'), randomMatrix(rng, ROWS, 6), [ROWS, 6]);
  await writeNpy(join(dir, 'c.npy'), randomMatrix(rng, ROWS, 5), [ROWS, 5]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function capture() {
  let out = '';
  return { stdout: (s: string) => void (out += s), stderr: () => undefined, stderrIsTTY: false, text: () => out };
}

function optionError(f: () => unknown, ...fragments: (string | RegExp)[]): void {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error, `expected E_OPTION for ${fragments.join(' ')}`).toBeInstanceOf(PairpickError);
  expect((error as PairpickError).code).toBe('E_OPTION');
  for (const x of fragments) expect((error as Error).message).toMatch(x);
}

/** The flag entries of a --help text: flag name → its description, whitespace collapsed. */
function helpEntries(help: string): Map<string, string> {
  const entries = new Map<string, string>();
  let current: string | undefined;
  for (const line of help.split('\n')) {
    const m = /^ {2}(?:-\w, | {4})--([a-z-]+)(.*)$/.exec(line);
    if (m) {
      current = m[1];
      entries.set(current, m[2].trim());
    } else if (current && /^ {6,}\S/.test(line)) {
      entries.set(current, `${entries.get(current)} ${line.trim()}`);
    } else current = undefined;
  }
  return entries;
}

const ab = () => ['--modality', `a=${join(dir, 'a.npy')}`, '--modality', `b=${join(dir, 'b.npy')}`];

describe('number grammar', () => {
  it('integers: decimal digits with an optional minus, nothing else', () => {
    for (const [text, value] of [['0', 0], ['7', 7], ['-1', -1], ['007', 7], ['-0', 0], ['9007199254740991', 2 ** 53 - 1]] as const) {
      expect(parseInteger(text, '--n')).toBe(value);
    }
    for (const text of ['0x10', '1e3', ' 7', '7 ', '+5', '7.0', '7.', '', '-', '1_000', '٣', 'Infinity', '9007199254740993', '--1']) {
      optionError(() => parseInteger(text, '--budget'), '--budget', text === '' ? /got ''/ : text.trim() === '' ? /got/ : text);
    }
    optionError(() => parseInteger('0', '--k', { min: 1 }), '--k must be ≥ 1, got 0');
  });

  it('numbers: decimal with optional fraction and exponent; no hex, Infinity, NaN, spaces or +', () => {
    for (const [text, value] of [['0.5', 0.5], ['-2', -2], ['1e-3', 1e-3], ['.5', 0.5], ['5.', 5], ['2.5E+2', 250], ['-0', 0]] as const) {
      expect(parseDecimal(text, '--x')).toBe(value);
    }
    for (const text of ['0x10', 'Infinity', 'NaN', ' 1', '1 ', '+1', '1e999', '1,5', '', '.', 'e3', '1e', '0b1']) {
      optionError(() => parseDecimal(text, '--lr'), '--lr');
    }
    optionError(() => parseDecimal('0', '--lr', { min: 0, exclusiveMin: true }), '--lr must be > 0');
  });

  it('select refuses --budget 0x10, 1e3, " 7", +5, 7.0 naming the flag', async () => {
    for (const text of ['0x10', '1e3', ' 7', '+5', '7.0']) {
      await rejectsWith(selectCommand([...ab(), '--budget', text], capture()), 'E_OPTION', '--budget', 'decimal digits');
    }
    await rejectsWith(selectCommand([...ab(), '--budget', '3', '--w-density', '0x1'], capture()), 'E_OPTION', '--w-density', 'decimal number');
  });

  it('negative numbers work without "=": --seed -1 gives the API picks for seed -1', async () => {
    const pool = await openPool({ a: join(dir, 'a.npy'), b: join(dir, 'b.npy') });
    try {
      for (const strategy of ['random', 'kmeans'] as const) {
        const want = Array.from((await select(pool, { strategy, budget: 6, seed: -1, backend: 'js' })).indices);
        const c = capture();
        await selectCommand([...ab(), '--budget', '6', '--strategy', strategy, '--seed', '-1', '--backend', 'js', '--json'], c);
        expect(JSON.parse(c.text()).indices, strategy).toEqual(want);
      }
    } finally {
      await pool.close();
    }
    const r = run(['select', ...ab(), '--budget', '4', '--strategy', 'random', '--seed', '-7', '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(4);
  });
});

describe('flags', () => {
  it('unknown and value-less flags and stray arguments are refused by name', async () => {
    await rejectsWith(selectCommand([...ab(), '--budget', '3', '--lamda-align', '1'], capture()), 'E_OPTION', 'unknown option --lamda-align', 'did you mean --lambda-align');
    await rejectsWith(selectCommand([...ab(), '--budget', '3', '--out', '--json'], capture()), 'E_OPTION', '--out needs a value', '--json');
    await rejectsWith(selectCommand([...ab(), '--budget'], capture()), 'E_OPTION', '--budget needs a value');
    await rejectsWith(selectCommand([...ab(), '--budget', '3', 'extra'], capture()), 'E_OPTION', "unexpected argument 'extra'");
    await rejectsWith(selectCommand([...ab(), '--budget', '3', '--json=yes'], capture()), 'E_OPTION', '--json takes no value');
    await rejectsWith(selectCommand([...ab(), '--budget', '3', '--backend', 'gpu'], capture()), 'E_OPTION', '--backend must be one of auto, cuda, cpu, js');
    await rejectsWith(selectCommand([...ab(), '--budget', '3', '--strategy', 'coreset'], capture()), 'E_OPTION', '--strategy must be one of', 'coreset');
  });

  it('library messages name the flags the user typed, not API options', async () => {
    // select()'s own checks speak of lambdaAlign / option 'densitySample'; the CLI rewords them.
    const e1 = await rejectsWith(selectCommand([...ab(), '--budget', '3', '--strategy', 'kcenter', '--density-sample', '10'], capture()), 'E_OPTION', '--density-sample does not apply');
    expect(e1.message).not.toMatch(/densitySample/);
    const mixed = ['--modality', `a=${join(dir, 'a.npy')}`, '--modality', `c=${join(dir, 'c.npy')}`];
    const e2 = await rejectsWith(selectCommand([...mixed, '--budget', '3', '--lambda-align', '0.5', '--gamma', '0'], capture()), 'E_SHAPE', '--lambda-align 0.5 needs');
    expect(e2.message).not.toMatch(/lambdaAlign|^select:/);
    const e3 = await rejectsWith(selectCommand([...ab(), '--budget', '98'], capture()), 'E_BUDGET', /^--budget 98 exceeds the 97 selectable rows/);
    expect(e3.message).not.toMatch(/^select:/);
  });
});

describe('help and version', () => {
  const specs = [FIT_SPEC, EMBED_SPEC, selectSpec(), DEMO_SPEC, INFO_SPEC, evalSpec()];

  it.each(specs.map((s) => [s.name, s] as const))('pairpick %s --help documents every flag, with its default or "required"', (name, spec) => {
    const r = run([name, '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^usage: pairpick ${name}`));
    expect(r.stdout).toMatch(/stdout/);
    const entries = helpEntries(r.stdout);
    for (const [flag, f] of Object.entries(spec.flags)) {
      const entry = entries.get(flag);
      expect(entry, `--${flag} listed in pairpick ${name} --help`).toBeDefined();
      if (f.type === 'string') expect(f.required || f.default !== undefined, `--${flag} has a default or is required`).toBe(true);
      if (f.required) expect(entry).toMatch(/\(required\)$/);
      else if (f.default !== undefined) expect(entry).toContain(`(default: ${f.default})`);
    }
    expect([...entries.keys()].sort()).toEqual(Object.keys(spec.flags).sort());
    // Flags mentioned anywhere in the text are flags of this command.
    for (const m of r.stdout.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)) expect(Object.keys(spec.flags), `--${m[1]} mentioned in ${name} --help`).toContain(m[1]);
    expect(run(['help', name]).stdout).toBe(r.stdout);
    expect(run([name, '-h']).stdout).toBe(r.stdout);
  });

  it('the flags that used to be undocumented are listed with their defaults', () => {
    const fit = helpEntries(run(['fit', '--help']).stdout);
    expect(fit.get('proto-temperature')).toMatch(new RegExp(`^T .*\\(default: ${FIT_DEFAULTS.protoTemperature}\\)$`));
    expect(fit.get('epsilon')).toMatch(new RegExp(`^E .*\\(default: ${FIT_DEFAULTS.epsilon}\\)$`));
    expect(fit.get('sinkhorn-iterations')).toMatch(new RegExp(`^N .*\\(default: ${FIT_DEFAULTS.sinkhornIterations}\\)$`));
    expect(fit.get('weight-decay')).toMatch(new RegExp(`^WD .*\\(default: ${FIT_DEFAULTS.weightDecay}\\)$`));
    expect(helpEntries(run(['embed', '--help']).stdout).get('chunk-rows')).toMatch(/^N .*\(default: 4096\)$/);
    const select = run(['select', '--help']).stdout;
    expect(helpEntries(select).get('w-diversity')).toMatch(new RegExp(`\\(default: ${SELECT_DEFAULTS.wDiversity}\\)$`));
    expect(select.replace(/\s+/g, ' ')).toMatch(/Without --out the picked row indices are printed on stdout, one per line/);
  });

  it('--version and -v print the package version', () => {
    const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
    for (const flag of ['--version', '-v']) {
      const r = run([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
    }
    const top = run(['--help']);
    expect(top.code).toBe(0);
    for (const name of ['demo', 'fit', 'embed', 'select', 'info']) expect(top.stdout).toMatch(new RegExp(`^ {2}${name} `, 'm'));
    const none = run([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^usage: pairpick/);
  });
});

describe('error output', () => {
  it('each error is printed once: "pairpick <command>: <message> (<CODE>)", exit 2 for a bad command line, 1 otherwise', () => {
    const bad = run(['select', ...ab(), '--budget', '0x10']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    const lines = bad.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`pairpick select: --budget must be an integer written in decimal digits (like 100 or -1), got '0x10' (E_OPTION)`);
    expect(lines.slice(1)).toEqual([`(see 'pairpick select --help')`]);

    const budget = run(['select', ...ab(), '--budget', '98', '--quiet']);
    expect(budget.code).toBe(1);
    expect(budget.stderr).toBe('pairpick select: --budget 98 exceeds the 97 selectable rows (97 rows, 0 labelled) (E_BUDGET)\n');

    const missing = run(['fit', '--modality', `a=${join(dir, 'a.npy')}`, '--modality', `b=${join(dir, 'nope.npy')}`, '--out', 'm.safetensors', '--quiet']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.match(/pairpick fit:/g)).toHaveLength(1);
    expect(missing.stderr).toMatch(/^pairpick fit: .*nope\.npy.*\(E_IO\)\n$/);
  });
});
