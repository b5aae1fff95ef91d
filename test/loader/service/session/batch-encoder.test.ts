// The lean BatchPart encoder against the generated protobufjs encoder on
// random batches: byte-identical output, every message within the cap, and
// samples split across parts come back whole through the trainer SDK's
// assembly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LoaderService, pb } from '../../../../proto/index.js';
import { encodeBatchPartResponse } from '../../../../loader/service/session/batch-encoder.js';
import { planParts, splitBatch, splitBatchForWrite } from '../../../../loader/service/session/batch-parts.js';
import type { BatchSpec } from '../../../../loader/service/supply/batch-fetch.js';
import type { FetchedSample } from '../../../../loader/fetch/index.js';
import { assembleBatch, type EpochInfo } from '../../../../trainer/client/batch.js';

// Field names include integer-like ones: Object.keys puts those first, and
// both encoders must agree on that order.
const fieldName = fc.constantFrom('jpg', 'cls', 'json', 'npy', '0', '17', 'é', 'a.b');
const sampleArb = fc.record({
  id: fc.oneof(fc.constant(0), fc.nat({ max: 2 ** 32 - 1 })),
  key: fc.string({ unit: 'grapheme', maxLength: 12 }),
  fields: fc.dictionary(
    fieldName,
    fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.nat({ max: 9000 }).map((n) => new Uint8Array(n).fill(n % 251)),
    ),
    { maxKeys: 4 },
  ),
  weight: fc.oneof(fc.constant(0), fc.constant(-0), fc.double({ noNaN: false })),
  padded: fc.boolean(),
});
const batchArb = fc.record({
  index: fc.oneof(fc.constant(0), fc.nat({ max: 2 ** 31 })),
  samples: fc.array(sampleArb, { maxLength: 12 }),
  cap: fc.integer({ min: 1024, max: 40_000 }),
});

function specOf(index: number, samples: { id: number; weight: number; padded: boolean }[]): BatchSpec {
  return {
    index,
    ids: Uint32Array.from(samples, (s) => s.id),
    weights: Float64Array.from(samples, (s) => s.weight),
    padded: Uint8Array.from(samples, (s) => (s.padded ? 1 : 0)),
    bytes: 0,
  };
}

/** The samples as the range reader hands them to the encoder. */
function fetchedOf(
  samples: { id: number; key: string; fields: Record<string, Uint8Array> }[],
): FetchedSample[] {
  return samples.map((s) => ({ id: s.id, key: s.key, fields: s.fields, bytes: 0 }));
}

test('encoded parts are byte-identical to the generated encoder and within the cap', () => {
  fc.assert(
    fc.property(batchArb, ({ index, samples, cap }) => {
      const fetched = fetchedOf(samples);
      const plans = planParts(specOf(index, samples), fetched, cap);
      for (const plan of plans) {
        const ours = encodeBatchPartResponse(plan);
        const reference = pb.StreamEpochResponse.encode(
          pb.StreamEpochResponse.create({
            batch: pb.BatchPart.create({
              index: plan.index,
              part: plan.part,
              parts: plan.parts,
              samples: plan.samples.map((s) => pb.Sample.create({ ...s })),
            }),
          }),
        ).finish();
        assert.equal(
          Buffer.compare(ours, reference),
          0,
          `part ${plan.part} differs from the generated encoding`,
        );
        assert.ok(ours.byteLength <= cap, `part ${plan.part} has ${ours.byteLength} bytes, cap ${cap}`);
      }
    }),
    { numRuns: 300 },
  );
});

test('parts written to the stream serialize to the same bytes, one after another, into frames as grpc-js makes them', () => {
  const serialize = LoaderService.streamEpoch.responseSerialize;
  fc.assert(
    fc.property(fc.array(batchArb, { minLength: 1, maxLength: 3 }), (batches) => {
      for (const { index, samples, cap } of batches) {
        const fetched: FetchedSample[] = samples.map((s) => ({ ...s, bytes: 0 }));
        const eager = splitBatch(specOf(index, samples), fetched, cap);
        const lazy = splitBatchForWrite(specOf(index, samples), fetched, cap);
        assert.deepEqual(lazy.split, eager.split);
        assert.equal(lazy.parts.length, eager.parts.length);
        // What grpc-js's serializeMessage does per message: serialize, then a frame of
        // byteLength + 5 bytes filled by copy() after the prefix, before the next one.
        const framed = lazy.parts.map((p) => {
          const message = serialize(p as never);
          const frame = Buffer.alloc(message.byteLength + 5, 0xee);
          message.copy(frame, 5);
          assert.ok(
            frame.subarray(0, 5).every((b) => b === 0xee),
            'the prefix is left to grpc-js',
          );
          return frame.subarray(5);
        });
        framed.forEach((bytes, i) => {
          assert.equal(Buffer.compare(bytes, eager.parts[i] as Buffer), 0, `part ${i} of batch ${index}`);
        });
      }
    }),
    { numRuns: 200 },
  );
});

test('samples larger than the cap are split across parts and reassembled whole', () => {
  fc.assert(
    fc.property(batchArb, ({ index, samples, cap }) => {
      const fetched = fetchedOf(samples);
      const { parts } = splitBatch(specOf(index, samples), fetched, cap);
      const pieces = parts.flatMap((bytes, i) => {
        const batch = pb.StreamEpochResponse.decode(bytes).batch;
        assert.ok(batch, 'a batch part');
        assert.equal(batch.part, i);
        assert.equal(batch.parts, parts.length);
        return batch.samples ?? [];
      });
      const info = { fields: [] } as unknown as EpochInfo;
      const batch = assembleBatch(index, pieces, info, () => Promise.resolve());
      assert.equal(batch.size, samples.length);
      samples.forEach((s, j) => {
        assert.equal(batch.ids[j], s.id);
        assert.equal(batch.keys[j], s.key);
        assert.equal(batch.padded[j], s.padded ? 1 : 0);
        assert.ok(
          Object.is(batch.weights[j], Math.fround(s.weight)) || (isNaN(s.weight) && isNaN(batch.weights[j]!)),
        );
        for (const [f, bytes] of Object.entries(s.fields)) {
          assert.deepEqual(new Uint8Array(batch.fields[f]![j]!), bytes, `sample ${j} field ${f}`);
        }
      });
    }),
    { numRuns: 300 },
  );
});

test('a 6 MiB sample goes as parts of at most 3 MiB', () => {
  const big = new Uint8Array(6 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);
  const fetched: FetchedSample[] = [
    { id: 1, key: 'a', fields: { cls: new Uint8Array([0x31]) }, bytes: 0 },
    { id: 2, key: 'big', fields: { bin: big, cls: new Uint8Array([0x32]) }, bytes: 0 },
    { id: 3, key: 'c', fields: { cls: new Uint8Array([0x33]) }, bytes: 0 },
  ];
  const spec = specOf(5, [
    { id: 1, weight: 1, padded: false },
    { id: 2, weight: 2, padded: false },
    { id: 3, weight: 1, padded: true },
  ]);
  const cap = 3 * 1024 * 1024;
  const { parts, split } = splitBatch(spec, fetched, cap);
  assert.deepEqual(split, [2]);
  // Sample 1; two full pieces of sample 2; its tail with sample 3.
  assert.equal(parts.length, 4);
  for (const p of parts) assert.ok(p.byteLength <= cap);
  const pieces = parts.flatMap((b) => pb.StreamEpochResponse.decode(b).batch?.samples ?? []);
  assert.deepEqual(
    pieces.map((p) => [p.id, p.continued === true]),
    [
      [1, false],
      [2, false],
      [2, true],
      [2, true],
      [3, false],
    ],
  );
  const batch = assembleBatch(5, pieces, { fields: [] } as unknown as EpochInfo, () => Promise.resolve());
  assert.deepEqual([...batch.ids], [1, 2, 3]);
  assert.deepEqual(new Uint8Array(batch.fields.bin![1]!), big);
  assert.equal(batch.fields.bin![0]!.byteLength, 0);
  assert.deepEqual([...batch.fields.cls![1]!], [0x32]);
});
