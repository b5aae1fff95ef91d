// The range reader's backoff is the shared one (common/retry) with full
// jitter, so a burst of throttled readers spreads out.
import { backoffDelayMs as sharedBackoffDelayMs } from '../../common/retry.js';

export function backoffDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  return sharedBackoffDelayMs(attempt, { baseMs, maxMs, jitter: 'full', random });
}
