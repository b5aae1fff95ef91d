// The on-storage format contract for WebDataset shards and their indexes.
// Shard writers (`sadp shards build`), the indexer (`sadp shards index`) and
// the range reader (loader/fetch) all agree on exactly these shapes.
//
// Layout under a dataset root:
//   <root>/<prefix>-000000.tar               the shards (plain POSIX tar)
//   <root>/index/<prefix>-000000.idx.json    one ShardIndex per shard
//   <root>/manifest.json                     the DatasetManifest
// Global example ids are dense 0..N-1 in shard order: shard s holds ids
// firstId .. firstId + samples - 1.

/** One tar member of a sample, e.g. `000123.cls`. */
export interface MemberEntry {
  /** Full member path in the tar (after PAX/GNU long-name resolution). */
  name: string;
  /** Extension: the basename after its first dot, e.g. `cls` or `seg.png`. */
  ext: string;
  /** First header of the member, including PAX/GNU extension headers. */
  headerOffset: number;
  /** First byte of the member's data. */
  dataOffset: number;
  /** Data length in bytes (without the padding to 512). */
  size: number;
}

/** One sample: consecutive members sharing a key. */
export interface SampleEntry {
  /** Member path up to the first dot of the basename (dirname kept). */
  key: string;
  /** = members[0].headerOffset. */
  offset: number;
  /** End of the last member's 512-byte padding (exclusive). */
  end: number;
  members: MemberEntry[];
}

export interface ShardIndex {
  format: 'sadp-shard-index';
  version: 1;
  /** Shard key relative to the dataset root, or an absolute URL. */
  shard: string;
  size: number;
  etag: string;
  firstId: number;
  samples: SampleEntry[];
}

export interface ShardEntry {
  /** Key relative to the manifest's directory, or absolute s3:// / file:// URL. */
  url: string;
  size: number;
  etag: string;
  samples: number;
  firstId: number;
  /** Key of its ShardIndex JSON relative to the manifest's directory. */
  index: string;
  /** Sum of sample lengths (end - offset). */
  bytes: number;
}

export interface DatasetManifest {
  format: 'sadp-webdataset';
  version: 1;
  samples: number;
  bytes: number;
  /** Member extensions seen, sorted, e.g. ['cls', 'jpg']. */
  fields: string[];
  shards: ShardEntry[];
  /** What the shards were built or indexed from, e.g. `fashion-mnist:train`. */
  source: string;
  /** ISO 8601. */
  createdAt: string;
}

export const MANIFEST_KEY = 'manifest.json';
export const INDEX_DIR = 'index';
export const TAR_BLOCK = 512;

/** `train-000042.tar` */
export function shardFileName(prefix: string, shard: number): string {
  return `${prefix}-${String(shard).padStart(6, '0')}.tar`;
}

/** Rounds a member size up to the tar block size. */
export function padded(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}
