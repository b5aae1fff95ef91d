// The loader client's options: the keepalive ping timeout is an option like
// the others, its default unchanged (20 s), a bad value refused naming the
// option, and the value is what the gRPC channel gets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSadpError } from '../../../common/errors.js';
import { createLoaderClient } from '../../../trainer/client/index.js';
import { LOADER_CLIENT_DEFAULTS, resolveClientOptions } from '../../../trainer/client/options.js';

const address = '127.0.0.1:50052';

test('keepaliveTimeoutMs defaults to 20 s and reaches the channel options with the ping interval', () => {
  assert.equal(LOADER_CLIENT_DEFAULTS.keepaliveTimeoutMs, 20_000);
  const defaults = resolveClientOptions({ address });
  assert.equal(defaults.channelOptions['grpc.keepalive_timeout_ms'], 20_000);
  assert.equal(defaults.channelOptions['grpc.keepalive_time_ms'], 30_000);
  const set = resolveClientOptions({ address, keepaliveTimeMs: 15_000, keepaliveTimeoutMs: 4_500 });
  assert.equal(set.channelOptions['grpc.keepalive_timeout_ms'], 4_500);
  assert.equal(set.channelOptions['grpc.keepalive_time_ms'], 15_000);
});

test('an invalid keepaliveTimeoutMs is refused with SADP_INVALID_OPTION naming it', () => {
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(
      () => createLoaderClient({ address, keepaliveTimeoutMs: bad }),
      (err: unknown) => {
        assert.ok(isSadpError(err, 'SADP_INVALID_OPTION'), String(err));
        assert.match(
          err.message,
          new RegExp(`option keepaliveTimeoutMs must be a positive number, got ${bad}`),
        );
        return true;
      },
      `keepaliveTimeoutMs ${bad}`,
    );
  }
});
