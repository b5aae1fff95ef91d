// Debian's nginx as a static S3-like data plane on 127.0.0.1: it serves the
// files under `root` with Range, HEAD, ETags and strict If-Match (an
// unquoted entity-tag gets 412), and ignores SigV4 headers. Started on a
// free port in its own temp prefix; `stop()` ends the process it started.
// Used by bench:get and by the If-Match test (bench:loader uses its config);
// .ci/run installs nginx-light.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface Nginx {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  stop(): Promise<void>;
}

export interface NginxConfOptions {
  /** nginx's prefix: pid, logs and temp paths go here. */
  dir: string;
  /** The served tree. */
  www: string;
  /** `host:port` */
  listen: string;
  /** Default 1024; the loader benchmark holds thousands of connections. */
  workerConnections?: number;
}

/** One worker, no access log, keep-alive for hours, ETags: a static S3-like data plane. */
export function nginxConf(o: NginxConfOptions): string {
  const { dir } = o;
  const connections = o.workerConnections ?? 1024;
  // Each connection is a descriptor: without this a worker is held to the default 1,024.
  return `worker_processes 1;
worker_rlimit_nofile ${2 * connections};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${connections}; }
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
  server { listen ${o.listen}; root ${o.www}; etag on; location / { } }
}
`;
}

/** Starts nginx serving `<dir>/www`; undefined when nginx is not installed. */
export async function startNginx(dir: string): Promise<Nginx | undefined> {
  // nginx's workers drop root: they must be able to read the served tree.
  await chmod(dir, 0o755);
  const www = join(dir, 'www');
  await mkdir(www, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, nginxConf({ dir, www, listen: `127.0.0.1:${port}` }));
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
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(`${endpoint}/`, { method: 'HEAD' });
      return { endpoint, stop };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  await stop();
  throw new Error(`nginx did not start on ${endpoint} (see ${dir}/error.log)`);
}
