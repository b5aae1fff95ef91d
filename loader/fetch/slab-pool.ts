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
//
// Sizing: the free list is bounded by bytes (`maxFreeBytes`, free slabs and
// free large buffers together), not by a count of GETs in flight, so raising
// the reader's concurrency does not raise what the pool holds. A large range
// of n bytes always gets a buffer of exactly footprintBytes(n) (n rounded up
// to whole slabs), fresh or recycled: a window that reserves footprints in
// its byte budget reserves what it really holds (a recycled buffer up to
// twice the span it served used to hold up to 2x what was reserved).
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
  /** Bytes held in free buffers larger than a slab. */
  readonly freeLargeBytes: number;
  /** Bytes held free in all (slabs and large buffers): at most maxFreeBytes. */
  readonly freeBytes: number;
}

export const SLAB_BYTES = 1024 * 1024;
/**
 * Default bound on free memory a pool keeps: 64 MiB, the 64 slabs the pool
 * kept when its bound was one slab per GET in flight (the reader's default
 * concurrency was 64). A window recycles its ranges at once, so one prefetch
 * window's worth of free memory serves the next window without allocating.
 */
export const DEFAULT_SLAB_POOL_BYTES = 64 * SLAB_BYTES;

export interface SlabPoolOptions {
  /** Bound on the bytes of free slabs and free large buffers kept; default DEFAULT_SLAB_POOL_BYTES. */
  maxFreeBytes?: number;
  /** Default SLAB_BYTES (tests use smaller ones). */
  slabBytes?: number;
}

/**
 * What a range of `n` bytes holds in memory: a buffer of its own rounded up to
 * whole slabs when larger than a slab, else its length in a shared slab.
 */
export function footprintBytes(n: number, slabBytes = SLAB_BYTES): number {
  return n > slabBytes ? Math.ceil(n / slabBytes) * slabBytes : n;
}

export function createSlabPool(options: SlabPoolOptions = {}): SlabPool {
  const slabBytes = options.slabBytes ?? SLAB_BYTES;
  const maxFreeBytes = options.maxFreeBytes ?? DEFAULT_SLAB_POOL_BYTES;
  const pooled = new WeakSet<ArrayBuffer>();
  const free: ArrayBuffer[] = [];
  const isFree = new WeakSet<ArrayBuffer>();
  // Free buffers larger than a slab, and their total size.
  const large: ArrayBuffer[] = [];
  let largeBytes = 0;
  const takeLarge = (n: number): ArrayBuffer => {
    // Only a buffer of the size a fresh one would have: the slack stays under one slab.
    const size = footprintBytes(n, slabBytes);
    const at = large.findIndex((b) => b.byteLength === size);
    if (at >= 0) {
      const buf = large.splice(at, 1)[0] as ArrayBuffer;
      largeBytes -= buf.byteLength;
      isFree.delete(buf);
      return buf;
    }
    const fresh = new ArrayBuffer(size);
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
  const freeBytes = (): number => free.length * slabBytes + largeBytes;
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
          if (freeBytes() + slab.byteLength > maxFreeBytes) continue;
          if (slab.byteLength > slabBytes) {
            isFree.add(slab);
            large.push(slab);
            largeBytes += slab.byteLength;
            continue;
          }
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
    get freeBytes() {
      return freeBytes();
    },
  };
}
