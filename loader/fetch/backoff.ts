// Exponential backoff with full jitter (AWS architecture blog, "Exponential
// Backoff and Jitter"): sleep uniform(0, min(max, base * 2^(attempt-1))).
// Full jitter spreads a burst of throttled readers out instead of letting
// them retry in lockstep against the same prefix.
export function backoffDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}
