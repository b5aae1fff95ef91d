// Writes a batch's messages to a StreamEpoch call in order, honouring the
// call's backpressure: after a write() that returns false it waits for
// 'drain' (or the stream's abort: a cancelled call never drains), then waits
// for the last message to flush. The call's own buffer is the bound.
// `onWritten` hears each message whose write completed (its bytes are on
// the socket), never one that failed.
import type { Writable } from 'node:stream';
import { cancelledError, raceSignal, waitForEvent } from '../../../common/signals.js';

export async function writeInOrder<T>(
  call: Writable,
  messages: readonly T[],
  signal: AbortSignal,
  onWritten?: (message: T) => void,
): Promise<void> {
  let flushed: Promise<void> = Promise.resolve();
  for (let i = 0; i < messages.length; i++) {
    let needDrain = false;
    flushed = new Promise<void>((resolve, reject) => {
      const message = messages[i] as T;
      const ok = call.write(message, (err: Error | null | undefined) => {
        if (err) return reject(err);
        onWritten?.(message);
        resolve();
      });
      if (!ok && i < messages.length - 1) needDrain = true;
    });
    flushed.catch(() => undefined);
    if (needDrain && !(await waitForEvent(call, 'drain', { signal }))) {
      throw cancelledError(signal, 'stream write');
    }
  }
  // The write callback never fires on a cancelled call: race it against the abort.
  await raceSignal(flushed, signal, 'stream write');
}
