// CLI tests run dist/cli.js: rebuild dist/ from the current sources once per test run, unless the
// caller has just built it (scripts/test-seeds.mjs builds once, then sets PAIRPICK_TEST_SKIP_BUILD).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export default function setup(): void {
  if (process.env.PAIRPICK_TEST_SKIP_BUILD === '1') return;
  const root = join(__dirname, '..');
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'tsup', 'dist', 'cli-default.js')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsup failed before the tests:\n${r.stdout}\n${r.stderr}`);
}
