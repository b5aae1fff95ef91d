// The test split used for per-epoch accuracy: either Debian's Fashion-MNIST
// idx files, or any dataset built by `sadp shards build` (read whole, shard
// by shard, through the loader's dataset reader and its `cutSample`, which
// checks every member's header against the index; a test split is small).
import { SadpError, Status } from '../../common/errors.js';
import { cutSample, openDataset } from '../../loader/index.js';
import { readFashionMnist } from '../../common/datasets/fashion-mnist.js';
import { decodeImageBatch, type Batch, type EpochInfo } from '../client/index.js';
import type { EvalSource } from './options.js';

export interface EvalSet {
  /** count * pixels values (Uint8Array 0..255, or Float32Array in [0, 1]). */
  inputs: Uint8Array | Float32Array;
  labels: ArrayLike<number>;
  count: number;
  source: string;
}

interface Geometry {
  width: number;
  height: number;
  channels: number;
  classes: number;
}

export async function loadEvalSet(
  source: EvalSource,
  geometry: Geometry,
  limit: number,
  signal?: AbortSignal,
): Promise<EvalSet> {
  const pixels = geometry.width * geometry.height * geometry.channels;
  if (source.kind === 'fashion-mnist') {
    const data = await readFashionMnist('test', source.dir);
    if (data.rows * data.cols !== pixels) {
      throw new SadpError(
        'SADP_EVAL_SHAPE',
        `Fashion-MNIST in ${source.dir} has ${data.rows}x${data.cols} images, the model takes ${pixels} values`,
        { status: Status.INVALID_ARGUMENT },
      );
    }
    const count = Math.min(data.count, limit);
    return {
      inputs: data.pixels.subarray(0, count * pixels),
      labels: data.labels.subarray(0, count),
      count,
      source: `fashion-mnist:test (${source.dir})`,
    };
  }
  const dataset = await openDataset(source.url, { s3: source.s3, signal });
  const count = Math.min(dataset.size, limit);
  const inputs = new Float32Array(count * pixels);
  const labels = new Int32Array(count);
  const info: EpochInfo = {
    jobId: '',
    epoch: 0,
    datasetSize: dataset.size,
    selectedCount: count,
    samplesPerRank: count,
    steps: 1,
    padded: 0,
    pruneRatio: 0,
    expectedSize: count,
    planDigest: '',
    fields: dataset.manifest.fields,
    datasetBytes: dataset.manifest.bytes,
    selectedBytes: 0,
    epochs: 1,
    storageBytesReceived: 0,
  };
  let done = 0;
  for (let s = 0; s < dataset.shardCount && done < count; s++) {
    const index = dataset.shardIndex(s);
    const samples = index.samples.slice(0, count - done);
    if (samples.length === 0) continue;
    const start = samples[0]!.offset;
    const end = samples[samples.length - 1]!.end;
    const shardKey = dataset.shardKey(s);
    // Pinned to the indexed ETag: a shard rewritten since indexing fails instead of cutting wrong bytes.
    const bytes = await dataset.store.get(shardKey, { start, end, ifMatch: index.etag || undefined, signal });
    const fields: Record<string, Uint8Array[]> = {};
    for (const f of dataset.manifest.fields)
      fields[f] = new Array<Uint8Array>(samples.length).fill(new Uint8Array(0));
    samples.forEach((_, j) => {
      const cut = cutSample(bytes, start, index, index.firstId + j, shardKey);
      for (const [ext, data] of Object.entries(cut.fields)) {
        (fields[ext] ??= new Array<Uint8Array>(samples.length).fill(new Uint8Array(0)))[j] = data;
      }
    });
    const batch: Batch = {
      index: s,
      size: samples.length,
      ids: Uint32Array.from(samples, (_, j) => index.firstId + j),
      keys: samples.map((x) => x.key),
      fields,
      weights: new Float32Array(samples.length).fill(1),
      padded: new Uint8Array(samples.length),
      info,
      ack: () => Promise.resolve(),
    };
    decodeImageBatch(batch, {
      ...geometry,
      into: { inputs: inputs.subarray(done * pixels), labels: labels.subarray(done) },
    });
    done += samples.length;
  }
  return { inputs, labels, count: done, source: source.url };
}
