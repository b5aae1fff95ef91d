// Storage faults under a whole epoch: the S3 fault proxy between the loader
// and the embedded S3 server injects each fault by seeded probability and by
// schedule while four ranks stream an epoch through the client SDK. Every
// selected sample arrives exactly once, byte-identical to a direct read,
// with bounded retries, and every acknowledged score is durable. A fault
// that outlasts the retries reaches the trainer as UNAVAILABLE naming the
// object; once it clears, the ranks resume at their cursor with nothing lost
// or repeated. `npm run reliability:faults` runs more seeds and cases.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FaultKind } from '../helpers/s3-fault-proxy.js';
import {
  runFaultCase,
  runPersistentFault,
  startFaultEnv,
  type FaultEnv,
  type FaultMode,
} from './fault-scenario.js';
import { epochClean } from './stack.js';

let env: FaultEnv;
before(async () => {
  env = await startFaultEnv({ proxySeed: 7 });
});
after(async () => {
  await env?.close();
});

const FAULTS: FaultKind[] = ['latency', 'slowdown', 'internal-error', 'reset', 'truncate', 'stall'];
const MODES: FaultMode[] = ['probability', 'schedule'];

describe('transient faults: the epoch is exactly the plan, intact, with bounded retries', () => {
  for (const fault of FAULTS) {
    for (const mode of MODES) {
      test(`${fault} by ${mode}`, async () => {
        const r = await runFaultCase(env, { fault, mode, probability: 0.15 });
        assert.ok(r.injected > 0, 'the fault was injected');
        assert.ok(epochClean(r.check), JSON.stringify(r.check));
        assert.ok(r.check.planned > 0);
        assert.equal(r.scores.lost, 0, r.scores.examples.join('; '));
        assert.equal(r.scores.acknowledged, r.check.planned, 'every delivered sample was scored');
        assert.ok(r.maxAttempt <= r.maxAttemptsAllowed, `a range took ${r.maxAttempt} attempts`);
        // Latency is not a failure: it may only run past the reader's idle
        // timer when the proxy and the S3 server queue on a busy machine, so
        // every retry it causes must be an idle timeout. Every other injected
        // fault is retried by the range reader (each non-idle retry answers
        // one injected fault); a range that fails all its attempts ends the
        // stream with UNAVAILABLE and the SDK reopens it at the cursor.
        const faultRetries = r.retries - r.idleTimeoutRetries;
        if (fault === 'latency') assert.equal(faultRetries, 0, `${r.retries} retries, none idle`);
        else {
          assert.ok(r.retries > 0, `${r.retries} retries, ${r.injected} faults`);
          assert.ok(faultRetries <= r.injected, `${faultRetries} non-idle retries, ${r.injected} faults`);
          assert.ok(
            r.injected - r.retries <= r.reopens,
            'a fault the reader gave up on was reopened by the SDK',
          );
        }
      });
    }
  }
});

describe('a fault that outlasts the retries', () => {
  for (const fault of ['slowdown', 'reset'] as const) {
    test(`${fault} on every GET of one shard: UNAVAILABLE naming it, then a clean resume`, async () => {
      const r = await runPersistentFault(env, fault);
      assert.ok(r.failures.length > 0, 'at least one rank needed the broken shard');
      for (const f of r.failures) {
        assert.equal(f.code, 'SADP_LOADER_RETRIES_EXHAUSTED', f.details);
        assert.equal(f.status, 14 /* UNAVAILABLE */);
        assert.ok(f.details.includes(r.key), `"${f.details}" names ${r.key}`);
      }
      assert.ok(epochClean(r.check), JSON.stringify(r.check));
      assert.equal(r.scores.lost, 0, r.scores.examples.join('; '));
      assert.equal(r.scores.unexpected, 0);
    });
  }
});
