// Commander parsers for numeric flags. Each rejects an empty value and
// anything that is not a number of the right kind, naming the flag, so a
// typo fails while the command line is parsed rather than deep in a run.
// InvalidArgumentError makes commander print one clean line and exit 1.
import { InvalidArgumentError } from 'commander';

/** An integer flag in [min, max]; by default any non-negative safe integer. */
export function intArg(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  const expected =
    max < Number.MAX_SAFE_INTEGER
      ? `an integer in ${min}..${max}`
      : min === 0
        ? 'a non-negative integer'
        : `an integer >= ${min}`;
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be ${expected}, got ${value}`);
    }
    return n;
  };
}

/** A finite number flag, at least `min` when one is given. */
export function numArg(name: string, min = -Infinity): (value: string) => number {
  const expected = min === -Infinity ? 'a number' : `a number >= ${min}`;
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be ${expected}, got ${value}`);
    }
    return n;
  };
}
