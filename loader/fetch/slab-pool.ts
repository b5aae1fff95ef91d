// Reusable memory for fetched ranges. Every range GET on the calling thread
// used to get a fresh buffer (110 KB per ImageNet sample), and allocating
// that much external memory drives V8 into a full GC every few tens of MB
// (the loader's profile: GC ~13 %, buffer allocation ~4 %). Each read()
// takes ranges from its own arena of 1 MiB slabs (a larger range gets its
// own buffer); a caller that is done with the samples' bytes hands them
// back with recycle() and their slabs serve later reads. A caller that
// never recycles just leaves the slabs to the GC. A range larger than a slab
// (a merged span or a whole shard, what the planner picks at low pruning
// rates) gets a buffer of its own, rounded up to whole slabs, and those are
// recycled too: a fresh multi-MB buffer per span kept V8 in back-to-back
// full GCs (external memory pressure) at r = 0.
import type { FetchedSample } from './cut.js';

export interface Arena {
  /** A buffer of exactly `n` bytes, valid until its samples are recycled. */
  alloc(n: number): Buffer;
}

export interface SlabPool {
  arena(): Arena;
  /** The samples' bytes are no longer used: their slabs serve later reads. */
  recycle(samples: readonly FetchedSample[]): void;
  /** Free slabs held. */
  readonly free: number;
  /** Bytes held in free buffers larger than a slab (bounded by maxFree slabs' worth). */
  readonly freeLargeBytes: number;
}

export const SLAB_BYTES = 1024 * 1024;

export function createSlabPool(maxFree: number, slabBytes = SLAB_BYTES): SlabPool {
  const pooled = new WeakSet<ArrayBuffer>();
  const free: ArrayBuffer[] = [];
  const isFree = new WeakSet<ArrayBuffer>();
  // Free buffers larger than a slab, and their total size (at most maxFree slabs' worth).
  const large: ArrayBuffer[] = [];
  let largeBytes = 0;
  const maxLargeBytes = maxFree * slabBytes;
  const takeLarge = (n: number): ArrayBuffer => {
    // Best fit among the few held; one more than twice the size is not worth its waste.
    let best = -1;
    for (let i = 0; i < large.length; i++) {
      const size = (large[i] as ArrayBuffer).byteLength;
      if (size >= n && size <= 2 * n && (best < 0 || size < (large[best] as ArrayBuffer).byteLength))
        best = i;
    }
    if (best >= 0) {
      const buf = large.splice(best, 1)[0] as ArrayBuffer;
      largeBytes -= buf.byteLength;
      isFree.delete(buf);
      return buf;
    }
    const fresh = new ArrayBuffer(Math.ceil(n / slabBytes) * slabBytes);
    pooled.add(fresh);
    return fresh;
  };
  const take = (): ArrayBuffer => {
    const slab = free.pop();
    if (slab) {
      isFree.delete(slab);
      return slab;
    }
    const fresh = new ArrayBuffer(slabBytes);
    pooled.add(fresh);
    return fresh;
  };
  return {
    arena() {
      let slab: ArrayBuffer | undefined;
      let used = 0;
      return {
        alloc(n) {
          if (n > slabBytes) return Buffer.from(takeLarge(n), 0, n);
          if (!slab || used + n > slabBytes) {
            slab = take();
            used = 0;
          }
          const buf = Buffer.from(slab, used, n);
          used += n;
          return buf;
        },
      };
    },
    recycle(samples) {
      for (const s of samples) {
        for (const name in s.fields) {
          const slab = (s.fields[name] as Uint8Array).buffer as ArrayBuffer;
          if (!pooled.has(slab) || isFree.has(slab)) continue;
          if (slab.byteLength > slabBytes) {
            if (largeBytes + slab.byteLength > maxLargeBytes) continue;
            isFree.add(slab);
            large.push(slab);
            largeBytes += slab.byteLength;
            continue;
          }
          if (free.length >= maxFree) continue;
          isFree.add(slab);
          free.push(slab);
        }
      }
    },
    get free() {
      return free.length;
    },
    get freeLargeBytes() {
      return largeBytes;
    },
  };
}
