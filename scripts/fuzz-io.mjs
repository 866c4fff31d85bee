#!/usr/bin/env node
// Long fuzz of pairpick's file readers against the real references: numpy's np.load (with and
// without mmap_mode) for .npy, and a transcription of the safetensors crate's validation
// (scripts/fuzz_io_reference.py) for .safetensors. The cases come from the same seeded generator
// as the in-suite fuzz (test/helpers/fuzz-cases.ts, bundled here with esbuild). Each case is read
// in a child process through the memory map, positional reads and (for .npy) readNpy, with
// timeouts, so that signals and hangs are caught and counted. A second part races truncations
// and rewrites against reads of valid files.
//
//   node scripts/fuzz-io.mjs [--cases 10000] [--races 400] [--seed N] [--batch 500]
//                            [--python python3] [--keep DIR] [--verbose]
// Needs dist/ (npx tsup), the native addon for the mmap path, and python3 with numpy
// (--python or PAIRPICK_PYTHON pick the interpreter). Exit status 1 when any count that must be
// zero is not. --verbose lists the files pairpick refuses although the reference reads them.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const self = fileURLToPath(import.meta.url);
const OP_TIMEOUT_MS = 15_000; // one open + read inside the child
const SILENCE_MS = 45_000; // no output from a child for this long: it hangs (or blocks its loop)

async function importDist() {
  const entry = join(root, 'dist', 'index.js');
  if (!existsSync(entry)) {
    console.error('fuzz-io: dist/ is missing — build it first with `npx tsup` (or `npm run build`)');
    process.exit(2);
  }
  return import(pathToFileURL(entry).href);
}

/** SHA-256 of float32 values (NaN made canonical), as the Python side computes it. */
function f32Hash(values) {
  const v = Float32Array.from(values);
  for (let i = 0; i < v.length; i++) if (Number.isNaN(v[i])) v[i] = NaN;
  return createHash('sha256').update(new Uint8Array(v.buffer)).digest('hex');
}

function i64Hash(values) {
  const v = BigInt64Array.from(values, (x) => BigInt(x));
  return createHash('sha256').update(new Uint8Array(v.buffer)).digest('hex');
}

function withTimeout(p, ms) {
  let timer;
  return Promise.race([p, new Promise((_, reject) => (timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { fuzzTimeout: true })), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** How an attempt ended, as one JSON-able record. */
function failure(e, PairpickError) {
  if (e?.fuzzTimeout) return { outcome: 'timeout' };
  if (e instanceof PairpickError) return { outcome: 'refused', code: e.code, message: e.message };
  return { outcome: 'other', message: String(e?.stack ?? e) };
}

// ---- child: file cases ------------------------------------------------------------------------

async function childCases(manifestPath, from) {
  const { openSource, readNpy, PairpickError } = await importDist();
  const { readFileSync } = await import('node:fs');
  const cases = readFileSync(manifestPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
  for (const c of cases.slice(from)) {
    out({ start: c.i });
    for (const via of c.kind === 'npy' ? ['mmap', 'file', 'readNpy'] : ['mmap', 'file']) {
      try {
        if (via === 'readNpy') {
          const a = await withTimeout(readNpy(c.path), OP_TIMEOUT_MS);
          const kind = a.dtype === 'int32' ? 'int' : 'float';
          const values = a.dtype === 'float16' ? halfBitsToFloat(a.data) : a.data;
          out({ i: c.i, via, outcome: 'ok', shape: a.shape, kind, hash: kind === 'int' ? i64Hash(a.data) : f32Hash(values) });
        } else {
          const s = await withTimeout(openSource(c.path, { mmap: via === 'mmap', ...(c.tensor ? { tensor: c.tensor } : {}) }), OP_TIMEOUT_MS);
          try {
            const values = await withTimeout(s.read(0, s.rows), OP_TIMEOUT_MS);
            out({ i: c.i, via, outcome: 'ok', access: s.access, rows: s.rows, dim: s.dim, hash: f32Hash(values) });
          } finally {
            await s.close();
          }
        }
      } catch (e) {
        out({ i: c.i, via, ...failure(e, PairpickError) });
      }
    }
    out({ done: c.i });
  }
}

/** fp16 bit patterns → float32 (exact; the same conversion numpy does). */
function halfBitsToFloat(bits) {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

// ---- child: races -----------------------------------------------------------------------------

async function childRaces(seed, from, count, dir) {
  const fs = await import('node:fs');
  const fsp = await import('node:fs/promises');
  const { openSource, writeNpy, writeSafetensors, checkFinite, PairpickError } = await importDist();
  const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
  for (let k = from; k < count; k++) {
    let s = (seed ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0 || 1;
    const rnd = () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s / 4294967296;
    };
    const pick = (a) => a[Math.floor(rnd() * a.length)];
    const rows = 500 + Math.floor(rnd() * 20000);
    const dim = 8 + Math.floor(rnd() * 96);
    const format = pick(['npy', 'npy', 'safetensors']);
    const mmap = rnd() < 0.6;
    const action = pick(['truncate', 'truncate', 'rewrite', 'rewrite-same', 'append']);
    const timing = pick(mmap ? ['before', 'during', 'during', 'view', 'chunks'] : ['before', 'during', 'during', 'chunks']);
    const readKind = pick(['read', 'readRows', 'checkFinite']);
    const values = Float32Array.from({ length: rows * dim }, () => rnd() * 2 - 1 || 0.5);
    const path = join(dir, `race-${k}.${format}`);
    const label = { k, format, mmap, action, timing, readKind, rows, dim };
    out({ start: k, ...label });
    if (format === 'npy') await writeNpy(path, values, [rows, dim]);
    else await writeSafetensors(path, { emb: { data: values, shape: [rows, dim] } });
    const past = new Date(Date.now() - 3600_000);
    fs.utimesSync(path, past, past);
    const original = fs.readFileSync(path);
    const act = async () => {
      if (action === 'truncate') await fsp.truncate(path, Math.floor(rnd() * original.length));
      else if (action === 'append') await fsp.appendFile(path, new Uint8Array(1 + Math.floor(rnd() * 64)));
      else {
        // np.save's way: truncate to 0, then write the whole new file.
        const next = action === 'rewrite-same' ? original : Buffer.from(original).map((b, i) => (i > 200 ? b ^ 0x55 : b));
        await fsp.truncate(path, 0);
        await fsp.writeFile(path, next);
      }
    };
    let result;
    try {
      const src = await withTimeout(openSource(path, { mmap }), OP_TIMEOUT_MS);
      try {
        const order = Array.from({ length: Math.min(rows, 257) }, () => Math.floor(rnd() * rows));
        const read = async () => {
          if (readKind === 'read') return { got: await src.read(0, rows), want: values };
          if (readKind === 'readRows') {
            const want = new Float32Array(order.length * dim);
            order.forEach((r, i) => want.set(values.subarray(r * dim, (r + 1) * dim), i * dim));
            return { got: await src.readRows(order), want };
          }
          await checkFinite(src);
          return undefined;
        };
        let got;
        if (timing === 'before') {
          await act();
          got = await withTimeout(read(), OP_TIMEOUT_MS);
        } else if (timing === 'during') {
          const reading = read();
          reading.catch(() => undefined);
          await new Promise((r) => setTimeout(r, Math.floor(rnd() * 3)));
          await act();
          got = await withTimeout(reading, OP_TIMEOUT_MS);
        } else if (timing === 'view') {
          const view = src.view(0, rows);
          await act();
          let sum = 0;
          for (let i = 0; i < view.length; i += 512) sum += view[i];
          void sum;
          src.checkIntact();
          got = undefined;
        } else {
          const copy = new Float32Array(rows * dim);
          let first = true;
          for await (const chunk of src.chunks(Math.max(1, rows >> 3))) {
            copy.set(chunk.data, chunk.start * dim);
            if (first) await act();
            first = false;
          }
          got = { got: copy, want: values };
        }
        let same = true;
        if (got) {
          same = got.got.length === got.want.length;
          for (let i = 0; same && i < got.got.length; i++) same = Object.is(got.got[i], got.want[i]);
        }
        result = { outcome: 'ok', same };
      } finally {
        await src.close();
      }
    } catch (e) {
      result = failure(e, PairpickError);
      if (result.outcome === 'refused') result.namesFile = result.message.includes(path);
    }
    out({ race: k, ...label, ...result });
    fs.rmSync(path, { force: true });
  }
}

// ---- parent -----------------------------------------------------------------------------------

/** Runs a child until it finishes, dies or stays silent too long; returns its records and how it ended. */
function runChild(args, onRecord) {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [self, '--child', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    let stderr = '';
    let silentTimer;
    let hung = false;
    const arm = () => {
      clearTimeout(silentTimer);
      silentTimer = setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, SILENCE_MS);
    };
    arm();
    child.stdout.on('data', (d) => {
      arm();
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) onRecord(JSON.parse(line));
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code, signal) => {
      clearTimeout(silentTimer);
      resolvePromise({ code, signal: hung ? null : signal, hung, stderr });
    });
  });
}

async function main() {
  const { values: opts } = parseArgs({
    options: {
      cases: { type: 'string', default: '10000' },
      races: { type: 'string', default: '400' },
      seed: { type: 'string' },
      batch: { type: 'string', default: '500' },
      python: { type: 'string', default: process.env.PAIRPICK_PYTHON ?? 'python3' },
      keep: { type: 'string' },
      child: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const totalCases = Number(opts.cases);
  const totalRaces = Number(opts.races);
  const batchSize = Number(opts.batch);
  const seed = opts.seed === undefined ? (Date.now() ^ (process.pid << 8)) >>> 0 : Number(opts.seed);
  for (const [name, v] of [['cases', totalCases], ['races', totalRaces], ['batch', batchSize], ['seed', seed]]) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} must be a non-negative integer`);
  }
  const py = spawnSync(opts.python, ['-c', 'import numpy; print(numpy.__version__)'], { encoding: 'utf8' });
  if (py.status !== 0) {
    console.error(`fuzz-io: ${opts.python} cannot import numpy (pass --python or PAIRPICK_PYTHON)`);
    process.exit(2);
  }
  await importDist();
  const work = opts.keep ? resolve(opts.keep) : mkdtempSync(join(tmpdir(), 'pairpick-fuzz-io-'));
  mkdirSync(work, { recursive: true });

  // The in-suite generator, bundled for plain node.
  const { build } = await import('esbuild');
  const bundle = join(work, 'fuzz-cases.mjs');
  await build({ entryPoints: [join(root, 'test', 'helpers', 'fuzz-cases.ts')], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'error' });
  const { fuzzCase } = await import(pathToFileURL(bundle).href);

  const started = Date.now();
  const counts = {
    cases: 0, npy: 0, safetensors: 0, attempts: 0, crashes: 0, hangs: 0, other: 0, acceptedButRefused: 0, wrongValues: 0,
    acceptedRight: 0, refusedByBoth: 0, stricter: 0, referenceFailed: 0, mmapAttempts: 0,
  };
  const problems = [];
  const note = (kind, detail) => {
    if (problems.length < 40) problems.push(`${kind}: ${detail}`);
  };

  for (let first = 0; first < totalCases; first += batchSize) {
    const n = Math.min(batchSize, totalCases - first);
    const dir = join(work, `batch-${first}`);
    mkdirSync(dir, { recursive: true });
    const manifest = [];
    const mutations = new Map();
    for (let i = first; i < first + n; i++) {
      const c = fuzzCase(seed, i);
      const path = join(dir, `case-${i}.${c.kind}`);
      writeFileSync(path, c.bytes);
      manifest.push({ i, path, kind: c.kind, tensor: c.tensor });
      mutations.set(i, c.mutation);
      counts[c.kind]++;
    }
    const manifestPath = join(dir, 'manifest.jsonl');
    writeFileSync(manifestPath, manifest.map((m) => JSON.stringify(m)).join('\n') + '\n');
    const ref = spawnSync(opts.python, [join(root, 'scripts', 'fuzz_io_reference.py'), manifestPath], { encoding: 'utf8', timeout: 900_000, maxBuffer: 256 << 20 });
    if (ref.status !== 0) throw new Error(`reference failed on ${manifestPath}: ${ref.stderr}`);
    const verdicts = new Map(ref.stdout.trim().split('\n').map((l) => JSON.parse(l)).map((v) => [v.i, v]));

    const results = new Map(manifest.map((m) => [m.i, []]));
    let index = 0; // position in the manifest the next child starts at
    while (index < manifest.length) {
      let current;
      const ended = await runChild(['cases', manifestPath, String(index)], (rec) => {
        if (rec.start !== undefined) current = rec.start;
        else if (rec.done !== undefined) {
          current = undefined;
          index = manifest.findIndex((m) => m.i === rec.done) + 1;
        } else results.get(rec.i).push(rec);
      });
      if (current !== undefined) {
        // The child died or hung inside this case: count it, go on after it.
        if (ended.hung) {
          counts.hangs++;
          note('hang', `case ${current} [${mutations.get(current)}]`);
        } else {
          counts.crashes++;
          note('crash', `case ${current} [${mutations.get(current)}]: ${ended.signal ?? `exit ${ended.code}`} ${ended.stderr.slice(-300)}`);
        }
        results.get(current).push({ i: current, via: 'child', outcome: ended.hung ? 'hang' : 'crash' });
        index = manifest.findIndex((m) => m.i === current) + 1;
      } else if (ended.code !== 0 || ended.signal) {
        counts.crashes++;
        note('crash', `child between cases: ${ended.signal ?? `exit ${ended.code}`} ${ended.stderr.slice(-300)}`);
        break;
      }
    }

    for (const m of manifest) {
      counts.cases++;
      const v = verdicts.get(m.i);
      const label = `case ${m.i} (${m.kind}) [${mutations.get(m.i)}]`;
      if (!v || v.ok === null) {
        counts.referenceFailed++;
        note('reference failed', `${label}: ${v?.reason}`);
        continue;
      }
      for (const r of results.get(m.i)) {
        if (r.via === 'child') continue;
        counts.attempts++;
        if (r.via === 'mmap') counts.mmapAttempts++;
        if (r.outcome === 'timeout') {
          counts.hangs++;
          note('hang', `${label} via ${r.via}`);
        } else if (r.outcome === 'other') {
          counts.other++;
          note('non-PairpickError', `${label} via ${r.via}: ${r.message.slice(0, 300)}`);
        } else if (r.outcome === 'refused') {
          if (!r.message.includes(m.path)) {
            counts.other++;
            note('refusal not naming the file', `${label} via ${r.via}: ${r.message.slice(0, 200)}`);
          }
          if (!v.ok) counts.refusedByBoth++;
          else {
            counts.stricter++;
            if (opts.verbose) console.log(`stricter: ${label} via ${r.via}: ${r.message.replace(m.path, '').slice(0, 160)}`);
          }
        } else if (!v.ok) {
          counts.acceptedButRefused++;
          note('accepted, reference refuses', `${label} via ${r.via}: ${v.reason}`);
        } else if (r.via === 'readNpy') {
          const a = v.array;
          const right = a && a.kind === r.kind && JSON.stringify(a.shape) === JSON.stringify(r.shape) && a.hash === r.hash && !(a.fortran && a.shape.filter((d) => d > 1).length > 1);
          if (right) counts.acceptedRight++;
          else {
            counts.wrongValues++;
            note('wrong values', `${label} via readNpy: numpy ${JSON.stringify(a)} pairpick ${JSON.stringify(r)}`);
          }
        } else {
          const x = v.matrix;
          if (x && x.rows === r.rows && x.dim === r.dim && x.hash === r.hash) counts.acceptedRight++;
          else {
            counts.wrongValues++;
            note('wrong values', `${label} via ${r.via}: reference ${JSON.stringify(x ?? v.array ?? 'no readable matrix')} pairpick ${r.rows}×${r.dim}`);
          }
        }
      }
    }
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`fuzz-io: ${counts.cases}/${totalCases} file cases (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  }

  // File races.
  const race = { cases: 0, crashes: 0, hangs: 0, other: 0, wrongValues: 0, missedChange: 0, unnamed: 0, eio: 0, ok: 0 };
  if (totalRaces > 0) {
    const dir = join(work, 'races');
    mkdirSync(dir, { recursive: true });
    let next = 0;
    while (next < totalRaces) {
      let current;
      const ended = await runChild(['races', String(seed), String(next), String(totalRaces), dir], (rec) => {
        if (rec.start !== undefined) current = rec;
        else if (rec.race !== undefined) {
          current = undefined;
          next = rec.race + 1;
          race.cases++;
          const label = `race ${rec.race} ${JSON.stringify({ format: rec.format, mmap: rec.mmap, action: rec.action, timing: rec.timing, readKind: rec.readKind })}`;
          if (rec.outcome === 'timeout') {
            race.hangs++;
            note('race hang', label);
          } else if (rec.outcome === 'other') {
            race.other++;
            note('race non-PairpickError', `${label}: ${rec.message.slice(0, 300)}`);
          } else if (rec.outcome === 'refused') {
            if (rec.code !== 'E_IO' || !rec.namesFile) {
              race.unnamed++;
              note('race refusal that is not E_IO naming the file', `${label}: ${rec.code} ${rec.message.slice(0, 200)}`);
            } else race.eio++;
          } else if (!rec.same) {
            race.wrongValues++;
            note('race wrong values', label);
          } else if (rec.timing === 'before' || rec.timing === 'view') {
            race.missedChange++;
            note('race change not reported', label);
          } else race.ok++;
        }
      });
      if (current !== undefined) {
        if (ended.hung) race.hangs++;
        else race.crashes++;
        note(ended.hung ? 'race hang' : 'race crash', `race ${current.start} ${JSON.stringify(current)}: ${ended.signal ?? `exit ${ended.code}`} ${ended.stderr.slice(-300)}`);
        race.cases++;
        next = current.start + 1;
      } else if (ended.code !== 0 || ended.signal) {
        race.crashes++;
        note('race crash', `between races: ${ended.signal ?? `exit ${ended.code}`} ${ended.stderr.slice(-300)}`);
        break;
      }
    }
  }
  if (!opts.keep) rmSync(work, { recursive: true, force: true });

  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const lines = [
    `pairpick fuzz-io — seed ${seed}, numpy ${py.stdout.trim()}, ${seconds} s`,
    `file cases                        ${counts.cases} (${counts.npy} .npy, ${counts.safetensors} .safetensors)`,
    `read attempts                     ${counts.attempts} (memory map ${counts.mmapAttempts}, positional reads, readNpy)`,
    `crashes / signals                 ${counts.crashes}`,
    `hangs                             ${counts.hangs}`,
    `non-PairpickError exceptions      ${counts.other}`,
    `accepted, reference refuses       ${counts.acceptedButRefused}`,
    `accepted with wrong values        ${counts.wrongValues}`,
    `  (accepted and right ${counts.acceptedRight}; refused by both ${counts.refusedByBoth}; refused by pairpick only ${counts.stricter}; reference errors ${counts.referenceFailed})`,
    `file races                        ${race.cases} (E_IO ${race.eio}, read before the change ${race.ok})`,
    `  crashes / signals ${race.crashes}, hangs ${race.hangs}, non-PairpickError ${race.other}, wrong values ${race.wrongValues}, change not reported ${race.missedChange}, other refusals ${race.unnamed}`,
  ];
  console.log(lines.join('\n'));
  if (problems.length) console.log(`\nfirst problems:\n  ${problems.join('\n  ')}`);
  const bad =
    counts.crashes + counts.hangs + counts.other + counts.acceptedButRefused + counts.wrongValues + counts.referenceFailed +
    race.crashes + race.hangs + race.other + race.wrongValues + race.missedChange + race.unnamed;
  process.exit(bad ? 1 : 0);
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  const [, kind, ...rest] = argv;
  const run = kind === 'cases' ? childCases(rest[0], Number(rest[1])) : childRaces(Number(rest[0]), Number(rest[1]), Number(rest[2]), rest[3]);
  run.catch((e) => {
    console.error(e?.stack ?? e);
    process.exit(3);
  });
} else {
  main().catch((e) => {
    console.error(e?.stack ?? e);
    process.exit(2);
  });
}
