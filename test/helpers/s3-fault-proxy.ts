// A fault-injecting HTTP reverse proxy for S3-compatible servers. It streams
// requests and responses through unchanged (the Host header is kept, so SigV4
// signatures stay valid) and, per request, by seeded probability or by
// schedule, adds latency, answers 503 SlowDown / 500 InternalError / 412
// PreconditionFailed (what a strict server says when If-Match fails), resets
// the connection mid-body, truncates the body (the full Content-Length still
// promised) or stalls it. Real sockets on 127.0.0.1, so clients see real
// network failures, not mocks.
import {
  createServer,
  request as httpRequest,
  Agent,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mulberry32 } from './random.js';

export type FaultKind =
  | 'latency'
  | 'bandwidth'
  | 'slowdown'
  | 'internal-error'
  | 'precondition-failed'
  | 'reset'
  | 'truncate'
  | 'stall';

export interface FaultRule {
  fault: FaultKind;
  /** Fire on a matching request with this probability (seeded PRNG). Default 1 unless `nth` is given. */
  probability?: number;
  /** Fire on these matching requests only, counted from 1 per rule (e.g. [2] = the 2nd matching GET). */
  nth?: number[];
  /** Fire at most this many times; default unlimited. */
  times?: number;
  /** HTTP method to match; default `GET`; `*` matches any. */
  method?: string;
  /**
   * Tested against the request path (query included). Default: object GETs
   * only, i.e. `/bucket/key` without a sub-resource query (lists, ACLs and
   * bucket calls pass untouched).
   */
  path?: RegExp;
  /** latency: added before forwarding; default 50 ms. */
  latencyMs?: number;
  /**
   * bandwidth: response bodies of all requests this rule matches share one
   * link of this many bytes per second (a token bucket), like a NIC or a
   * per-prefix throughput cap; default 100 MB/s.
   */
  bytesPerSecond?: number;
  /** stall: how long the body stops mid-way; default 60,000 ms (until the client gives up). */
  stallMs?: number;
  /** reset / truncate / stall: body bytes sent before the fault; default half the body (at least 1 byte short). */
  afterBytes?: number;
}

export interface FaultProxyOptions {
  /** Upstream origin, e.g. `http://127.0.0.1:4568`. */
  target: string;
  /** PRNG seed for probabilistic rules; default 1. */
  seed?: number;
  rules?: FaultRule[];
}

export interface ProxyRequest {
  method: string;
  /** Path without the query string, e.g. `/bucket/shards/train-000000.tar`. */
  path: string;
  /** The query string without `?` ('' when none), e.g. `x-id=GetObject` from the AWS SDK. */
  query: string;
  /** The Range header, e.g. `bytes=0-1023`, if any. */
  range: string | undefined;
  /** The If-Match header as sent (quotes included), if any. */
  ifMatch: string | undefined;
  /** The x-amz-security-token header (a session token), if any. */
  securityToken: string | undefined;
  /** Faults that fired on this request. */
  faults: FaultKind[];
}

export type FaultStats = { requests: number } & Record<FaultKind, number>;

export interface FaultProxy {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly port: number;
  readonly stats: FaultStats;
  /** Replaces the rules and restarts their per-rule counters; stats and the log are kept. */
  setRules(rules: FaultRule[]): void;
  readonly requestLog: ProxyRequest[];
  close(): Promise<void>;
}

/** Runs `fn` with `rules` active on `proxy`, then clears them (also when `fn` throws). */
export async function withFaultRules<T>(
  proxy: FaultProxy,
  rules: FaultRule[],
  fn: () => Promise<T>,
): Promise<T> {
  proxy.setRules(rules);
  try {
    return await fn();
  } finally {
    proxy.setRules([]);
  }
}

/** Object GETs in path-style addressing; the SDK adds `x-id=GetObject`, which is not a sub-resource. */
const OBJECT_PATH = /^\/[^/?]+\/[^?]+(\?(x-id=GetObject)?)?$/;

/** Parses `bytes=a-b` into [start, end) with an exclusive end. */
export function parseRangeHeader(range: string | undefined): { start: number; end: number } | undefined {
  const m = range === undefined ? null : /^bytes=(\d+)-(\d+)$/.exec(range);
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]) + 1 };
}

/** A shared link: its rate, and when its last scheduled byte leaves. */
interface Link {
  bytesPerMs: number;
  nextFreeMs: number;
}

interface ActiveRule {
  rule: FaultRule;
  seen: number;
  fired: number;
  link?: Link;
}

function s3Error(code: string, message: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`
  );
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const random = mulberry32(options.seed ?? 1);
  // Above the range reader's 256 GETs in flight (and the limit's 1,024): the
  // relay must never be what bounds the requests in flight.
  const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const stats: FaultStats = {
    requests: 0,
    latency: 0,
    bandwidth: 0,
    slowdown: 0,
    'internal-error': 0,
    'precondition-failed': 0,
    reset: 0,
    truncate: 0,
    stall: 0,
  };
  const requestLog: ProxyRequest[] = [];
  let rules: ActiveRule[] = [];
  const setRules = (next: FaultRule[]): void => {
    rules = next.map((rule) => ({ rule, seen: 0, fired: 0 }));
  };
  setRules(options.rules ?? []);

  const delay = (ms: number, res: ServerResponse): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        res.off('close', onClose);
        resolve(true);
      }, ms);
      timers.add(timer);
      const onClose = (): void => {
        clearTimeout(timer);
        timers.delete(timer);
        resolve(false);
      };
      res.once('close', onClose);
    });

  /** Which rules fire for this request: latency adds up, the first bandwidth rule shapes, the first data fault wins. */
  const decide = (req: IncomingMessage): { latencyMs: number; fault?: FaultRule; link?: Link } => {
    let latencyMs = 0;
    let link: Link | undefined;
    let fault: FaultRule | undefined;
    const url = req.url ?? '/';
    for (const active of rules) {
      const { rule } = active;
      const method = rule.method ?? 'GET';
      if (method !== '*' && method !== req.method) continue;
      if (!(rule.path ?? OBJECT_PATH).test(url)) continue;
      if (rule.fault === 'bandwidth' && link) continue;
      if (rule.fault !== 'latency' && rule.fault !== 'bandwidth' && fault) continue;
      active.seen++;
      if (rule.times !== undefined && active.fired >= rule.times) continue;
      const fires = rule.nth ? rule.nth.includes(active.seen) : random() < (rule.probability ?? 1);
      if (!fires) continue;
      active.fired++;
      if (rule.fault === 'latency') latencyMs += rule.latencyMs ?? 50;
      else if (rule.fault === 'bandwidth')
        link = active.link ??= { bytesPerMs: (rule.bytesPerSecond ?? 100e6) / 1000, nextFreeMs: 0 };
      else fault = rule;
    }
    return { latencyMs, fault, link };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    stats.requests++;
    const url = req.url ?? '/';
    const range = req.headers.range;
    const entry: ProxyRequest = {
      method: req.method ?? '',
      path: url.split('?')[0] ?? url,
      query: url.includes('?') ? url.slice(url.indexOf('?') + 1) : '',
      range,
      ifMatch: req.headers['if-match'],
      securityToken: req.headers['x-amz-security-token'] as string | undefined,
      faults: [],
    };
    requestLog.push(entry);
    const { latencyMs, fault, link } = decide(req);
    if (latencyMs > 0) {
      stats.latency++;
      entry.faults.push('latency');
      if (!(await delay(latencyMs, res))) return;
    }
    if (fault) {
      stats[fault.fault]++;
      entry.faults.push(fault.fault);
    }
    if (
      fault?.fault === 'slowdown' ||
      fault?.fault === 'internal-error' ||
      fault?.fault === 'precondition-failed'
    ) {
      req.resume();
      const [status, body] =
        fault.fault === 'slowdown'
          ? [503, s3Error('SlowDown', 'Please reduce your request rate.')]
          : fault.fault === 'internal-error'
            ? [500, s3Error('InternalError', 'We encountered an internal error. Please try again.')]
            : [
                412,
                s3Error(
                  'PreconditionFailed',
                  'At least one of the pre-conditions you specified did not hold',
                ),
              ];
      res.writeHead(status, {
        'content-type': 'application/xml',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
    if (link) {
      stats.bandwidth++;
      entry.faults.push('bandwidth');
    }
    forward(req, res, fault, link);
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    fault: FaultRule | undefined,
    link?: Link,
  ): void => {
    const upstream = httpRequest(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (up) => pipeResponse(up, res, fault, link),
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  const pipeResponse = (
    up: IncomingMessage,
    res: ServerResponse,
    fault: FaultRule | undefined,
    link: Link | undefined,
  ): void => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    const length = Number(up.headers['content-length'] ?? NaN);
    const dataFault =
      fault && up.statusCode !== undefined && up.statusCode < 300 && length > 0 ? fault : undefined;
    const cut = dataFault ? Math.min(dataFault.afterBytes ?? Math.floor(length / 2), length - 1) : Infinity;
    let sent = 0;
    let armed = cut < Infinity;
    let dead = false;
    const socket = res.socket;
    res.once('close', () => up.destroy());
    up.on('error', () => res.destroy());
    let ended = false;
    let shaping = 0; // chunks waiting for their turn on the shared link
    let stalled = false;
    // Upstream may end while a chunk is still held back (stall, shaping): end the response after it.
    const maybeEnd = (): void => {
      if (ended && !dead && !stalled && shaping === 0) res.end();
    };
    up.on('end', () => {
      ended = true;
      maybeEnd();
    });
    /** Writes with backpressure; false when upstream stays paused until 'drain'. */
    const push = (piece: Buffer): boolean => {
      if (res.write(piece)) return true;
      up.pause();
      res.once('drain', () => up.resume());
      return false;
    };
    const write = (piece: Buffer): void => {
      sent += piece.length;
      if (!link) {
        push(piece);
        return;
      }
      // The chunk leaves when the link has sent everything queued before it.
      const now = performance.now();
      link.nextFreeMs = Math.max(now, link.nextFreeMs) + piece.length / link.bytesPerMs;
      const waitMs = link.nextFreeMs - now;
      if (waitMs < 1) {
        push(piece);
        return;
      }
      up.pause();
      shaping++;
      const timer = setTimeout(() => {
        timers.delete(timer);
        shaping--;
        if (res.destroyed) return;
        if (push(piece)) up.resume();
        maybeEnd();
      }, waitMs);
      timers.add(timer);
    };
    up.on('data', (chunk: Buffer) => {
      if (dead) return;
      if (!armed || sent + chunk.length < cut) {
        write(chunk);
        return;
      }
      armed = false;
      const head = chunk.subarray(0, cut - sent);
      const rest = chunk.subarray(head.length);
      sent += head.length;
      res.write(head);
      switch (dataFault?.fault) {
        case 'reset':
          dead = true;
          up.destroy();
          // Let the bytes already written reach the client, then send a TCP RST.
          res.write('', () => socket?.resetAndDestroy());
          break;
        case 'truncate':
          dead = true;
          up.destroy();
          // A clean FIN with bytes still owed under Content-Length.
          res.write('', () => socket?.end());
          break;
        case 'stall':
          up.pause();
          stalled = true;
          void delay(dataFault.stallMs ?? 60_000, res).then((open) => {
            stalled = false;
            if (!open) return;
            sent += rest.length;
            if (rest.length === 0 || push(rest)) up.resume();
            maybeEnd();
          });
          break;
        default:
          break;
      }
    });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    stats,
    setRules,
    requestLog,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}
