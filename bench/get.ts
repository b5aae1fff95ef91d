// CPU cost of one GET on the range reader's path, before and after the lean
// GET path, side by side in one run.
//
//   npm run bench:get [-- --quick]
//
// Serves one object with Debian's nginx (Range, ETag, If-Match; started here
// on a free loopback port; `apt-get install -y nginx-light`): s3rver would
// spend ~0.9 ms of CPU per GET on the same 2 cores. Then, in alternating
// rounds so machine noise hits both alike, measures the client process's CPU
// time (user + system) per GET of
//   - `sdk`:  fetchRange over the store's stream (AWS SDK GetObject + stream
//             wrapper + idle timer): the reader's path before the lean GET,
//   - `lean`: fetchRange over S3Store.readInto (undici + SigV4, chunks into
//             the destination buffer),
// for 110 KB and 4 KB ranges at 4 GETs in flight, and per MB of a whole
// 16 MB read. Writes bench/results/get.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../common/paths.js';
import { fetchRange, type FetchObserver, type RetryConfig } from '../loader/fetch/fetch-range.js';
import { createS3Client, openStore, type ObjectStore } from '../storage/index.js';

const quick = process.argv.includes('--quick');
const WARMUP = quick ? 500 : 2_000;
const PER_ROUND = quick ? 500 : 1_500;
const ROUNDS = quick ? 2 : 4;
const IN_FLIGHT = 4;
const OBJECT_BYTES = 16 * 1024 * 1024;
const BUCKET = 'bench';
const KEY = 'object.bin';

interface Server {
  endpoint: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function startNginx(dir: string, data: Buffer): Promise<Server | undefined> {
  // nginx's workers drop root: they must be able to read the served tree.
  await chmod(dir, 0o755);
  const www = join(dir, 'www');
  await mkdir(join(www, BUCKET), { recursive: true });
  await writeFile(join(www, BUCKET, KEY), data);
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush off;
  keepalive_timeout 300s;
  keepalive_requests 10000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  server { listen 127.0.0.1:${port}; root ${www}; etag on; location / { } }
}
`,
  );
  let child: ChildProcess;
  try {
    child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve());
    });
  } catch {
    return undefined;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${endpoint}/${BUCKET}/${KEY}`, { method: 'HEAD' });
      return {
        endpoint,
        close: async () => {
          child.kill('SIGTERM');
          await new Promise((resolve) => child.once('exit', resolve));
        },
      };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  child.kill('SIGKILL');
  return undefined;
}

const retry: RetryConfig = {
  maxAttempts: 3,
  baseBackoffMs: 10,
  maxBackoffMs: 100,
  idleTimeoutMs: 15_000,
  random: Math.random,
};
const observer: FetchObserver = { request() {}, received() {}, retry() {} };

/** The store seen through getStream only: the reader's pre-lean path. */
function streamOnly(store: ObjectStore): ObjectStore {
  return {
    url: store.url,
    put: (k, b, o) => store.put(k, b, o),
    get: (k, o) => store.get(k, o),
    getStream: (k, o) => store.getStream(k, o),
    head: (k, o) => store.head(k, o),
    list: (p, o) => store.list(p, o),
    delete: (k, o) => store.delete(k, o),
  };
}

/** CPU us (user + system) per GET of `count` GETs of `length` bytes, `IN_FLIGHT` at a time. */
async function cpuPerGet(store: ObjectStore, etag: string, length: number, count: number): Promise<number> {
  const signal = new AbortController().signal;
  let next = 0;
  const starts = Array.from({ length: 64 }, (_, i) => (i * 251_659) % (OBJECT_BYTES - length));
  const worker = async (): Promise<void> => {
    while (next < count) {
      const start = starts[next++ % starts.length] as number;
      await fetchRange(
        { store, key: KEY, label: `s3://${BUCKET}/${KEY}`, start, end: start + length, etag },
        retry,
        observer,
        signal,
      );
    }
  };
  const before = process.cpuUsage();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sadp-bench-get-'));
  const data = randomBytes(OBJECT_BYTES);
  const server = await startNginx(dir, data);
  if (!server) throw new Error('bench:get needs nginx on the PATH (apt-get install -y nginx-light)');
  try {
    const client = createS3Client({
      endpoint: server.endpoint,
      maxAttempts: 1,
      accessKeyId: 'bench',
      secretAccessKey: 'bench',
    });
    const lean = openStore(`s3://${BUCKET}`, { client });
    const sdk = streamOnly(lean);
    const info = await lean.head(KEY);
    if (!info) throw new Error('bench object missing');
    const paths = { sdk, lean };
    const results: Record<string, Record<string, number>> = {};
    for (const [label, length] of [
      ['range110k', 110_000],
      ['range4k', 4_096],
    ] as const) {
      for (const store of Object.values(paths)) await cpuPerGet(store, info.etag, length, WARMUP);
      const samples: Record<string, number[]> = { sdk: [], lean: [] };
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, store] of Object.entries(paths)) {
          samples[name]?.push(await cpuPerGet(store, info.etag, length, PER_ROUND));
        }
      }
      const sdkUs = median(samples.sdk ?? []);
      const leanUs = median(samples.lean ?? []);
      results[label] = { sdkUs, leanUs, ratio: leanUs / sdkUs };
      console.log(
        `${label}: sdk ${sdkUs.toFixed(0)} us/GET, lean ${leanUs.toFixed(0)} us/GET, lean/sdk ${(leanUs / sdkUs).toFixed(2)}`,
      );
    }
    // Whole object: CPU per MB.
    const whole: Record<string, number[]> = { sdk: [], lean: [] };
    for (let round = 0; round < ROUNDS + 1; round++) {
      for (const [name, store] of Object.entries(paths)) {
        const before = process.cpuUsage();
        await fetchRange(
          { store, key: KEY, label: KEY, start: 0, end: OBJECT_BYTES, etag: info.etag },
          retry,
          observer,
          new AbortController().signal,
        );
        const used = process.cpuUsage(before);
        if (round > 0) whole[name]?.push((used.user + used.system) / (OBJECT_BYTES / 1024 / 1024));
      }
    }
    const sdkMb = median(whole.sdk ?? []);
    const leanMb = median(whole.lean ?? []);
    results.wholePerMB = { sdkUs: sdkMb, leanUs: leanMb, ratio: leanMb / sdkMb };
    console.log(`whole 16 MB: sdk ${sdkMb.toFixed(0)} us/MB, lean ${leanMb.toFixed(0)} us/MB`);
    client.destroy();
    const out = {
      date: new Date().toISOString(),
      command: `npm run bench:get${quick ? ' -- --quick' : ''}`,
      server: 'nginx',
      machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
      inFlight: IN_FLIGHT,
      requestsPerRound: PER_ROUND,
      rounds: ROUNDS,
      warmup: WARMUP,
      results,
    };
    await writeFile(
      join(packageRoot, 'bench', 'results', quick ? 'get-quick.json' : 'get.json'),
      `${JSON.stringify(out, null, 2)}\n`,
    );
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
  // undici keeps idle sockets unref'd; nothing else holds the loop.
}

await main();
