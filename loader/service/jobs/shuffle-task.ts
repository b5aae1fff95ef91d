// What the shuffle worker needs: the shuffle's input with shard membership
// as plain data (the first id of each shard) instead of a function.
import type { ShuffleInput } from './epoch-layout.js';

export interface ShuffleTask extends Omit<ShuffleInput, 'shardOf'> {
  /** First id of each shard, ascending: shard s holds ids [shardStarts[s], shardStarts[s + 1]). */
  shardStarts: Uint32Array;
}

/** Shard of `id`: the last shard starting at or before it (empty shards share a start with the next). */
export function shardOfStarts(starts: Uint32Array): (id: number) => number {
  return (id) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((starts[mid] as number) <= id) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
}
