// The range reader behind the fault-injecting proxy: every injected fault is
// retried (a partial body resumes from the last byte received), every
// selected sample arrives exactly once and byte-identical, persistent faults
// end in SADP_STORAGE_UNAVAILABLE naming the object, and an abort cancels
// promptly without leaving timers behind. Every test runs with the GETs on
// this thread and in one read thread (readerOptions.threads).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isSadpError } from '../../../common/errors.js';
import {
  createRangeReader,
  type RangeReaderOptions,
  type RangeRequestEvent,
} from '../../../loader/fetch/index.js';
import type { Dataset } from '../../../loader/shards/index.js';
import { s3OptionsForEmbedded, type S3Client } from '../../../storage/index.js';
import {
  startFaultProxy,
  withFaultRules,
  type FaultKind,
  type FaultProxy,
  type FaultRule,
} from '../../helpers/s3-fault-proxy.js';
import { diffSamples, openRemoteVia, startFixture, type Fixture } from './fixtures.js';
import { mulberry32 } from '../../helpers/random.js';

let fx: Fixture;
let proxy: FaultProxy;
let remote: { dataset: Dataset; client: S3Client };
let ids: number[];

/** Shard GETs only: the manifest and index reads while opening stay clean. */
const SHARDS = /\.tar(\?|$)/;
const FAST_RETRIES: RangeReaderOptions = { baseDelayMs: 5, maxDelayMs: 40, maxAttempts: 6 };
const AFTER_BYTES = 1000;

before(async () => {
  fx = await startFixture({ samples: 90, shardBytes: 64 * 1024, seed: 5 });
  proxy = await startFaultProxy({ target: fx.s3.endpoint, seed: 3 });
  remote = await openRemoteVia(fx, proxy.endpoint);
  const coin = mulberry32(2);
  ids = Array.from({ length: fx.remote.size }, (_, i) => i).filter(() => coin() < 0.6);
});

after(async () => {
  remote.client.destroy();
  await proxy.close();
  await fx.close();
});

const THREADS = [0, 1] as const;

/** The reader options of a test run with `threads` read threads (opening the proxy's endpoint). */
function withThreads(threads: number, options: RangeReaderOptions): RangeReaderOptions {
  if (threads === 0) return options;
  const threadS3 = { ...s3OptionsForEmbedded(fx.s3), endpoint: proxy.endpoint, maxAttempts: 1 };
  return { ...options, threads, threadS3 };
}

const titled = (title: string, threads: number): string =>
  threads === 0 ? title : `${title} (${threads} read thread)`;

function record(reader: { onRequest?: (r: RangeRequestEvent) => void }): RangeRequestEvent[] {
  const log: RangeRequestEvent[] = [];
  reader.onRequest = (r) => log.push(r);
  return log;
}

describe('transient faults are retried and every sample arrives once, intact', () => {
  const cases: Array<{
    fault: FaultKind;
    options?: RangeReaderOptions;
    resumesAt?: 'exact' | 'partial' | 'start';
  }> = [
    { fault: 'slowdown', resumesAt: 'start' },
    { fault: 'internal-error', resumesAt: 'start' },
    { fault: 'reset', resumesAt: 'partial' },
    { fault: 'truncate', resumesAt: 'exact' },
    { fault: 'stall', options: { idleTimeoutMs: 3_000 }, resumesAt: 'exact' },
    { fault: 'latency' },
  ];
  for (const threads of THREADS)
    for (const { fault, options, resumesAt } of cases) {
      test(titled(fault, threads), async (t) => {
        const reader = createRangeReader(
          withThreads(threads, { ...FAST_RETRIES, ...options, concurrency: 4 }),
        );
        t.after(() => reader.close());
        const log = record(reader);
        const before = proxy.stats[fault];
        const rule: FaultRule = {
          fault,
          nth: [1, 3, 4],
          path: SHARDS,
          afterBytes: AFTER_BYTES,
          stallMs: 30_000,
          latencyMs: 30,
        };
        const got = await withFaultRules(proxy, [rule], () => reader.read(remote.dataset, ids));

        assert.equal(diffSamples(ids, got, fx.reference), undefined);
        assert.equal(new Set(got.map((s) => s.id)).size, ids.length, 'each sample exactly once');
        assert.equal(reader.stats.samplesDelivered, ids.length);
        const injected = proxy.stats[fault] - before;
        assert.equal(injected, 3);
        // Idle timeouts can also come from a busy machine queueing a healthy
        // GET, so they are counted apart: every other retry answers exactly one
        // injected fault, and a stall is retried only through the idle timer.
        const { retries, idleTimeoutRetries } = reader.stats;
        if (fault === 'stall') {
          assert.ok(idleTimeoutRetries >= injected, `${idleTimeoutRetries} idle retries, ${injected} stalls`);
          assert.equal(retries, idleTimeoutRetries);
        } else {
          assert.equal(retries - idleTimeoutRetries, fault === 'latency' ? 0 : injected);
        }
        assert.equal(reader.stats.requests, log.length);

        // A retry asks for the same range, minus what already arrived. An idle
        // timeout of a healthy GET on a busy machine resumes wherever its body
        // had got to, so only the retries that answer a fault are pinned.
        let resumedAtFault = 0;
        for (const retry of log.filter((r) => r.attempt > 1)) {
          const first = log.find(
            (r) => r.attempt === retry.attempt - 1 && r.key === retry.key && r.end === retry.end,
          );
          assert.ok(first, `no earlier attempt for ${retry.key} ..${retry.end}`);
          const resumed = retry.start - first.start;
          assert.ok(resumed >= 0 && retry.start < retry.end, `resumed at +${resumed}`);
          if (resumesAt === 'start' && resumed === 0) resumedAtFault++;
          if (resumesAt === 'exact' && resumed === AFTER_BYTES) resumedAtFault++;
          if (resumesAt === 'partial' && resumed <= AFTER_BYTES) resumedAtFault++;
        }
        if (resumesAt)
          assert.ok(resumedAtFault >= injected, `${resumedAtFault} retries resumed as ${resumesAt}`);
        // Every byte arrived exactly once: what was received is what the first attempts asked for.
        assert.equal(reader.stats.bytesReceived, reader.stats.bytesRequested - retriedRequestBytes(log));
      });
    }
});

/** Bytes asked again by retries (the part of each retried range not yet received). */
function retriedRequestBytes(log: RangeRequestEvent[]): number {
  return log.filter((r) => r.attempt > 1).reduce((sum, r) => sum + (r.end - r.start), 0);
}

for (const threads of THREADS)
  for (const fault of ['slowdown', 'truncate'] as const) {
    test(
      titled(
        `a ${fault} on every attempt ends in SADP_STORAGE_UNAVAILABLE naming the object; without faults the read succeeds`,
        threads,
      ),
      async (t) => {
        const reader = createRangeReader(withThreads(threads, { ...FAST_RETRIES, maxAttempts: 3 }));
        t.after(() => reader.close());
        const one = [ids[0] as number];
        const key = remote.dataset.shardKey(remote.dataset.shardIds[one[0] as number] as number);
        await withFaultRules(proxy, [{ fault, path: SHARDS, afterBytes: 100 }], async () => {
          await assert.rejects(reader.read(remote.dataset, one), (err: unknown) => {
            assert.ok(isSadpError(err, 'SADP_STORAGE_UNAVAILABLE'), String(err));
            assert.ok(err.message.includes(key), err.message);
            assert.match(err.message, /after 3 attempts/);
            assert.ok(err.cause !== undefined);
            return true;
          });
        });
        assert.equal(reader.stats.requests, 3);
        assert.equal(diffSamples(one, await reader.read(remote.dataset, one), fx.reference), undefined);
      },
    );
  }

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

for (const threads of THREADS)
  test(
    titled('an abort cancels a stalled read with SADP_CANCELLED and leaves no timer behind', threads),
    { timeout: 20_000 },
    async (t) => {
      const baseline = activeTimers();
      const reader = createRangeReader(withThreads(threads, { idleTimeoutMs: 60_000, concurrency: 2 }));
      t.after(() => reader.close());
      const controller = new AbortController();
      const stalls = proxy.stats.stall;
      await withFaultRules(
        proxy,
        [{ fault: 'stall', path: SHARDS, afterBytes: 100, stallMs: 60_000 }],
        async () => {
          const reading = reader.read(remote.dataset, ids, controller.signal);
          while (proxy.stats.stall === stalls) await new Promise((resolve) => setImmediate(resolve));
          controller.abort();
          await assert.rejects(reading, (err: unknown) => isSadpError(err, 'SADP_CANCELLED'));
        },
      );
      // The proxy's stall timer goes when it sees the client's socket close.
      while (activeTimers() > baseline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(reader.stats.retries, 0);
      // An already-aborted signal fails before any GET.
      const requests = reader.stats.requests;
      await assert.rejects(reader.read(remote.dataset, ids, AbortSignal.abort()), { code: 'SADP_CANCELLED' });
      assert.equal(reader.stats.requests, requests);
    },
  );
