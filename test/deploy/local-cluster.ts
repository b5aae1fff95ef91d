// Runs the containers of rendered Kubernetes manifests as local processes
// ("pods" on loopback), for the multi-process deploy test. What a pod runs
// comes from the manifests: the image's entrypoint (`sadp`) with the
// container's args, the image's ENV plus the container's env/envFrom, and the
// files of its ConfigMap and Secret volumes. Only what one machine forces is
// changed, by the mechanical rules of `localize` below (ports, Service
// names, mount paths) and by the Job controller's per-index values; nothing
// is rewritten by hand, so a wrong flag, variable or address in the
// manifests fails here as it would in a cluster.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseDocument, visit } from 'yaml';
import { DockerfileParser } from 'dockerfile-ast';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import { healthStatus } from '../helpers/grpc.js';
import { cliCommand } from '../helpers/processes.js';
import { deployDir, describe, podTemplates, resolvePort, selects, type K8sObject } from './manifests.js';
import { freePorts } from '../helpers/ports.js';

/** Lines of output kept per stream and process (the newest); debug logs of a short run stay far below. */
export const MAX_OUTPUT_LINES = 20_000;

export interface LocalPod {
  /** `<workload>-<index>`, like a StatefulSet pod name (indexes are what the rules use). */
  readonly name: string;
  readonly workload: K8sObject;
  /** Replica ordinal, or the completion index of an Indexed Job. */
  readonly index: number;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly spec: IPodSpec;
  readonly container: IContainer;
  /** containerPort -> the loopback port it got here. */
  readonly ports: ReadonlyMap<number, number>;
  /** The pod's directory: `volumes/<name>` per volume and `root/`, the working directory. */
  readonly dir: string;
  /** The working directory: an empty directory standing for the read-only image root. */
  readonly cwd: string;
  /** `sadp` arguments and the environment, after localization. */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** terminationGracePeriodSeconds in ms (Kubernetes default 30 s). */
  readonly graceMs: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface PodProcess {
  readonly pod: LocalPod;
  readonly proc: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  /** The JSON "listening" line of a service, once printed. */
  listening: Record<string, unknown> | undefined;
  readonly exited: Promise<Exit>;
  readonly running: boolean;
  /** Like the kubelet: SIGTERM, SIGKILL once the pod's grace period has passed. */
  terminate(): Promise<{ exit: Exit; killed: boolean; ms: number }>;
  /** SIGKILL (test cleanup). */
  kill(): Promise<Exit>;
  /** The command and its output, for assertion messages. */
  describe(): string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface LocalCluster {
  readonly pods: readonly LocalPod[];
  /** The pods of one workload, by index. */
  podsOf(workload: string): LocalPod[];
  /** The local port behind `<service>:<port>` as seen from `client` (its index picks among several backends). */
  servicePort(service: string, port: number, client?: { index: number }): number;
  /** Applies the localization rules to one value, as the given pod would see it. */
  localize(value: string, pod?: LocalPod): string;
  /** Starts a long-running pod and resolves once it printed its JSON "listening" line. */
  start(pod: LocalPod, timeoutMs?: number): Promise<PodProcess>;
  /** Starts a pod that runs to completion (a Job's pod). */
  launch(pod: LocalPod): PodProcess;
  /** `kubectl exec <pod> -- sadp ...`: the pod's environment and working directory, argv localized. */
  exec(pod: LocalPod, argv: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** Runs the pod's probe of this kind once; resolves to undefined when it passes, else the reason. */
  probe(
    pod: LocalPod,
    kind: 'startupProbe' | 'readinessProbe' | 'livenessProbe',
  ): Promise<string | undefined>;
  /** Files the pod wrote into its working directory (a read-only root filesystem in the cluster). */
  rootWrites(pod: LocalPod): string[];
  /** Every process started, for cleanup. */
  readonly processes: readonly PodProcess[];
}

export interface LocalClusterOptions {
  /** Rendered objects: an overlay, the examples, and objects created outside the manifests (Secrets). */
  objects: readonly K8sObject[];
  /** Directory for the pods' files. */
  root: string;
  /**
   * Replica counts for workloads whose count the manifests leave open (a
   * Deployment without `replicas`, owned by an HPA). Default: `spec.replicas`
   * (1 when absent); Indexed Jobs run `completions` pods.
   */
  replicas?: Readonly<Record<string, number>>;
}

/** ENV of the Dockerfile's runtime (last) stage: the environment every container starts from. */
export function imageEnv(dockerfile = join(deployDir, 'Dockerfile')): Record<string, string> {
  const parsed = DockerfileParser.parse(readFileSync(dockerfile, 'utf8'));
  const stages = parsed.getFROMs();
  const lastFrom = stages[stages.length - 1];
  const from = lastFrom?.getRange().start.line ?? 0;
  const env: Record<string, string> = {};
  for (const e of parsed.getENVs()) {
    if (e.getRange().start.line < from) continue;
    for (const p of e.getProperties()) {
      const name = p.getName();
      const value = p.getValue();
      if (name && value !== null) env[name] = value;
    }
  }
  return env;
}

/** `node` arguments that stand for the image's `sadp` (tsx resolved absolutely: the working directory is empty). */
function sadpBinary(): string[] {
  return cliCommand().map((a) => (a === 'tsx' ? import.meta.resolve('tsx') : a));
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Kubernetes `$(VAR)` expansion in args and env values (`$$` escapes; unknown references stay). */
export function expandK8sRefs(value: string, env: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) =>
    name === undefined ? '$' : (env[name] ?? m),
  );
}

interface ServiceInfo {
  name: string;
  namespace: string;
  ports: { port: number; targetPort: number | string }[];
  backends: LocalPod[];
}

const POD_KINDS = new Set(['Deployment', 'StatefulSet', 'Job']);

export async function createLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  const { objects } = options;
  const base = imageEnv();

  // 1. Pods, with their ports (all allocated before anything starts, so every
  //    address can be substituted up front).
  interface Draft {
    workload: K8sObject;
    index: number;
    namespace: string;
    labels: Record<string, string>;
    spec: IPodSpec;
    container: IContainer;
    annotations: Record<string, string>;
  }
  const drafts: Draft[] = [];
  for (const { owner, labels, spec } of podTemplates(objects)) {
    if (!POD_KINDS.has(owner.kind)) throw new Error(`${describe(owner)}: unsupported workload kind`);
    if (spec.containers.length !== 1 || (spec.initContainers ?? []).length > 0)
      throw new Error(`${describe(owner)}: one container per pod is supported`);
    const wspec = owner.spec as {
      replicas?: number;
      completions?: number;
      parallelism?: number;
      completionMode?: string;
    };
    let count: number;
    const indexed = owner.kind === 'Job' && wspec.completionMode === 'Indexed';
    if (owner.kind === 'Job') {
      if (!indexed) throw new Error(`${describe(owner)}: only Indexed Jobs are supported`);
      count = wspec.completions ?? 1;
      if ((wspec.parallelism ?? 1) < count)
        throw new Error(`${describe(owner)}: parallelism below completions would not run every rank at once`);
    } else {
      count = options.replicas?.[owner.metadata.name] ?? wspec.replicas ?? 1;
    }
    for (let index = 0; index < count; index++) {
      drafts.push({
        workload: owner,
        index,
        namespace: owner.metadata.namespace ?? 'default',
        labels,
        spec,
        container: spec.containers[0]!,
        // The Job controller annotates each pod with its completion index.
        annotations: indexed ? { 'batch.kubernetes.io/job-completion-index': String(index) } : {},
      });
    }
  }
  const portCount = drafts.reduce((n, d) => n + (d.container.ports?.length ?? 0), 0);
  const allocated = await freePorts(portCount);
  // Built in two steps (args and env need every pod's ports first).
  type MutablePod = { -readonly [K in keyof LocalPod]: LocalPod[K] };
  const pods: MutablePod[] = [];
  const podDrafts = new Map<LocalPod, Draft>();
  for (const d of drafts) {
    const ports = new Map<number, number>();
    for (const p of d.container.ports ?? []) ports.set(p.containerPort, allocated.shift()!);
    const name = `${d.workload.metadata.name}-${d.index}`;
    const dir = join(options.root, name);
    const cwd = join(dir, 'root');
    mkdirSync(cwd, { recursive: true });
    const pod: MutablePod = {
      name,
      workload: d.workload,
      index: d.index,
      namespace: d.namespace,
      labels: d.labels,
      spec: d.spec,
      container: d.container,
      ports,
      dir,
      cwd,
      args: [],
      env: {},
      graceMs: (d.spec.terminationGracePeriodSeconds ?? 30) * 1000,
    };
    pods.push(pod);
    podDrafts.set(pod, d);
  }

  // 2. Services and their backends (label selector, same namespace).
  const services: ServiceInfo[] = objects
    .filter((o) => o.kind === 'Service')
    .map((o) => {
      const spec = o.spec as {
        selector?: Record<string, string>;
        ports?: { port: number; targetPort?: number | string }[];
      };
      const namespace = o.metadata.namespace ?? 'default';
      return {
        name: o.metadata.name,
        namespace,
        ports: (spec.ports ?? []).map((p) => ({ port: p.port, targetPort: p.targetPort ?? p.port })),
        backends: pods.filter(
          (p) =>
            p.namespace === namespace &&
            spec.selector !== undefined &&
            selects({ matchLabels: spec.selector }, p.labels),
        ),
      };
    });

  function servicePort(name: string, port: number, client?: { index: number }, namespace?: string): number {
    const svc = services.find(
      (s) => s.name === name && (namespace === undefined || s.namespace === namespace),
    );
    if (!svc) throw new Error(`no Service ${name}${namespace ? ` in namespace ${namespace}` : ''}`);
    const sp = svc.ports.find((p) => p.port === port);
    if (!sp) throw new Error(`Service ${name} has no port ${port}`);
    if (svc.backends.length === 0) throw new Error(`Service ${name} selects no pod`);
    // A headless Service's DNS answer lists every ready pod and each client
    // ends up on one of them: client i here uses backend i mod n.
    const backend = svc.backends[(client?.index ?? 0) % svc.backends.length]!;
    const target = resolvePort(backend.container, sp.targetPort);
    const local = target === undefined ? undefined : backend.ports.get(target);
    if (local === undefined)
      throw new Error(
        `Service ${name} port ${port} targets ${sp.targetPort}, which container ${backend.container.name} of ${describe(backend.workload)} does not declare`,
      );
    return local;
  }

  const serviceRe =
    services.length === 0
      ? undefined
      : new RegExp(
          `(?<![\\w.-])(${[...new Set(services.map((s) => s.name))]
            .sort((a, b) => b.length - a.length)
            .map(escapeRe)
            .join('|')})(?:\\.([a-z0-9-]+)(?:\\.svc(?:\\.cluster\\.local)?)?)?:(\\d+)(?![\\w.-])`,
          'g',
        );

  function mountDirs(pod: LocalPod): [string, string][] {
    return (pod.container.volumeMounts ?? [])
      .map((m): [string, string] => [m.mountPath.replace(/\/+$/, ''), join(pod.dir, 'volumes', m.name)])
      .sort((a, b) => b[0].length - a[0].length);
  }

  /**
   * The rules, applied to every value a pod is given (args, env values, and
   * the scalars of its ConfigMap files; Secrets are left alone):
   *  1. `<service>[.<namespace>[.svc[.cluster.local]]]:<port>` becomes
   *     `127.0.0.1:<local port>` of the backend pod's target port;
   *  2. `0.0.0.0` (listen on every interface) becomes `127.0.0.1`, and an own
   *     address (`0.0.0.0`, `127.0.0.1` or `localhost` with one of the
   *     container's containerPorts) becomes `127.0.0.1:<local port>`;
   *  3. a value that is exactly one of the container's containerPorts (a bare
   *     port: `--port=9000`, `port: 9464`) becomes its local port;
   *  4. a path at or under a volume's mountPath moves under the pod's
   *     directory for that volume.
   */
  function localize(value: string, pod?: LocalPod): string {
    if (pod && /^\d+$/.test(value) && pod.ports.has(Number(value)))
      return String(pod.ports.get(Number(value)));
    let out = value;
    if (serviceRe) {
      out = out.replace(serviceRe, (m, name: string, ns: string | undefined, port: string) =>
        services.some((s) => s.name === name && (ns === undefined || s.namespace === ns))
          ? `127.0.0.1:${servicePort(name, Number(port), pod, ns ?? pod?.namespace)}`
          : m,
      );
    }
    out = out.replace(
      /(?<![\w.-])(0\.0\.0\.0|127\.0\.0\.1|localhost)(?::(\d+))?(?![\w.-])/g,
      (m, host: string, port: string | undefined) => {
        // A port the container does not declare is some other process's
        // (a shared config file names the scorer's listen address in the
        // loaders too): left as it is.
        const local = port === undefined ? undefined : pod?.ports.get(Number(port));
        if (local !== undefined) return `127.0.0.1:${local}`;
        return host === '0.0.0.0' ? `127.0.0.1${port === undefined ? '' : `:${port}`}` : m;
      },
    );
    if (pod) {
      for (const [mount, dir] of mountDirs(pod)) {
        if (out === mount || out.startsWith(`${mount}/`)) return dir + out.slice(mount.length);
      }
    }
    return out;
  }

  function localizeArg(arg: string, pod: LocalPod): string {
    const m = /^(--?[A-Za-z0-9-]+=)(.*)$/s.exec(arg);
    return m ? m[1]! + localize(m[2]!, pod) : localize(arg, pod);
  }

  function localizeFile(key: string, text: string, pod: LocalPod): string {
    if (!/\.(ya?ml|json)$/.test(key)) return localize(text, pod);
    const doc = parseDocument(text);
    visit(doc, {
      Scalar(k, node) {
        if (k === 'key') return;
        if (typeof node.value === 'string') node.value = localize(node.value, pod);
        else if (typeof node.value === 'number') {
          const v = localize(String(node.value), pod);
          node.value = Number(v);
        }
      },
    });
    return doc.toString();
  }

  /** A ConfigMap's or Secret's data in the pod's namespace (Secret values decoded). */
  const objectData = (
    pod: LocalPod,
    kind: 'ConfigMap' | 'Secret',
    name: string,
  ): Record<string, string> | undefined => {
    const o = objects.find(
      (x) =>
        x.kind === kind && x.metadata.name === name && (x.metadata.namespace ?? 'default') === pod.namespace,
    );
    if (!o) return undefined;
    const out: Record<string, string> = {};
    if (kind === 'Secret') {
      for (const [k, v] of Object.entries((o.data as Record<string, string> | undefined) ?? {}))
        out[k] = Buffer.from(v, 'base64').toString('utf8');
      Object.assign(out, (o.stringData as Record<string, string> | undefined) ?? {});
    } else Object.assign(out, (o.data as Record<string, string> | undefined) ?? {});
    return out;
  };

  // 3. Volumes, environment and args of each pod.
  for (const pod of pods) {
    const d = podDrafts.get(pod)!;
    const c = pod.container;
    if (c.command !== undefined)
      throw new Error(`${pod.name}: a command replaces the image's sadp entrypoint`);
    for (const m of c.volumeMounts ?? []) {
      if (m.subPath) throw new Error(`${pod.name}: subPath mounts are not supported`);
      const volume = (pod.spec.volumes ?? []).find((v) => v.name === m.name);
      if (!volume) throw new Error(`${pod.name}: mount ${m.mountPath} names no volume ${m.name}`);
      const dir = join(pod.dir, 'volumes', m.name);
      mkdirSync(dir, { recursive: true });
      const files = volume.configMap ?? volume.secret;
      if (files?.items) throw new Error(`${pod.name}: volume ${m.name}: items are not supported`);
      if (volume.configMap) {
        const data = objectData(pod, 'ConfigMap', volume.configMap.name!);
        if (!data && !volume.configMap.optional)
          throw new Error(`${pod.name}: ConfigMap ${volume.configMap.name} not found`);
        for (const [k, v] of Object.entries(data ?? {})) writeFileSync(join(dir, k), localizeFile(k, v, pod));
      } else if (volume.secret) {
        const data = objectData(pod, 'Secret', volume.secret.secretName!);
        if (!data && !volume.secret.optional)
          throw new Error(`${pod.name}: Secret ${volume.secret.secretName} not found`);
        for (const [k, v] of Object.entries(data ?? {}))
          writeFileSync(join(dir, k), v, { mode: volume.secret.defaultMode ?? 0o644 });
      } else if (!volume.emptyDir) {
        throw new Error(`${pod.name}: volume ${m.name}: only configMap, secret and emptyDir are supported`);
      }
    }

    // Kubernetes order: envFrom sources in order, then env (later wins).
    const env: Record<string, string> = {};
    for (const source of c.envFrom ?? []) {
      const ref = source.configMapRef ?? source.secretRef;
      const kind = source.configMapRef ? 'ConfigMap' : 'Secret';
      const data = objectData(pod, kind, ref!.name!);
      if (!data) {
        if (ref?.optional) continue;
        throw new Error(`${pod.name}: envFrom ${kind} ${ref?.name} not found`);
      }
      for (const [k, v] of Object.entries(data))
        env[`${source.prefix ?? ''}${k}`] = kind === 'Secret' ? v : localize(v, pod);
    }
    for (const e of c.env ?? []) {
      if (e.value !== undefined) {
        env[e.name] = localize(expandK8sRefs(e.value, env), pod);
        continue;
      }
      const from = e.valueFrom;
      if (from?.fieldRef) {
        const path = from.fieldRef.fieldPath;
        const ann = /^metadata\.annotations\['(.+)'\]$/.exec(path);
        const value = ann
          ? d.annotations[ann[1]!]
          : path === 'metadata.name'
            ? pod.name
            : path === 'metadata.namespace'
              ? pod.namespace
              : undefined;
        if (value === undefined)
          throw new Error(`${pod.name}: env ${e.name}: fieldRef ${path} has no value here`);
        env[e.name] = value;
      } else if (from?.configMapKeyRef || from?.secretKeyRef) {
        const ref = (from.configMapKeyRef ?? from.secretKeyRef)!;
        const kind = from.configMapKeyRef ? 'ConfigMap' : 'Secret';
        const v = objectData(pod, kind, ref.name!)?.[ref.key];
        if (v === undefined) {
          if (ref.optional) continue;
          throw new Error(`${pod.name}: env ${e.name}: ${kind} ${ref.name} key ${ref.key} not found`);
        }
        env[e.name] = kind === 'Secret' ? v : localize(v, pod);
      } else {
        throw new Error(`${pod.name}: env ${e.name}: unsupported valueFrom`);
      }
    }
    // The Job controller also injects the index of an Indexed Job's pod.
    const index = d.annotations['batch.kubernetes.io/job-completion-index'];
    if (index !== undefined) env.JOB_COMPLETION_INDEX ??= index;

    pod.env = {
      // PATH to find programs on this machine (the image's comes from its
      // node base), then the image's ENV (HOME=/tmp moves with its mount).
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      ...Object.fromEntries(Object.entries(base).map(([k, v]) => [k, localize(v, pod)])),
      ...env,
    };
    pod.args = (c.args ?? []).map((a) => localizeArg(expandK8sRefs(a, pod.env), pod));
  }

  const processes: PodProcess[] = [];

  function spawnPod(pod: LocalPod, args: readonly string[]): PodProcess {
    const proc = spawn(process.execPath, [...sadpBinary(), ...args], {
      cwd: pod.cwd,
      env: { ...pod.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout: string[] = [];
    const stderr: string[] = [];
    const keep = (lines: string[], line: string): void => {
      lines.push(line);
      if (lines.length > MAX_OUTPUT_LINES) lines.shift();
    };
    const exited = new Promise<Exit>((resolve) =>
      proc.once('close', (code, signal) => resolve({ code, signal })),
    );
    let done = false;
    void exited.then(() => (done = true));
    const p: PodProcess = {
      pod,
      proc,
      stdout,
      stderr,
      listening: undefined,
      exited,
      get running() {
        return !done;
      },
      async terminate() {
        const started = performance.now();
        if (done) return { exit: await exited, killed: false, ms: 0 };
        proc.kill('SIGTERM');
        let killed = false;
        const timer = setTimeout(() => {
          killed = true;
          proc.kill('SIGKILL');
        }, pod.graceMs);
        const exit = await exited;
        clearTimeout(timer);
        return { exit, killed, ms: performance.now() - started };
      },
      async kill() {
        if (!done) proc.kill('SIGKILL');
        return exited;
      },
      describe() {
        return `${pod.name}: sadp ${args.join(' ')}\n--- stdout\n${stdout.join('\n')}\n--- stderr (last 60 lines)\n${stderr.slice(-60).join('\n')}`;
      },
    };
    createInterface({ input: proc.stderr }).on('line', (line) => keep(stderr, line));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      keep(stdout, line);
      if (p.listening || !line.startsWith('{')) return;
      try {
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (msg.event === 'listening') p.listening = msg;
      } catch {
        // Not JSON.
      }
    });
    processes.push(p);
    return p;
  }

  return {
    pods,
    processes,
    podsOf: (workload) => pods.filter((p) => p.workload.metadata.name === workload),
    servicePort: (service, port, client) => servicePort(service, port, client),
    localize,
    launch: (pod) => spawnPod(pod, pod.args),
    async start(pod, timeoutMs = 60_000) {
      const p = spawnPod(pod, pod.args);
      const deadline = performance.now() + timeoutMs;
      while (!p.listening) {
        if (!p.running) {
          await p.exited;
          throw new Error(`exited before listening: ${p.describe()}`);
        }
        if (performance.now() > deadline) {
          await p.kill();
          throw new Error(`no listening line within ${timeoutMs} ms: ${p.describe()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return p;
    },
    async exec(pod, argv, timeoutMs = 60_000) {
      if (argv[0] !== 'sadp') throw new Error(`exec runs sadp, got ${argv.join(' ')}`);
      const p = spawnPod(
        pod,
        argv.slice(1).map((a) => localizeArg(a, pod)),
      );
      const timer = setTimeout(() => void p.kill(), timeoutMs);
      const exit = await p.exited;
      clearTimeout(timer);
      return { ...exit, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
    },
    async probe(pod, kind) {
      const probe: IProbe | undefined = pod.container[kind];
      if (!probe) return undefined;
      const local = (port: number | string): number => {
        const n = resolvePort(pod.container, port);
        const l = n === undefined ? undefined : pod.ports.get(n);
        if (l === undefined)
          throw new Error(`${pod.name}: ${kind} port ${port} is not a declared containerPort`);
        return l;
      };
      if (probe.grpc) {
        try {
          const status = await healthStatus(`127.0.0.1:${local(probe.grpc.port)}`, probe.grpc.service ?? '');
          return status === 'SERVING' ? undefined : `${kind}: health ${status}`;
        } catch (err) {
          return `${kind}: ${(err as Error).message}`;
        }
      }
      if (probe.tcpSocket) {
        const port = local(probe.tcpSocket.port);
        return new Promise((resolve) => {
          const s = createConnection({ host: '127.0.0.1', port }, () => {
            s.destroy();
            resolve(undefined);
          });
          s.once('error', (err) => resolve(`${kind}: ${err.message}`));
        });
      }
      throw new Error(`${pod.name}: ${kind}: only grpc and tcpSocket probes are supported`);
    },
    rootWrites: (pod) => readdirSync(pod.cwd, { recursive: true }).map(String),
  };
}

/**
 * Shell commands of the ```sh blocks of a Markdown file, as argv arrays:
 * continuation lines joined, comments and a trailing `&` dropped, quotes
 * removed, `$VAR` expanded from `vars` (assignments and unknown variables
 * are kept as written).
 */
export function shellCommands(markdown: string, vars: Readonly<Record<string, string>> = {}): string[][] {
  const out: string[][] = [];
  for (const block of markdown.matchAll(/^\s*```(?:sh|bash|shell)\n([\s\S]*?)^\s*```/gm)) {
    const joined = block[1]!.replace(/\\\n/g, ' ');
    for (const raw of joined.split('\n')) {
      const argv: string[] = [];
      let token = '';
      let has = false;
      let quote: '"' | "'" | undefined;
      const line = raw.trim();
      for (let i = 0; i < line.length; i++) {
        const ch = line[i]!;
        if (quote) {
          if (ch === quote) quote = undefined;
          else if (ch === '$' && quote === '"') {
            const m = /^\$([A-Za-z_][A-Za-z0-9_]*)/.exec(line.slice(i));
            if (m && vars[m[1]!] !== undefined) {
              token += vars[m[1]!];
              i += m[0].length - 1;
            } else token += ch;
          } else token += ch;
          continue;
        }
        if (ch === '"' || ch === "'") {
          quote = ch;
          has = true;
        } else if (ch === '#' && !has && token === '') break;
        else if (/\s/.test(ch)) {
          if (has) argv.push(token);
          token = '';
          has = false;
        } else {
          token += ch;
          has = true;
        }
      }
      if (has) argv.push(token);
      if (argv.at(-1) === '&') argv.pop();
      if (argv.length > 0) out.push(argv);
    }
  }
  return out;
}

/** The first command whose argv contains `words` in order, contiguously. */
export function findCommand(commands: readonly string[][], words: readonly string[]): string[] {
  const hit = commands.find((argv) => argv.some((_, i) => words.every((w, j) => argv[i + j] === w)));
  if (!hit) throw new Error(`no shell command with \`${words.join(' ')}\``);
  return hit;
}

/** Sets a flag's value in argv (`--flag v` or `--flag=v`); the flag must be there already. */
export function withFlag(argv: readonly string[], flag: string, value: string): string[] {
  const out = [...argv];
  const i = out.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (i < 0) throw new Error(`\`${argv.join(' ')}\` has no ${flag}`);
  if (out[i] === flag) out[i + 1] = value;
  else out[i] = `${flag}=${value}`;
  return out;
}

/** The value of a flag in argv, or undefined. */
export function flagValue(argv: readonly string[], flag: string): string | undefined {
  const i = argv.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (i < 0) return undefined;
  return argv[i] === flag ? argv[i + 1] : argv[i]!.slice(flag.length + 1);
}
