// BatchPart encode cost, before (protobufjs' generated encoder, what the
// loader used) and after (loader/service/session/batch-encoder.ts), in the same run.
//
//   npm run bench:encode [-- --quick]
//
// One batch of 27 ImageNet-shaped samples (110 KB `jpg` + `cls`) under the
// 3 MiB part cap, encoded repeatedly; client CPU time (process.cpuUsage)
// per sample after a warm-up, alternating the two encoders in rounds so
// machine load hits both alike; and the trainer's decode of the same
// message. Writes bench/results/encode.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../common/paths.js';
import { pb } from '../proto/index.js';
import { planParts } from '../loader/service/session/batch-parts.js';
import { encodeBatchPartResponse } from '../loader/service/session/batch-encoder.js';
import type { FetchedSample } from '../loader/fetch/index.js';

const quick = process.argv.includes('--quick');
const SAMPLES = 27;
const SAMPLE_BYTES = 110 * 1024;
const CAP = 3 * 1024 * 1024;
const ROUNDS = quick ? 4 : 10;
const ITERS = quick ? 40 : 100;

// One fetched range holding every sample, as the reader delivers them (views).
const range = new Uint8Array(SAMPLES * (SAMPLE_BYTES + 1024)).map((_, i) => (i * 131) & 0xff);
const samples: FetchedSample[] = Array.from({ length: SAMPLES }, (_, k) => ({
  id: 1000 + k,
  key: `n01440764/n01440764_${10026 + k}`,
  fields: {
    jpg: range.subarray(k * (SAMPLE_BYTES + 1024), k * (SAMPLE_BYTES + 1024) + SAMPLE_BYTES),
    cls: new Uint8Array([0x34, 0x32]),
  },
  bytes: SAMPLE_BYTES + 1024,
}));
const spec = {
  index: 7,
  ids: Uint32Array.from(samples, (s) => s.id),
  weights: new Float64Array(SAMPLES).fill(1.25),
  padded: new Uint8Array(SAMPLES),
  bytes: 0,
};
const plans = planParts(spec, samples, CAP);
if (plans.length !== 1) throw new Error(`expected one part under the cap, got ${plans.length}`);

const encoders = {
  protobufjs: (): number => {
    let n = 0;
    for (const p of plans) {
      const msg = pb.StreamEpochResponse.create({
        batch: pb.BatchPart.create({
          index: p.index,
          part: p.part,
          parts: p.parts,
          samples: p.samples.map((s) =>
            pb.Sample.create({ id: s.id, key: s.key, fields: s.fields, weight: s.weight, padded: s.padded }),
          ),
        }),
      });
      n += pb.StreamEpochResponse.encode(msg).finish().byteLength;
    }
    return n;
  },
  lean: (): number => {
    let n = 0;
    for (const p of plans) n += encodeBatchPartResponse(p).byteLength;
    return n;
  },
};

function cpuUsPerSample(fn: () => number, iters: number): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < iters; i++) fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / (iters * SAMPLES);
}

for (const fn of Object.values(encoders)) cpuUsPerSample(fn, quick ? 40 : 100); // warm-up
const runs: Record<keyof typeof encoders, number[]> = { protobufjs: [], lean: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of Object.entries(encoders) as [keyof typeof encoders, () => number][]) {
    runs[name].push(cpuUsPerSample(fn, ITERS));
  }
}
// The trainer's side: the generated decoder over the received message (field
// bytes come out as views into it, no copy).
const encoded = plans.map(encodeBatchPartResponse);
const decode = (): number => {
  let n = 0;
  for (const b of encoded) n += pb.StreamEpochResponse.decode(b).batch?.samples?.length ?? 0;
  return n;
};
cpuUsPerSample(decode, ITERS);
const decodeRuns = Array.from({ length: ROUNDS }, () => cpuUsPerSample(decode, ITERS * 4));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const before = median(runs.protobufjs);
const after = median(runs.lean);
const result = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  batch: { samples: SAMPLES, sampleBytes: SAMPLE_BYTES, messageBytes: encoders.lean() },
  cpuUsPerSample: { protobufjs: Math.round(before), lean: Math.round(after) },
  ratio: Math.round((after / before) * 1000) / 1000,
  decodeCpuUsPerSample: Math.round(median(decodeRuns) * 10) / 10,
  rounds: runs,
};
process.stdout.write(
  `encode one ${SAMPLES}-sample BatchPart (${(result.batch.messageBytes / 1048576).toFixed(2)} MiB), CPU us per sample: ` +
    `protobufjs ${result.cpuUsPerSample.protobufjs}, lean ${result.cpuUsPerSample.lean} (ratio ${result.ratio}); ` +
    `trainer decode ${result.decodeCpuUsPerSample}\n`,
);
const out = join(packageRoot, 'bench/results', quick ? 'encode-quick.json' : 'encode.json');
await mkdir(join(packageRoot, 'bench/results'), { recursive: true });
await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
