#!/usr/bin/env node
// Generates the Clipart-IT dataset under data/clipart-it/: public-domain clip art from Debian's
// openclipart-svg / openclipart-png packages (Open Clip Art Library 0.18), ten concrete
// categories. Image features: the 1280-D global-average-pooled output of the MobileNetV2 backbone
// whose weights ship inside the npm package nsfwjs, run with @tensorflow/tfjs on the wasm backend.
// Text features: hashed TF-IDF of the words and character 3-grams of each item's title and
// keywords, with every category's own words removed (they would give the label away).
//
//   npm run data:clipart-it                     (= node scripts/make-clipart-it.mjs)
//   node scripts/make-clipart-it.mjs --tools DIR --per-class 300 --seed 20261202 --out data/clipart-it
//
// Needs: apt-get install openclipart-svg openclipart-png, and (only to regenerate; users of the
// committed files need none of it) a folder with
//   npm install --no-save nsfwjs@4.3.0 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 pngjs@7.0.0
// passed as --tools (default: this package's node_modules), plus `npx tsup` for dist/ (writeNpy).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const SEED = Number(arg('seed', 20261202));
const PER_CLASS = Number(arg('per-class', 300));
const TEST_FRACTION = 0.2;
const OUT = resolve(root, arg('out', 'data/clipart-it'));
const TOOLS = resolve(arg('tools', root));
const CLIPART = arg('clipart', '/usr/share/openclipart');
const TEXT_DIM = 512;
const IMAGE_SIZE = 224;

/** Categories (folders of the package) and the words that name them: removed from the text. */
const CATEGORIES = [
  ['animals', ['animal', 'animals', 'fauna']],
  ['buildings', ['building', 'buildings', 'architecture']],
  ['food', ['food', 'foods']],
  ['geography', ['geography', 'geographic', 'geographical']],
  ['office', ['office', 'offices']],
  ['people', ['people', 'person', 'persons']],
  ['plants', ['plant', 'plants', 'flora']],
  ['recreation', ['recreation', 'recreational']],
  ['tools', ['tool', 'tools']],
  ['transportation', ['transportation', 'transport', 'transports']],
];
const CATEGORY_WORDS = new Set(CATEGORIES.flatMap(([name, words]) => [name, ...words]));
/** Tags that say nothing about the picture (package bookkeeping). */
const STOP = new Set(['unsorted', 'clip', 'art', 'clipart', 'openclipart', 'svg', 'png', 'image', 'picture', 'the', 'a', 'an', 'of', 'and', 'di', 'de', 'la', 'il', 'le', 'by', 'with', 'in', 'on', 'for', 'to']);

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffle(a, next) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.svg')) out.push(p);
  }
  return out;
}

const decode = (s) => s.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'");
/** Title and keywords from the SVG's RDF metadata (dc:title of the work, dc:subject's rdf:li). */
function metadata(svg) {
  const work = svg.match(/<cc:Work[\s\S]*?<\/cc:Work>/)?.[0] ?? svg.slice(0, 20000);
  const title = decode(work.match(/<dc:title>([^<]*)<\/dc:title>/)?.[1] ?? '');
  const subject = work.match(/<dc:subject>([\s\S]*?)<\/dc:subject>/)?.[1] ?? '';
  const keywords = [...subject.matchAll(/<rdf:li>([^<]*)<\/rdf:li>/g)].map((m) => decode(m[1]));
  return { title, keywords };
}
function tokens(text) {
  return (text.toLowerCase().match(/[a-z]+/g) ?? []).filter((w) => w.length > 1 && !CATEGORY_WORDS.has(w) && !STOP.has(w));
}

function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
/** Hashed features of one item: words and the character 3-grams of "<word>", signed hashing. */
function hashedTerms(words) {
  const terms = new Map();
  const add = (t) => {
    const h = fnv1a(t);
    const key = (h % TEXT_DIM) * 2 + (h >>> 31); // column, and the sign from the top bit
    terms.set(key, (terms.get(key) ?? 0) + 1);
  };
  for (const w of words) {
    add(`w:${w}`);
    const padded = `<${w}>`;
    for (let i = 0; i + 3 <= padded.length; i++) add(`c:${padded.slice(i, i + 3)}`);
  }
  return terms;
}

async function main() {
  // 1. Items: every SVG of the ten categories with a PNG rendering and ≥ 1 word of text left.
  const next = rng(SEED);
  const items = [];
  CATEGORIES.forEach(([name], label) => {
    const found = [];
    for (const svgPath of walk(join(CLIPART, 'svg', name))) {
      const rel = relative(join(CLIPART, 'svg'), svgPath);
      const pngPath = join(CLIPART, 'png', rel.replace(/\.svg$/, '.png'));
      if (!existsSync(pngPath)) continue;
      const { title, keywords } = metadata(readFileSync(svgPath, 'utf8'));
      const words = tokens([title, ...keywords].join(' '));
      if (!words.length) continue;
      found.push({ rel, pngPath, label, title, keywords, words });
    }
    const kept = shuffle(found, next).slice(0, PER_CLASS);
    console.log(`${name}: ${found.length} usable, ${kept.length} kept`);
    items.push(...kept);
  });
  shuffle(items, next);
  const n = items.length;
  // Stratified split: per class, the first ⌊20 %⌋ of its (shuffled) items are test.
  const seen = new Array(CATEGORIES.length).fill(0);
  const perClass = new Array(CATEGORIES.length).fill(0);
  for (const it of items) perClass[it.label]++;
  for (const it of items) it.test = seen[it.label]++ < Math.round(perClass[it.label] * TEST_FRACTION);

  // 2. Text: hashed TF-IDF (tf = 1 + log count, idf = log((1 + n) / (1 + df)) + 1), L2-normalised.
  const termsOf = items.map((it) => hashedTerms(it.words));
  const df = new Float64Array(TEXT_DIM);
  for (const t of termsOf) for (const j of new Set([...t.keys()].map((k) => k >> 1))) df[j]++;
  const text = new Float32Array(n * TEXT_DIM);
  termsOf.forEach((t, i) => {
    for (const [k, c] of t) {
      const j = k >> 1;
      text[i * TEXT_DIM + j] += (k & 1 ? -1 : 1) * (1 + Math.log(c)) * (Math.log((1 + n) / (1 + df[j])) + 1);
    }
    let s = 0;
    for (let j = 0; j < TEXT_DIM; j++) s += text[i * TEXT_DIM + j] ** 2;
    s = Math.sqrt(s) || 1;
    for (let j = 0; j < TEXT_DIM; j++) text[i * TEXT_DIM + j] /= s;
  });

  // 3. Image: PNG over white, fitted into 224 × 224 (area average), MobileNetV2 → 1280-D.
  const need = createRequire(join(TOOLS, 'package.json'));
  const load = async (name) => import(pathToFileURL(need.resolve(name)).href);
  const tf = await load('@tensorflow/tfjs');
  await load('@tensorflow/tfjs-backend-wasm');
  const nsfwjs = await load('nsfwjs');
  const { PNG } = await load('pngjs');
  await tf.setBackend('wasm');
  await tf.ready();
  const model = await nsfwjs.load('MobileNetV2');
  const FEATURE_LAYER = 'flatten_1'; // global average pool of out_relu (7×7×1280), before the NSFW head
  const imageDim = 1280;
  const image = new Float32Array(n * imageDim);
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    const png = PNG.sync.read(readFileSync(items[i].pngPath));
    const pixels = fitOnWhite(png.data, png.width, png.height, IMAGE_SIZE);
    const feature = tf.tidy(() => model.infer(tf.tensor3d(pixels, [IMAGE_SIZE, IMAGE_SIZE, 3], 'int32'), FEATURE_LAYER));
    image.set(await feature.data(), i * imageDim);
    feature.dispose();
    if ((i + 1) % 200 === 0) console.log(`image features: ${i + 1}/${n} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }

  // 4. Files.
  const { writeNpy } = await import(pathToFileURL(join(root, 'dist', 'index.js')).href);
  mkdirSync(OUT, { recursive: true });
  await writeNpy(join(OUT, 'image.npy'), image, [n, imageDim], { dtype: 'float16' });
  await writeNpy(join(OUT, 'text.npy'), text, [n, TEXT_DIM], { dtype: 'float16' });
  await writeNpy(join(OUT, 'labels.npy'), Int32Array.from(items, (it) => it.label), [n]);
  await writeNpy(join(OUT, 'split.npy'), Int32Array.from(items, (it) => (it.test ? 1 : 0)), [n]);
  const csv = ['row,label,split,file,title,words'];
  items.forEach((it, i) => csv.push([i, CATEGORIES[it.label][0], it.test ? 'test' : 'train', it.rel, it.title, it.words.join(' ')].map(quote).join(',')));
  writeAtomic(join(OUT, 'items.csv'), csv.join('\n') + '\n');
  writeAtomic(join(OUT, 'classes.json'), JSON.stringify(CATEGORIES.map(([name]) => name)) + '\n');
  console.log(`wrote ${n} items to ${relative(root, OUT)} (${((Date.now() - t0) / 1000).toFixed(0)} s of image features)`);
}

/** RGBA (w × h) composited over white, scaled to fit size × size keeping its aspect, centred. */
function fitOnWhite(rgba, w, h, size) {
  const out = new Int32Array(size * size * 3).fill(255);
  const scale = Math.min(size / w, size / h);
  const tw = Math.max(1, Math.round(w * scale));
  const th = Math.max(1, Math.round(h * scale));
  const ox = Math.floor((size - tw) / 2);
  const oy = Math.floor((size - th) / 2);
  for (let y = 0; y < th; y++) {
    const y0 = Math.floor((y * h) / th);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * h) / th));
    for (let x = 0; x < tw; x++) {
      const x0 = Math.floor((x * w) / tw);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * w) / tw));
      const acc = [0, 0, 0];
      let count = 0;
      for (let yy = y0; yy < y1; yy++) {
        for (let xx = x0; xx < x1; xx++) {
          const p = (yy * w + xx) * 4;
          const a = rgba[p + 3] / 255;
          for (let c = 0; c < 3; c++) acc[c] += rgba[p + c] * a + 255 * (1 - a);
          count++;
        }
      }
      const o = ((oy + y) * size + ox + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round(acc[c] / count);
    }
  }
  return out;
}

function quote(v) {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
function writeAtomic(path, text) {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

await main();
