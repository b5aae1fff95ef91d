// Shard layouts for the planner tests: samples laid end to end, as in a tar.
import type { SampleLayout } from '../../../loader/fetch/index.js';

/** Contiguous samples of the given sizes, one array of sizes per shard. */
export function layoutOf(shards: number[][]): SampleLayout & { size: number } {
  const offsets: number[] = [];
  const ends: number[] = [];
  const shardIds: number[] = [];
  shards.forEach((sizes, s) => {
    let pos = 0;
    for (const size of sizes) {
      offsets.push(pos);
      ends.push(pos + size);
      shardIds.push(s);
      pos += size;
    }
  });
  return {
    offsets: Float64Array.from(offsets),
    ends: Float64Array.from(ends),
    shardIds: Uint32Array.from(shardIds),
    size: offsets.length,
  };
}
