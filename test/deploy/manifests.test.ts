// What the rendered manifests must agree on with the code and with each
// other: the configuration they carry passes the real schema, probes and
// Services point at the ports the services listen on, pods are locked down,
// NetworkPolicies select real pods, and the trainer Job's rank wiring holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IServiceSpec } from 'kubernetes-models/v1/ServiceSpec';
import type { IServicePort } from 'kubernetes-models/v1/ServicePort';
import type { IServiceMonitorSpec } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitorSpec';
import type { INetworkPolicySpec } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicySpec';
import type { IJobSpec } from 'kubernetes-models/batch/v1/JobSpec';
import type { IDeploymentSpec } from 'kubernetes-models/apps/v1/DeploymentSpec';
import type { IHorizontalPodAutoscalerSpec } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscalerSpec';
import type { IPodDisruptionBudgetSpec } from 'kubernetes-models/policy/v1/PodDisruptionBudgetSpec';
import { ENV_VARS, EXTRA_ENV_VARS, splitHostPort } from '../../common/config.js';
import {
  EXAMPLES,
  KUSTOMIZATIONS,
  type K8sObject,
  type KustomizationName,
  type PodTemplate,
  containerEnvNames,
  describe,
  effectiveConfig,
  exampleObjects,
  find,
  ofKind,
  podTemplates,
  rendered,
  resolvePort,
  selects,
} from './manifests.js';

const NAMES = Object.keys(KUSTOMIZATIONS) as KustomizationName[];
const trainerObjects = (): K8sObject[] => EXAMPLES.flatMap((f) => exampleObjects(f));

/** Every object a cluster would hold with this kustomization and the examples applied. */
function cluster(name: KustomizationName): K8sObject[] {
  return [...rendered(name), ...trainerObjects()];
}

function quantityBytes(q: string | number | undefined): number {
  if (q === undefined) return NaN;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) throw new Error(`unparsed quantity ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? unit[m[2] as keyof typeof unit] : 1);
}

function cpuCores(q: string | number | undefined): number {
  if (q === undefined) return NaN;
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

function container(t: PodTemplate, name: string): IContainer {
  const c = t.spec.containers.find((x) => x.name === name);
  assert.ok(c, `${describe(t.owner)} has no container ${name}`);
  return c;
}

function template(objects: readonly K8sObject[], kind: string, name: string): PodTemplate {
  const t = podTemplates(objects).find((p) => p.owner.kind === kind && p.owner.metadata.name === name);
  assert.ok(t, `no ${kind}/${name}`);
  return t;
}

const isLoopback = (host: string): boolean => /^(127\.|localhost$|::1$|\[::1\]$)/.test(host);

/** The loader's memory baseline besides its in-flight budget (placeholder until benchmarked). */
const LOADER_BASELINE_BYTES = 150 * 2 ** 20;

for (const name of NAMES) {
  test(`${name}: every pod runs non-root, read-only, without privileges or capabilities`, () => {
    const pods = podTemplates(rendered(name));
    assert.ok(pods.length >= 2);
    for (const { owner, spec } of pods) checkPodSecurity(describe(owner), spec);
  });

  test(`${name}: every container has CPU and memory requests and limits`, () => {
    for (const { owner, spec } of podTemplates(rendered(name))) {
      for (const c of spec.containers) {
        const { requests = {}, limits = {} } = c.resources ?? {};
        const where = `${describe(owner)}/${c.name}`;
        assert.ok(cpuCores(requests.cpu) > 0 && quantityBytes(requests.memory) > 0, `${where}: requests`);
        assert.ok(cpuCores(limits.cpu) >= cpuCores(requests.cpu), `${where}: cpu limit below request`);
        assert.ok(
          quantityBytes(limits.memory) >= quantityBytes(requests.memory),
          `${where}: memory limit below request`,
        );
      }
    }
  });

  test(`${name}: every SADP_* variable is one the code reads, and the config passes loadConfig`, () => {
    const objects = rendered(name);
    const known = new Set([...Object.keys(ENV_VARS), ...EXTRA_ENV_VARS]);
    for (const t of podTemplates(objects)) {
      for (const c of t.spec.containers) {
        const unknown = containerEnvNames(objects, c).filter((n) => n.startsWith('SADP_') && !known.has(n));
        assert.deepEqual(unknown, [], `${describe(t.owner)}/${c.name}: not in ENV_VARS (common/config.ts)`);
        // Throws SADP_CONFIG_INVALID naming the key when the ConfigMap YAML
        // or an environment value does not fit the schema.
        effectiveConfig(objects, t.spec, c);
      }
    }
  });

  test(`${name}: scorer and loader probe, expose and serve the ports they listen on`, () => {
    const objects = rendered(name);
    for (const [deployment, service, section] of [
      ['sadp-scorer', 'sadp-scorer', 'scorer'],
      ['sadp-loader', 'sadp-loader', 'loader'],
    ] as const) {
      const t = template(objects, 'Deployment', deployment);
      const c = container(t, section);
      const config = effectiveConfig(objects, t.spec, c);
      const listen = splitHostPort(config[section].listen);
      const grpcPort = resolvePort(c, 'grpc');
      assert.equal(grpcPort, listen.port, `${deployment}: container port grpc vs ${section}.listen`);
      assert.ok(!isLoopback(listen.host), `${deployment}: ${section}.listen ${listen.host} is loopback`);
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
        // Native gRPC probes take a number and cannot speak TLS (DESIGN.md).
        assert.equal(
          c[probe]?.grpc?.port,
          listen.port,
          `${deployment}: ${probe} must be grpc on ${listen.port}`,
        );
      }
      assert.equal(
        config.tls.cert,
        undefined,
        `${deployment}: TLS on the gRPC port breaks native gRPC probes`,
      );
      assert.ok(config.metrics.port > 0, `${deployment}: metrics.port is 0 (endpoint disabled)`);
      assert.equal(resolvePort(c, 'metrics'), config.metrics.port, `${deployment}: metrics container port`);
      assert.ok(!isLoopback(config.metrics.host), `${deployment}: metrics.host is loopback`);
      // SIGKILL must not come before the service's own drain deadline.
      assert.ok(
        (t.spec.terminationGracePeriodSeconds ?? 30) * 1000 >= config.shutdownGraceMs + 5000,
        `${deployment}: terminationGracePeriodSeconds vs shutdownGraceMs ${config.shutdownGraceMs}`,
      );
      const svc = find(objects, 'Service', service).spec as IServiceSpec;
      assert.ok(
        selects({ matchLabels: svc.selector }, t.labels),
        `Service ${service} does not select ${deployment}`,
      );
      for (const portName of ['grpc', 'metrics']) {
        const p = svc.ports?.find((x) => x.name === portName);
        assert.ok(p, `Service ${service} has no port ${portName}`);
        assert.equal(
          resolvePort(c, p.targetPort ?? p.port),
          resolvePort(c, portName),
          `${service}:${portName}`,
        );
      }
    }
  });

  test(`${name}: the loaders reach the scorer through its Service`, () => {
    const objects = rendered(name);
    const loader = template(objects, 'Deployment', 'sadp-loader');
    const config = effectiveConfig(objects, loader.spec, container(loader, 'loader'));
    const { host, port } = splitHostPort(config.loader.scorer);
    const svcName = host.split('.')[0]!;
    const svc = find(objects, 'Service', svcName).spec as IServiceSpec;
    const p = svc.ports?.find((x) => x.port === port);
    assert.ok(p, `loader.scorer ${config.loader.scorer}: Service ${svcName} has no port ${port}`);
    const scorer = template(objects, 'Deployment', 'sadp-scorer');
    assert.ok(selects({ matchLabels: svc.selector }, scorer.labels));
    const scorerConfig = effectiveConfig(objects, scorer.spec, container(scorer, 'scorer'));
    assert.equal(
      resolvePort(container(scorer, 'scorer'), p.targetPort ?? p.port),
      splitHostPort(scorerConfig.scorer.listen).port,
    );
  });

  test(`${name}: loader memory covers its in-flight budget`, () => {
    const objects = rendered(name);
    const t = template(objects, 'Deployment', 'sadp-loader');
    const c = container(t, 'loader');
    const { inflightBytes } = effectiveConfig(objects, t.spec, c).loader;
    const need = inflightBytes + LOADER_BASELINE_BYTES;
    assert.ok(
      quantityBytes(c.resources?.requests?.memory) >= need,
      `loader memory request ${c.resources?.requests?.memory} < inflightBytes ${inflightBytes} + baseline`,
    );
  });

  test(`${name}: one scorer, replaced with Recreate, state in object storage`, () => {
    const objects = rendered(name);
    const d = find(objects, 'Deployment', 'sadp-scorer').spec as IDeploymentSpec;
    assert.equal(d.replicas, 1);
    assert.equal(d.strategy?.type, 'Recreate');
    const t = template(objects, 'Deployment', 'sadp-scorer');
    assert.match(effectiveConfig(objects, t.spec, container(t, 'scorer')).scorer.state, /^s3:\/\/[^/]+/);
  });

  test(`${name}: loaders behind a headless Service, an HPA and a PDB`, () => {
    const objects = rendered(name);
    const t = template(objects, 'Deployment', 'sadp-loader');
    const svc = find(objects, 'Service', 'sadp-loader').spec as IServiceSpec;
    assert.equal(svc.clusterIP, 'None', 'client-side balancing needs a headless Service');
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'sadp-loader').spec as IHorizontalPodAutoscalerSpec;
    assert.deepEqual([hpa.scaleTargetRef.kind, hpa.scaleTargetRef.name], ['Deployment', 'sadp-loader']);
    assert.ok((hpa.minReplicas ?? 1) >= 1 && hpa.maxReplicas >= (hpa.minReplicas ?? 1));
    assert.ok(hpa.metrics?.some((m) => m.resource?.name === 'cpu'));
    const c = container(t, 'loader');
    assert.ok(cpuCores(c.resources?.requests?.cpu) > 0, 'CPU utilisation needs a CPU request');
    const pdb = find(objects, 'PodDisruptionBudget', 'sadp-loader').spec as IPodDisruptionBudgetSpec;
    assert.ok(selects(pdb.selector, t.labels), 'PDB does not select the loader pods');
    for (const other of podTemplates(objects).filter((p) => p.owner !== t.owner))
      assert.ok(!selects(pdb.selector, other.labels), `PDB also selects ${describe(other.owner)}`);
  });

  test(`${name}: NetworkPolicies select real pods on real ports`, () => {
    const objects = cluster(name);
    const pods = podTemplates(objects);
    for (const np of ofKind(objects, 'NetworkPolicy')) {
      const spec = np.spec as INetworkPolicySpec;
      const targets = pods.filter((p) => selects(spec.podSelector, p.labels));
      assert.ok(targets.length > 0, `${describe(np)} selects no pod`);
      for (const rule of spec.ingress ?? []) {
        for (const peer of rule.from ?? []) {
          if (peer.podSelector && !peer.namespaceSelector)
            assert.ok(
              pods.some((p) => selects(peer.podSelector, p.labels)),
              `${describe(np)}: peer ${JSON.stringify(peer.podSelector)} matches no pod`,
            );
        }
        for (const port of rule.ports ?? []) {
          for (const target of targets) {
            const open = target.spec.containers.some((c) =>
              (c.ports ?? []).some((p) => p.containerPort === port.port || p.name === port.port),
            );
            assert.ok(open, `${describe(np)}: port ${port.port} is not a port of ${describe(target.owner)}`);
          }
        }
      }
    }
  });

  test(`${name}: only trainers reach the loaders' gRPC port, only loaders the scorer's`, () => {
    const objects = cluster(name);
    const pods = podTemplates(objects);
    const byComponent = (c: string) => pods.filter((p) => p.labels['app.kubernetes.io/component'] === c);
    const allowed = (target: PodTemplate, from: PodTemplate, port: number): boolean =>
      ofKind(objects, 'NetworkPolicy').some((np) => {
        const spec = np.spec as INetworkPolicySpec;
        if (!selects(spec.podSelector, target.labels)) return false;
        return (spec.ingress ?? []).some(
          (rule) =>
            (rule.ports ?? []).some((p) => p.port === port) &&
            (rule.from ?? []).some((peer) =>
              peer.namespaceSelector ? true : selects(peer.podSelector, from.labels),
            ),
        );
      });
    const isolated = (target: PodTemplate): boolean =>
      ofKind(objects, 'NetworkPolicy').some((np) => {
        const spec = np.spec as INetworkPolicySpec;
        return (
          selects(spec.podSelector, target.labels) && (spec.policyTypes ?? ['Ingress']).includes('Ingress')
        );
      });
    const [loader] = byComponent('loader');
    const [scorer] = byComponent('scorer');
    const [trainer] = byComponent('trainer');
    assert.ok(loader && scorer && trainer, 'loader, scorer and trainer pods');
    assert.ok(isolated(loader) && isolated(scorer), 'loader and scorer pods are isolated for ingress');
    const loaderPort = resolvePort(container(loader, 'loader'), 'grpc')!;
    const scorerPort = resolvePort(container(scorer, 'scorer'), 'grpc')!;
    assert.ok(allowed(loader, trainer, loaderPort), 'trainer -> loader');
    assert.ok(allowed(scorer, loader, scorerPort), 'loader -> scorer');
    for (const p of pods) {
      const component = p.labels['app.kubernetes.io/component'];
      if (component !== 'trainer') assert.ok(!allowed(loader, p, loaderPort), `${component} -> loader gRPC`);
      if (component !== 'loader') assert.ok(!allowed(scorer, p, scorerPort), `${component} -> scorer gRPC`);
    }
  });
}

function checkPodSecurity(where: string, spec: IPodSpec): void {
  const pod = spec.securityContext ?? {};
  assert.equal(pod.runAsNonRoot, true, `${where}: pod runAsNonRoot`);
  assert.ok((pod.runAsUser ?? 0) > 0, `${where}: pod runAsUser must be a non-zero UID`);
  assert.equal(pod.seccompProfile?.type, 'RuntimeDefault', `${where}: pod seccompProfile`);
  assert.notEqual(spec.automountServiceAccountToken, true, `${where}: no API token needed`);
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    const s = c.securityContext ?? {};
    const w = `${where}/${c.name}`;
    assert.equal(s.runAsNonRoot, true, `${w}: runAsNonRoot`);
    assert.equal(s.readOnlyRootFilesystem, true, `${w}: readOnlyRootFilesystem`);
    assert.equal(s.allowPrivilegeEscalation, false, `${w}: allowPrivilegeEscalation`);
    assert.deepEqual(s.capabilities?.drop, ['ALL'], `${w}: capabilities drop ALL`);
    assert.equal(s.capabilities?.add, undefined, `${w}: capabilities add`);
    assert.notEqual(s.privileged, true, `${w}: privileged`);
    assert.equal(s.seccompProfile?.type, 'RuntimeDefault', `${w}: seccompProfile`);
    // The root filesystem is read-only: /tmp must be a writable emptyDir.
    const tmp = (c.volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
    assert.ok(tmp && !tmp.readOnly, `${w}: writable /tmp mount`);
    assert.ok(spec.volumes?.find((v) => v.name === tmp.name)?.emptyDir, `${w}: /tmp is an emptyDir`);
  }
}

test('example trainer Job: securityContext, Indexed ranks, world size, the loader address', () => {
  const objects = trainerObjects();
  const job = objects.find((o) => o.kind === 'Job');
  assert.ok(job);
  const spec = job.spec as IJobSpec;
  const pod = spec.template.spec!;
  checkPodSecurity(describe(job), pod);
  assert.equal(spec.completionMode, 'Indexed');
  assert.ok((spec.completions ?? 0) >= 1);
  assert.equal(spec.parallelism, spec.completions, 'every rank runs at once');
  const c = pod.containers[0]!;
  const args = c.args ?? [];
  const flag = (name: string): string | undefined => {
    const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return undefined;
    return args[i]!.includes('=') ? args[i]!.slice(args[i]!.indexOf('=') + 1) : args[i + 1];
  };
  assert.equal(args[0], 'train');
  assert.equal(Number(flag('world-size')), spec.completions, '--world-size equals completions');
  assert.equal(flag('rank'), '$(JOB_COMPLETION_INDEX)');
  // $(VAR) in args only expands for variables the container declares.
  const index = c.env?.find((e) => e.name === 'JOB_COMPLETION_INDEX');
  assert.equal(
    index?.valueFrom?.fieldRef?.fieldPath,
    "metadata.annotations['batch.kubernetes.io/job-completion-index']",
  );
  // The loader address names the loaders' headless Service and gRPC port.
  const target = flag('loader') ?? '';
  const m = /^(?:dns:\/\/\/)?([a-z0-9-]+)(?:\.([a-z0-9-]+))?[^:]*:(\d+)$/.exec(target);
  assert.ok(m, `--loader ${target}`);
  for (const name of ['dev', 's3'] as const) {
    const objectsIn = rendered(name);
    const svc = find(objectsIn, 'Service', m[1]!);
    assert.equal(m[2] ?? 'sadp', svc.metadata.namespace, '--loader namespace');
    const wanted: number = Number(m[3]);
    const svcPort: IServicePort | undefined = (svc.spec as IServiceSpec).ports?.find(
      (p) => p.port === wanted,
    );
    assert.equal(svcPort?.name, 'grpc', `--loader port ${m[3]} is the loader Service's gRPC port`);
    assert.equal(job.metadata.namespace, svc.metadata.namespace, 'trainer runs beside the loaders');
  }
  // The bearer token is read from the mounted Secret (kept out of `ps`).
  const tokenFile = flag('token-file') ?? '';
  const mount = c.volumeMounts?.find((v) => tokenFile.startsWith(`${v.mountPath}/`));
  assert.ok(mount?.readOnly, `--token-file ${tokenFile} is on a read-only mount`);
  assert.ok(pod.volumes?.find((v) => v.name === mount.name)?.secret, '--token-file comes from a Secret');
  // The trainer reads the same configuration schema (S3 flags, TLS).
  effectiveConfig(objects, pod, c);
});

for (const name of ['base', 's3'] as const) {
  test(`${name}: the ServiceMonitor scrapes the metrics port of the scorer and loader Services`, () => {
    const objects = rendered(name);
    const [monitor] = ofKind(objects, 'ServiceMonitor');
    assert.ok(monitor);
    const spec = monitor.spec as IServiceMonitorSpec;
    const services = ofKind(objects, 'Service').filter((svc) =>
      selects(spec.selector, svc.metadata.labels ?? {}),
    );
    assert.deepEqual(services.map((svc) => svc.metadata.name).sort(), ['sadp-loader', 'sadp-scorer']);
    for (const svc of services) {
      const t = podTemplates(objects).find((p) =>
        selects({ matchLabels: (svc.spec as IServiceSpec).selector }, p.labels),
      )!;
      const c = t.spec.containers[0]!;
      const config = effectiveConfig(objects, t.spec, c);
      for (const endpoint of spec.endpoints ?? []) {
        const port = (svc.spec as IServiceSpec).ports?.find((p) => p.name === endpoint.port);
        assert.ok(port, `Service ${svc.metadata.name} has no port ${endpoint.port}`);
        assert.equal(resolvePort(c, port.targetPort ?? port.port), config.metrics.port);
        assert.equal(endpoint.path ?? '/metrics', '/metrics');
      }
    }
  });
}

test('dev: the embedded S3 server listens where the services look for it, on an emptyDir', () => {
  const objects = rendered('dev');
  const s3 = template(objects, 'Deployment', 'sadp-s3');
  const c = container(s3, 's3');
  assert.deepEqual(c.args?.slice(0, 2), ['s3', 'serve']);
  assert.ok(c.args?.includes('--allow-non-loopback'), 'non-loopback listening must be explicit');
  const config = effectiveConfig(objects, s3.spec, c);
  assert.equal(resolvePort(c, 's3'), config.embeddedS3.port);
  const data = c.volumeMounts?.find((m) => config.embeddedS3.dataDir.startsWith(m.mountPath));
  assert.ok(data, `embeddedS3.dataDir ${config.embeddedS3.dataDir} is not on a mounted volume`);
  assert.ok(s3.spec.volumes?.find((v) => v.name === data.name)?.emptyDir);
  const scorer = template(objects, 'Deployment', 'sadp-scorer');
  const stateBucket = new URL(effectiveConfig(objects, scorer.spec, container(scorer, 'scorer')).scorer.state)
    .host;
  const args = c.args ?? [];
  const from = args.indexOf('--bucket') + 1;
  const end = args.findIndex((a, i) => i >= from && a.startsWith('-'));
  const buckets = from > 0 ? args.slice(from, end < 0 ? undefined : end) : [];
  assert.ok(buckets.includes(stateBucket), `the scorer's state bucket ${stateBucket} is created at start`);
  for (const deployment of ['sadp-scorer', 'sadp-loader']) {
    const t = template(objects, 'Deployment', deployment);
    const endpoint = new URL(effectiveConfig(objects, t.spec, t.spec.containers[0]!).s3.endpoint ?? '');
    const svc = find(objects, 'Service', endpoint.hostname).spec as IServiceSpec;
    assert.ok(selects({ matchLabels: svc.selector }, s3.labels), `${endpoint.hostname} selects the S3 pod`);
    const port = svc.ports?.find((p) => p.port === Number(endpoint.port));
    assert.ok(port, `${deployment}: s3.endpoint port ${endpoint.port}`);
    assert.equal(resolvePort(c, port.targetPort ?? port.port), config.embeddedS3.port);
  }
});
