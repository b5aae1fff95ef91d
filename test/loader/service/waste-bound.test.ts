// The shipped read bound at the service level: a loader in the planner mode
// that promises it (`min-bytes`, for links billed per byte; `auto` trades
// bytes for requests by measured cost) with the default gap
// merging (64 KiB) and waste bound (5 %) streams an SADP epoch, and the
// storage request log shows every selected sample read, pruned bytes read
// through merged gaps at most 5 % of the selected bytes, and merging really
// happening (so the bound is exercised, not vacuous). DescribeEpoch's
// storage_bytes_received equals the bytes of that log.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { DEFAULT_GAP_BYTES, DEFAULT_MAX_WASTE_RATIO } from '../../../loader/fetch/index.js';
import type { RangeRequestEvent } from '../../../loader/fetch/index.js';
import { pb, type sadp } from '../../../proto/index.js';
import { connectLoader, getPlan, runRank, startStack, unary, type Stack } from './helpers.js';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(() => stack?.close());

test('min-bytes with the default gap and waste bound: pruned bytes fetched <= 5 % of selected, measured from the request log', async () => {
  assert.equal(DEFAULT_GAP_BYTES, 64 * 1024, 'the shipped gap');
  assert.equal(DEFAULT_MAX_WASTE_RATIO, 0.05, 'the shipped bound');
  const jobId = await stack.createJob({ epochs: 1, pruneRatio: 0.5 });
  const requests: RangeRequestEvent[] = [];
  // The loader's default gap and waste ratio, as `sadp loader --read-planner min-bytes` ships them.
  const loader = await stack.startLoader({
    readerOptions: { planner: 'min-bytes' },
    onStorageRequest: (r) => requests.push(r),
  });
  const client = connectLoader(loader.address);
  const world = 2;
  const results = await Promise.all(
    Array.from({ length: world }, (_, rank) =>
      runRank(client, stack.dataset, { jobId, epoch: 0, rank, world, batchSize: 32 }),
    ),
  );
  for (const r of results) assert.equal(r.code, grpc.status.OK, r.details);

  const { dataset } = stack;
  const selected = new Set((await getPlan(stack.scorerClient, jobId, 0)).ids);
  const byKey = new Map<string, RangeRequestEvent[]>();
  for (const r of requests) {
    assert.equal(r.attempt, 1, 'no faults here: every GET is a first attempt');
    byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
  }
  let selectedBytes = 0;
  let prunedBytesFetched = 0;
  let prunedSamplesTouched = 0;
  for (let id = 0; id < dataset.size; id++) {
    const a = dataset.offsets[id] as number;
    const b = dataset.ends[id] as number;
    const gets = byKey.get(dataset.shardKey(dataset.shardOf(id))) ?? [];
    const overlap = gets.reduce((sum, g) => sum + Math.max(0, Math.min(b, g.end) - Math.max(a, g.start)), 0);
    if (selected.has(id)) {
      selectedBytes += b - a;
      assert.ok(overlap >= b - a, `selected sample ${id} was read whole`);
    } else if (overlap > 0) {
      prunedBytesFetched += overlap;
      prunedSamplesTouched++;
    }
  }
  const requested = requests.reduce((sum, r) => sum + (r.end - r.start), 0);
  assert.ok(prunedSamplesTouched > 0, 'ranges were merged across pruned samples (the bound is exercised)');
  assert.ok(
    prunedBytesFetched <= DEFAULT_MAX_WASTE_RATIO * selectedBytes,
    `pruned bytes fetched ${prunedBytesFetched} <= 5 % of selected ${selectedBytes}`,
  );

  // The loader's own figure is the request log's bytes, not the plan's.
  const info = await unary<sadp.v1.EpochInfo>((cb) =>
    client.describeEpoch(
      pb.DescribeEpochRequest.create({ jobId, epoch: 0, worldSize: world, batchSize: 32 }),
      cb,
    ),
  );
  assert.equal(Number(info.storageBytesReceived), requested, 'storage_bytes_received = bytes of the GETs');
  assert.equal(Number(info.selectedBytes), selectedBytes);
  assert.ok(requested > selectedBytes, 'merged gaps were read too, and counted');
  client.close();
});
