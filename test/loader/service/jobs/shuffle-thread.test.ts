// The epoch shuffle in the loader's shuffle thread: the same permutation as
// shufflePlan on the loop in every mode (shards given by their first ids,
// empty shards included), one thread kept across shuffles, and a cancelled
// shuffle rejects with SADP_CANCELLED.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SadpError } from '../../../../common/errors.js';
import { shufflePlan, type ShuffleInput } from '../../../../loader/service/jobs/epoch-layout.js';
import { shardOfStarts } from '../../../../loader/service/jobs/shuffle-task.js';
import { createShuffleThread } from '../../../../loader/service/jobs/shuffle-thread.js';

const MODES: ShuffleInput['mode'][] = ['global', 'shard-block', 'shard-buffer'];

test('shard lookup by first ids: the last shard starting at or before the id, empty shards skipped', () => {
  // Shards 0: [0, 10), 1: empty, 2: [10, 25), 3: empty, 4: empty, 5: [25, ...).
  const shardOf = shardOfStarts(Uint32Array.from([0, 10, 10, 25, 25, 25]));
  assert.deepEqual([0, 9, 10, 24, 25, 1000].map(shardOf), [0, 0, 2, 2, 5, 5]);
});

test('the thread shuffle gives the loop shuffle in every mode, every epoch in one kept thread', async () => {
  // Shards of 900 ids, every third id selected.
  const ids = Uint32Array.from({ length: 30_000 }, (_, k) => 3 * k);
  const shardStarts = Uint32Array.from({ length: 100 }, (_, s) => 900 * s);
  const thread = createShuffleThread();
  try {
    for (const mode of MODES) {
      for (const epoch of [5, 6]) {
        const task = { ids, seed: 77n, epoch, mode, blockShards: 3, shardStarts };
        const onLoop = shufflePlan({ ...task, shardOf: (id) => Math.floor(id / 900) });
        assert.deepEqual(await thread.shuffle(task), onLoop, `${mode} epoch ${epoch}`);
      }
    }
    // Concurrent shuffles queue in the same thread.
    const tasks = [1, 2, 3].map((epoch) => ({
      ids,
      seed: 5n,
      epoch,
      mode: 'global' as const,
      blockShards: 1,
      shardStarts,
    }));
    const results = await Promise.all(tasks.map((t) => thread.shuffle(t)));
    tasks.forEach((t, k) =>
      assert.deepEqual(results[k], shufflePlan({ ...t, shardOf: (id) => Math.floor(id / 900) })),
    );
    assert.equal(thread.threadsStarted, 1);
  } finally {
    await thread.close();
  }
  // The caller's ids are copied, not moved.
  assert.equal(ids.length, 30_000);
});

test('a cancelled shuffle rejects with SADP_CANCELLED; the next shuffle still runs', async () => {
  const ids = Uint32Array.from({ length: 1000 }, (_, k) => k);
  const task = {
    ids,
    seed: 1n,
    epoch: 0,
    mode: 'global' as const,
    blockShards: 1,
    shardStarts: Uint32Array.of(0),
  };
  const thread = createShuffleThread();
  try {
    await assert.rejects(thread.shuffle(task, AbortSignal.abort()), { code: 'SADP_CANCELLED' });
    const controller = new AbortController();
    const running = thread.shuffle(task, controller.signal);
    controller.abort();
    await assert.rejects(running, { code: 'SADP_CANCELLED' });
    assert.deepEqual(await thread.shuffle(task), shufflePlan({ ...task, shardOf: () => 0 }));
  } finally {
    await thread.close();
  }
});

test('close rejects a pending shuffle with SADP_CANCELLED', async () => {
  const thread = createShuffleThread();
  const ids = Uint32Array.from({ length: 1000 }, (_, k) => k);
  const running = thread.shuffle({
    ids,
    seed: 1n,
    epoch: 0,
    mode: 'global',
    blockShards: 1,
    shardStarts: Uint32Array.of(0),
  });
  const rejected = assert.rejects(running, { code: 'SADP_CANCELLED' });
  await thread.close();
  await rejected;
});

test('a shuffle that fails in the thread names the job and the epoch (one thread serves every job)', async () => {
  const thread = createShuffleThread();
  try {
    // No shard starts for a shard-block order: the worker's shuffle throws.
    const broken = {
      ids: Uint32Array.of(1, 2, 3),
      seed: 1n,
      epoch: 4,
      mode: 'shard-block' as const,
      blockShards: 1,
      shardStarts: null as unknown as Uint32Array,
    };
    await assert.rejects(thread.shuffle(broken, undefined, 'job-7'), (err: SadpError) => {
      assert.equal(err.code, 'SADP_SHUFFLE_WORKER_FAILED');
      assert.match(err.message, /^job job-7 epoch 4 shuffle of 3 ids: worker failed: /);
      return true;
    });
  } finally {
    await thread.close();
  }
});
