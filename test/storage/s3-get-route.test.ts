// The lean GET path's socket pool takes the S3 client's own bound
// (s3.maxSockets), as the SDK's requests do, not a default of its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createS3Client, S3_DEFAULTS } from '../../storage/s3-client.js';
import { resolveGetRoute } from '../../storage/s3-get-route.js';

const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };

test("the GET path's pool opens at most the client's maxSockets sockets (default S3_DEFAULTS.maxSockets)", async () => {
  for (const [maxSockets, want] of [
    [7, 7],
    [1024, 1024],
    [undefined, S3_DEFAULTS.maxSockets],
  ] as const) {
    const client = createS3Client({
      endpoint: 'http://127.0.0.1:9',
      ...creds,
      ...(maxSockets === undefined ? {} : { maxSockets }),
    });
    const route = await resolveGetRoute(client, 'bucket');
    assert.ok(route, 'a custom endpoint takes the lean path');
    assert.equal(route.getter.connections, want, `maxSockets ${String(maxSockets)}`);
    assert.equal(route.base, '/bucket');
    await route.getter.close();
    client.destroy();
  }
});
