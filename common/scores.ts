// The one rule for per-example scores and losses, wherever they enter: the
// trainer SDK before an ack leaves, the loader when an ack arrives, the
// scorer when a report arrives and its math before a plan. A value is valid
// when it is a finite number >= 0 (NaN fails); every layer rejects the rest
// with SADP_SCORE_INVALID (INVALID_ARGUMENT). The Python SDK raises the same code.
import { SadpError, Status } from './errors.js';

/** Finite and >= 0; written so that NaN fails. */
export function isValidScore(value: number): boolean {
  return value >= 0 && value <= Number.MAX_VALUE;
}

/** `subject` names the value and its value, e.g. `ack ...: scores[3] = NaN (id 42)`. */
export function invalidScore(subject: string): SadpError {
  return new SadpError('SADP_SCORE_INVALID', `${subject} must be a finite number >= 0`, {
    status: Status.INVALID_ARGUMENT,
  });
}
