// Structured JSON logs (pino) from one place. Secrets never reach a log line:
// credential and token fields are redacted wherever they appear.
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACTED_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.adminToken',
  '*.*.adminToken',
  '*.loaderToken',
  '*.*.loaderToken',
  '*.scorerToken',
  '*.*.scorerToken',
  '*.authorization',
  'secretAccessKey',
  '*.secretAccessKey',
  '*.*.secretAccessKey',
  'accessKeyId',
  '*.accessKeyId',
  '*.*.accessKeyId',
  'sessionToken',
  '*.sessionToken',
  '*.*.sessionToken',
];

export interface LoggerOptions {
  /** pino level; default `info`, or $SADP_LOG_LEVEL via the config module. */
  level?: string;
  /** Component name added to every line, e.g. `scorer`. */
  name?: string;
  /** Where lines go; default stderr so stdout stays for command output. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      name: options.name,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    (options.destination as pino.DestinationStream | undefined) ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything, for libraries used without one. */
export const silentLogger: Logger = pino({ level: 'silent' });
