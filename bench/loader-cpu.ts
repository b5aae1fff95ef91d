// Loader CPU per delivered sample, warm, with builds side by side.
//
//   npm run bench:loader-cpu [-- --builds before=/path/to/old/dist,after=dist] [--samples 1024]
//                               [--jobs 5] [--r 0] [--mode ranges] [--read-threads 0,1] [--profile dir]
// (--profile: each loader under --cpu-prof, its self time by package printed at the end;
// a build may carry Node flags for its loader after `+`: `semi64=dist+--max-semi-space-size=64`,
// and another Node binary for its loader as `+bin=/usr/bin/node`)
//
// bench:loader --quick measures each case once on a fresh loader process, so
// its r = 0 figure carries the process's warm-up (JIT, first connections,
// first dataset open) spread over 512 samples. This one starts one loader
// process per build (and per --read-threads value) against the same nginx,
// scorer and trainer processes (the roles of bench/loader.ts, taken from each
// build's own dist/bench/loader.js), then runs one-epoch jobs on them in
// turns, alternating the order each round, so every build sees the same
// machine load within the same minute. Per loader: the first job (cold) and
// the median of the others (warm), as loader CPU us per delivered sample.
// Loopback only, nginx on 127.0.0.1:9210 (needs nginx-light; no root needed).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as LoaderModule from '../loader/index.js';
import { summarizeProfile } from './cpu-profile.js';

const HERE_DIST = resolve(fileURLToPath(import.meta.url), '../..');
const PORT = 9210;
const MiB = 1024 * 1024;

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}

interface Child {
  proc: ChildProcess;
  send(m: object): void;
  next(type: string): Promise<Record<string, unknown>>;
}

function child(
  dist: string,
  role: string,
  arg: unknown,
  execArgv: string[] = [],
  execPath = process.execPath,
): Child {
  const proc = spawn(
    execPath,
    [...execArgv, join(dist, 'bench/loader.js'), '--role', role, JSON.stringify(arg)],
    { stdio: ['ignore', 'ignore', role === 'loader' ? 'ignore' : 'inherit', 'ipc'] },
  );
  const inbox: Record<string, unknown>[] = [];
  const waiters: { type: string; resolve(m: Record<string, unknown>): void; reject(e: Error): void }[] = [];
  proc.on('message', (m: Record<string, unknown>) => {
    if (m.type === 'error') {
      for (const w of waiters.splice(0)) w.reject(new Error(`${role}: ${String(m.message)}`));
      return;
    }
    const i = waiters.findIndex((w) => w.type === m.type);
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(m);
    else inbox.push(m);
  });
  proc.on('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`${role} exited (${code})`));
  });
  return {
    proc,
    send: (m) => void (proc.connected && proc.send(m)),
    next: (type) => {
      const i = inbox.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as Record<string, unknown>);
      return new Promise((res, rej) => waiters.push({ type, resolve: res, reject: rej }));
    },
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor(s.length / 2)] as number);
};

async function main(): Promise<void> {
  const builds = flag('--builds', `this=${HERE_DIST}`)
    .split(',')
    .map((b) => {
      const [name, rest = ''] = b.split(/=(.*)/s) as [string, string?];
      const [dist = '', ...extra] = rest.split('+');
      const bin = extra.find((a) => a.startsWith('bin='))?.slice(4);
      return { name, dist, nodeArgs: extra.filter((a) => !a.startsWith('bin=')), bin };
    });
  const threads = flag('--read-threads', '0').split(',').map(Number);
  const samples = Number(flag('--samples', '1024'));
  const jobs = Number(flag('--jobs', '5'));
  const r = Number(flag('--r', '0'));
  const mode = flag('--mode', 'ranges');
  const profile = process.argv.includes('--profile') ? resolve(flag('--profile', 'loader-cpu-profiles')) : '';
  const world = 2;
  const batchSize = 32;
  const dir = await mkdtemp(join(tmpdir(), 'sadpb-cpu-'));
  await chmod(dir, 0o755);
  const root = join(dir, 'www/bench/ds');
  await mkdir(root, { recursive: true });
  const children: Child[] = [];
  let nginx: ChildProcess | undefined;
  let profiled: string[] = [];
  try {
    const first = builds[0]?.dist ?? HERE_DIST;
    const shards = (await import(join(first, 'loader/index.js'))) as typeof LoaderModule;
    await shards.buildShards(shards.syntheticSource({ count: samples, meanBytes: 110_000, seed: 12 }), {
      out: root,
      shardBytes: 4 * MiB,
    });
    // nginx's ETags (hex mtime-size) in the manifest and indexes, as bench:loader does.
    const manifestPath = join(root, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as {
      shards: { url: string; etag: string; index: string }[];
    };
    const mtime = new Date(Math.floor(Date.now() / 1000) * 1000);
    for (const s of manifest.shards) {
      await utimes(join(root, s.url), mtime, mtime);
      const st = await stat(join(root, s.url));
      s.etag = `${Math.floor(st.mtimeMs / 1000).toString(16)}-${st.size.toString(16)}`;
      const idx = JSON.parse(await readFile(join(root, s.index), 'utf8')) as { etag: string };
      idx.etag = s.etag;
      await writeFile(join(root, s.index), JSON.stringify(idx));
    }
    await writeFile(manifestPath, JSON.stringify(manifest));
    const ng = join(dir, 'nginx');
    await mkdir(ng);
    await writeFile(
      join(ng, 'nginx.conf'),
      `worker_processes 1;\ndaemon off;\npid ${ng}/nginx.pid;\nerror_log ${ng}/error.log warn;\n` +
        `events { worker_connections 4096; }\nhttp { access_log off; sendfile on; tcp_nopush off; ` +
        `keepalive_timeout 300s; keepalive_requests 10000000; client_body_temp_path ${ng}/b; ` +
        `proxy_temp_path ${ng}/p; fastcgi_temp_path ${ng}/f; uwsgi_temp_path ${ng}/u; scgi_temp_path ${ng}/s; ` +
        `default_type application/octet-stream; server { listen 127.0.0.1:${PORT}; root ${dir}/www; etag on; location / { } } }\n`,
    );
    nginx = spawn('nginx', ['-c', join(ng, 'nginx.conf')], { stdio: 'inherit' });
    await new Promise((res) => setTimeout(res, 500));
    const s3 = {
      endpoint: `http://127.0.0.1:${PORT}`,
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: 'bench',
      secretAccessKey: 'bench-secret',
    };
    const scorer = child(first, 'scorer', null);
    children.push(scorer);
    const scorerAddress = (await scorer.next('ready')).address as string;
    const loaders: { name: string; c: Child; address: string; us: number[]; sysUs: number[] }[] = [];
    for (const { name, dist, nodeArgs, bin } of builds) {
      for (const t of threads) {
        const label = threads.length > 1 || t > 0 ? `${name}/threads=${t}` : name;
        const execArgv = [
          ...nodeArgs,
          ...(profile
            ? ['--cpu-prof', '--cpu-prof-dir', join(profile, label.replace(/[^\w.-]+/g, '_'))]
            : []),
        ];
        const c = child(dist, 'loader', { scorerAddress, s3, mode, readThreads: t }, execArgv, bin);
        children.push(c);
        loaders.push({
          name: label,
          c,
          address: (await c.next('ready')).address as string,
          us: [],
          sysUs: [],
        });
      }
    }
    const trainers: Child[] = [];
    for (let k = 0; k < world; k++) {
      const t = child(first, 'trainer', k);
      children.push(t);
      await t.next('ready');
      trainers.push(t);
    }
    const cpuMs = async (c: Child): Promise<{ total: number; system: number }> => {
      c.send({ type: 'cpu' });
      const m = await c.next('cpu');
      return { total: (m.userMs as number) + (m.systemMs as number), system: m.systemMs as number };
    };
    let jobNo = 0;
    for (let j = 0; j < jobs; j++) {
      for (const l of j % 2 === 0 ? loaders : [...loaders].reverse()) {
        const job = `cpu${++jobNo}`;
        scorer.send({ type: 'job', jobId: job, samples, r, epochs: 1 });
        await scorer.next('job-ok');
        const c0 = await cpuMs(l.c);
        for (const t of trainers)
          t.send({ type: 'run', address: l.address, job, epochs: 1, batchSize, world });
        let n = 0;
        for (const t of trainers) {
          n += ((await t.next('epoch')).result as { samples: number }).samples;
          await t.next('done');
        }
        const c1 = await cpuMs(l.c);
        const us = (c1.total - c0.total) * (1000 / n);
        const sysUs = (c1.system - c0.system) * (1000 / n);
        l.us.push(us);
        l.sysUs.push(sysUs);
        console.log(
          `job ${j} ${l.name}: ${n} samples, ${us.toFixed(0)} CPU us/sample (system ${sysUs.toFixed(0)}), load ${loadavg()[0]?.toFixed(2)}`,
        );
      }
    }
    console.log(`\nloader CPU us per delivered sample (r = ${r}, ${mode}, ${samples} samples of ~110 KB):`);
    for (const l of loaders) {
      const warm = l.us.slice(1);
      l.c.send({ type: 'stats' });
      const peakMiB = ((await l.c.next('stats')).peakRss as number) / 2 ** 20;
      console.log(
        `  ${l.name}: cold ${l.us[0]?.toFixed(0)}, warm median ${median(warm).toFixed(0)} [${warm.map((x) => x.toFixed(0)).join(' ')}]` +
          `, of which system ${median(l.sysUs.slice(1)).toFixed(0)}; RSS peak ${peakMiB.toFixed(0)} MiB`,
      );
    }
    console.log(
      `load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    if (profile) profiled = loaders.map((l) => l.name);
  } finally {
    for (const c of children) c.send({ type: 'stop' });
    await new Promise((res) => setTimeout(res, 1500));
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
    nginx?.kill('SIGQUIT');
    await new Promise((res) => setTimeout(res, 300));
    if (nginx && nginx.exitCode === null) nginx.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
  // The profiles are written as the loaders exit.
  for (const name of profiled) {
    const sub = join(profile, name.replace(/[^\w.-]+/g, '_'));
    for (const file of (await readdir(sub)).filter((f) => f.endsWith('.cpuprofile'))) {
      const { busyMs, groups } = await summarizeProfile(join(sub, file));
      console.log(`\n${name} (${join(sub, file)}): ${busyMs.toFixed(0)} ms busy, self time by package`);
      for (const g of groups.slice(0, 20)) {
        console.log(
          `  ${(100 * g.share).toFixed(1).padStart(5)} %  ${g.ms.toFixed(0).padStart(7)} ms  ${g.group}`,
        );
      }
    }
  }
}

await main();
