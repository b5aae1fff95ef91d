// kill -9 mid-epoch, CI subset: one seeded run per target (loader, scorer,
// embedded S3, loader and scorer together), the kill counted in batches
// yielded for some and in acks written for the others (never a wall-clock
// sleep), each a three-epoch SADP job with four ranks on the client
// SDK, services as real child processes restarted on the same port and
// state. Each epoch delivers exactly its plan, each plan is the one the
// acknowledged scores determine, and every acknowledged score is durable,
// also when read back after the scorer shut down.
// `npm run reliability:kill` runs >= 20 seeded runs per target.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KILL_TARGETS,
  assertExactlyThePlan,
  runKillScenario,
  type KillMoment,
  startKillEnv,
  verifyAfterStop,
  type KillEnv,
  type RunRecord,
} from './kill-scenario.js';

let env: KillEnv;
const records: RunRecord[] = [];

before(async () => {
  env = await startKillEnv();
});
after(async () => {
  await env?.stop();
  await env?.remove();
});

KILL_TARGETS.forEach((target, i) => {
  const moment: KillMoment = i % 2 === 0 ? 'batch' : 'ack';
  test(`kill -9 of the ${target} mid-epoch at the n-th ${moment}: exactly the plan, no score lost`, async () => {
    const { result, record } = await runKillScenario(env, { target, seed: 1, moment });
    records.push(record);
    const fired = result.kills.filter((k) => k.restartMs !== undefined);
    assert.equal(fired.length, 1, 'the service was killed and restarted');
    assert.equal(fired[0]?.moment, moment);
    assertExactlyThePlan(result);
  });
});

test('after a clean scorer shutdown the state store holds every acknowledged score of every run', async () => {
  assert.equal(records.length, KILL_TARGETS.length);
  await env.stop();
  for (const check of await verifyAfterStop(env, records)) {
    assert.ok(check.acknowledged > 0);
    assert.equal(check.lost, 0, check.examples.join('; '));
  }
});
