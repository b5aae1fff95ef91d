// Sample layouts to estimate on: a real dataset (its indexes), or N samples
// of a lognormal size distribution laid out as the shard writer lays them.
import { padded, syntheticSampleSize, TAR_BLOCK, type Dataset } from '../shards/index.js';
import type { DatasetLayout } from './estimate.js';

/** The layout of an opened dataset: its sample ranges and shard object sizes. */
export function layoutOfDataset(dataset: Dataset): DatasetLayout {
  const shardBytes = new Float64Array(dataset.shardCount);
  for (let s = 0; s < dataset.shardCount; s++) shardBytes[s] = dataset.manifest.shards[s]!.size;
  return {
    size: dataset.size,
    offsets: dataset.offsets,
    ends: dataset.ends,
    shardIds: dataset.shardIds,
    shardBytes,
  };
}

/**
 * N samples of `meanBytes` on average (lognormal, sigma as the synthetic
 * source draws them), each a `.cls` and a data member as `sadp shards build`
 * writes them, in shards closed before they pass `shardBytes`.
 */
export function syntheticLayout(options: {
  samples: number;
  meanBytes: number;
  sigma?: number;
  shardBytes: number;
  seed?: number;
}): DatasetLayout {
  const n = options.samples;
  const offsets = new Float64Array(n);
  const ends = new Float64Array(n);
  const shardIds = new Uint32Array(n);
  const shards: number[] = [];
  let shard = 0;
  let pos = 0;
  for (let id = 0; id < n; id++) {
    const size = syntheticSampleSize(id, {
      meanBytes: options.meanBytes,
      seed: options.seed ?? 0,
      ...(options.sigma === undefined ? {} : { sigma: options.sigma }),
    });
    // .cls: header + one block; data: header + padded payload.
    const bytes = TAR_BLOCK * 3 + padded(size);
    if (pos > 0 && pos + bytes > options.shardBytes) {
      shards.push(pos + 2 * TAR_BLOCK);
      shard++;
      pos = 0;
    }
    offsets[id] = pos;
    ends[id] = pos + bytes;
    shardIds[id] = shard;
    pos += bytes;
  }
  if (pos > 0) shards.push(pos + 2 * TAR_BLOCK);
  return { size: n, offsets, ends, shardIds, shardBytes: Float64Array.from(shards) };
}
