// Batch parts written as deferred bytes (selfEncodingPart) through a real
// grpc-js server and client over a loopback socket: every message arrives
// byte-identical to the eager encoding, whatever its size (one HTTP/2 frame,
// many, several MB) and however many are written back to back without
// waiting. This is the guard on the grpc-js behaviour the encoder relies on:
// this project's patch of grpc-js (patches/) sends a part's own frame, taken
// from a pool and recycled once written, and unpatched grpc-js reads
// byteLength and calls copy() into a frame of its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LoaderService } from '../../../../proto/index.js';
import {
  encodeBatchPartResponse,
  freeFrameBytesHeld,
  freeFrameCount,
  selfEncodingPart,
  type PartPlan,
} from '../../../../loader/service/session/batch-encoder.js';
import { writeInOrder } from '../../../../loader/service/session/call-writer.js';
import { ENCODE_SELF, GRPC_FRAMED } from '../../../../proto/index.js';

import { bindLoopback } from '../../../helpers/grpc.js';
import { mulberry32 } from '../../../helpers/random.js';

function plans(seed = 5): PartPlan[] {
  const random = mulberry32(seed);
  const sizes = [0, 1, 100, 16_379, 16_384, 70_000, 110_000, 3_000_000];
  return sizes.map((size, i) => ({
    index: i + 1,
    part: i % 3,
    parts: 3,
    samples: Array.from({ length: 1 + (i % 4) }, (_, j) => {
      const bytes = Buffer.alloc(Math.max(0, size - j * 7));
      for (let k = 0; k < bytes.length; k += 997) bytes[k] = Math.floor(random() * 256);
      return {
        id: 1 + i * 10 + j,
        key: j === 0 ? `sample-${i}-ü` : '',
        fields: { jpg: bytes, cls: Buffer.from(String(i)) },
        weight: j === 0 ? 1.5 : 0,
        padded: j === 2,
        continued: j === 3,
      };
    }),
  }));
}

/** Serves `streamEpoch` on a real loopback server and returns every message a real client received. */
async function streamThrough(
  streamEpoch: (call: grpc.ServerDuplexStream<unknown, unknown>) => void,
): Promise<Buffer[]> {
  const server = new grpc.Server();
  server.addService(LoaderService, {
    streamEpoch,
    describeEpoch: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb({ code: grpc.status.UNIMPLEMENTED }),
  });
  const port = await bindLoopback(server);
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  try {
    const received: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.makeBidiStreamRequest(
        LoaderService.streamEpoch.path,
        (b: Buffer) => b,
        (b: Buffer) => Buffer.from(b),
      );
      call.on('data', (b: Buffer) => received.push(b));
      call.on('error', reject);
      call.on('end', resolve);
      call.end();
    });
    return received;
  } finally {
    client.close();
    server.forceShutdown();
  }
}

test('deferred batch parts arrive byte-identical to the eager encoding over a real gRPC stream', async () => {
  const parts = plans();
  const received = await streamThrough((call) => {
    // All written at once: each is encoded when grpc-js serializes it.
    for (const p of parts) call.write(selfEncodingPart(p));
    call.end();
  });
  assert.equal(received.length, parts.length);
  received.forEach((bytes, i) => {
    const want = encodeBatchPartResponse(parts[i] as PartPlan);
    assert.equal(bytes.byteLength, want.byteLength, `message ${i} length`);
    assert.equal(Buffer.compare(bytes, want), 0, `message ${i} bytes`);
  });
});

test("framed parts are recycled once written and reused frames still carry each part's own bytes", async () => {
  // Three rounds of the same sizes, different bytes: later rounds reuse the frames of earlier ones.
  const rounds = [plans(21), plans(22), plans(23)];
  let framedCalls = 0;
  const freeBefore = freeFrameCount();
  const received = await streamThrough((call) => {
    void (async () => {
      const signal = new AbortController().signal;
      for (const round of rounds) {
        const parts = round.map((p) => {
          const w = selfEncodingPart(p);
          const encode = w[ENCODE_SELF].bind(w);
          w[ENCODE_SELF] = () => {
            const bytes = encode();
            const framed = (bytes as { [GRPC_FRAMED]?: () => Buffer })[GRPC_FRAMED];
            if (typeof framed === 'function') {
              return Object.assign(bytes, {
                [GRPC_FRAMED]: () => {
                  framedCalls++;
                  return framed.call(bytes);
                },
              });
            }
            return bytes;
          };
          return w;
        });
        await writeInOrder(call, parts, signal, (p) => p.written());
      }
      call.end();
    })();
  });
  const all = rounds.flat();
  assert.equal(received.length, all.length);
  received.forEach((bytes, i) => {
    assert.equal(Buffer.compare(bytes, encodeBatchPartResponse(all[i] as PartPlan)), 0, `message ${i} bytes`);
  });
  // Every part went out as its own frame (the grpc-js patch is applied) and frames came back to the pool.
  assert.equal(framedCalls, all.length);
  assert.ok(freeFrameCount() > 0, `free frames ${freeFrameCount()} (before ${freeBefore})`);
  assert.ok(freeFrameBytesHeld() <= 32 * 1024 * 1024, `free frame bytes ${freeFrameBytesHeld()}`);
});

test('a frame larger than the free frames may hold is sent and not kept', async () => {
  const random = mulberry32(31);
  const bytes = Buffer.alloc(40 * 1024 * 1024);
  for (let k = 0; k < bytes.length; k += 4093) bytes[k] = Math.floor(random() * 256);
  const part: PartPlan = {
    index: 1,
    part: 0,
    parts: 1,
    samples: [{ id: 7, key: 'big', fields: { bin: bytes }, weight: 1, padded: false, continued: false }],
  };
  const heldBefore = freeFrameBytesHeld();
  const received = await streamThrough((call) => {
    const w = selfEncodingPart(part);
    void writeInOrder(call, [w], new AbortController().signal, (p) => p.written()).then(() => call.end());
  });
  assert.equal(received.length, 1);
  assert.equal(Buffer.compare(received[0] as Buffer, encodeBatchPartResponse(part)), 0);
  assert.equal(freeFrameBytesHeld(), heldBefore, 'the 40 MB frame went back to the GC, not the pool');
});
