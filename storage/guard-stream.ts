// Wraps a body stream (S3 GetObject Body, fs read stream) so its consumer sees
// SadpErrors only, a short body is an error rather than a silent EOF, and
// destroying the wrapper always destroys the source (an undrained S3 body
// holds its socket forever).
import { Readable } from 'node:stream';

export interface GuardOptions {
  /** Maps a source error onto a SadpError. */
  mapError: (err: unknown) => Error;
  /** Bytes the source must deliver; fewer -> `short(got)`. */
  expectedBytes?: number;
  short?: (got: number) => Error;
}

/** Bound: the wrapper buffers at most 64 KiB above what the source buffers. */
export function guardStream(src: Readable, options: GuardOptions): Readable {
  async function* pump(): AsyncGenerator<Buffer> {
    let got = 0;
    try {
      for await (const chunk of src as AsyncIterable<Buffer>) {
        got += chunk.length;
        yield chunk;
      }
    } catch (err) {
      throw options.mapError(err);
    } finally {
      src.destroy();
    }
    if (options.expectedBytes !== undefined && got !== options.expectedBytes && options.short) {
      throw options.short(got);
    }
  }
  const out = Readable.from(pump(), { objectMode: false, highWaterMark: 64 * 1024 });
  // The generator only sees `return()` once it reaches a `yield`; a stalled
  // source would never get there, so destroy it directly too.
  out.once('close', () => src.destroy());
  return out;
}
