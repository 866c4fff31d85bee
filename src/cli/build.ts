// `pairpick build [--cuda] [--verbose]`: builds (or rebuilds) the native addon from source after
// the install, for installs that ran without scripts (--ignore-scripts, pnpm, npm's allowScripts)
// or that want the CUDA backend; then shows what `pairpick info` sees.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { PairpickError } from '../errors.js';
import { packageRoot } from '../util/root.js';
import { HELP_FLAG, type CommandSpec, type ParsedArgs } from './args.js';
import { runCommand, streams, type CommandContext } from './context.js';

export const BUILD_SPEC: CommandSpec = {
  name: 'build',
  summary: 'build the native addon from source (CPU, and CUDA when nvcc is found)',
  synopsis: 'pairpick build [--cuda] [--verbose]',
  description:
    "Builds pairpick's native addon from source in the installed package (CMake via cmake-js, else node-gyp): the CPU backend, " +
    'and the CUDA backend when nvcc is found (for the GPU present, else for Turing to Hopper). Use it when the install ran ' +
    'without scripts, or to add CUDA to the prebuilt CPU addon. Compiler messages go to stderr with --verbose; the backends ' +
    'then available are printed on stdout.',
  flags: {
    cuda: { type: 'boolean', group: 'Options', help: 'fail unless the CUDA backend builds (needs nvcc); without it, CUDA is built when possible' },
    verbose: { type: 'boolean', group: 'Options', help: "show the compilers' output as the build runs" },
    help: HELP_FLAG,
  },
  notes: 'Environment: PAIRPICK_CUDA=OFF skips CUDA; CUDAARCHS=90 picks the GPU architectures; PAIRPICK_BUILDER=node-gyp skips CMake.',
};

export async function buildCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return runCommand(BUILD_SPEC, argv, context, (args) => buildBody(args, context));
}

function runNode(argv: string[], env: NodeJS.ProcessEnv, onOutput: ((s: string) => void) | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: packageRoot(), env, stdio: ['ignore', onOutput ? 'pipe' : 'inherit', 'inherit'] });
    child.stdout?.setEncoding('utf8').on('data', (s: string) => onOutput?.(s));
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

async function buildBody(args: ParsedArgs, context: CommandContext): Promise<void> {
  const { out: write } = streams(context);
  const root = packageRoot();
  const script = [join(root, 'scripts', 'build-native.mjs'), ...(args.flag('cuda') ? ['--require-cuda'] : [])];
  const env = { ...process.env, ...(args.flag('verbose') && { PAIRPICK_BUILD_VERBOSE: '1' }) };
  // The build script reports its steps on stderr; stdout here is only for the result.
  const status = await runNode(script, env, undefined);
  if (status !== 0) throw new PairpickError('E_BACKEND', `the native build failed (exit status ${status})${args.flag('verbose') ? '' : '; run `npx pairpick build --verbose` to see why'}`);
  // A fresh process loads the new addon (this one may have loaded the old one).
  const info = await runNode([join(root, 'dist', 'cli.js'), 'info'], process.env, (s) => write(s));
  if (info !== 0) throw new PairpickError('E_BACKEND', `the addon was built but \`pairpick info\` failed (exit status ${info})`);
}
