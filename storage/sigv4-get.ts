// SigV4 for the lean GET path: the Authorization of an S3 GET whose only
// signed headers are Host, If-Match, X-Amz-Content-Sha256, X-Amz-Date and the
// session token (Range is not signed, as aws4 and the AWS SDK leave it out).
// A general signer (aws4: ~11 us and five short-lived objects per GET in
// the loader's profile) sorts, trims and re-encodes every header and the
// path each time; here the canonical request is one template per
// (host, region), the path is canonicalised once per object, and the
// signing key is derived once per secret, day and region.
import { createHmac, hash } from 'node:crypto';

export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** SHA-256 of the empty body: a GET has none. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface GetSigner {
  /**
   * The Authorization header of a GET of `path` (URI-encoded, as
   * encodeKeyPath makes it) at `amzDate` (`YYYYMMDDTHHMMSSZ`), pinned to
   * `ifMatch` (the quoted entity-tag sent) when given.
   */
  authorization(path: string, creds: SigningCredentials, amzDate: string, ifMatch?: string): string;
}

/** Paths whose canonical form is kept (a dataset's shards; beyond this the cache starts over). */
const PATH_CACHE = 16_384;

const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();

/** RFC 3986 encoding of one path piece, as SigV4 canonicalises it. */
function encodePiece(piece: string): string {
  return encodeURIComponent(piece).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * S3's canonical URI as aws4 makes it: each piece decoded once and
 * re-encoded, an encoded slash kept as a slash, no `.`/`..` normalisation.
 */
export function canonicalS3Path(path: string): string {
  if (path === '' || path === '/') return '/';
  const out = path
    .split('/')
    .map((piece) => encodePiece(decodeURIComponent(piece.replace(/\+/g, ' '))))
    .join('/');
  return (out.startsWith('/') ? out : `/${out}`).replace(/%2F/g, '/');
}

/** Header values are trimmed and runs of whitespace collapsed (SigV4 canonical headers). */
function canonicalValue(value: string): string {
  return /\s/.test(value) ? value.trim().replace(/\s+/g, ' ') : value;
}

export function createGetSigner(host: string, region: string): GetSigner {
  const canonicalHost = `host:${canonicalValue(host)}\n`;
  const paths = new Map<string, string>();
  // The derived key of the last (secret, day): credentials rotate hours apart, days change once a day.
  let keySecret = '';
  let keyDay = '';
  let key: Buffer = Buffer.alloc(0);
  return {
    authorization(path, creds, amzDate, ifMatch) {
      let canonicalPath = paths.get(path);
      if (canonicalPath === undefined) {
        canonicalPath = canonicalS3Path(path);
        if (paths.size >= PATH_CACHE) paths.clear();
        paths.set(path, canonicalPath);
      }
      const day = amzDate.slice(0, 8);
      if (creds.secretAccessKey !== keySecret || day !== keyDay) {
        key = hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, day), region), 's3'), 'aws4_request');
        keySecret = creds.secretAccessKey;
        keyDay = day;
      }
      const token = creds.sessionToken;
      let canonicalHeaders = canonicalHost;
      let signedHeaders = 'host';
      if (ifMatch !== undefined) {
        canonicalHeaders += `if-match:${canonicalValue(ifMatch)}\n`;
        signedHeaders += ';if-match';
      }
      canonicalHeaders += `x-amz-content-sha256:${EMPTY_SHA256}\nx-amz-date:${amzDate}\n`;
      signedHeaders += ';x-amz-content-sha256;x-amz-date';
      if (token) {
        canonicalHeaders += `x-amz-security-token:${canonicalValue(token)}\n`;
        signedHeaders += ';x-amz-security-token';
      }
      const canonical = `GET\n${canonicalPath}\n\n${canonicalHeaders}\n${signedHeaders}\n${EMPTY_SHA256}`;
      const scope = `${day}/${region}/s3/aws4_request`;
      const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${hash('sha256', canonical, 'hex')}`;
      const signature = createHmac('sha256', key).update(toSign).digest('hex');
      return `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    },
  };
}
