// Run by test/io-strict.test.ts in a child process (a SIGBUS would kill the test runner itself):
// opens files, truncates or rewrites them under the open source, reads, and prints one JSON line
// per scenario with what happened.
//   node file-race-child.mjs <mmap|file> <dir> <seed>
import { closeSync, openSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [mode, dir, seedText] = process.argv.slice(2);
const root = new URL('../../', import.meta.url).pathname;
const { checkFinite, openSource, writeNpy, writeSafetensors } = await import(join(root, 'dist', 'index.js'));
const mmap = mode === 'mmap';
const addon = mmap ? createRequire(import.meta.url)(join(root, 'build', 'Release', 'pairpick.node')) : undefined;

let seed = Number(seedText) >>> 0 || 1;
/** Uniform in (-1, 1), never 0 (xorshift32). */
function next() {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return ((seed >>> 8) + 0.5) / (1 << 23) - 1;
}
const randomValues = (n) => Float32Array.from({ length: n }, next);

/** The file's mtime set well in the past, so that any rewrite now gives it a new one even on a
 * file system whose clock ticks coarsely. */
function age(path) {
  const past = new Date(Date.now() - 3600_000);
  utimesSync(path, past, past);
}

let counter = 0;
async function npyFile(rows, dim) {
  const path = join(dir, `${mode}-${++counter}.npy`);
  const values = randomValues(rows * dim);
  await writeNpy(path, values, [rows, dim]);
  age(path);
  return { path, values };
}

/** Runs `act` and reports how it ended. */
async function outcome(name, path, act) {
  try {
    const extra = await act();
    return { name, path, ok: true, ...extra };
  } catch (e) {
    return { name, path, ok: false, error: e?.name, code: e?.code, message: e?.message };
  }
}

const results = [];
const faultsBefore = addon ? addon.mmap.faultsAbsorbed() : 0;
const rows = 2048;
const dim = 64;

// Truncated before a read / a gather / a NaN scan (the mapping's pages past the new end fault).
for (const [name, use] of [
  ['truncate then read', (s) => s.read(0, s.rows)],
  ['truncate then readRows', (s) => s.readRows([s.rows - 1, 3, s.rows >> 1])],
  ['truncate then checkFinite', (s) => checkFinite(s)],
  ['truncate then chunks', async (s) => { for await (const c of s.chunks(100)) void c; }],
]) {
  const { path } = await npyFile(rows, dim);
  const s = await openSource(path, { mmap });
  truncateSync(path, 300);
  results.push(await outcome(name, path, () => use(s)));
  await s.close();
}

// Rewritten in place (what np.save does: truncate, then write the new contents), same size.
{
  const { path, values } = await npyFile(rows, dim);
  const s = await openSource(path, { mmap });
  const other = values.map((v) => -v);
  const fd = openSync(path, 'r+');
  writeSync(fd, new Uint8Array(other.buffer), 0, other.byteLength, statSync(path).size - other.byteLength);
  closeSync(fd);
  results.push(await outcome('rewrite same size then read', path, () => s.read(0, s.rows)));
  await s.close();
}
{
  const { path } = await npyFile(rows, dim);
  const s = await openSource(path, { mmap });
  await writeNpy(join(dir, 'scratch.npy'), randomValues(rows * dim), [rows, dim]);
  writeFileSync(path, new Uint8Array(0));
  writeFileSync(path, readFileSync(join(dir, 'scratch.npy')));
  results.push(await outcome('np.save-style rewrite then readRows', path, () => s.readRows([0, rows - 1])));
  await s.close();
}
// Grown (appended to).
{
  const { path } = await npyFile(rows, dim);
  const s = await openSource(path, { mmap });
  const fd = openSync(path, 'a');
  writeSync(fd, new Uint8Array(16));
  closeSync(fd);
  results.push(await outcome('append then read', path, () => s.read(0, 1)));
  await s.close();
}
// A .safetensors tensor, truncated.
{
  const path = join(dir, `${mode}-t.safetensors`);
  await writeSafetensors(path, { emb: { data: randomValues(rows * dim), shape: [rows, dim] } });
  age(path);
  const s = await openSource(path, { mmap });
  truncateSync(path, 4096);
  results.push(await outcome('safetensors truncate then read', path, () => s.read(0, s.rows)));
  await s.close();
}
// A zero-copy view read by JavaScript after the truncation, then checked.
if (mmap) {
  const { path } = await npyFile(rows, dim);
  const s = await openSource(path, { mmap });
  const view = s.view(0, s.rows);
  truncateSync(path, 300);
  results.push(
    await outcome('truncate under a view', path, async () => {
      let sum = 0;
      for (let i = 0; i < view.length; i += 1024) sum += view[i]; // touches every page: faults past the end
      s.checkIntact();
      return { sum };
    }),
  );
  await s.close();
}
// Truncated while a large read is in flight: E_IO, or (if the read finished first) exact values.
{
  const { path, values } = await npyFile(1 << 16, 128);
  const s = await openSource(path, { mmap });
  const reading = s.read(0, s.rows);
  const cut = truncate(path, 1 << 20);
  const result = await outcome('truncate during a read', path, async () => {
    const got = await reading;
    let same = got.length === values.length;
    for (let i = 0; same && i < got.length; i++) same = Object.is(got[i], values[i]);
    return { same };
  });
  await cut;
  results.push(result);
  await s.close();
}

const faults = addon ? addon.mmap.faultsAbsorbed() - faultsBefore : 0;
process.stdout.write(`${JSON.stringify({ results, faults })}\n`);
