// The wire protocol over a real socket: messages survive encode/decode with
// packed arrays intact, and every server exposes health checking and
// reflection for the sadp.v1 services.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { addStandardServices, pb, ScorerClient, ScorerService, SCORER_SERVICE_NAME } from '../proto/index.js';
import { bindLoopback, healthStatus } from './helpers/grpc.js';

test('plan chunks round-trip over a real socket and health reports SERVING', async (t) => {
  const server = new grpc.Server();
  server.addService(ScorerService, {
    createJob: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
    describeJob: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
    reportScores: (
      call: grpc.ServerUnaryCall<InstanceType<typeof pb.ReportScoresRequest>, unknown>,
      cb: grpc.sendUnaryData<InstanceType<typeof pb.ReportScoresResponse>>,
    ) => cb(null, pb.ReportScoresResponse.create({ accepted: call.request.ids.length })),
    getPlan: (call: grpc.ServerWritableStream<InstanceType<typeof pb.GetPlanRequest>, unknown>) => {
      const n = call.request.chunkSize;
      call.write(
        pb.PlanChunk.create({
          epoch: call.request.epoch,
          ids: [...Array(n).keys()],
          weights: Array(n).fill(1.5),
          last: true,
        }),
      );
      call.end();
    },
    getStats: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
  });
  addStandardServices(server, [SCORER_SERVICE_NAME]);
  const port = await bindLoopback(server);
  t.after(() => server.forceShutdown());

  const client = new ScorerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const chunks: InstanceType<typeof pb.PlanChunk>[] = [];
  const stream = client.getPlan(pb.GetPlanRequest.create({ jobId: 'j', epoch: 3, chunkSize: 1000 }));
  for await (const c of stream) chunks.push(c as InstanceType<typeof pb.PlanChunk>);
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0]!.epoch, 3);
  assert.deepEqual(chunks[0]!.ids.slice(0, 3), [0, 1, 2]);
  assert.equal(chunks[0]!.ids.length, 1000);
  assert.equal(chunks[0]!.weights[999], 1.5);

  assert.equal(await healthStatus(`127.0.0.1:${port}`, SCORER_SERVICE_NAME), 'SERVING');
});
