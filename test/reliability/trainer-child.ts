// A trainer process for the kill -9 tests: one rank of one epoch through the
// client SDK, the way docs/client.md says to checkpoint. Every batch is
// "trained on" (its ids printed as a JSON line, synchronously: stdout is a
// pipe), acked with its scores, and every `--every` batches a checkpoint
// (cursor, committed index, scores not yet confirmed durable) replaces the
// previous one atomically. Started again with the same checkpoint file it
// resumes there: cursor and resent scores. A SIGKILL can land anywhere.
//
//   node trainer-child.js --loader H:P --job J --epoch E --world W --rank R
//     --batch B --checkpoint FILE --every N [--kill-at K]
// --kill-at K: SIGKILLs itself right after printing its K-th batch (stdout
// to a pipe is synchronous on Linux, so that line is out and nothing after
// it happened: no ack, no checkpoint). A kill sent by the parent when it
// reads line K would race with the batches the child prints meanwhile.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLoaderClient } from '../../trainer/client/index.js';
import { scoreFor } from './stack.js';

interface Checkpoint {
  cursor: number;
  committedThrough: number;
  pending: Array<{ index: number; ids: number[]; scores: number[] | undefined }>;
}

const { values } = parseArgs({
  options: {
    loader: { type: 'string' },
    job: { type: 'string' },
    epoch: { type: 'string' },
    world: { type: 'string' },
    rank: { type: 'string' },
    batch: { type: 'string' },
    checkpoint: { type: 'string' },
    every: { type: 'string' },
    'kill-at': { type: 'string' },
  },
});
const num = (v: string | undefined): number => Number(v ?? NaN);
const file = values.checkpoint ?? '';
const epoch = num(values.epoch);
const every = num(values.every);
const killAt = values['kill-at'] === undefined ? undefined : num(values['kill-at']);
const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};

const resumed: Checkpoint | undefined = existsSync(file)
  ? (JSON.parse(readFileSync(file, 'utf8')) as Checkpoint)
  : undefined;
const client = createLoaderClient({ address: values.loader ?? '' });
const stream = client.epoch({
  job: values.job ?? '',
  epoch,
  rank: num(values.rank),
  worldSize: num(values.world),
  batchSize: num(values.batch),
  cursor: resumed?.cursor ?? 0,
  resendAcks: (resumed?.pending ?? []).map((a) => ({
    index: a.index,
    ids: Uint32Array.from(a.ids),
    scores: a.scores ? Float64Array.from(a.scores) : undefined,
    losses: undefined,
  })),
});
emit({ event: 'start', cursor: resumed?.cursor ?? 0, resent: resumed?.pending.length ?? 0 });
let sinceCheckpoint = 0;
let printed = 0;
for await (const batch of stream) {
  const ids: number[] = [];
  for (let j = 0; j < batch.size; j++) if (!batch.padded[j]) ids.push(batch.ids[j] as number);
  emit({ event: 'batch', index: batch.index, ids });
  if (++printed === killAt) process.kill(process.pid, 'SIGKILL');
  const scores = Float64Array.from(batch.ids, (id) => scoreFor(id, epoch));
  await batch.ack({ scores });
  if (++sinceCheckpoint >= every) {
    sinceCheckpoint = 0;
    const cp: Checkpoint = {
      cursor: stream.cursor,
      committedThrough: stream.committedThrough,
      pending: stream.pendingAcks().map((a) => ({
        index: a.index,
        ids: [...a.ids],
        scores: a.scores ? [...a.scores] : undefined,
      })),
    };
    writeFileSync(`${file}.tmp`, JSON.stringify(cp));
    renameSync(`${file}.tmp`, file);
    emit({ event: 'checkpoint', cursor: cp.cursor });
  }
}
emit({ event: 'done', cursor: stream.cursor });
client.close();
