// Shared fixtures for the range-reader tests: small datasets written by the
// real shard writer (to a local directory and to the embedded S3), and an
// independent oracle that reads each shard whole and parses it with
// tar-stream's extract.
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  buildShards,
  openDataset,
  splitMemberName,
  type Dataset,
  type Sample,
  type SampleSource,
} from '../../../loader/shards/index.js';
import {
  createS3Client,
  s3OptionsForEmbedded,
  type EmbeddedS3,
  type S3Client,
} from '../../../storage/index.js';
import type { FetchedSample } from '../../../loader/fetch/index.js';
import { mulberry32 } from '../../helpers/random.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/s3-fault-proxy.js';
import { startTempS3 } from '../../helpers/temp-s3.js';
import { tarMembers } from '../../helpers/tar.js';

/**
 * Samples of mixed shape: keys in sub-directories and longer than a ustar
 * name (PAX headers), multi-dot extensions, empty and multi-block members.
 */
export function mixedSource(count: number, seed = 1): SampleSource {
  const samples: Sample[] = [];
  const rand = mulberry32(seed);
  for (let i = 0; i < count; i++) {
    const stem = String(i).padStart(5, '0');
    const key =
      i % 7 === 3
        ? `deep/${'d'.repeat(70)}/${'n'.repeat(60)}_${stem}`
        : i % 5 === 1
          ? `cls${i % 3}/${stem}`
          : stem;
    const members: Sample['members'] = [{ ext: 'cls', data: Buffer.from(String(i % 10)) }];
    const size = rand() < 0.1 ? 0 : Math.floor(rand() * 6000);
    members.push({ ext: 'bin', data: randomBytes(size) });
    if (i % 4 === 2) members.push({ ext: 'seg.png', data: randomBytes(Math.floor(rand() * 1500)) });
    samples.push({ key, members });
  }
  return {
    name: `mixed:${count}`,
    samples: () => Readable.from(samples),
    count: () => Promise.resolve(count),
  };
}

export interface Fixture {
  s3: EmbeddedS3;
  /** Client straight to the embedded S3, SDK retries off. */
  client: S3Client;
  local: Dataset;
  remote: Dataset;
  /** Oracle: every sample of the dataset, from whole-shard sequential reads. */
  reference: Map<number, { key: string; fields: Record<string, Buffer> }>;
  dir: string;
  bucket: string;
  close(): Promise<void>;
}

/** Builds the same dataset into a directory and into a bucket of a fresh embedded S3. */
export async function startFixture(options: {
  samples: number;
  shardBytes: number;
  seed?: number;
}): Promise<Fixture> {
  const bucket = 'fetch';
  const tmp = await startTempS3({ prefix: 'sadp-fetch-', buckets: [bucket], client: { maxAttempts: 1 } });
  const { dir, s3, client } = tmp;
  try {
    const source = mixedSource(options.samples, options.seed);
    await buildShards(source, { out: join(dir, 'local'), shardBytes: options.shardBytes });
    await buildShards(source, { out: `s3://${bucket}/ds`, client, shardBytes: options.shardBytes });
    const local = await openDataset(join(dir, 'local', 'manifest.json'));
    const remote = await openDataset(`s3://${bucket}/ds/manifest.json`, { client });
    const reference = await readWhole(local);
    return { s3, client, local, remote, reference, dir, bucket, close: () => tmp.close() };
  } catch (err) {
    await tmp.close();
    throw err;
  }
}

/** Opens the fixture's S3 dataset through another endpoint (e.g. the fault proxy); the caller destroys the client. */
export async function openRemoteVia(
  fixture: Fixture,
  endpoint: string,
): Promise<{ dataset: Dataset; client: S3Client }> {
  const client = createS3Client({ ...s3OptionsForEmbedded(fixture.s3), endpoint, maxAttempts: 1 });
  const dataset = await openDataset(`s3://${fixture.bucket}/ds/manifest.json`, { client });
  return { dataset, client };
}

/** A fixture read through the fault proxy, whose request log is the storage side's view. */
export interface ProxiedFixture {
  fx: Fixture;
  proxy: FaultProxy;
  remote: { dataset: Dataset; client: S3Client };
}

/** The proxied fixture for this test file: started before its tests, closed after them. */
export function useProxiedFixture(options: Parameters<typeof startFixture>[0]): ProxiedFixture {
  const rig = {} as ProxiedFixture;
  before(async () => {
    rig.fx = await startFixture(options);
    rig.proxy = await startFaultProxy({ target: rig.fx.s3.endpoint });
    rig.remote = await openRemoteVia(rig.fx, rig.proxy.endpoint);
  });
  after(async () => {
    rig.remote?.client.destroy();
    await rig.proxy?.close();
    await rig.fx?.close();
  });
  return rig;
}

/** Every sample of `dataset`, by a full sequential read and parse of each shard. */
export async function readWhole(
  dataset: Dataset,
): Promise<Map<number, { key: string; fields: Record<string, Buffer> }>> {
  const out = new Map<number, { key: string; fields: Record<string, Buffer> }>();
  for (let s = 0; s < dataset.shardCount; s++) {
    const entry = dataset.manifest.shards[s];
    if (!entry) throw new Error(`no shard ${s}`);
    let id = entry.firstId - 1;
    let current: string | undefined;
    for (const m of await tarMembers(await dataset.store.get(dataset.shardKey(s)))) {
      const { key, ext } = splitMemberName(m.name);
      if (key !== current) {
        current = key;
        id++;
        out.set(id, { key, fields: {} });
      }
      (out.get(id) as { fields: Record<string, Buffer> }).fields[ext] = m.data;
    }
  }
  return out;
}

/** Compares delivered samples with the oracle; returns a message for the first difference. */
export function diffSamples(
  ids: ArrayLike<number>,
  got: FetchedSample[],
  reference: Fixture['reference'],
): string | undefined {
  if (got.length !== ids.length) return `got ${got.length} samples for ${ids.length} ids`;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    const g = got[i];
    const want = reference.get(id);
    if (!g || !want) return `sample ${id} missing`;
    if (g.id !== id || g.key !== want.key)
      return `position ${i}: got ${g.id}/${g.key}, want ${id}/${want.key}`;
    const exts = Object.keys(g.fields).sort();
    if (exts.join() !== Object.keys(want.fields).sort().join()) return `sample ${id}: fields ${exts.join()}`;
    for (const ext of exts) {
      if (!Buffer.from(g.fields[ext] as Uint8Array).equals(want.fields[ext] as Buffer))
        return `sample ${id}.${ext} differs`;
    }
  }
  return undefined;
}

/** Ids of the selected samples that are runs of consecutive ids in one shard. */
export function countRuns(dataset: Dataset, ids: number[]): number {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  let runs = 0;
  for (let i = 0; i < sorted.length; i++) {
    const id = sorted[i] as number;
    const prev = sorted[i - 1];
    if (prev === undefined || prev !== id - 1 || dataset.shardIds[prev] !== dataset.shardIds[id]) runs++;
  }
  return runs;
}
