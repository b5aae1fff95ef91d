// A temp directory with the embedded S3 server (s3rver on 127.0.0.1, port 0)
// storing its objects in it and a client of that server: what most storage,
// shard, fetch and loader tests start from. close() stops and removes all of it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createS3Client,
  s3OptionsForEmbedded,
  startEmbeddedS3,
  type EmbeddedS3,
  type S3Client,
  type S3Options,
} from '../../storage/index.js';

export interface TempS3Options {
  /** Prefix of the temp directory's name, e.g. `sadp-build-`. */
  prefix: string;
  /** Buckets created at start. */
  buckets: string[];
  /** Overrides of the client's options (e.g. `maxAttempts: 1` to see every fault); default the server's own. */
  client?: Partial<S3Options>;
}

export interface TempS3 {
  /** The temp directory; the server's objects live in its `s3/` sub-directory. */
  dir: string;
  s3: EmbeddedS3;
  /** Options that reach the server (without the client overrides). */
  s3Options: S3Options;
  client: S3Client;
  /** Destroys the client, stops the server and removes the directory. */
  close(): Promise<void>;
}

export async function startTempS3(options: TempS3Options): Promise<TempS3> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix));
  let s3: EmbeddedS3;
  try {
    s3 = await startEmbeddedS3({ dataDir: join(dir, 's3'), buckets: options.buckets });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const s3Options = s3OptionsForEmbedded(s3);
  const client = createS3Client({ ...s3Options, ...options.client });
  return {
    dir,
    s3,
    s3Options,
    client,
    async close() {
      client.destroy();
      await s3.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
