// Tensors from the Node ML libraries (onnxruntime-node, transformers.js, tfjs), made by those
// libraries themselves, as pairpick inputs: select on them equals select on the same values
// written as .npy files; kernels on them equal kernels on the typed arrays; fp16 and float32; no
// copies; refusals that name what was given.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Tensor as HfTensor } from '@huggingface/transformers';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../src/backend/index.js';
import type { BackendName } from '../src/backend/types.js';
import { openPool } from '../src/io/pool.js';
import { fromTensorLike } from '../src/io/tensor.js';
import { writeNpy } from '../src/io/write.js';
import { distances, knn, matmul, minUpdate, sinkhorn } from '../src/kernels/index.js';
import { select } from '../src/select/index.js';
import { fitProjection } from '../src/ssl/index.js';
import { floatArrayToHalf } from '../src/util/half.js';
import { rejectsWith } from './helpers/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';

const BACKENDS: BackendName[] = backends()
  .filter((b) => b.available && b.name !== 'cuda')
  .map((b) => b.name);

// tfjs prints an advert for tfjs-node once; the cpu backend is what the tests use.
await tf.setBackend('cpu');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairpick-tensor-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ROWS = 157;
const DIMS = { image: 12, text: 7 };

/** A random two-modality pool as float32 arrays. */
function randomPool() {
  const rng = testRng();
  return { image: randomMatrix(rng, ROWS, DIMS.image, 1 + rng.next()), text: randomMatrix(rng, ROWS, DIMS.text, 1 + rng.next()) };
}

/** The same pool as .npy files (float32 or float16). */
async function asNpy(pool: { image: Float32Array; text: Float32Array }, tag: string, half: boolean) {
  const paths = { image: join(dir, `${tag}-image.npy`), text: join(dir, `${tag}-text.npy`) };
  for (const m of ['image', 'text'] as const) {
    await writeNpy(paths[m], half ? floatArrayToHalf(pool[m]) : pool[m], [ROWS, DIMS[m]]);
  }
  return paths;
}

type Maker = (data: Float32Array | Uint16Array, rows: number, dim: number) => unknown;
const LIBRARIES: { name: string; half: boolean; make: Maker }[] = [
  { name: 'onnxruntime-node Tensor', half: false, make: (d, r, c) => new ort.Tensor('float32', d as Float32Array, [r, c]) },
  { name: 'onnxruntime-node Tensor', half: true, make: (d, r, c) => new ort.Tensor('float16', d as Uint16Array, [r, c]) },
  { name: 'transformers.js Tensor', half: false, make: (d, r, c) => new HfTensor('float32', d as Float32Array, [r, c]) },
  { name: 'transformers.js Tensor', half: true, make: (d, r, c) => new HfTensor('float16', d as Uint16Array, [r, c]) },
  { name: 'tfjs tensor2d', half: false, make: (d, r, c) => tf.tensor2d(d as Float32Array, [r, c], 'float32') },
];

describe.each(BACKENDS)('select on tensors (%s backend)', (backend) => {
  for (const lib of LIBRARIES) {
    const dtype = lib.half ? 'float16' : 'float32';
    for (const strategy of ['mmcsal', 'kcenter'] as const) {
      it(`${lib.name} (${dtype}), ${strategy}: the same picks as the same values in .npy files`, async () => {
        const pool = randomPool();
        const data = lib.half ? { image: floatArrayToHalf(pool.image), text: floatArrayToHalf(pool.text) } : pool;
        const files = await asNpy(pool, `${backend}-${strategy}-${lib.name.replace(/\W/g, '')}-${dtype}`, lib.half);
        const tensors = { image: lib.make(data.image, ROWS, DIMS.image), text: lib.make(data.text, ROWS, DIMS.text) };
        const budget = 11;
        const onTensors = await select(tensors as never, { strategy, budget, backend, labeled: [3, 40] });
        const onFiles = await select(files, { strategy, budget, backend, labeled: [3, 40] });
        expect(onTensors.indices.length).toBe(budget);
        expect(Array.from(onTensors.indices)).toEqual(Array.from(onFiles.indices));
        if (onFiles.components) expect(onTensors.components).toEqual(onFiles.components);
      });
    }
  }
});

describe('tensors are read without copying', () => {
  it('the pool source views the tensor\'s own memory (float32 and float16)', async () => {
    const rng = testRng();
    const f32 = randomMatrix(rng, 9, 4);
    const f16 = floatArrayToHalf(randomMatrix(rng, 9, 5));
    const a = new ort.Tensor('float32', f32, [9, 4]);
    const b = new HfTensor('float16', f16, [9, 5]);
    expect(fromTensorLike(a, 'a').data).toBe(f32);
    expect(fromTensorLike(b, 'b').data).toBe(f16);
    const pool = await openPool({ a, b } as never);
    try {
      const va = pool.source('a').view!(0, 9)!;
      const vb = pool.source('b').view!(0, 9)!;
      expect(va.buffer).toBe(f32.buffer);
      expect(vb.buffer).toBe(f16.buffer);
      expect(pool.source('b').dtype).toBe('float16');
      expect(Array.from(await pool.source('a').read(2, 1))).toEqual(Array.from(f32.subarray(8, 12)));
    } finally {
      await pool.close();
    }
  });
});

describe('fitProjection on tensors', () => {
  it('trains exactly as on { data, dim } with the same values', async () => {
    const pool = randomPool();
    const options = { epochs: 1, dim: 8, hidden: 0, prototypes: 4, batch: 64, seed: 5, backend: 'js' as const };
    const onTensors = await fitProjection({ image: new ort.Tensor('float32', pool.image, [ROWS, DIMS.image]), text: tf.tensor2d(pool.text, [ROWS, DIMS.text]) } as never, options);
    const onArrays = await fitProjection(await openPool({ image: { data: pool.image, dim: DIMS.image }, text: { data: pool.text, dim: DIMS.text } }), options);
    expect(onTensors.history[0].loss).toBe(onArrays.history[0].loss);
    expect(onTensors.gap).toBe(onArrays.gap);
  });
});

describe.each(BACKENDS)('kernels on tensors (%s backend)', (backend) => {
  it('distances, knn and minUpdate on tensors equal the same calls on typed arrays; sizes come from the dims', async () => {
    const rng = testRng();
    const a = randomMatrix(rng, 33, 6);
    const b = randomMatrix(rng, 21, 6);
    const expected = await distances(a, b, { rowsA: 33, rowsB: 21, dim: 6, backend });
    expect(await distances(new ort.Tensor('float32', a, [33, 6]), tf.tensor2d(b, [21, 6]), { backend })).toEqual(expected);
    // Size options may still be given next to tensors: they must agree.
    expect(await distances(new HfTensor('float32', a, [33, 6]), b, { rowsB: 21, backend })).toEqual(expected);

    const ah = floatArrayToHalf(a);
    const bh = floatArrayToHalf(b);
    const nnHalf = await knn(ah, bh, { rowsQ: 33, rowsR: 21, dim: 6, k: 4, backend });
    expect(await knn(new ort.Tensor('float16', ah, [33, 6]), new HfTensor('float16', bh, [21, 6]), { k: 4, backend })).toEqual(nnHalf);

    const minA = new Float32Array(33).fill(Infinity);
    const minT = new Float32Array(33).fill(Infinity);
    const plain = await minUpdate(a, b.subarray(0, 6), minA, { rows: 33, dim: 6, backend });
    const viaTensor = await minUpdate(new ort.Tensor('float32', a, [33, 6]), new ort.Tensor('float32', b.slice(0, 6), [1, 6]), minT, { backend });
    expect(viaTensor).toEqual(plain);
    expect(minT).toEqual(minA);
  });

  it('matmul and sinkhorn take tensors (an fp16 input of a float32-only kernel is widened)', async () => {
    const rng = testRng();
    const x = randomMatrix(rng, 5, 3);
    const w = randomMatrix(rng, 3, 4);
    const c1 = new Float32Array(20);
    await matmul(x, w, c1, { m: 5, n: 4, inner: 3, backend });
    const c2 = new Float32Array(20);
    await matmul(new ort.Tensor('float32', x, [5, 3]), tf.tensor2d(w, [3, 4]), new ort.Tensor('float32', c2, [5, 4]), { backend });
    expect(c2).toEqual(c1);

    const scores = randomMatrix(rng, 7, 3);
    const half = floatArrayToHalf(scores);
    const fromHalf = await sinkhorn(new HfTensor('float16', half, [7, 3]), { backend });
    const widened = new Float32Array(half.length);
    const { halfArrayToFloat } = await import('../src/util/half.js');
    widened.set(halfArrayToFloat(half));
    expect(fromHalf).toEqual(await sinkhorn(widened, { rows: 7, k: 3, backend }));
  });
});

describe('tensors pairpick refuses, naming what was given', () => {
  it('integer and bool element types are E_FORMAT naming the type', async () => {
    const ids = new ort.Tensor('int64', new BigInt64Array(6), [2, 3]);
    await rejectsWith(openPool({ tokens: ids } as never), 'E_FORMAT', "modality 'tokens'", /int64 tensor of dims \[2, 3\]/);
    const mask = new HfTensor('int32', new Int32Array(6), [2, 3]);
    await rejectsWith(distances(mask as never, new Float32Array(6), { rowsB: 2 }), 'E_FORMAT', 'kernels.distances: a', /int32 tensor/);
    const t = tf.tensor2d([[1, 2], [3, 4]], [2, 2], 'int32');
    await rejectsWith(select({ a: t } as never, { budget: 1 }), 'E_FORMAT', /tfjs int32 tensor of shape \[2, 2\]/, /float32/);
  });

  it('a 3-D tensor (token embeddings) and a 1-D one are E_SHAPE naming the dims', async () => {
    const rng = testRng();
    const hidden = new HfTensor('float32', randomMatrix(rng, 2, 12), [2, 3, 4]);
    await rejectsWith(openPool({ text: hidden } as never), 'E_SHAPE', /3-D/, /\[2, 3, 4\]/, /pool or select the tokens/);
    const flat = new ort.Tensor('float32', randomMatrix(rng, 1, 5), [5]);
    await rejectsWith(knn(flat, flat, { k: 1 }), 'E_SHAPE', 'kernels.knn: query', /1-D/);
  });

  it('a disposed tfjs tensor is E_FORMAT', async () => {
    const t = tf.tensor2d(randomMatrix(testRng(), 4, 3), [4, 3]);
    t.dispose();
    await rejectsWith(openPool({ a: t } as never), 'E_FORMAT', /disposed/);
  });

  it('tensors whose sizes disagree with each other or with the options are E_SHAPE naming both', async () => {
    const rng = testRng();
    const a = new ort.Tensor('float32', randomMatrix(rng, 4, 3), [4, 3]);
    const b = new ort.Tensor('float32', randomMatrix(rng, 5, 2), [5, 2]);
    await rejectsWith(distances(a, b, {}), 'E_SHAPE', /b has 2 columns, but a has 3 columns/);
    await rejectsWith(distances(a, a, { rowsA: 5 }), 'E_SHAPE', /a has 4 rows, but option 'rowsA' = 5/);
    await rejectsWith(openPool({ a, b } as never), 'E_SHAPE', /disagree on the number of rows/);
    // A hand-made tensor-like whose data does not fill its dims.
    await rejectsWith(openPool({ a: { type: 'float32', dims: [3, 3], data: new Float32Array(8) } } as never), 'E_SHAPE', /8 values, expected 3 × 3 = 9/);
    // Typed arrays without the size options still need them.
    await rejectsWith(distances(new Float32Array(6), new Float32Array(6), {}), 'E_OPTION', /option 'rowsA'.*given in the options unless a is a tensor/);
  });
});
