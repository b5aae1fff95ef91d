// Helpers for the scorer service tests: real servers on loopback port 0,
// temp state directories, promisified calls, plan reassembly, and a scorer
// started as a separate process through the CLI.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { packageRoot } from '../../../common/paths.js';
import { pb, ScorerClient, type sadp } from '../../../proto/index.js';

export async function tempDir(t: TestContext, prefix = 'sadp-scorer-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export function connect(t: TestContext, address: string): ScorerClient {
  const client = new ScorerClient(address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  t.after(() => client.close());
  return client;
}

type UnaryName = 'createJob' | 'describeJob' | 'reportScores' | 'getStats';
type ReqOf<K extends UnaryName> = Parameters<ScorerClient[K]>[0];
type ResOf<K extends UnaryName> =
  Parameters<ScorerClient[K]>[3] extends grpc.requestCallback<infer R> ? R : never;
type AnyUnary = (
  req: unknown,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  cb: grpc.requestCallback<unknown>,
) => grpc.ClientUnaryCall;

/** A unary call as a promise, e.g. `call(client, 'getStats', { jobId, epoch })`. */
export function call<K extends UnaryName>(client: ScorerClient, name: K, req: ReqOf<K>): Promise<ResOf<K>> {
  const method = client[name] as unknown as AnyUnary;
  return new Promise((resolve, reject) =>
    method.call(client, req, new grpc.Metadata(), {}, (err, res) =>
      err ? reject(err) : resolve(res as ResOf<K>),
    ),
  );
}

/** Asserts that `promise` fails with gRPC status `code` and details matching every pattern. */
export async function rejectsWith(
  promise: Promise<unknown>,
  code: grpc.status,
  ...patterns: (RegExp | string)[]
): Promise<grpc.ServiceError> {
  let error: grpc.ServiceError | undefined;
  try {
    await promise;
  } catch (err) {
    error = err as grpc.ServiceError;
  }
  assert.ok(error, `expected status ${grpc.status[code]}, got success`);
  assert.equal(
    error.code,
    code,
    `expected ${grpc.status[code]}, got ${grpc.status[error.code]}: ${error.details}`,
  );
  for (const p of patterns) {
    if (typeof p === 'string')
      assert.ok(error.details.includes(p), `${JSON.stringify(p)} not in: ${error.details}`);
    else assert.match(error.details, p);
  }
  return error;
}

export interface FetchedPlan {
  chunks: sadp.v1.PlanChunk[];
  ids: Uint32Array;
  weights: Float64Array;
  digest: string;
}

export async function fetchPlan(
  client: ScorerClient,
  jobId: string,
  epoch: number,
  chunkSize = 0,
): Promise<FetchedPlan> {
  const chunks: sadp.v1.PlanChunk[] = [];
  const stream = client.getPlan(pb.GetPlanRequest.create({ jobId, epoch, chunkSize }));
  for await (const c of stream as AsyncIterable<sadp.v1.PlanChunk>) chunks.push(c);
  const total = chunks.reduce((n, c) => n + c.ids.length, 0);
  const ids = new Uint32Array(total);
  const weights = new Float64Array(total);
  let at = 0;
  for (const c of chunks) {
    assert.equal(c.offset, at, 'chunk offsets are contiguous');
    ids.set(c.ids, at);
    weights.set(c.weights, at);
    at += c.ids.length;
  }
  assert.ok(chunks.length > 0);
  return { chunks, ids, weights, digest: chunks[0]!.digest };
}

/** SHA-256 of ids (u32 LE) then weights (f64 LE), as the protocol defines a plan digest. */
export function digestOf(ids: Uint32Array, weights: Float64Array): string {
  const idBytes = Buffer.alloc(ids.length * 4);
  ids.forEach((v, i) => idBytes.writeUInt32LE(v, i * 4));
  const wBytes = Buffer.alloc(weights.length * 8);
  weights.forEach((v, i) => wBytes.writeDoubleLE(v, i * 8));
  return createHash('sha256').update(idBytes).update(wBytes).digest('hex');
}

/** A report of ids [from, to) with scores (and losses) drawn from `next`. */
export function makeReport(
  jobId: string,
  from: number,
  to: number,
  next: () => number,
  withLosses = true,
): sadp.v1.ReportScoresRequest.$Properties {
  const ids: number[] = [];
  const scores: number[] = [];
  const losses: number[] = [];
  for (let id = from; id < to; id++) {
    ids.push(id);
    scores.push(next() * 10);
    if (withLosses) losses.push(next() * 3);
  }
  return { jobId, epoch: 0, ids, scores, losses };
}

/** Applies reports, in order, to flat arrays the way the protocol says a scorer must. */
export class ExpectedScores {
  readonly scores: Float64Array;
  readonly losses: Float64Array;
  readonly scoredByScore: Uint8Array;
  readonly scoredByLoss: Uint8Array;
  received = 0;
  constructor(readonly size: number) {
    this.scores = new Float64Array(size);
    this.losses = new Float64Array(size);
    this.scoredByScore = new Uint8Array(size);
    this.scoredByLoss = new Uint8Array(size);
  }
  apply(r: sadp.v1.ReportScoresRequest.$Properties): void {
    const ids = r.ids ?? [];
    ids.forEach((id, i) => {
      if (r.scores?.length) {
        this.scores[id] = r.scores[i]!;
        this.scoredByScore[id] = 1;
      }
      if (r.losses?.length) {
        this.losses[id] = r.losses[i]!;
        this.scoredByLoss[id] = 1;
      }
    });
    this.received += ids.length;
  }
}

export interface SpawnedScorer {
  proc: ChildProcess;
  address: string;
  port: number;
  stderr: string[];
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** The CLI entry point, from source (tsx) or from the compiled tree, matching how this test runs. */
function cliCommand(): string[] {
  const fromSource = fileURLToPath(import.meta.url).endsWith('.ts');
  return fromSource
    ? ['--import', 'tsx', join(packageRoot, 'cli/sadp.ts')]
    : [join(packageRoot, 'dist/cli/sadp.js')];
}

/** Runs `sadp <args>` to completion; resolves with its exit code and output. */
export function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SADP_')) env[k] = v;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...cliCommand(), ...args],
      { cwd: packageRoot, env, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        if (err && code === -1)
          reject(new Error(`sadp ${args.join(' ')} failed: ${err.message}`, { cause: err }));
        else resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Starts `sadp scorer` as a child process and waits for its "listening" line. */
export async function spawnScorer(t: TestContext, args: string[]): Promise<SpawnedScorer> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SADP_')) env[k] = v;
  const proc = spawn(process.execPath, [...cliCommand(), 'scorer', '--listen', '127.0.0.1:0', ...args], {
    cwd: packageRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    return exited.then(() => undefined);
  });
  const stderr: string[] = [];
  createInterface({ input: proc.stderr }).on('line', (line) => stderr.push(line));
  const lines = createInterface({ input: proc.stdout });
  const listening = await new Promise<{ address: string; port: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`scorer did not start:\n${stderr.join('\n')}`)), 30_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        const msg = JSON.parse(line) as { event: string; address: string; port: number };
        assert.equal(msg.event, 'listening');
        resolve(msg);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`scorer exited (${code}) before listening:\n${stderr.join('\n')}`));
    });
  });
  return { proc, ...listening, stderr, exited };
}
