// A launcher for `sadp` service commands as child processes (the nats
// launcher idea): start one, read its JSON "listening" line for the port,
// keep every line of stdout and stderr, and kill or stop it by its own pid.
// Tests and benchmarks use it to SIGKILL a service mid-epoch and start it
// again on the same port and state. Works from source (tsx) and from dist/.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../../common/paths.js';

/** The CLI entry point, from source (tsx) or from the compiled tree, matching how the caller runs. */
export function cliCommand(): string[] {
  const fromSource = fileURLToPath(import.meta.url).endsWith('.ts');
  // tsx by URL, not by name: a child started in another directory (a temp
  // cwd) would not find the package from there.
  return fromSource
    ? ['--import', import.meta.resolve('tsx'), join(packageRoot, 'cli/sadp.ts')]
    : [join(packageRoot, 'dist/cli/sadp.js')];
}

/** The environment without SADP_* variables (a developer's shell must not leak into a test), plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SADP_')) env[k] = v;
  return { ...env, ...extra };
}

export interface ServiceSpec {
  /** `sadp` arguments, e.g. ['loader', '--listen', '127.0.0.1:0', ...]. */
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** How long to wait for the listening line; default 60,000 ms (a loaded 2-core machine compiles slowly). */
  startTimeoutMs?: number;
  /**
   * Which listening line means "started", for commands that run several
   * services (`sadp serve` prints one per service); default the first.
   */
  service?: string;
  /**
   * Run in a network namespace of its own (root only; `unshare` and `ip`),
   * with its loopback up: fixed ports are free there whatever else listens.
   */
  privateNetwork?: boolean;
}

export interface ServiceProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** The parsed "listening" line. */
  readonly listening: Record<string, unknown>;
  readonly port: number;
  /** Every line written so far (stdout includes the listening line). */
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves with the exit code, or the signal name when killed. */
  readonly exited: Promise<number | string>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<number | string>;
  /** SIGTERM (graceful), then wait; SIGKILL after `graceMs` (default 15,000). */
  stop(graceMs?: number): Promise<number | string>;
}

/** The text of a failed start: the command and what it printed. */
function startFailure(spec: ServiceSpec, why: string, stdout: string[], stderr: string[]): Error {
  return new Error(
    `sadp ${spec.args.join(' ')} ${why}\n--- stdout\n${stdout.join('\n')}\n--- stderr\n${stderr.join('\n')}`,
  );
}

/** Starts `sadp <args>` and resolves once it printed its JSON "listening" line. */
export async function startService(spec: ServiceSpec): Promise<ServiceProcess> {
  const command = [process.execPath, ...cliCommand(), ...spec.args];
  // unshare and sh exec in turn, so the pid is the service's.
  const [file, ...argv] = spec.privateNetwork
    ? ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...command]
    : command;
  const proc = spawn(file as string, argv, {
    cwd: spec.cwd ?? packageRoot,
    env: cleanEnv(spec.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<number | string>((resolve) =>
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  createInterface({ input: proc.stderr }).on('line', (line) => stderr.push(line));
  const lines = createInterface({ input: proc.stdout });
  const kill = async (): Promise<number | string> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    return exited;
  };
  let listening: Record<string, unknown>;
  try {
    listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(startFailure(spec, 'did not print a listening line in time', stdout, stderr)),
        spec.startTimeoutMs ?? 60_000,
      );
      lines.on('line', (line) => {
        stdout.push(line);
        if (!line.startsWith('{')) return;
        try {
          const msg = JSON.parse(line) as Record<string, unknown>;
          if (msg.event !== 'listening') return;
          if (spec.service !== undefined && msg.service !== spec.service) return;
          clearTimeout(timer);
          resolve(msg);
        } catch {
          // Not JSON: keep reading.
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        // Let the last lines of output arrive before reporting them.
        setTimeout(() => reject(startFailure(spec, `exited (${code}) before listening`, stdout, stderr)), 50);
      });
    });
  } catch (err) {
    await kill();
    throw err;
  }
  return {
    proc,
    pid: proc.pid as number,
    listening,
    port: Number(listening.port),
    stdout,
    stderr,
    exited,
    kill,
    async stop(graceMs = 15_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** `sadp loader` on a free loopback port, dialling the scorer on `scorerPort`; `args` add flags. */
export function startLoaderService(
  scorerPort: number,
  args: string[] = [],
  env?: Record<string, string>,
): Promise<ServiceProcess> {
  return startService({
    args: ['loader', '--listen', '127.0.0.1:0', '--scorer', `127.0.0.1:${scorerPort}`, ...args],
    ...(env ? { env } : {}),
  });
}

/** The JSON "listening" line a multi-service command (`sadp serve`) printed for `service`. */
export function listeningLine(svc: ServiceProcess, service: string): Record<string, unknown> {
  for (const line of svc.stdout) {
    if (!line.startsWith('{')) continue;
    const msg = JSON.parse(line) as Record<string, unknown>;
    if (msg.event === 'listening' && msg.service === service) return msg;
  }
  throw new Error(`no listening line for ${service}: ${svc.stdout.join('\n')}`);
}

export interface EmbeddedServe {
  proc: ServiceProcess;
  s3Endpoint: string;
  scorerAddress: string;
  loaderAddress: string;
}

/**
 * `sadp serve --embedded-s3` with S3 data and scorer state under `dir`, every
 * service on a free loopback port; resolves once the loader listens.
 */
export async function startEmbeddedServe(options: {
  dir: string;
  bucket: string;
  args?: string[];
  env?: Record<string, string>;
}): Promise<EmbeddedServe> {
  const { dir } = options;
  const proc = await startService({
    args: [
      'serve',
      '--embedded-s3',
      '--s3-port',
      '0',
      '--s3-data-dir',
      join(dir, 's3'),
      '--bucket',
      options.bucket,
      '--scorer-listen',
      '127.0.0.1:0',
      '--loader-listen',
      '127.0.0.1:0',
      '--state',
      join(dir, 'state'),
      ...(options.args ?? []),
    ],
    service: 'loader',
    ...(options.env ? { env: options.env } : {}),
  });
  return {
    proc,
    s3Endpoint: String(listeningLine(proc, 's3').endpoint),
    scorerAddress: String(listeningLine(proc, 'scorer').address),
    loaderAddress: String(listeningLine(proc, 'loader').address),
  };
}

/** Runs `sadp <args>` to completion (for commands that must fail fast); never throws on a non-zero exit. */
export async function runSadp(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [...cliCommand(), ...args], {
    cwd: options.cwd ?? packageRoot,
    env: cleanEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const code = await new Promise<number | string>((resolve) =>
    proc.once('close', (c, signal) => resolve(c ?? signal ?? -1)),
  );
  clearTimeout(timer);
  return { code, stdout, stderr };
}
