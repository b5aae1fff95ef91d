// The Grafana dashboard and the alert rules, checked by the real thing: a
// Prometheus (Debian's, started here on loopback with a temporary config)
// scrapes a scorer and a loader process while a trainer runs two short
// epochs against them, then every dashboard query (its template variables
// filled in as Grafana would) must return series, and the alert rules must
// load and evaluate without error. `promtool test rules` runs the rules' own
// cases (deploy/prometheus/alerts.test.yaml).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { packageRoot } from '../../common/paths.js';
import { createLoaderClient } from '../../trainer/client/index.js';
import { runSadp, startLoaderService, startService, type ServiceProcess } from '../helpers/processes.js';
import { freePort } from '../helpers/ports.js';

const run = promisify(execFile);
const JOB = 'prom-job';
const EPOCHS = 2;
const ALERTS = join(packageRoot, 'deploy', 'prometheus', 'alerts.yaml');
const ALERT_TESTS = join(packageRoot, 'deploy', 'prometheus', 'alerts.test.yaml');
const DASHBOARD = join(packageRoot, 'deploy', 'grafana', 'sadp-dashboard.json');

interface Dashboard {
  panels: { title: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; query?: string | { query: string } }[] };
}

let dir: string;
let s3: ServiceProcess;
let scorer: ServiceProcess;
let loader: ServiceProcess;
let prometheus: ChildProcess;
let promUrl: string;

async function promQuery(
  expr: string,
): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: never[] } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? res.status}`);
  return body.data!.result;
}

/** Polls until `check` returns true; the bound only stops a broken run, it asserts nothing about speed. */
async function until(what: string, check: () => Promise<boolean>, boundMs = 120_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const ok = await check().catch((err: unknown) => {
      if (err instanceof assert.AssertionError) throw err;
      return false; // not up yet
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(250);
  }
}

/** The loader's own value of an unlabeled counter, from its /metrics. */
async function ownValue(metricsPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sadp-prometheus-'));
  s3 = await startService({
    args: ['s3', 'serve', '--data-dir', join(dir, 's3'), '--port', '0', '--bucket', 'data'],
  });
  const endpoint = String(s3.listening.endpoint);
  const creds = ['--endpoint', endpoint, '--access-key-id', 'S3RVER', '--secret-access-key', 'S3RVER'];
  const built = await runSadp([
    'shards',
    'build',
    '--source',
    'synthetic',
    '--count',
    '512',
    '--mean-bytes',
    '2000',
    '--shard-bytes',
    '256KiB',
    '--out',
    's3://data/ds',
    ...creds,
  ]);
  assert.equal(built.code, 0, built.stderr);
  scorer = await startService({
    args: [
      'scorer',
      '--listen',
      '127.0.0.1:0',
      '--state',
      join(dir, 'state'),
      '--metrics-port',
      String(await freePort()), // --metrics-port 0 turns /metrics off
      ...creds,
    ],
  });
  loader = await startLoaderService(scorer.port, ['--metrics-port', String(await freePort()), ...creds]);
  const job = await runSadp([
    'scorer',
    'create-job',
    '--address',
    `127.0.0.1:${scorer.port}`,
    '--job',
    JOB,
    '--policy',
    'sadp',
    '--prune-ratio',
    '0.5',
    '--epochs',
    String(EPOCHS),
    '--dataset',
    's3://data/ds/manifest.json',
    ...creds,
  ]);
  assert.equal(job.code, 0, job.stderr);

  // Prometheus as the ServiceMonitor configures it (honor_labels keeps the
  // sadp `job` label), with the labels Kubernetes service discovery adds.
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  const target = (name: string, metricsPort: unknown): string =>
    `  - job_name: ${name}\n    honor_labels: true\n    static_configs:\n` +
    `      - targets: ['127.0.0.1:${String(metricsPort)}']\n        labels: { namespace: sadp, pod: ${name}-0, service: ${name} }\n`;
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['${ALERTS}']\nscrape_configs:\n` +
      target('sadp-scorer', scorer.listening.metricsPort) +
      target('sadp-loader', loader.listening.metricsPort),
  );
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  prometheus.stderr!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
  await until('Prometheus to scrape both targets', async () => {
    assert.equal(prometheus.exitCode, null, `prometheus exited: ${log}`);
    const res = (await (await fetch(`${promUrl}/api/v1/targets`)).json()) as {
      data: { activeTargets: { health: string }[] };
    };
    return res.data.activeTargets.length === 2 && res.data.activeTargets.every((t) => t.health === 'up');
  });

  // Two epochs, every batch acked with scores.
  const client = createLoaderClient({ address: `127.0.0.1:${loader.port}` });
  try {
    for (let epoch = 0; epoch < EPOCHS; epoch++) {
      for await (const batch of client.epoch({ job: JOB, epoch, rank: 0, worldSize: 1, batchSize: 32 })) {
        await batch.ack({ scores: Array.from(batch.ids, (id) => 1 + (id % 7)) });
      }
    }
  } finally {
    client.close();
  }
  // Until Prometheus holds the loader's final counts.
  const sent = await ownValue(Number(loader.listening.metricsPort), 'sadp_loader_samples_sent_total');
  assert.ok(sent > 0, 'the loader sent samples');
  await until('Prometheus to scrape the end of the run', async () => {
    const r = await promQuery('sum(sadp_loader_samples_sent_total)');
    return Number(r[0]?.value[1]) === sent;
  });
  // rate() needs two samples of a series: a labeled series born late in the
  // run (e.g. at the last epoch boundary) gets its second one in the next
  // scrapes, so wait for two more scrapes of each target.
  const scrapes = async (): Promise<number[]> =>
    (await promQuery('count_over_time(up[1h])')).map((r) => Number(r.value[1]));
  const seen = Math.max(...(await scrapes()));
  await until('two more scrapes of both targets', async () => {
    const now = await scrapes();
    return now.length === 2 && Math.min(...now) >= seen + 2;
  });
});

after(async () => {
  if (prometheus && prometheus.exitCode === null) {
    prometheus.kill('SIGTERM');
    await new Promise((resolve) => prometheus.once('exit', resolve));
  }
  await loader?.stop();
  await scorer?.stop();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A panel query with Grafana's variables filled in for an instant query over the whole run. */
function instant(expr: string): string {
  return expr
    .replaceAll('$namespace', 'sadp')
    .replaceAll('$job', JOB)
    .replaceAll('$__rate_interval', '1h')
    .replaceAll('$__interval', '1h')
    .replaceAll('$__range', '1h');
}

test('every dashboard panel query returns series from a real Prometheus scraping scorer and loader', async () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const empty: string[] = [];
  let queries = 0;
  for (const panel of dashboard.panels) {
    for (const t of panel.targets ?? []) {
      queries++;
      const result = await promQuery(instant(t.expr));
      if (result.length === 0) empty.push(`${panel.title}: ${t.expr}`);
    }
  }
  assert.ok(queries >= 20, `the dashboard has its queries (${queries})`);
  assert.deepEqual(empty, [], 'panel queries that returned no series');
});

test('the dashboard’s template variables find their values (namespace, sadp job)', async () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const values = new Map<string, string[]>();
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = q && /^label_values\((.+), (\w+)\)$/.exec(q);
    if (!m) continue;
    const result = await promQuery(instant(m[1]!));
    values.set(v.name, [...new Set(result.map((r) => r.metric[m[2]!]).filter((x) => x !== undefined))]);
  }
  assert.deepEqual(values.get('namespace'), ['sadp']);
  assert.deepEqual(values.get('job'), [JOB], 'the sadp job id, not the scrape job (honor_labels)');
});

test('the alert rules load into Prometheus and evaluate without error, none firing on a healthy run', async () => {
  const res = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
    data: { groups: { rules: { name: string; health: string; state: string; lastError?: string }[] }[] };
  };
  const rules = res.data.groups.flatMap((g) => g.rules);
  assert.ok(rules.length >= 5, `rules loaded: ${rules.map((r) => r.name).join(', ')}`);
  await until('every rule to be evaluated', async () => {
    const again = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof res;
    return again.data.groups.flatMap((g) => g.rules).every((r) => r.health === 'ok');
  });
  const after = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof res;
  const flat = after.data.groups.flatMap((g) => g.rules);
  assert.deepEqual(
    flat.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError ?? r.health}`),
    [],
  );
  assert.deepEqual(
    flat.filter((r) => r.state === 'firing').map((r) => r.name),
    [],
    'no alert fires on a healthy run',
  );
});

test('promtool checks the alert rules and passes their unit tests', async () => {
  const check = await run('promtool', ['check', 'rules', ALERTS]);
  assert.match(check.stdout, /SUCCESS: \d+ rules found/);
  const unit = await run('promtool', ['test', 'rules', ALERT_TESTS], {
    cwd: join(packageRoot, 'deploy', 'prometheus'),
  });
  assert.match(unit.stdout, /SUCCESS/);
});
