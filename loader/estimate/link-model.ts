// What storage costs in time and money, per request and per byte. Presets
// are approximate public list figures (us-east-1, late 2026): check your
// region and contract, and override any field.
import { CPU_PER_BYTE_US, CPU_PER_REQUEST_US, type ReadCostModel } from '../fetch/index.js';

export interface LinkModel {
  /** Time to first byte of one GET. */
  latencyMs: number;
  /** Aggregate body bandwidth the loaders get from storage, bytes/s. */
  bandwidthBytesPerSecond: number;
  /** Dollars per 1,000 GET requests. */
  getPricePer1000: number;
  /** Dollars per GB (1e9 bytes) transferred out; 0 within a region. */
  egressPricePerGB: number;
  /** Dollars per GB retrieved (S3 Express charges bytes beyond 512 KB per request). */
  retrievalPricePerGB: number;
  /** Sustained GETs/s per prefix before throttling (SlowDown). */
  getRatePerPrefix: number;
}

export const LINK_PRESETS = {
  's3-standard': {
    latencyMs: 30,
    bandwidthBytesPerSecond: 1.25e9, // one 10 Gbit/s NIC
    getPricePer1000: 0.0004,
    egressPricePerGB: 0,
    retrievalPricePerGB: 0,
    getRatePerPrefix: 5_500,
  },
  's3-express-one-zone': {
    latencyMs: 5,
    bandwidthBytesPerSecond: 1.25e9,
    getPricePer1000: 0.00003,
    egressPricePerGB: 0,
    retrievalPricePerGB: 0.0006,
    getRatePerPrefix: 200_000, // a directory bucket scales per bucket, not per prefix
  },
} as const satisfies Record<string, LinkModel>;

export type LinkPreset = keyof typeof LINK_PRESETS;

/**
 * The read planner's cost model on this link, as the loader's cost estimator
 * converges to it: the loader's CPU per GET and per byte, the link's
 * first-byte latency overlapping across `concurrency` GETs in flight, and a
 * byte at the loader's share of the bandwidth.
 */
export function linkReadCost(link: LinkModel, loaders: number, concurrency: number): ReadCostModel {
  return {
    perRequestUs: CPU_PER_REQUEST_US,
    perByteUs: CPU_PER_BYTE_US,
    latencyUs: link.latencyMs * 1000,
    concurrency,
    linkPerByteUs: (1e6 * loaders) / link.bandwidthBytesPerSecond,
  };
}
