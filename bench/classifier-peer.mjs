#!/usr/bin/env node
// Late fusion (spec §4) against the PyTorch peer (bench/peers/torch_late_fusion.py, Debian
// /usr/bin/python3 with python3-torch) on the AV-Digits train split (6,880 pairs, image 784-D +
// audio 60-D, 10 classes), default options (h = 256, batch 64, AdamW 1e-3). pairpick writes its
// initial weights (initClassifier → safetensors) and records its batch order (onBatch); PyTorch
// starts from the same weights and follows the same batches, so the per-epoch mean losses must
// agree (goal 1e-4 for 5 epochs). Also one epoch's time: cpu vs PyTorch (--threads, default 2) vs
// the JS fallback (goals: cpu ≥ 1.0× PyTorch, ≥ 20× js). Run on dist/ (`npx tsup` first).
//
//   node bench/classifier-peer.mjs [--epochs 5] [--threads 2] [--python /usr/bin/python3] [--out file.json]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeMachine, flag, importDist, root, writeResults } from './common.mjs';

const pp = await importDist();
const epochs = Number(flag('epochs', 5));
const threads = Number(flag('threads', 2));
const python = flag('python', '/usr/bin/python3');
process.env.PAIRPICK_THREADS ??= String(threads);

const dataset = await pp.loadDataset('av-digits');
const input = {};
for (const name of dataset.pool.modalities) {
  const source = dataset.pool.source(name);
  input[name] = { data: await source.readRows(dataset.split.train), dim: source.dim };
}
await dataset.pool.close();
const pool = await pp.openPool(input);
const labels = Int32Array.from(dataset.split.train, (r) => dataset.labels[r]);
const options = { model: 'late-fusion', seed: 0 };

const dir = mkdtempSync(join(tmpdir(), 'pairpick-peer-'));
try {
  await (await pp.initClassifier(pool, labels, options)).save(join(dir, 'init.safetensors'));
  for (const name of pool.modalities) await pp.writeNpy(join(dir, `${name}.npy`), input[name].data, [pool.rows, input[name].dim]);
  await pp.writeNpy(join(dir, 'labels.npy'), labels, [pool.rows]);

  const batches = Array.from({ length: epochs }, () => []);
  const cpu = await pp.trainClassifier(pool, labels, { ...options, epochs, backend: 'cpu', onBatch: (rows, epoch) => batches[epoch - 1].push(Array.from(rows)) });
  const clf = cpu.options;
  writeFileSync(join(dir, 'batches.json'), JSON.stringify({ modalities: pool.modalities, lr: clf.lr, weight_decay: clf.weightDecay, epochs: batches }));
  const js = await pp.trainClassifier(pool, labels, { ...options, epochs: 1, backend: 'js' });

  const run = spawnSync(python, [join(root, 'bench', 'peers', 'torch_late_fusion.py'), dir, '--threads', String(threads)], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${python} torch_late_fusion.py failed: ${run.stderr}`);
  const torch = JSON.parse(run.stdout.trim().split('\n').pop());

  const ours = cpu.history.map((h) => h.loss);
  const diffs = ours.map((l, e) => Math.abs(l - torch.losses[e]));
  console.log(`AV-Digits train split ${pool.rows} rows, late fusion h ${clf.hidden}, batch ${clf.batch}, AdamW lr ${clf.lr}`);
  console.log('epoch  pairpick cpu   PyTorch        |diff|');
  ours.forEach((l, e) => console.log(`${String(e + 1).padStart(5)}  ${l.toFixed(8)}  ${torch.losses[e].toFixed(8)}  ${diffs[e].toExponential(2)}`));
  const cpuEpoch = Math.min(...cpu.history.map((h) => h.seconds));
  const torchEpoch = Math.min(...torch.seconds);
  const jsEpoch = js.history[0].seconds;
  console.log(`one epoch (best of ${epochs} for cpu and PyTorch): cpu ${cpuEpoch.toFixed(3)} s, PyTorch (${torch.threads} threads) ${torchEpoch.toFixed(3)} s, js ${jsEpoch.toFixed(3)} s`);
  console.log(`cpu vs PyTorch ${(torchEpoch / cpuEpoch).toFixed(2)}×, cpu vs js ${(jsEpoch / cpuEpoch).toFixed(1)}×`);
  writeResults('classifier-peer', {
    machine: describeMachine(pp),
    data: `AV-Digits train split ${pool.rows} × (${pool.modalities.map((n) => input[n].dim).join(' + ')}), 10 classes`,
    options: clf,
    losses: { pairpick: ours, torch: torch.losses, maxAbsDiff: Math.max(...diffs) },
    epochSeconds: { cpu: cpuEpoch, torch: torchEpoch, js: jsEpoch, torchThreads: torch.threads, torchVersion: torch.torch, cpuThreads: Number(process.env.PAIRPICK_THREADS) },
    speedup: { cpuVsTorch: torchEpoch / cpuEpoch, cpuVsJs: jsEpoch / cpuEpoch },
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
