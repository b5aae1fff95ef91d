// Reusable memory for fetched ranges. Every range GET on the calling thread
// used to get a fresh buffer (110 KB per ImageNet sample), and allocating
// that much external memory drives V8 into a full GC every few tens of MB
// (the loader's profile: GC ~13 %, buffer allocation ~4 %). Each read()
// takes ranges from its own arena of 1 MiB slabs (a larger range gets its
// own buffer); a caller that is done with the samples' bytes hands them
// back with recycle() and their slabs serve later reads. A caller that
// never recycles just leaves the slabs to the GC.
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
}

export const SLAB_BYTES = 1024 * 1024;

export function createSlabPool(maxFree: number, slabBytes = SLAB_BYTES): SlabPool {
  const pooled = new WeakSet<ArrayBuffer>();
  const free: ArrayBuffer[] = [];
  const isFree = new WeakSet<ArrayBuffer>();
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
          if (n > slabBytes) return Buffer.allocUnsafeSlow(n);
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
          if (!pooled.has(slab) || isFree.has(slab) || free.length >= maxFree) continue;
          isFree.add(slab);
          free.push(slab);
        }
      }
    },
    get free() {
      return free.length;
    },
  };
}
