// Offline access to the deployment manifests for the deploy tests: renders
// every kustomization with the real Kustomize (kubectl kustomize), parses the
// example manifests, and answers the questions the tests ask of them (which
// pods, which labels, which effective sadp configuration a container runs
// with).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { ILabelSelector as LabelSelector } from '@kubernetes-models/apimachinery/apis/meta/v1/LabelSelector';
import { loadConfig, type Config } from '../../common/config.js';
import { packageRoot } from '../../common/paths.js';

export const deployDir = join(packageRoot, 'deploy');
export const k8sDir = join(deployDir, 'k8s');

/** Every kustomization shipped, by name. */
export const KUSTOMIZATIONS = {
  base: join(k8sDir, 'base'),
  dev: join(k8sDir, 'overlays', 'dev'),
  s3: join(k8sDir, 'overlays', 's3'),
} as const;
export type KustomizationName = keyof typeof KUSTOMIZATIONS;

/** Plain manifests applied on their own (kubectl create -f). */
export const EXAMPLES = [join(k8sDir, 'examples', 'trainer-job.yaml')] as const;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** Parses a multi-document YAML stream of Kubernetes objects. */
export function parseObjects(text: string, source: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
      return doc.toJS() as unknown;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

/**
 * The real kustomize on this machine, as argv before `<dir>`: `kubectl
 * kustomize` (what .ci/run installs) or a standalone `kustomize build`, when
 * its Kustomize is v4.5 or later (older ones, such as Debian's kubectl 1.20
 * with Kustomize v2, lack `labels` and `patches`). Throws when there is none:
 * the deployment tests never skip.
 */
function findKustomize(): string[] {
  const seen: string[] = [];
  for (const [argv, versionArgs] of [
    [
      ['kubectl', 'kustomize'],
      ['version', '--client'],
    ],
    [['kustomize', 'build'], ['version']],
  ] as const) {
    let text: string;
    try {
      text = execFileSync(argv[0], versionArgs, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      continue; // not installed
    }
    const m = /kustomize\/v(\d+)\.(\d+)|Kustomize Version: v(\d+)\.(\d+)|^v(\d+)\.(\d+)/m.exec(text);
    const [major, minor] = (m?.slice(1).filter((x) => x !== undefined) ?? []).map(Number);
    if (major !== undefined && minor !== undefined && (major > 4 || (major === 4 && minor >= 5)))
      return [...argv];
    seen.push(`${argv[0]} (${text.trim().split('\n').join(', ')})`);
  }
  throw new Error(
    `the deployment tests render with a real Kustomize >= v4.5 and found ${seen.length > 0 ? `only ${seen.join('; ')}` : 'neither kubectl nor kustomize on PATH'}: install kubectl (bash .ci/kubectl)`,
  );
}

let kustomizeArgv: string[] | undefined;

/** `kubectl kustomize <dir>` (or `kustomize build <dir>`): the objects it renders, in its order. */
export function kustomizeBuild(dir: string): K8sObject[] {
  kustomizeArgv ??= findKustomize();
  const argv = kustomizeArgv;
  const text = execFileSync(argv[0]!, [...argv.slice(1), dir], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return parseObjects(text, `${argv.join(' ')} ${dir}`);
}

const cache = new Map<KustomizationName, K8sObject[]>();

/** The rendered objects of one shipped kustomization (rendered once per process). */
export function rendered(name: KustomizationName): K8sObject[] {
  let objects = cache.get(name);
  if (!objects) {
    objects = kustomizeBuild(KUSTOMIZATIONS[name]);
    cache.set(name, objects);
  }
  return objects;
}

export function exampleObjects(file: string): K8sObject[] {
  return parseObjects(readFileSync(file, 'utf8'), file);
}

export function describe(o: K8sObject): string {
  return `${o.kind}/${o.metadata.name}`;
}

export function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} among ${objects.map(describe).join(', ')}`);
  return o;
}

export function ofKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

export interface PodTemplate {
  owner: K8sObject;
  labels: Record<string, string>;
  spec: IPodSpec;
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet']);

/** Pod templates of every workload (and CronJob) among the objects. */
export function podTemplates(objects: readonly K8sObject[]): PodTemplate[] {
  const out: PodTemplate[] = [];
  for (const o of objects) {
    let template: { metadata?: { labels?: Record<string, string> }; spec: IPodSpec } | undefined;
    const spec = o.spec as Record<string, unknown> | undefined;
    if (WORKLOADS.has(o.kind)) template = spec?.template as typeof template;
    else if (o.kind === 'CronJob')
      template = (spec?.jobTemplate as { spec: { template: typeof template } }).spec.template;
    else if (o.kind === 'Pod') template = { metadata: o.metadata, spec: o.spec as IPodSpec };
    if (template) out.push({ owner: o, labels: template.metadata?.labels ?? {}, spec: template.spec });
  }
  return out;
}

/** Kubernetes label-selector semantics (matchLabels AND matchExpressions). */
export function selects(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        throw new Error(`unknown selector operator ${e.operator}`);
    }
  }
  return true;
}

function configMapData(objects: readonly K8sObject[], name: string): Record<string, string> {
  return (find(objects, 'ConfigMap', name).data as Record<string, string> | undefined) ?? {};
}

/**
 * The environment a container starts with, as far as the manifests fix it:
 * literal `env` values and `envFrom` ConfigMaps. Values from Secrets and the
 * downward API are left out (they are not sadp settings).
 */
export function containerEnv(objects: readonly K8sObject[], container: IContainer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) {
      for (const [k, v] of Object.entries(configMapData(objects, source.configMapRef.name!)))
        env[`${source.prefix ?? ''}${k}`] = v;
    }
  }
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

/** Names of every environment variable a container may see, Secrets included. */
export function containerEnvNames(objects: readonly K8sObject[], container: IContainer): string[] {
  const names = new Set<string>();
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef ?? source.secretRef;
    const kind = source.configMapRef ? 'ConfigMap' : 'Secret';
    const o = objects.find((x) => x.kind === kind && x.metadata.name === ref?.name);
    if (!o) continue; // an optional Secret created outside the manifests
    const data = { ...(o.data as object | undefined), ...(o.stringData as object | undefined) };
    for (const k of Object.keys(data)) names.add(`${source.prefix ?? ''}${k}`);
  }
  for (const e of container.env ?? []) names.add(e.name);
  return [...names];
}

/**
 * The sadp configuration a container runs with: the YAML file that
 * $SADP_CONFIG points at (read from the ConfigMap volume mounted there) plus
 * its SADP_* environment, through the real `loadConfig`.
 */
export function effectiveConfig(objects: readonly K8sObject[], pod: IPodSpec, container: IContainer): Config {
  const env = containerEnv(objects, container);
  let file: string | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'sadp-deploy-'));
  try {
    const path = env.SADP_CONFIG;
    if (path) {
      const mount = (container.volumeMounts ?? []).find((m) => path.startsWith(`${m.mountPath}/`));
      if (!mount) throw new Error(`${container.name}: no volume mounted above SADP_CONFIG=${path}`);
      const volume = (pod.volumes ?? []).find((v) => v.name === mount.name);
      const cm = volume?.configMap?.name;
      if (!cm) throw new Error(`${container.name}: ${mount.mountPath} is not a ConfigMap volume`);
      const key = path.slice(mount.mountPath.length + 1);
      const text = configMapData(objects, cm)[key];
      if (text === undefined) throw new Error(`${container.name}: ConfigMap ${cm} has no key ${key}`);
      file = join(dir, 'config.yaml');
      writeFileSync(file, text);
    }
    const sadpEnv = Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('SADP_')));
    delete sadpEnv.SADP_CONFIG;
    return loadConfig({ env: sadpEnv, ...(file ? { file } : {}) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves a container or Service target port (number or port name) to a number. */
export function resolvePort(container: IContainer, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}
