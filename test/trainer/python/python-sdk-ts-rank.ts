// One TypeScript trainer rank for the Python SDK tests: streams one epoch
// with the TypeScript SDK and prints, as one JSON line, the ids and padding
// flags it received. Usage: node python-sdk-ts-rank.js '<json request>'
// with {address, token, job, epoch, rank, worldSize, batchSize}.
import { createLoaderClient } from '../../../trainer/index.js';

interface Request {
  address: string;
  token?: string;
  job: string;
  epoch: number;
  rank: number;
  worldSize: number;
  batchSize: number;
}

const req = JSON.parse(process.argv[2] ?? '{}') as Request;
const loader = createLoaderClient({ address: req.address, token: req.token });
const ids: number[] = [];
const padded: boolean[] = [];
let steps = 0;
try {
  const stream = loader.epoch({
    job: req.job,
    epoch: req.epoch,
    rank: req.rank,
    worldSize: req.worldSize,
    batchSize: req.batchSize,
  });
  for await (const batch of stream) {
    for (let j = 0; j < batch.size; j++) {
      ids.push(batch.ids[j]!);
      padded.push(batch.padded[j] === 1);
    }
    steps++;
    await batch.ack();
  }
  process.stdout.write(`${JSON.stringify({ ids, padded, steps, planDigest: stream.info?.planDigest })}\n`);
} finally {
  loader.close();
}
