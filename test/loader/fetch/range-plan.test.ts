// Properties of the range planner on random shard layouts and selections.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { planRanges, sortUniqueIds } from '../../../loader/fetch/index.js';
import { layoutOf } from './sample-layouts.js';

const scenario = fc
  .array(
    fc.array(
      fc.integer({ min: 1, max: 40 }).map((blocks) => blocks * 512),
      { minLength: 1, maxLength: 30 },
    ),
    {
      minLength: 1,
      maxLength: 4,
    },
  )
  .chain((shards) => {
    const layout = layoutOf(shards);
    return fc.record({
      layout: fc.constant(layout),
      selected: fc.array(fc.boolean(), { minLength: layout.size, maxLength: layout.size }),
      gapBytes: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 30_000 })),
      maxRequestBytes: fc.oneof(fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 512, max: 60_000 })),
    });
  });

test('every selected sample lies in exactly one range; merges respect gapBytes and maxRequestBytes', () => {
  fc.assert(
    fc.property(scenario, ({ layout, selected, gapBytes, maxRequestBytes }) => {
      const ids = sortUniqueIds(
        selected.flatMap((s, i) => (s ? [i] : [])),
        layout.size,
      );
      const plan = planRanges(layout, ids, { gapBytes, maxRequestBytes });
      let selectedBytes = 0;
      for (let r = 0; r < plan.count; r++) {
        const [s, a, b] = [plan.shard[r]!, plan.start[r]!, plan.end[r]!];
        const members = Array.from(plan.ids.subarray(plan.first[r], plan.first[r + 1]));
        assert.ok(members.length > 0);
        // The range is exactly from its first to its last sample, all of its shard.
        assert.equal(a, layout.offsets[members[0]!]);
        assert.equal(b, layout.ends[members.at(-1)!]);
        for (const id of members) assert.equal(layout.shardIds[id], s);
        // Capped unless a single sample is larger than the cap.
        assert.ok(b - a <= maxRequestBytes || members.length === 1);
        // Every gap inside the range is below gapBytes (or zero).
        for (let k = 1; k < members.length; k++) {
          const gap = layout.offsets[members[k]!]! - layout.ends[members[k - 1]!]!;
          assert.ok(gap === 0 || gap < gapBytes, `gap ${gap} merged with gapBytes ${gapBytes}`);
        }
        // Two consecutive ranges of one shard were not merged for a reason.
        if (r > 0 && plan.shard[r - 1] === s) {
          const gap = a - plan.end[r - 1]!;
          assert.ok(gap > 0 || b - plan.start[r - 1]! > maxRequestBytes);
          assert.ok(gap >= gapBytes || b - plan.start[r - 1]! > maxRequestBytes);
        }
        for (const id of members) selectedBytes += layout.ends[id]! - layout.offsets[id]!;
      }
      assert.deepEqual(
        Array.from(plan.ids),
        selected.flatMap((s, i) => (s ? [i] : [])),
      );
      assert.equal(plan.first[plan.count], ids.length);
      assert.equal(plan.bytesSelected, selectedBytes);
      if (gapBytes === 0) assert.equal(plan.bytesRequested, plan.bytesSelected);
    }),
    { numRuns: 300 },
  );
});

test('with gapBytes 0 and no cap there is one range per run of consecutive selected samples of a shard', () => {
  fc.assert(
    fc.property(scenario, ({ layout, selected }) => {
      const ids = sortUniqueIds(
        selected.flatMap((s, i) => (s ? [i] : [])),
        layout.size,
      );
      let runs = 0;
      for (let i = 0; i < layout.size; i++) {
        const startsRun =
          selected[i] && (i === 0 || !selected[i - 1] || layout.shardIds[i - 1] !== layout.shardIds[i]);
        if (startsRun) runs++;
      }
      assert.equal(
        planRanges(layout, ids, { gapBytes: 0, maxRequestBytes: Number.MAX_SAFE_INTEGER }).count,
        runs,
      );
      // A huge gap merges everything of a shard into one range.
      const shards = new Set(Array.from(ids, (id) => layout.shardIds[id]));
      assert.equal(
        planRanges(layout, ids, { gapBytes: Infinity, maxRequestBytes: Number.MAX_SAFE_INTEGER }).count,
        shards.size,
      );
    }),
    { numRuns: 200 },
  );
});

test('ids are de-duplicated and sorted; out-of-range ids are rejected with the id', () => {
  assert.deepEqual(Array.from(sortUniqueIds([5, 1, 5, 0, 1], 6)), [0, 1, 5]);
  assert.equal(sortUniqueIds([], 6).length, 0);
  assert.throws(() => sortUniqueIds([1, 6], 6), { code: 'SADP_SAMPLE_OUT_OF_RANGE', message: /sample id 6/ });
  assert.throws(() => sortUniqueIds([1.5], 6), { code: 'SADP_SAMPLE_OUT_OF_RANGE' });
});

test('maxWasteRatio bounds the pruned bytes a plan fetches, even with a large gapBytes', () => {
  // 1,000 small samples of 2,560 bytes back to back; every other one selected:
  // a 64 KiB gap would merge everything into one range (waste = 100 %).
  const n = 1000;
  const size = 2560;
  const offsets = new Float64Array(n).map((_, i) => i * size);
  const ends = new Float64Array(n).map((_, i) => (i + 1) * size);
  const layout = { offsets, ends, shardIds: new Uint32Array(n) };
  const ids = Uint32Array.from({ length: n / 2 }, (_, i) => 2 * i);
  const unbounded = planRanges(layout, ids, { gapBytes: 64 * 1024, maxRequestBytes: 1 << 30 });
  assert.equal(unbounded.count, 1);
  assert.ok(unbounded.bytesRequested / unbounded.bytesSelected > 1.9);
  for (const ratio of [0, 0.05, 0.25]) {
    const plan = planRanges(layout, ids, {
      gapBytes: 64 * 1024,
      maxRequestBytes: 1 << 30,
      maxWasteRatio: ratio,
    });
    const waste = plan.bytesRequested / plan.bytesSelected - 1;
    assert.ok(waste <= ratio + 1e-12, `ratio ${ratio}: waste ${waste}`);
    // The bound is used, not just respected: merges happen up to it.
    if (ratio > 0) assert.ok(waste > ratio / 2, `ratio ${ratio}: waste ${waste} leaves the budget unused`);
    else assert.equal(plan.count, ids.length);
  }
});
