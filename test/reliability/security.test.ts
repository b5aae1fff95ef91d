// Security properties, each against the real thing: TLS and mutual TLS on
// the gRPC services (certificates made with openssl at test time), per-job
// bearer tokens enforced by the loader, S3 credentials absent from every log
// line, metric and error message, loopback-only listeners by default, the
// embedded S3 server refusing non-loopback binds, and a lockfile that pins
// every dependency with the runtime set exactly the documented one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { isSadpError } from '../../common/errors.js';
import { packageRoot } from '../../common/paths.js';
import { channelCredentials, readTls } from '../../common/tls.js';
import { buildShards, syntheticSource } from '../../loader/shards/index.js';
import { ScorerClient, pb, type sadp } from '../../proto/index.js';
import { createScorerServer } from '../../scorer/index.js';
import { createS3Client, startEmbeddedS3 } from '../../storage/index.js';
import { LoaderCallError, createLoaderClient, type LoaderClientOptions } from '../../trainer/client/index.js';
import { runSadp, startLoaderService, startService, type ServiceProcess } from '../helpers/processes.js';
import {
  SAMPLES,
  connectLoader,
  newToken,
  startStack,
  unary,
  type Stack,
} from '../loader/service/helpers.js';
import { call } from '../scorer/service/helpers.js';
import { makeCerts, read, type CertFiles } from '../helpers/certs.js';
import { runRank, servedPlan, checkEpoch, epochClean, sleep } from './stack.js';
import { freePort } from '../helpers/ports.js';

const S = grpc.status;
let stack: Stack;
let dir: string;
let certs: CertFiles;

before(async () => {
  stack = await startStack();
  dir = await mkdtemp(join(tmpdir(), 'sadp-sec-'));
  certs = makeCerts(dir);
});
after(async () => {
  await stack?.close();
  await rm(dir, { recursive: true, force: true });
});

/** One full single-rank epoch through the SDK; returns the error, if any. */
async function epochWith(options: Omit<LoaderClientOptions, 'reconnect'>, jobId: string): Promise<unknown> {
  const client = createLoaderClient({
    ...options,
    reconnect: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 50 },
  });
  try {
    const r = await runRank({ client, job: jobId, epoch: 0, rank: 0, worldSize: 1, batchSize: 64 });
    if (r.error) return r.error;
    const check = checkEpoch([[r]], await servedPlan(stack.scorerClient, jobId, 0));
    assert.ok(epochClean(check), JSON.stringify(check));
    return undefined;
  } finally {
    client.close();
  }
}

function assertRefused(err: unknown, what: string): void {
  assert.ok(err instanceof LoaderCallError, `${what}: expected a refusal, got ${String(err)}`);
  assert.equal(err.status, S.UNAVAILABLE, `${what}: ${err.message}`);
}

describe('TLS and mutual TLS', () => {
  test('a TLS loader serves a client that trusts its CA; plaintext and wrong-CA clients are refused', async () => {
    const loader = await stack.startLoader({
      tls: { cert: read(certs.serverCert), key: read(certs.serverKey) },
    });
    const jobId = await stack.createJob({ epochs: 1 });
    assertRefused(await epochWith({ address: loader.address }, jobId), 'plaintext client');
    assertRefused(
      await epochWith({ address: loader.address, tls: { ca: read(certs.rogueCaCert) } }, jobId),
      'client trusting another CA',
    );
    assert.equal(loader.stats().batchesSent, 0, 'nothing was served to the refused clients');
    assert.equal(
      await epochWith({ address: loader.address, tls: { ca: read(certs.caCert) } }, jobId),
      undefined,
    );
    assert.ok(loader.stats().batchesSent > 0);
  });

  test('a mutual-TLS loader only serves clients with a certificate signed by its CA', async () => {
    const loader = await stack.startLoader({
      tls: {
        cert: read(certs.serverCert),
        key: read(certs.serverKey),
        ca: read(certs.caCert),
        requireClientCert: true,
      },
    });
    const jobId = await stack.createJob({ epochs: 1 });
    const ca = read(certs.caCert);
    assertRefused(await epochWith({ address: loader.address, tls: { ca } }, jobId), 'no client certificate');
    assertRefused(
      await epochWith(
        {
          address: loader.address,
          tls: { ca, cert: read(certs.rogueClientCert), key: read(certs.rogueClientKey) },
        },
        jobId,
      ),
      'certificate of another CA',
    );
    assert.equal(loader.stats().batchesSent, 0);
    assert.equal(
      await epochWith(
        { address: loader.address, tls: { ca, cert: read(certs.clientCert), key: read(certs.clientKey) } },
        jobId,
      ),
      undefined,
    );
  });

  test('sadp scorer + sadp loader sharing one mutual-TLS config: a trainer with a client certificate gets its epoch', async () => {
    const cfg = join(dir, 'mtls.yaml');
    await writeFile(
      cfg,
      [
        'tls:',
        `  cert: ${certs.serverCert}`,
        `  key: ${certs.serverKey}`,
        `  ca: ${certs.caCert}`,
        '  requireClientCert: true',
        'log:',
        '  level: warn',
        '',
      ].join('\n'),
    );
    const scorer = await startService({
      args: ['scorer', '--config', cfg, '--listen', '127.0.0.1:0', '--state', join(dir, 'mtls-state')],
    });
    let loader: ServiceProcess | undefined;
    try {
      loader = await startService({
        args: [
          'loader',
          '--config',
          cfg,
          '--listen',
          '127.0.0.1:0',
          '--scorer',
          `127.0.0.1:${scorer.port}`,
          '--endpoint',
          stack.s3.endpoint,
          '--access-key-id',
          stack.s3.accessKeyId,
          '--secret-access-key',
          stack.s3.secretAccessKey,
        ],
      });
      const mtls = { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey };
      // A plaintext client cannot even reach the scorer.
      const plain = new ScorerClient(`127.0.0.1:${scorer.port}`, grpc.credentials.createInsecure());
      await assert.rejects(
        call(plain, 'describeJob', { jobId: 'x' }),
        (e: grpc.ServiceError) => e.code === S.UNAVAILABLE,
      );
      plain.close();
      const scorerClient = new ScorerClient(`127.0.0.1:${scorer.port}`, channelCredentials(mtls));
      const jobId = 'mtls-job';
      await call(scorerClient, 'createJob', {
        spec: pb.JobSpec.create({
          jobId,
          datasetSize: SAMPLES,
          policy: pb.Policy.POLICY_RANDOM,
          pruneRatio: 0.5,
          epochs: 1,
          datasetUrl: stack.manifestUrl,
        }),
      });
      scorerClient.close();
      const client = createLoaderClient({
        address: `127.0.0.1:${loader.port}`,
        tls: { ca: read(mtls.ca), cert: read(mtls.cert), key: read(mtls.key) },
        reconnect: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 200 },
      });
      try {
        const r = await runRank({ client, job: jobId, epoch: 0, rank: 0, worldSize: 1, batchSize: 64 });
        assert.equal(r.error, undefined, `${String(r.error)}\nloader stderr:\n${loader.stderr.join('\n')}`);
        assert.ok(r.ids.length > 0);
      } finally {
        client.close();
      }
    } finally {
      await loader?.kill();
      await scorer.kill();
    }
  });

  test('the scorer in-process with mutual TLS refuses a client without a certificate', async () => {
    const server = await createScorerServer({
      host: '127.0.0.1',
      port: 0,
      stateUrl: join(dir, 'scorer-tls'),
      tls: readTls({
        cert: certs.serverCert,
        key: certs.serverKey,
        ca: certs.caCert,
        requireClientCert: true,
      }),
    });
    try {
      const noCert = new ScorerClient(server.address, channelCredentials({ ca: certs.caCert }));
      await assert.rejects(
        call(noCert, 'describeJob', { jobId: 'x' }),
        (e: grpc.ServiceError) => e.code === S.UNAVAILABLE,
      );
      noCert.close();
      const ok = new ScorerClient(
        server.address,
        channelCredentials({ ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey }),
      );
      await assert.rejects(
        call(ok, 'describeJob', { jobId: 'x' }),
        (e: grpc.ServiceError) => e.code === S.NOT_FOUND,
      );
      ok.close();
    } finally {
      await server.close(500);
    }
  });
});

describe('per-job bearer tokens', () => {
  test("a trainer of job A can neither read job B's samples nor report scores to it", async () => {
    const tokenA = newToken();
    const tokenB = newToken();
    const jobA = await stack.createJob({ epochs: 1, token: tokenA });
    const jobB = await stack.createJob({ epochs: 1, token: tokenB });
    const loader = await stack.startLoader({ auth: 'token', scoreFlushMs: 10 });
    const asA = createLoaderClient({ address: loader.address, token: tokenA, reconnect: { maxAttempts: 2 } });
    try {
      // Reading B with A's token.
      const read = await runRank({ client: asA, job: jobB, epoch: 0, rank: 0, worldSize: 1, batchSize: 32 });
      assert.ok(read.error instanceof LoaderCallError, String(read.error));
      assert.equal(read.error.status, S.PERMISSION_DENIED);
      assert.equal(read.ids.length, 0, 'no sample of job B was delivered');
      assert.ok(!read.error.message.includes(tokenA) && !read.error.message.includes(tokenB));
      await assert.rejects(
        asA.epochInfo({ job: jobB, epoch: 0, worldSize: 1, batchSize: 32 }),
        (e: unknown) => e instanceof LoaderCallError && e.status === S.PERMISSION_DENIED,
      );
      // Reporting to B with A's token: an open for B followed at once by acks with scores.
      const raw = connectLoader(loader.address);
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${tokenA}`);
      const status = await new Promise<number>((resolve) => {
        const c = raw.streamEpoch(md);
        c.on('data', () => undefined);
        c.on('error', (e: grpc.ServiceError) => resolve(e.code));
        c.on('status', (s: grpc.StatusObject) => resolve(s.code));
        c.write({ open: { jobId: jobB, epoch: 0, rank: 0, worldSize: 1, batchSize: 32 } });
        for (let index = 0; index < 3; index++)
          c.write({ ack: { index, ids: [index, index + 1], scores: [5, 5] } });
      });
      raw.close();
      assert.equal(status, S.PERMISSION_DENIED);
      // Job A's own trainer reports normally; job B stays untouched.
      const own = await runRank({ client: asA, job: jobA, epoch: 0, rank: 0, worldSize: 1, batchSize: 32 });
      assert.equal(own.error, undefined, String(own.error));
      // The loader forwards scores in the background: wait until A's arrived.
      let a = await call(stack.scorerRpc, 'describeJob', { jobId: jobA });
      for (let i = 0; i < 1_200 && a.scoredExamples !== own.ids.length; i++) {
        await sleep(100);
        a = await call(stack.scorerRpc, 'describeJob', { jobId: jobA });
      }
      const b = await call(stack.scorerRpc, 'describeJob', { jobId: jobB });
      assert.equal(a.scoredExamples, own.ids.length);
      assert.equal(Number(b.scoresReceived), 0, 'no score reached job B');
      // B's own token works, and the token itself is never returned by the scorer.
      const asB = createLoaderClient({ address: loader.address, token: tokenB });
      const info = await asB.epochInfo({ job: jobB, epoch: 0, worldSize: 1, batchSize: 32 });
      assert.equal(info.jobId, jobB);
      asB.close();
      assert.equal(b.spec?.token ?? '', '');
    } finally {
      asA.close();
    }
  });
});

async function metricsText(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

/** Every string reachable from an error: messages, details, causes. */
function errorText(err: unknown, depth = 0): string {
  if (depth > 8 || err === null || err === undefined) return '';
  if (typeof err === 'string') return err;
  if (typeof err !== 'object') return '';
  const e = err as { message?: unknown; details?: unknown; cause?: unknown; stack?: unknown };
  const text = (v: unknown): string => (typeof v === 'string' ? v : '');
  return [text(e.message), text(e.details), text(e.stack), errorText(e.cause, depth + 1)].join('\n');
}

describe('S3 credentials', () => {
  test('never appear in logs, /metrics or error messages, also when storage fails', async () => {
    const secret = `sEcReT${randomBytes(12).toString('hex')}`;
    const s3 = await startEmbeddedS3({ dataDir: join(dir, 'sec-s3'), buckets: ['sec'] });
    let scorer: ServiceProcess | undefined;
    let loader: ServiceProcess | undefined;
    const seen: string[] = [];
    try {
      const client = createS3Client({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        accessKeyId: s3.accessKeyId,
        secretAccessKey: secret, // s3rver checks the key id only
      });
      await buildShards(syntheticSource({ count: 1_200, meanBytes: 1_000, seed: 4 }), {
        out: 's3://sec/ds',
        client,
        shardBytes: 32 * 1024,
      });
      client.destroy();
      const env = {
        SADP_S3_ENDPOINT: s3.endpoint,
        SADP_S3_ACCESS_KEY_ID: s3.accessKeyId,
        SADP_S3_SECRET_ACCESS_KEY: secret,
        SADP_LOG_LEVEL: 'debug',
      };
      const [scorerMetrics, loaderMetrics] = [await freePort(), await freePort()];
      scorer = await startService({
        args: [
          'scorer',
          '--listen',
          '127.0.0.1:0',
          '--state',
          's3://sec/state',
          '--metrics-port',
          String(scorerMetrics),
        ],
        env,
      });
      loader = await startLoaderService(scorer.port, ['--metrics-port', String(loaderMetrics)], env);
      const scorerClient = new ScorerClient(`127.0.0.1:${scorer.port}`, grpc.credentials.createInsecure());
      const create = (jobId: string, datasetUrl: string): Promise<sadp.v1.Job> =>
        unary<sadp.v1.Job>((cb) =>
          scorerClient.createJob(
            pb.CreateJobRequest.create({
              spec: pb.JobSpec.create({
                jobId,
                datasetSize: 1_200,
                policy: pb.Policy.POLICY_RANDOM,
                pruneRatio: 0.5,
                epochs: 2,
                datasetUrl,
              }),
            }),
            cb,
          ),
        );
      await create('ok', 's3://sec/ds/manifest.json');
      await create('missing', 's3://no-such-bucket/ds/manifest.json');
      const trainer = createLoaderClient({
        address: `127.0.0.1:${loader.port}`,
        reconnect: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 50 },
      });
      const good = await runRank({
        client: trainer,
        job: 'ok',
        epoch: 0,
        rank: 0,
        worldSize: 1,
        batchSize: 32,
      });
      assert.equal(good.error, undefined, String(good.error));
      const missing = await runRank({
        client: trainer,
        job: 'missing',
        epoch: 0,
        rank: 0,
        worldSize: 1,
        batchSize: 32,
      });
      assert.ok(missing.error, 'a dataset in a missing bucket fails');
      seen.push(errorText(missing.error));
      // Storage goes away: the next epoch's reads and the scorer's state writes fail. The epoch has
      // ~19 batches, more than the loader warms at the boundary, so some must be read (with the
      // 120 examples this test had, the warm batches could hold the whole epoch when the boundary
      // prefetch beat the close, and the trainer then waited on scores that could not be made durable).
      await s3.close();
      const down = await runRank({
        client: trainer,
        job: 'ok',
        epoch: 1,
        rank: 0,
        worldSize: 1,
        batchSize: 32,
      });
      assert.ok(down.error, 'reads fail while storage is down');
      seen.push(errorText(down.error));
      await assert.rejects(
        call(scorerClient, 'reportScores', { jobId: 'ok', ids: [1], scores: [1] }),
        (e: grpc.ServiceError) => {
          seen.push(errorText(e));
          return e.code !== S.OK;
        },
      );
      trainer.close();
      scorerClient.close();
      seen.push(await metricsText(scorerMetrics), await metricsText(loaderMetrics));
      await loader.stop(5_000);
      await scorer.stop(5_000);
      seen.push(...loader.stdout, ...loader.stderr, ...scorer.stdout, ...scorer.stderr);
      const all = seen.join('\n');
      assert.ok(all.length > 2_000, 'there was plenty of output to look at');
      assert.match(all, /sadp_loader_/, 'the loader metrics were captured');
      assert.match(all, /"level":(50|40)/, 'failures were logged');
      assert.equal(all.includes(secret), false, 'the S3 secret key leaked');
    } finally {
      await loader?.kill();
      await scorer?.kill();
      await s3.close();
    }
  });
});

/** host:port of every TCP socket `pid` listens on (from /proc). */
function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1] as string);
    } catch {
      // fd closed meanwhile
    }
  }
  const out: string[] = [];
  // The process's own network namespace's tables.
  for (const [file, v6] of [
    [`/proc/${pid}/net/tcp`, false],
    [`/proc/${pid}/net/tcp6`, true],
  ] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9] as string)) continue;
      const [hexIp, hexPort] = (f[1] as string).split(':') as [string, string];
      out.push(`${v6 ? decodeV6(hexIp) : decodeV4(hexIp)}:${parseInt(hexPort, 16)}`);
    }
  }
  return out;
}

function decodeV4(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  return [b[3], b[2], b[1], b[0]].join('.');
}

function decodeV6(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 4) {
    const w = Buffer.from([b[i + 3] as number, b[i + 2] as number, b[i + 1] as number, b[i] as number]);
    words.push(w.toString('hex').replace(/(.{4})/g, '$1:'));
  }
  const full = words.join('').slice(0, -1);
  return full === '0000:0000:0000:0000:0000:0000:0000:0001' ? '::1' : full;
}

function isLoopback(hostPort: string): boolean {
  return (
    hostPort.startsWith('127.') ||
    hostPort.startsWith('::1:') ||
    hostPort.startsWith('0000:0000:0000:0000:0000:ffff:7f')
  );
}

async function portsFree(ports: number[]): Promise<boolean> {
  for (const port of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
    });
    if (!free) return false;
  }
  return true;
}

describe('loopback by default', () => {
  test('sadp serve --embedded-s3 with default addresses listens on loopback only (S3, scorer, loader, metrics)', async (t) => {
    const defaults = [9000, 50051, 50052];
    // Other test files (run in parallel) may hold a default port: as root (CI) the
    // service gets a network namespace of its own, where they are always free.
    const privateNetwork = process.getuid?.() === 0;
    if (!privateNetwork && !(await portsFree(defaults))) {
      t.skip(`a default port (${defaults.join(', ')}) is taken on this machine (run as root to isolate)`);
      return;
    }
    const cwd = await mkdtemp(join(tmpdir(), 'sadp-defaults-'));
    const metrics = await freePort();
    const svc = await startService({
      args: ['serve', '--embedded-s3', '--bucket', 'data', '--metrics-port', String(metrics)],
      cwd,
      service: 'loader',
      privateNetwork,
    });
    try {
      // The loader's listening line comes last, when every part is up.
      const sockets = listeningSockets(svc.pid);
      assert.ok(
        sockets.length >= 4,
        `expected S3, scorer, loader and metrics listeners: ${sockets.join(', ')}`,
      );
      const ports = sockets.map((s) => Number(s.slice(s.lastIndexOf(':') + 1)));
      for (const p of [...defaults, metrics])
        assert.ok(ports.includes(p), `port ${p} in ${sockets.join(', ')}`);
      for (const s of sockets) assert.ok(isLoopback(s), `${s} is not a loopback address`);
    } finally {
      await svc.kill();
      await rm(cwd, { recursive: true, force: true });
    }
  });

  test('the embedded S3 server refuses a non-loopback address unless explicitly allowed', async () => {
    await assert.rejects(startEmbeddedS3({ dataDir: join(dir, 'nl'), host: '0.0.0.0' }), (e: unknown) =>
      isSadpError(e, 'SADP_INSECURE_BIND'),
    );
    const r = await runSadp(
      ['s3', 'serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', join(dir, 'nl2')],
      {
        timeoutMs: 30_000,
      },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SADP_INSECURE_BIND/);
    assert.doesNotMatch(r.stdout, /listening/);
    const allowed = await startService({
      args: [
        's3',
        'serve',
        '--host',
        '0.0.0.0',
        '--port',
        '0',
        '--data-dir',
        join(dir, 'nl3'),
        '--allow-non-loopback',
      ],
    });
    try {
      assert.ok(
        listeningSockets(allowed.pid).some((s) => s.startsWith('0.0.0.0:')),
        'explicitly allowed',
      );
    } finally {
      await allowed.kill();
    }
  });
});

describe('supply chain', () => {
  test('the lockfile pins every package (exact version and integrity hash)', async () => {
    const lock = JSON.parse(await readFile(join(packageRoot, 'package-lock.json'), 'utf8')) as {
      lockfileVersion: number;
      packages: Record<
        string,
        { version?: string; integrity?: string; resolved?: string; link?: boolean; inBundle?: boolean }
      >;
    };
    assert.ok(lock.lockfileVersion >= 2);
    const entries = Object.entries(lock.packages).filter(([k]) => k !== '');
    assert.ok(entries.length > 100);
    for (const [name, p] of entries) {
      if (p.link || p.inBundle) continue;
      assert.match(p.version ?? '', /^\d+\.\d+\.\d+/, `${name} has no exact version`);
      assert.match(p.integrity ?? '', /^sha(512|384|256|1)-/, `${name} has no integrity hash`);
      // No git or tarball URLs (this lockfile omits registry URLs: npm's omit-lockfile-registry-resolved).
      if (p.resolved !== undefined) assert.match(p.resolved, /^https:\/\/registry\.npmjs\.org\//, name);
    }
  });

  test('the runtime dependencies are exactly the documented set, each locked', async () => {
    const pkg = JSON.parse(await readFile(join(packageRoot, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    const lock = JSON.parse(await readFile(join(packageRoot, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string }>;
    };
    const doc = await readFile(join(packageRoot, 'RELIABILITY.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### Runtime dependencies'));
    const documented = [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1] as string);
    const runtime = [...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {})];
    assert.deepEqual(
      [...documented].sort(),
      [...runtime].sort(),
      'package.json runtime deps vs RELIABILITY.md',
    );
    for (const name of Object.keys(pkg.dependencies))
      assert.ok(lock.packages[`node_modules/${name}`]?.version, `${name} is not in the lockfile`);
  });
});
