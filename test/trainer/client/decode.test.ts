// Image decoding of batches: the encodings the shard writers produce (the
// writer's own .npy encoder is the reference), and errors that name the
// sample and field of anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeFashionMnist,
  decodeImageBatch,
  type Batch,
  type EpochInfo,
} from '../../../trainer/client/index.js';
import { encodeNpyUint8 } from '../../../loader/shards/index.js';
import { isSadpError } from '../../../common/errors.js';

const info: EpochInfo = {
  jobId: 'j',
  epoch: 0,
  datasetSize: 10,
  selectedCount: 3,
  samplesPerRank: 3,
  steps: 1,
  padded: 0,
  pruneRatio: 0,
  expectedSize: 3,
  planDigest: '',
  fields: [],
  datasetBytes: 0,
  selectedBytes: 0,
  epochs: 1,
  storageBytesReceived: 0,
};

function batchOf(fields: Record<string, Uint8Array[]>): Batch {
  const size = Object.values(fields)[0]!.length;
  return {
    index: 7,
    size,
    ids: Uint32Array.from({ length: size }, (_, j) => 100 + j),
    keys: Array.from({ length: size }, (_, j) => `k${j}`),
    fields,
    weights: new Float32Array(size).fill(1),
    padded: new Uint8Array(size),
    info,
    ack: () => Promise.resolve(),
  };
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

function image(seed: number, pixels = 784): Uint8Array {
  return Uint8Array.from({ length: pixels }, (_, p) => (p * 7 + seed * 31) % 256);
}

test('Fashion-MNIST .npy + .cls decode to [0,1] pixels and class indices', () => {
  const imgs = [0, 1, 2].map((s) => image(s));
  const batch = batchOf({
    npy: imgs.map((px) => encodeNpyUint8(px, [28, 28])),
    cls: [ascii('3'), ascii('9\n'), ascii(' 0')],
  });
  const out = decodeFashionMnist(batch);
  assert.equal(out.size, 3);
  assert.equal(out.inputs.length, 3 * 784);
  assert.deepEqual([...out.labels], [3, 9, 0]);
  for (let j = 0; j < 3; j++) {
    for (const p of [0, 1, 400, 783]) assert.equal(out.inputs[j * 784 + p], Math.fround(imgs[j]![p]! / 255));
  }
  // Reusing buffers gives the same result.
  const into = { inputs: new Float32Array(4 * 784), labels: new Int32Array(4) };
  const again = decodeFashionMnist(batch, into);
  assert.equal(again.inputs, into.inputs);
  assert.deepEqual(again.inputs.subarray(0, 3 * 784), out.inputs);
});

test('raw and PGM images decode to the same pixels', () => {
  const px = image(5, 4 * 3);
  const pgm = new Uint8Array([...ascii('P5\n# comment\n4 3\n255\n'), ...px]);
  const raw = decodeImageBatch(batchOf({ gray: [px], cls: [ascii('1')] }), { width: 4, height: 3 });
  const fromPgm = decodeImageBatch(batchOf({ pgm: [pgm], cls: [ascii('1')] }), { width: 4, height: 3 });
  assert.deepEqual(fromPgm.inputs, raw.inputs);
  assert.equal(raw.inputs[2], Math.fround(px[2]! / 255));
});

test('anything else fails naming the sample key and field', () => {
  const good = encodeNpyUint8(image(0), [28, 28]);
  const cases: Array<[Record<string, Uint8Array[]>, RegExp]> = [
    [
      { npy: [good, encodeNpyUint8(image(1, 32 * 32), [32, 32])], cls: [ascii('1'), ascii('2')] },
      /k1 .*\.npy: array shape \(32, 32\)/,
    ],
    [{ npy: [good, good.subarray(0, 700)], cls: [ascii('1'), ascii('2')] }, /k1 .*\.npy/],
    [{ npy: [good, good], cls: [ascii('1'), ascii('cat')] }, /k1 .*\.cls: label "cat"/],
    [{ npy: [good, good], cls: [ascii('1'), ascii('12')] }, /k1 .*\.cls: class 12 is not below 10/],
    [{ gray: [image(0, 783)], cls: [ascii('1')] }, /k0 .*\.gray: 783 pixel bytes, expected 784/],
    [{ png: [ascii('\x89PNG')], cls: [ascii('1')] }, /no image field among png, cls; supported: npy/],
  ];
  for (const [fields, message] of cases) {
    assert.throws(
      () => decodeFashionMnist(batchOf(fields)),
      (err: unknown) => isSadpError(err, 'SADP_SAMPLE_DECODE') && message.test(err.message),
      String(message),
    );
  }
});
