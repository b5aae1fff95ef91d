// deploy/grafana/sadp-dashboard.json queries only metrics (and labels) the
// code defines. Application metrics are read from the sources (every
// counter()/gauge()/histogram() call with a literal sadp_* name, and its
// label names); the process metrics from the prom-client registry itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { collectProcessMetrics, registry } from '../../common/metrics.js';
import { packageRoot } from '../../common/paths.js';

type Kind = 'counter' | 'gauge' | 'histogram';
interface Defined {
  kind: Kind | 'process';
  labels: string[];
  where: string;
}

/** Labels Prometheus adds to every series scraped through the ServiceMonitor. */
const TARGET_LABELS = new Set(['namespace', 'pod', 'service', 'instance', 'job', 'container', 'endpoint']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'gen' || e.name === 'node_modules' ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The argument text of the call whose opening parenthesis is at `open`. */
function callArguments(text: string, open: number): string {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return text.slice(open + 1, i);
  }
  return text.slice(open + 1);
}

function definedMetrics(): Map<string, Defined> {
  const defined = new Map<string, Defined>();
  const tsconfig = JSON.parse(readFileSync(join(packageRoot, 'tsconfig.json'), 'utf8')) as {
    include: string[];
  };
  const dirs = tsconfig.include.filter((d) => d !== 'test' && d !== 'bench');
  const call = /\b(counter|gauge|histogram)\s*(?:<[^>()]*>)?\(\s*['"`](sadp_[a-z0-9_]+)['"`]/g;
  for (const file of dirs.flatMap((d) => sourceFiles(join(packageRoot, d)))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(call)) {
      const args = callArguments(text, text.indexOf('(', m.index + m[1]!.length));
      // labelNames: the array literal holding only strings (buckets are numbers).
      const arrays = [...args.matchAll(/\[([^[\]]*)\]/g)].map((a) => a[1]!.trim());
      const labelArray = arrays.find((a) => a !== '' && /^(['"`][a-z_]+['"`]\s*,?\s*)+$/.test(a));
      const labels = labelArray ? [...labelArray.matchAll(/['"`]([a-z_]+)['"`]/g)].map((l) => l[1]!) : [];
      defined.set(m[2]!, { kind: m[1] as Kind, labels, where: relative(packageRoot, file) });
    }
  }
  collectProcessMetrics();
  for (const metric of registry.getMetricsAsArray()) {
    const name = (metric as unknown as { name: string }).name;
    const labels = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
    if (name.startsWith('sadp_process_'))
      defined.set(name, { kind: 'process', labels, where: 'prom-client defaults' });
  }
  return defined;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}

interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

const dashboard = JSON.parse(
  readFileSync(join(packageRoot, 'deploy', 'grafana', 'sadp-dashboard.json'), 'utf8'),
) as Dashboard;
const defined = definedMetrics();

function queries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of dashboard.panels)
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (v.type === 'query' && q) out.push({ where: `variable $${v.name}`, expr: q });
  }
  return out;
}

/** The defined metric behind a queried series name (histograms: _bucket/_sum/_count). */
function resolve(series: string): { name: string; metric: Defined; bucket: boolean } | undefined {
  const direct = defined.get(series);
  if (direct) return { name: series, metric: direct, bucket: false };
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  const base = m && defined.get(m[1]!);
  if (base && (base.kind === 'histogram' || base.kind === 'process'))
    return { name: m[1]!, metric: base, bucket: m[2] === 'bucket' };
  return undefined;
}

test('the code defines loader and scorer metrics to chart', () => {
  const names = [...defined.keys()];
  assert.ok(
    names.some((n) => n.startsWith('sadp_loader_')),
    'sadp_loader_* metrics',
  );
  assert.ok(
    names.some((n) => n.startsWith('sadp_scorer_')),
    'sadp_scorer_* metrics',
  );
  assert.ok(
    names.some((n) => n.startsWith('sadp_process_')),
    'sadp_process_* metrics',
  );
});

test('every metric the dashboard queries is defined in the code', () => {
  const missing: string[] = [];
  for (const { where, expr } of queries()) {
    const series = [...expr.matchAll(/\b(sadp_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
    if (where.startsWith('panel')) assert.ok(series.length > 0, `${where} queries no sadp metric`);
    for (const s of series) if (!resolve(s)) missing.push(`${s} (${where})`);
  }
  assert.deepEqual(missing, [], `not defined in the code; defined: ${[...defined.keys()].join(', ')}`);
});

test('every label the dashboard filters or groups by exists on the metrics queried', () => {
  for (const { where, expr } of queries()) {
    const resolved = [...expr.matchAll(/\b(sadp_[a-z0-9_]+)\b/g)]
      .map((m) => resolve(m[1]!))
      .filter((r) => !!r);
    // Matchers bind to their metric: sadp_x{label=...}.
    for (const m of expr.matchAll(/\b(sadp_[a-z0-9_]+)\{([^}]*)\}/g)) {
      const r = resolve(m[1]!);
      if (!r) continue;
      for (const matcher of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
        const label = matcher[1]!;
        // `job` is both a target label and the sadp job id: filtering by the
        // sadp job needs the metric to carry it.
        const ok =
          label === 'job'
            ? r.metric.labels.includes('job')
            : TARGET_LABELS.has(label) || r.metric.labels.includes(label) || (label === 'le' && r.bucket);
        assert.ok(
          ok,
          `${where}: ${r.name} has no label ${label} (labels: ${r.metric.labels.join(', ') || 'none'})`,
        );
      }
    }
    // Grouping labels must exist on some metric of the expression.
    for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
      for (const label of m[1]!
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean)) {
        const ok =
          (label !== 'job' && TARGET_LABELS.has(label)) ||
          resolved.some((r) => r.metric.labels.includes(label) || (label === 'le' && r.bucket));
        assert.ok(ok, `${where}: no metric in \`${expr}\` has the label ${label}`);
      }
    }
    // label_values(metric, label) in variables.
    for (const m of expr.matchAll(/label_values\(\s*(sadp_[a-z0-9_]+)[^,]*,\s*([a-z_]+)\s*\)/g)) {
      const r = resolve(m[1]!);
      const label = m[2]!;
      assert.ok(
        r &&
          (label === 'job'
            ? r.metric.labels.includes('job')
            : TARGET_LABELS.has(label) || r.metric.labels.includes(label)),
        `${where}: ${m[1]} has no label ${label}`,
      );
    }
  }
});

test('the dashboard charts what operators ask about', () => {
  const all = queries()
    .map((q) => q.expr)
    .join('\n');
  // I/O saved, samples/s, subset size, retries, latency quantiles, in-flight
  // bytes, active streams, scorer plan time: each by the metric that measures it.
  const topics: [string, RegExp][] = [
    ['I/O saved', /never_fetched[^\n]*selected|selected[^\n]*never_fetched/],
    ['samples/s', /rate\(sadp_loader_samples_sent_total/],
    ['subset size', /sadp_(loader_subset_size|scorer_selected_examples)/],
    ['retries', /sadp_loader_storage_retries_total/],
    ['batch latency quantiles', /histogram_quantile\([^\n]*sadp_loader_batch_latency_seconds_bucket/],
    ['in-flight bytes', /sadp_loader_inflight_bytes/],
    ['active streams', /sadp_loader_active_streams/],
    ['scorer plan time', /histogram_quantile\([^\n]*sadp_scorer_plan_compute_seconds_bucket/],
  ];
  for (const [topic, re] of topics) assert.match(all, re, `no panel for ${topic}`);
});

test('dashboard structure: unique ids, datasource variable, panels inside a 24-column grid without overlap', () => {
  assert.ok(dashboard.uid && dashboard.title && dashboard.schemaVersion >= 36);
  assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'duplicate panel ids');
  const cells = new Set<string>();
  for (const p of dashboard.panels) {
    const { x, y, w, h } = p.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, `panel "${p.title}" gridPos`);
    for (let i = x; i < x + w; i++)
      for (let j = y; j < y + h; j++) {
        assert.ok(!cells.has(`${i},${j}`), `panel "${p.title}" overlaps another at ${i},${j}`);
        cells.add(`${i},${j}`);
      }
    if (p.type === 'row') continue;
    assert.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}" uses the datasource variable`);
    assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has no query`);
    const refs = (p.targets ?? []).map((t) => t.refId);
    assert.equal(new Set(refs).size, refs.length, `panel "${p.title}" duplicate refIds`);
  }
});
