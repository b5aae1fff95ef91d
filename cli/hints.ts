// What to do next, for the failures a first run meets: one `hint:` line the
// CLI prints under the error. The error itself says what and where; the hint
// names the flags and variables that fix it (storage cannot know them).
import { isSadpError } from '../common/errors.js';

function causeCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    if (codes.length > 8) break;
  }
  return codes;
}

export function hintFor(err: unknown): string | undefined {
  if (!isSadpError(err)) return undefined;
  switch (err.code) {
    case 'SADP_STORAGE_NO_CREDENTIALS':
      return (
        'pass --access-key-id and --secret-access-key, set SADP_S3_ACCESS_KEY_ID and SADP_S3_SECRET_ACCESS_KEY ' +
        '(or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE); for the embedded server (sadp s3 serve) both are S3RVER'
      );
    case 'SADP_STORAGE_DENIED':
      return 'check the credentials and that they may read the bucket; --endpoint (SADP_S3_ENDPOINT) picks the server';
    case 'SADP_STORAGE_UNAVAILABLE':
      if (causeCodes(err).some((c) => c === 'ENOTFOUND' || c === 'EAI_AGAIN'))
        return (
          'check --endpoint (SADP_S3_ENDPOINT): without one, requests go to AWS S3; ' +
          'for the embedded server use the endpoint `sadp s3 serve` printed, e.g. http://127.0.0.1:9000'
        );
      return undefined;
    default:
      return undefined;
  }
}

/** The lines the CLI prints for a failed command: `<prefix>error CODE: message` and maybe a hint. */
export function errorLines(prefix: string, err: unknown, message: string): string {
  const code = isSadpError(err) ? err.code : 'SADP_INTERNAL';
  const hint = hintFor(err);
  return `${prefix}error ${code}: ${message}\n${hint === undefined ? '' : `hint: ${hint}\n`}`;
}
