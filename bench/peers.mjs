#!/usr/bin/env node
// pairpick against its CPU peers on four workloads, each contender in its own process, alternated
// within every repetition (pairpick first on odd repetitions, the peer first on even ones), two
// threads each, OMP_WAIT_POLICY=PASSIVE for the OpenMP peers. Run `npx tsup` first; the peers run
// on Debian's python3 (python3-numpy, -sklearn, -faiss, -torch, -numba).
//
//   facility location, 10,000 × 1,024 make_blobs rows, k = 1,000, lazy      vs apricot (lazy)
//   the same, stochastic ε = 0.01                                            vs apricot (stochastic)
//   k-means 100,000 × 128 make_blobs rows, K = 1,000, 20 Lloyd iterations   vs faiss (random init)
//   one stage-1 epoch, 6,880 × (784 + 60) → 512 → 128, batch 1,024, AdamW    vs PyTorch CPU
//   exact kNN, 2,000 queries × 20,000 rows × 256, k = 10 (make_blobs)           vs faiss IndexFlatL2
//   k-center greedy, 100,000 × 256 (make_blobs), B = 1,000                       vs numpy
//   InfoNCE forward + backward, b = 4,096, d = 128                               vs PyTorch autograd
//
// apricot is not packaged for Debian: bench/peers/apricot_facility.py is a transcription of the
// code it runs (numba gain kernel, LazyGreedy / StochasticGreedy loops) on a precomputed table.
// Answers are checked: facility F(S) of both pick lists (float64, bench/peers/facility_objective.py)
// and the first picks shared; the k-means objective Σ‖u − c‖² of each final assignment; the kNN
// neighbours of the first 200 queries; the first 20 k-center picks; the InfoNCE loss.
// Prints the table (ratio = peer seconds / pairpick seconds, the median over repetitions, each
// repetition's ratio beside it) and writes bench/results/peers-<machine>.json.
//
//   node bench/peers.mjs [--repeat 2] [--only facility-lazy,facility-stochastic,kmeans,kmeans-greedy,epoch,knn,kcenter,infonce]
//                        [--seeding greedy-kmeans++|kmeans++|kmeans||] [--data /tmp/pairpick-peers] [--python /usr/bin/python3]
// Each k-means workload pairs seedings that do comparable work: `kmeans` runs pairpick's one-draw
// k-means++ (--seeding, default kmeans++) against faiss (random init, no seeding pass);
// `kmeans-greedy` runs pairpick's default, greedy k-means++, against scikit-learn's KMeans, which
// seeds the same way.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { describeMachine, flag, importDist, machineLine, printTable, root, writeResults } from './common.mjs';

const pp = await importDist();
const repeat = Number(flag('repeat', 2));
const python = flag('python', '/usr/bin/python3');
const dataDir = flag('data', '/tmp/pairpick-peers');
const seeding = flag('seeding', 'kmeans++');
const only = flag('only', 'facility-lazy,facility-stochastic,kmeans,kmeans-greedy,epoch,knn,kcenter,infonce').split(',');
const peers = join(root, 'bench', 'peers');
const env = { ...process.env, OMP_NUM_THREADS: '2', OMP_WAIT_POLICY: 'PASSIVE', NUMBA_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2', PAIRPICK_THREADS: '2' };

function runJson(command, argv) {
  const r = spawnSync(command, argv, { encoding: 'utf8', env, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${[command, ...argv].join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}
const node = (argv) => runJson(process.execPath, [join(peers, 'pairpick_child.mjs'), ...argv]);
const py = (script, argv) => runJson(python, [join(peers, script), ...argv]);

mkdirSync(dataDir, { recursive: true });
const facilityData = join(dataDir, 'blobs-10000x1024.npy');
const kmeansData = join(dataDir, 'blobs-100000x128.npy');
if (!existsSync(facilityData)) spawnSync(python, [join(peers, 'make_blobs.py'), facilityData, '10000', '1024', '10', '0'], { stdio: 'inherit' });
if (!existsSync(kmeansData)) spawnSync(python, [join(peers, 'make_blobs.py'), kmeansData, '100000', '128', '100', '0'], { stdio: 'inherit' });
const knnQueries = join(dataDir, 'blobs-2000x256.npy');
const knnRefs = join(dataDir, 'blobs-20000x256.npy');
const kcenterData = join(dataDir, 'blobs-100000x256.npy');
if (!existsSync(knnQueries)) spawnSync(python, [join(peers, 'make_blobs.py'), knnQueries, '2000', '256', '50', '1'], { stdio: 'inherit' });
if (!existsSync(knnRefs)) spawnSync(python, [join(peers, 'make_blobs.py'), knnRefs, '20000', '256', '50', '1'], { stdio: 'inherit' });
if (!existsSync(kcenterData)) spawnSync(python, [join(peers, 'make_blobs.py'), kcenterData, '100000', '256', '100', '2'], { stdio: 'inherit' });

const objectiveOf = (picks) => {
  const file = join(dataDir, 'picks.json');
  writeFileSync(file, JSON.stringify(picks));
  return py('facility_objective.py', [facilityData, file]).objective;
};
const sharedPrefix = (a, b) => {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
};

const WORKLOADS = {
  'facility-lazy': {
    what: 'facility location, 10,000 × 1,024, k = 1,000, lazy',
    peer: 'apricot (transcribed, numba)',
    ours: () => node(['facility', facilityData, '1000', 'lazy', '0']),
    theirs: () => py('apricot_facility.py', [facilityData, '1000', 'lazy']),
  },
  'facility-stochastic': {
    what: 'facility location, same, stochastic ε = 0.01',
    peer: 'apricot (transcribed, numba)',
    ours: () => node(['facility', facilityData, '1000', 'stochastic', '0']),
    theirs: () => py('apricot_facility.py', [facilityData, '1000', 'stochastic', '0.01', '0']),
  },
  kmeans: {
    what: `k-means 100,000 × 128, K = 1,000, 20 Lloyd iterations (pairpick ${seeding})`,
    peer: 'faiss (random init)',
    ours: () => node(['kmeans', kmeansData, '1000', '20', seeding, '1']),
    theirs: () => py('faiss_kmeans.py', [kmeansData, '1000', '20', '1']),
  },
  'kmeans-greedy': {
    what: 'k-means 100,000 × 128, K = 1,000, 20 Lloyd iterations (greedy k-means++, the default)',
    peer: 'scikit-learn KMeans (greedy k-means++)',
    ours: () => node(['kmeans', kmeansData, '1000', '20', 'greedy-kmeans++', '1']),
    theirs: () => py('sklearn_kmeans_timed.py', [kmeansData, '1000', '20', '1']),
  },
  epoch: {
    what: 'one stage-1 epoch, 6,880 × (784 + 60) → 512 → 128, batch 1,024, AdamW',
    peer: 'PyTorch CPU',
    ours: () => node(['epoch', '6880', '784', '60', '2']),
    theirs: () => py('torch_stage1.py', ['6880', '784', '60', '2']),
  },
  knn: {
    what: 'exact kNN, 2,000 × 20,000 × 256, k = 10, squared Euclidean',
    peer: 'faiss IndexFlatL2',
    ours: () => node(['knn', knnQueries, knnRefs, '10']),
    theirs: () => py('faiss_knn.py', [knnQueries, knnRefs, '10']),
  },
  kcenter: {
    what: 'k-center greedy, 100,000 × 256, B = 1,000 (load + normalise + greedy)',
    peer: 'numpy',
    ours: () => node(['kcenter', kcenterData, '1000']),
    theirs: () => py('numpy_kcenter.py', [kcenterData, '--budget', '1000']),
  },
  infonce: {
    what: 'InfoNCE forward + backward, b = 4,096, d = 128 (fastest of 5)',
    peer: 'PyTorch autograd',
    ours: () => node(['infonce', '4096', '128', '5']),
    theirs: () => py('torch_infonce.py', ['4096', '128', '5']),
  },
};

const machine = describeMachine(pp);
console.log(`${machineLine(machine)}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${repeat} repetition(s)\n`);
const results = [];
for (const key of only) {
  const w = WORKLOADS[key];
  if (!w) throw new Error(`unknown workload ${key}`);
  const runs = [];
  for (let r = 0; r < repeat; r++) {
    const load = loadavg()[0];
    let ours;
    let theirs;
    if (r % 2 === 0) {
      ours = w.ours();
      theirs = w.theirs();
    } else {
      theirs = w.theirs();
      ours = w.ours();
    }
    runs.push({ ours, theirs, ratio: theirs.seconds / ours.seconds, load });
    console.log(`  ${key} #${r + 1}: pairpick ${ours.seconds.toFixed(2)} s, ${w.peer} ${theirs.seconds.toFixed(2)} s, ratio ${(theirs.seconds / ours.seconds).toFixed(2)} (load ${load.toFixed(1)})`);
  }
  const ratios = runs.map((x) => x.ratio).sort((a, b) => a - b);
  const median = ratios.length % 2 ? ratios[(ratios.length - 1) / 2] : (ratios[ratios.length / 2 - 1] + ratios[ratios.length / 2]) / 2;
  const best = (side) => Math.min(...runs.map((x) => x[side].seconds));
  const result = { workload: key, what: w.what, peer: w.peer, pairpickSeconds: runs.map((x) => x.ours.seconds), peerSeconds: runs.map((x) => x.theirs.seconds), ratios: runs.map((x) => x.ratio), medianRatio: median, loads: runs.map((x) => x.load) };
  const last = runs[runs.length - 1];
  if (key.startsWith('facility')) {
    result.pairpickObjective = objectiveOf(last.ours.picks);
    result.peerObjective = last.theirs.objective;
    result.sharedFirstPicks = sharedPrefix(last.ours.picks, last.theirs.picks);
    result.pairpickPhases = last.ours.phases;
    result.peerPhases = { distances: last.theirs.distances_s, greedy: last.theirs.greedy_s };
    result.pairpickTableBytes = last.ours.tableBytes;
    result.pairpickMemoryBudgetMiB = last.ours.memoryBudgetMiB;
    result.pairpickMaxRssBytes = last.ours.maxRssBytes;
  } else if (key.startsWith('kmeans')) {
    result.pairpickObjective = last.ours.objective;
    result.peerObjective = last.theirs.objective;
    result.pairpickPhases = last.ours.phases;
  } else if (key === 'knn') {
    // Neighbour sets of the first 200 queries (10 each): shared members, order aside.
    let shared = 0;
    for (let q = 0; q < 200; q++) {
      const mine = new Set(last.ours.indices.slice(q * 10, q * 10 + 10));
      for (const j of last.theirs.indices.slice(q * 10, q * 10 + 10)) if (mine.has(j)) shared++;
    }
    result.sharedNeighbours = `${shared} / 2000`;
  } else if (key === 'kcenter') {
    result.sharedFirstPicks = sharedPrefix(last.ours.picks, last.theirs.picks);
  } else if (key === 'infonce') {
    result.pairpickLoss = last.ours.loss;
    result.peerLoss = last.theirs.loss;
  }
  result.bestPairpick = best('ours');
  result.bestPeer = best('theirs');
  results.push(result);
}

console.log('');
const rows = [['workload', 'peer', 'pairpick s', 'peer s', 'peer s / pairpick s (median; each run)']];
for (const r of results) {
  rows.push([r.what, r.peer, r.pairpickSeconds.map((s) => s.toFixed(2)).join(' / '), r.peerSeconds.map((s) => s.toFixed(2)).join(' / '), `${r.medianRatio.toFixed(2)}× (${r.ratios.map((x) => x.toFixed(2)).join(', ')})`]);
}
printTable(rows);
for (const r of results) {
  if (r.pairpickObjective !== undefined) {
    const rel = (r.pairpickObjective - r.peerObjective) / Math.abs(r.peerObjective);
    console.log(`${r.workload}: objective pairpick ${r.pairpickObjective.toFixed(4)}, ${r.peer} ${r.peerObjective.toFixed(4)} (relative ${rel.toExponential(2)})${r.sharedFirstPicks !== undefined ? `, first ${r.sharedFirstPicks} picks identical` : ''}`);
  }
  if (r.sharedNeighbours !== undefined) console.log(`${r.workload}: ${r.sharedNeighbours} neighbours of the first 200 queries shared`);
  if (r.workload === 'kcenter') console.log(`kcenter: first ${r.sharedFirstPicks} picks identical`);
  if (r.pairpickLoss !== undefined) console.log(`infonce: loss pairpick ${r.pairpickLoss.toFixed(4)}, ${r.peer} ${r.peerLoss.toFixed(4)} (each on its own random unit rows)`);
  if (r.pairpickTableBytes !== undefined) console.log(`${r.workload}: similarity table ${(r.pairpickTableBytes / 2 ** 20).toFixed(0)} MiB of a ${r.pairpickMemoryBudgetMiB} MiB budget; process peak RSS ${(r.pairpickMaxRssBytes / 2 ** 20).toFixed(0)} MiB`);
}
writeResults('peers', { machine, repeat, load: loadavg(), results });
