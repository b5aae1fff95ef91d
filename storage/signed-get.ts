// The lean GET path for object reads: one undici Pool per S3 client, SigV4
// headers from a GET signer that caches the derived signing key and the
// canonical paths (./sigv4-get.ts), and a raw dispatch handler that writes
// body chunks straight into the caller's buffer. Per ranged GET this costs
// ~120 us of CPU where a GetObject through the AWS SDK costs ~700-900 us
// (PERF-NOTES.md; bench:get). Credentials still come from the SDK client's
// provider, which resolves the default chain (env, profile, IMDS, IRSA) and
// refreshes expiring session credentials; HEAD, LIST and PUT stay on the SDK.
//
// No timer, stream or listener per GET beyond one abort listener: undici's
// own headers/body timeouts are the idle timer, and errors are mapped here
// onto the SadpError codes of ./errors.ts.
import { Pool, type Dispatcher } from 'undici';
import { SadpError, Status } from '../common/errors.js';
import { onAbort, type AbortListener } from '../common/signals.js';
import { changedError, mapStorageError, rangeError } from './errors.js';
import type { ReadIntoOptions } from './object-store.js';
import { timeoutError } from './read-into.js';
import { createGetSigner, EMPTY_SHA256, type SigningCredentials } from './sigv4-get.js';

export type { SigningCredentials } from './sigv4-get.js';

/** Credentials as the SDK's provider resolves them; `expiration` is set on session credentials. */
export interface ProvidedCredentials extends SigningCredentials {
  expiration?: Date;
}

export interface SignedGetConfig {
  /** `http(s)://host[:port]` of the server. */
  origin: string;
  region: string;
  /**
   * The SDK's provider: it memoizes, and resolves again once credentials are
   * within its refresh window (5 minutes) of expiring. Asked per GET while
   * they are in that window; credentials further from expiry (or without
   * one) are kept without asking, as the provider would return them anyway.
   */
  credentials: () => Promise<ProvidedCredentials>;
  /** Sockets to the origin. */
  connections: number;
  connectTimeoutMs: number;
}

export interface SignedGetter {
  /**
   * GETs [start, end) of the object at `path` (URI-encoded, `/bucket/key` or
   * `/key` on a virtual host) into `dest` from `destOffset`. Resolves with
   * the bytes written when the body completes (fewer than asked when the
   * server ended early); rejects with a SadpError naming `url`.
   */
  getInto(
    path: string,
    url: string,
    dest: Uint8Array,
    destOffset: number,
    options: ReadIntoOptions,
  ): Promise<number>;
  close(): Promise<void>;
  /** Sockets the getter's pool opens to its origin at most. */
  readonly connections: number;
}

/**
 * Credentials are asked for again this long before they expire: the SDK's
 * refresh window (300 s) plus a margin for the clock read between the two.
 */
const CREDENTIALS_REFRESH_MS = 310_000;
/** Error bodies are read for their S3 <Code> only, up to this many bytes. */
const ERROR_BODY_LIMIT = 4096;

/** X-Amz-Date of the current second, formatted once per second rather than per GET. */
let dateSecond = -1;
let dateText = '';
function amzDateNow(): string {
  const ms = Date.now();
  const second = Math.floor(ms / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toISOString().replace(/[:-]|\.\d{3}/g, '');
  }
  return dateText;
}

/** Encodes a key for a URL path the way SigV4 canonicalises it for S3 (RFC 3986, `/` kept). */
export function encodeKeyPath(key: string): string {
  return key
    .split('/')
    .map((piece) =>
      encodeURIComponent(piece).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    )
    .join('/');
}

/**
 * `headers` plus the SigV4 ones (Host, X-Amz-Date, X-Amz-Content-Sha256, the
 * session token, Authorization) for a GET of `path` (URI-encoded); an
 * `If-Match` in `headers` is signed.
 */
export function signGet(
  host: string,
  path: string,
  region: string,
  creds: SigningCredentials,
  headers: Record<string, string>,
  now: Date = new Date(),
): Record<string, string> {
  const amzDate = now.toISOString().replace(/[:-]|\.\d{3}/g, '');
  const signed: Record<string, string> = { ...headers, Host: host };
  signed['X-Amz-Date'] = amzDate;
  signed['X-Amz-Content-Sha256'] = EMPTY_SHA256;
  if (creds.sessionToken) signed['X-Amz-Security-Token'] = creds.sessionToken;
  signed.Authorization = createGetSigner(host, region).authorization(
    path,
    creds,
    amzDate,
    headers['If-Match'],
  );
  return signed;
}

export function createSignedGetter(config: SignedGetConfig): SignedGetter {
  const origin = new URL(config.origin);
  const host = origin.host;
  const pool = new Pool(origin.origin, {
    connections: config.connections,
    connectTimeout: config.connectTimeoutMs,
    // A socket idle for 4 s is closed: servers (S3: ~20 s, nginx: 75 s) close theirs later.
    keepAliveTimeout: 4_000,
  });
  const signer = createGetSigner(host, config.region);
  let creds: ProvidedCredentials | undefined;
  /** Until when `creds` are used without asking the provider. */
  let credsUntilMs = 0;
  const refresh = async (): Promise<ProvidedCredentials> => {
    const fresh = await config.credentials();
    creds = fresh;
    credsUntilMs = fresh.expiration ? fresh.expiration.getTime() - CREDENTIALS_REFRESH_MS : Infinity;
    return fresh;
  };
  const dispatch = (
    c: SigningCredentials,
    path: string,
    url: string,
    dest: Uint8Array,
    destOffset: number,
    options: ReadIntoOptions,
  ): Promise<number> => {
    const { start, end, ifMatch } = options;
    const amzDate = amzDateNow();
    const quoted = ifMatch === undefined ? undefined : `"${ifMatch}"`;
    // undici sends Host from the origin; the signer signs that same value.
    const headers: string[] = [
      'range',
      `bytes=${start}-${end - 1}`,
      'x-amz-date',
      amzDate,
      'x-amz-content-sha256',
      EMPTY_SHA256,
    ];
    if (quoted !== undefined) headers.push('if-match', quoted);
    if (c.sessionToken) headers.push('x-amz-security-token', c.sessionToken);
    headers.push('authorization', signer.authorization(path, c, amzDate, quoted));
    return new Promise<number>((resolve, reject) => {
      const handler = new GetHandler(url, dest, destOffset, options, resolve, reject);
      pool.dispatch(
        {
          origin: origin.origin,
          path,
          method: 'GET',
          headers,
          headersTimeout: options.idleTimeoutMs,
          bodyTimeout: options.idleTimeoutMs,
        },
        handler,
      );
    });
  };
  return {
    connections: config.connections,
    // Not async: on every GET of the loader; the provider is awaited only when credentials need it.
    getInto(path, url, dest, destOffset, options) {
      if (options.signal?.aborted) return Promise.reject(options.signal.reason as Error);
      if (creds !== undefined && Date.now() < credsUntilMs) {
        return dispatch(creds, path, url, dest, destOffset, options);
      }
      return refresh().then((c) => {
        options.signal?.throwIfAborted();
        return dispatch(c, path, url, dest, destOffset, options);
      });
    },
    close: () => pool.close(),
  };
}

/** undici's raw handler: status and headers checked once, body chunks copied into `dest`. */
class GetHandler implements Dispatcher.DispatchHandler {
  private status = 0;
  private written = 0;
  private settled = false;
  private abort: ((err?: Error) => void) | undefined;
  private errorBody: Buffer[] | undefined;
  private errorBytes = 0;
  private stopListening: AbortListener | undefined;

  constructor(
    private readonly url: string,
    private readonly dest: Uint8Array,
    private readonly destOffset: number,
    private readonly options: ReadIntoOptions,
    private readonly resolve: (n: number) => void,
    private readonly reject: (err: unknown) => void,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    const { signal } = this.options;
    if (!signal) return;
    if (signal.aborted) abort(signal.reason as Error);
    else {
      this.stopListening?.(); // one listener per handler, should undici connect it twice
      this.stopListening = onAbort(signal, () => this.abort?.(signal.reason as Error));
    }
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    this.status = statusCode;
    if (statusCode === 206 || statusCode === 200) {
      const bad = this.checkHeaders(statusCode, rawHeaders);
      if (bad) {
        this.fail(bad);
        this.abort?.(bad);
        return false;
      }
    } else {
      this.errorBody = [];
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.errorBody) {
      if (this.errorBytes < ERROR_BODY_LIMIT) this.errorBody.push(chunk);
      this.errorBytes += chunk.length;
      return true;
    }
    const at = this.destOffset + this.written;
    if (chunk.length > this.dest.length - at) {
      const err = new SadpError(
        'SADP_STORAGE_BAD_RANGE',
        `${this.url} bytes [${this.options.start}, ${this.options.end}): server sent more bytes than the range holds`,
        { status: Status.INTERNAL },
      );
      this.fail(err);
      this.abort?.(err);
      return false;
    }
    this.dest.set(chunk, at);
    this.written += chunk.length;
    this.options.onBytes?.(chunk.length);
    return true;
  }

  onComplete(): void {
    if (this.settled) return;
    if (this.errorBody) {
      this.fail(this.statusError());
      return;
    }
    this.done();
    this.resolve(this.written);
  }

  onError(err: Error): void {
    const { signal } = this.options;
    if (signal?.aborted) {
      this.fail(mapStorageError(err, { url: this.url, op: 'GET', ifMatch: this.options.ifMatch, signal }));
      return;
    }
    const code = (err as { code?: unknown }).code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      this.fail(timeoutError(this.url, this.options, err));
      return;
    }
    this.fail(mapStorageError(err, { url: this.url, op: 'GET', ifMatch: this.options.ifMatch }));
  }

  /** Undefined when the response is the range asked for, of the pinned object. */
  private checkHeaders(statusCode: number, raw: Buffer[]): Error | undefined {
    const { start, end, ifMatch } = this.options;
    let etag: string | undefined;
    let contentRange: string | undefined;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] as Buffer;
      // Only two headers matter; compare lengths first to skip the rest cheaply.
      if (name.length === 4 && name.toString('latin1').toLowerCase() === 'etag') {
        etag = (raw[i + 1] as Buffer).toString('latin1');
      } else if (name.length === 13 && name.toString('latin1').toLowerCase() === 'content-range') {
        contentRange = (raw[i + 1] as Buffer).toString('latin1');
      }
    }
    if (ifMatch !== undefined && etag !== undefined) {
      const actual = stripQuotes(etag);
      if (actual !== '' && actual !== ifMatch) return changedError(this.url, ifMatch, actual);
    }
    // A 200 is the whole object: only right when the range asked for is all of it.
    const want = statusCode === 206 ? `bytes ${start}-` : undefined;
    if (want !== undefined && contentRange !== undefined && !contentRange.startsWith(want)) {
      return new SadpError(
        'SADP_STORAGE_BAD_RANGE',
        `${this.url} bytes [${start}, ${end}): server answered with range ${contentRange}`,
        { status: Status.INTERNAL },
      );
    }
    if (statusCode === 200 && start !== 0) {
      return new SadpError(
        'SADP_STORAGE_BAD_RANGE',
        `${this.url} bytes [${start}, ${end}): server ignored the Range header`,
        { status: Status.INTERNAL },
      );
    }
    return undefined;
  }

  /** An S3 error reply as a SadpError: status and <Code> only, never the body (it may echo credentials). */
  private statusError(): SadpError {
    const { start, end, ifMatch } = this.options;
    const body = Buffer.concat(this.errorBody ?? []).toString('utf8');
    const code = /<Code>([A-Za-z0-9.]{1,64})<\/Code>/.exec(body)?.[1];
    if (this.status === 416 && ifMatch !== undefined) {
      // The indexed range no longer fits: the object was replaced by a shorter one.
      return changedError(this.url, ifMatch, undefined, rangeError(this.url, start, end));
    }
    const shape = {
      name: code ?? `HTTP${this.status}`,
      message: `HTTP ${this.status}`,
      $metadata: { httpStatusCode: this.status },
    };
    return mapStorageError(shape, { url: this.url, op: 'GET', ifMatch });
  }

  private done(): void {
    this.settled = true;
    this.stopListening?.();
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.done();
    this.reject(err);
  }
}

function stripQuotes(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}
