#!/usr/bin/env node
// Warm-start quality on AV-Digits: from 20 labels (a seeded random set, or mmcsal's cold-start
// picks on the stage-1 embedding), 5 rounds of +20 picks, the late-fusion classifier retrained from
// scratch every round (activeLearningRound), test accuracy after every round, for random, entropy,
// margin, leastConfidence, badge and bmmal. Also BMMAL's claim, measured on every strategy's picks
// with the classifier that picked them: the mean audio contribution c_audio (spec §5.3) of the
// picks, and the audio-only test accuracy (the audio auxiliary head).
// Writes bench/results/warm-quality.json (after every seed, so a cut-short run keeps its seeds)
// and prints markdown tables.
//   npx tsup && node bench/warm-quality.mjs [--seeds 5] [--epochs 20] [--backend cpu]
import { describeMachine, flag, gitCommit, importDist, writeJson } from './common.mjs';

const pp = await importDist();
const seedCount = Number(flag('seeds', 5));
const stage1Epochs = Number(flag('epochs', 20));
const backend = flag('backend', 'cpu');
const out = flag('out', 'bench/results/warm-quality.json');
const INIT = 20;
const STEP = 20;
const ROUNDS = 5;
const STRATEGIES = ['random', 'entropy', 'margin', 'leastConfidence', 'badge', 'bmmal'];
const STARTS = ['random', 'mmcsal'];

const started = performance.now();
const dataset = await pp.loadDataset('av-digits');
const names = dataset.pool.modalities;
const audio = names.indexOf('audio');
const { trainPool, testPool, rawTrainPool, trainLabels, testLabels, classes } = await zScored(dataset);
const runs = [];

for (let seed = 0; seed < seedCount; seed++) {
  const starts = {
    random: (await pp.select(trainPool, { strategy: 'random', budget: INIT, seed, backend })).indices,
    mmcsal: await mmcsalPicks(seed),
  };
  for (const start of STARTS) {
    for (const strategy of STRATEGIES) {
      const t0 = performance.now();
      let labeled = starts[start];
      const rounds = [];
      for (let round = 0; round <= ROUNDS; round++) {
        // The selection and the classifier of round r share one seed per (seed, round).
        const roundSeed = (seed + Math.imul(round, 0x9e3779b1)) >>> 0;
        let classifier;
        let picks;
        if (round < ROUNDS) {
          const r = await pp.activeLearningRound({ pool: trainPool, labels: trainLabels, labeled, strategy, budget: STEP, model: 'late-fusion', seed: roundSeed, backend });
          ({ classifier, picks } = r);
          labeled = r.labeled;
        } else {
          classifier = await pp.trainClassifier(trainPool, trainLabels, { model: 'late-fusion', labeled, seed: roundSeed, backend });
        }
        const p = await classifier.predict(testPool, { backend });
        const perModality = Object.fromEntries(p.perModality.map((m) => [m.name, accuracy(argmaxRows(m.probs, classes), testLabels)]));
        const record = { labels: labeled.length - (picks ? picks.length : 0), accuracy: accuracy(p.pred, testLabels), perModality };
        if (picks) record.pickAudioContribution = mean(await audioContributions(classifier, picks));
        rounds.push(record);
      }
      const run = { seed, start, strategy, seconds: (performance.now() - t0) / 1000, rounds };
      runs.push(run);
      console.error(`seed ${seed} ${start} ${strategy}: ${rounds.map((r) => r.accuracy.toFixed(3)).join(' ')} (${run.seconds.toFixed(0)} s)`);
    }
  }
  save(seed + 1);
}
printTables();

/** mmcsal's cold-start picks: stage 1 fitted on the raw train split (no labels), mmcsal on its embedding. */
async function mmcsalPicks(seed) {
  const projection = await pp.fitProjection(rawTrainPool, { epochs: stage1Epochs, seed, backend });
  const embedded = await projection.embed(rawTrainPool, { backend });
  try {
    return (await pp.select(embedded, { strategy: 'mmcsal', budget: INIT, seed, backend })).indices;
  } finally {
    await embedded.close();
  }
}

/**
 * c_audio of each picked row under the classifier that picked it (spec §5.3): v(T) = fused softmax
 * at the predicted class with only the modalities in T kept, φ from the two-modality Shapley
 * formula, c_m = |φ_m| / Σ|φ| (½ each when both are 0). float64, from forward() and head().
 */
async function audioContributions(classifier, picks) {
  const f = await classifier.forward(trainPool, undefined, { backend });
  const { weight, bias, hidden } = classifier.head();
  const M = names.length;
  const C = classes;
  const out = [];
  for (const i of picks) {
    // Per-modality logit parts W_m h^m of row i.
    const parts = names.map((_, m) => {
      const part = new Float64Array(C);
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let k = 0; k < hidden; k++) s += weight[c * M * hidden + m * hidden + k] * f.features[m][i * hidden + k];
        part[c] = s;
      }
      return part;
    });
    const v = (keep) => {
      const z = Array.from({ length: C }, (_, c) => bias[c] + keep.reduce((s, m) => s + parts[m][c], 0));
      const max = Math.max(...z);
      const e = z.map((x) => Math.exp(x - max));
      const sum = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / sum);
    };
    const fused = v([0, 1]);
    const y = fused.indexOf(Math.max(...fused));
    const vab = fused[y];
    const va = v([0])[y];
    const vb = v([1])[y];
    const v0 = v([])[y];
    const phi = [0.5 * (vab - vb + (va - v0)), 0.5 * (vab - va + (vb - v0))];
    const total = Math.abs(phi[0]) + Math.abs(phi[1]);
    out.push(total === 0 ? 0.5 : Math.abs(phi[audio]) / total);
  }
  return out;
}

/** The train and test splits, z-scored per feature with the train split's statistics (as `pairpick eval` does). */
async function zScored(ds) {
  const { train, test } = ds.split;
  const trainSources = {};
  const testSources = {};
  const rawSources = {};
  for (const name of ds.pool.modalities) {
    const src = ds.pool.source(name);
    const d = src.dim;
    const tr = await src.readRows(train);
    const te = await src.readRows(test);
    const meanOf = new Float64Array(d);
    const sq = new Float64Array(d);
    const n = train.length;
    for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) meanOf[j] += tr[r * d + j] / n;
    for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) sq[j] += (tr[r * d + j] - meanOf[j]) ** 2;
    const scale = Float64Array.from(sq, (s) => (s > 0 ? 1 / Math.sqrt(s / n) : 0));
    const z = (x) => Float32Array.from(x, (v, i) => (v - meanOf[i % d]) * scale[i % d]);
    trainSources[name] = { data: z(tr), dim: d };
    testSources[name] = { data: z(te), dim: d };
    rawSources[name] = { data: tr, dim: d };
  }
  return {
    trainPool: await pp.openPool(trainSources),
    testPool: await pp.openPool(testSources),
    rawTrainPool: await pp.openPool(rawSources),
    trainLabels: Int32Array.from(train, (r) => ds.labels[r]),
    testLabels: Int32Array.from(test, (r) => ds.labels[r]),
    classes: ds.classes.length,
  };
}

function argmaxRows(probs, C) {
  const rows = probs.length / C;
  return Int32Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let c = 1; c < C; c++) if (probs[r * C + c] > probs[r * C + best]) best = c;
    return best;
  });
}

function accuracy(pred, truth) {
  let ok = 0;
  for (let i = 0; i < truth.length; i++) if (pred[i] === truth[i]) ok++;
  return ok / truth.length;
}

function mean(xs) {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function spread(xs) {
  const m = mean(xs);
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
}

/** Per start × strategy × round: mean ± std over seeds of accuracy, audio-only accuracy and c_audio of the picks. */
function summary() {
  const rows = [];
  for (const start of STARTS) {
    for (const strategy of STRATEGIES) {
      const mine = runs.filter((r) => r.start === start && r.strategy === strategy);
      if (!mine.length) continue;
      rows.push({
        start,
        strategy,
        seeds: mine.length,
        labels: mine[0].rounds.map((r) => r.labels),
        accuracy: mine[0].rounds.map((_, k) => spread(mine.map((r) => r.rounds[k].accuracy))),
        audioAccuracy: mine[0].rounds.map((_, k) => spread(mine.map((r) => r.rounds[k].perModality.audio))),
        imageAccuracy: mine[0].rounds.map((_, k) => spread(mine.map((r) => r.rounds[k].perModality.image))),
        pickAudioContribution: spread(mine.flatMap((r) => r.rounds.filter((x) => x.pickAudioContribution !== undefined).map((x) => x.pickAudioContribution))),
      });
    }
  }
  return rows;
}

function save(seedsDone) {
  writeJson(out, {
    what: 'Warm-start quality on AV-Digits: late fusion retrained every round, test accuracy per round; c_audio of the picks (spec §5.3)',
    command: `node bench/warm-quality.mjs --seeds ${seedCount} --epochs ${stage1Epochs} --backend ${backend}`,
    machine: describeMachine(pp),
    commit: gitCommit(),
    seconds: (performance.now() - started) / 1000,
    seedsDone,
    init: INIT,
    step: STEP,
    rounds: ROUNDS,
    stage1: { epochs: stage1Epochs },
    summary: summary(),
    runs,
  });
}

function printTables() {
  const pct = (s) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
  for (const start of STARTS) {
    const rows = summary().filter((r) => r.start === start);
    console.log(`\nstart: ${start} ${INIT} labels; test accuracy % (mean ± std over ${rows[0].seeds} seeds)\n`);
    console.log(`| strategy | ${rows[0].labels.join(' | ')} |`);
    console.log(`|---|${rows[0].labels.map(() => '---:').join('|')}|`);
    for (const r of rows) console.log(`| ${r.strategy} | ${r.accuracy.map(pct).join(' | ')} |`);
    console.log(`\n| strategy | c_audio of picks | audio-only acc. at ${rows[0].labels.at(-1)} | image-only acc. at ${rows[0].labels.at(-1)} |`);
    console.log('|---|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.strategy} | ${r.pickAudioContribution.mean.toFixed(3)} ± ${r.pickAudioContribution.std.toFixed(3)} | ${pct(r.audioAccuracy.at(-1))} | ${pct(r.imageAccuracy.at(-1))} |`);
  }
}
