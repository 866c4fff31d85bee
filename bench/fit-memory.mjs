#!/usr/bin/env node
// Peak memory of `pairpick fit` against the size of its pool (on dist/ — run `npx tsup` first).
// Writes a synthetic pool of 2 modalities × N rows × 64 float16 values as .npy files to a temp
// folder (block by block: the generator never holds the pool either), then runs
// `pairpick fit --epochs 1` on it as a subprocess for N = 250k and 1M rows, and reports the peak
// resident memory (/proc VmHWM, sampled every 50 ms; RssAnon = heap and native allocations,
// RssFile = pages of the memory-mapped pool that the kernel can drop at will). With
// PAIRPICK_NO_MMAP=1 the pool is read with positional reads instead, so RSS holds no pool pages.
// Claim: the peak is bounded by the model plus a few batches, not by the pool.
// Writes bench/results/fit-memory-<machine>.json.
//
//   node bench/fit-memory.mjs [--rows 250000,1000000] [--dim 64] [--hidden 512] [--keep] [--out file.json]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { args, describeMachine, flag, importDist, root, writeResults, xorshift32 } from './common.mjs';

const pp = await importDist();
const cli = join(root, 'dist', 'cli.js');

const sizes = flag('rows', '250000,1000000').split(',').map(Number);
const dim = Number(flag('dim', 64));
const hidden = flag('hidden', '512');
const work = mkdtempSync(join(tmpdir(), 'pairpick-fit-memory-'));
const MiB = 2 ** 20;

/** Writes rows × dim float16 values per modality: a shared low-rank signal plus noise and a per-modality offset. */
async function writePool(rows) {
  const files = {};
  const block = 65536;
  const bits = xorshift32(0x9e3779b9);
  const uniform = () => bits() / 4294967296 - 0.5;
  const rank = 8;
  const maps = [0, 1].map(() => Float32Array.from({ length: dim * rank }, () => uniform() * 2));
  for (const [m, name] of ['a', 'b'].entries()) {
    const path = join(work, `${rows}-${name}.npy`);
    const writer = await pp.openNpyWriter(path, { dim, dtype: 'float16', rows });
    const latent = new Float32Array(rank);
    for (let start = 0; start < rows; start += block) {
      const count = Math.min(block, rows - start);
      const data = new Float32Array(count * dim);
      for (let r = 0; r < count; r++) {
        for (let t = 0; t < rank; t++) latent[t] = uniform() * 3;
        for (let j = 0; j < dim; j++) {
          let v = (m ? -1 : 1) + uniform();
          for (let t = 0; t < rank; t++) v += maps[m][j * rank + t] * latent[t];
          data[r * dim + j] = v;
        }
      }
      await writer.append(data);
    }
    await writer.close();
    files[name] = path;
  }
  return files;
}

function readStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN) * 1024;
    return { hwm: kib('VmHWM'), rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') };
  } catch {
    return undefined;
  }
}

/** Runs `pairpick fit` under /usr/bin/time -v when present, sampling /proc for the peaks. */
function runFit(files, out, env) {
  return new Promise((resolvePromise, reject) => {
    const fitArgs = [cli, 'fit', '--modality', `a=${files.a}`, '--modality', `b=${files.b}`, '--out', out, '--epochs', '1', '--hidden', hidden, '--json'];
    const useTime = existsSync('/usr/bin/time');
    const child = useTime
      ? spawn('/usr/bin/time', ['-v', process.execPath, ...fitArgs], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, fitArgs, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const peak = { hwm: 0, anon: 0, file: 0 };
    let nodePid;
    const timer = setInterval(() => {
      if (!nodePid) {
        // Under /usr/bin/time the node process is its child.
        nodePid = useTime ? Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]) || undefined : child.pid;
        if (!nodePid) return;
      }
      const st = readStatus(nodePid);
      // A process on its way out has no memory lines: skip such samples.
      if (!st || !Number.isFinite(st.anon) || !Number.isFinite(st.file)) return;
      peak.hwm = Math.max(peak.hwm, st.hwm);
      peak.anon = Math.max(peak.anon, st.anon);
      peak.file = Math.max(peak.file, st.file);
    }, 50);
    const started = performance.now();
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) return reject(new Error(`pairpick fit exited with ${code}:\n${stderr}`));
      const maxRss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1] ?? NaN) * 1024;
      resolvePromise({ summary: JSON.parse(stdout), peak, maxRss: Number.isFinite(maxRss) ? maxRss : undefined, seconds });
    });
  });
}

const runs = [];
console.log(`pool: 2 modalities × N rows × ${dim} float16; pairpick fit --epochs 1 --hidden ${hidden}`);
console.log('rows        pool MiB  access  peak RSS MiB  peak anon MiB  peak file MiB  model MiB  fit s');
try {
  for (const rows of sizes) {
    const files = await writePool(rows);
    const poolBytes = statSync(files.a).size + statSync(files.b).size;
    for (const access of ['mmap', 'file']) {
      if (access === 'file' && rows !== Math.max(...sizes)) continue;
      const out = join(work, `${rows}-${access}.safetensors`);
      const r = await runFit(files, out, access === 'file' ? { PAIRPICK_NO_MMAP: '1' } : {});
      const modelBytes = statSync(out).size;
      const peakRss = r.maxRss ?? r.peak.hwm;
      runs.push({
        rows,
        dim,
        poolBytes,
        access,
        peakRssBytes: peakRss,
        peakAnonBytes: r.peak.anon,
        peakFileBytes: r.peak.file,
        modelBytes,
        fitSeconds: r.seconds,
        gapBefore: r.summary.gapBefore,
        gap: r.summary.gap,
        loss: r.summary.history[0].loss,
      });
      console.log(
        `${String(rows).padEnd(10)}  ${(poolBytes / MiB).toFixed(0).padStart(8)}  ${access.padEnd(6)}  ${(peakRss / MiB).toFixed(0).padStart(12)}  ${(r.peak.anon / MiB).toFixed(0).padStart(13)}  ${(r.peak.file / MiB).toFixed(0).padStart(13)}  ${(modelBytes / MiB).toFixed(1).padStart(9)}  ${r.seconds.toFixed(0).padStart(5)}`,
      );
    }
    if (!args.includes('--keep')) for (const f of Object.values(files)) rmSync(f, { force: true });
  }
} finally {
  if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
}

writeResults('fit-memory', {
  machine: describeMachine(pp),
  bench: 'pairpick fit peak memory vs pool size',
  fit: `pairpick fit --epochs 1 --hidden ${hidden} (other options default: dim 128, prototypes 64, batch 1024)`,
  runs,
});
