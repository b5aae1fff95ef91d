// Every kustomization renders, and every object it produces (and every
// example manifest) passes the Kubernetes OpenAPI schema of its kind
// (kubernetes-models; the ServiceMonitor CRD's schema from
// @kubernetes-models/prometheus-operator). Rendered by the real Kustomize
// (kubectl kustomize); offline: no cluster needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import {
  EXAMPLES,
  KUSTOMIZATIONS,
  type K8sObject,
  type KustomizationName,
  describe,
  exampleObjects,
  k8sDir,
  kustomizeBuild,
  ofKind,
  podTemplates,
  rendered,
} from './manifests.js';

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

// The kinds the manifests may use; anything else fails until its schema is added here.
const MODELS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

function schemaErrors(o: K8sObject): string | undefined {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) return `no schema known for ${o.apiVersion} ${o.kind}`;
  try {
    new Model(structuredClone(o) as never).validate();
    return undefined;
  } catch (err) {
    const details = (err as { errors?: { instancePath: string; message?: string }[] }).errors ?? [];
    return `${(err as Error).message} ${details.map((e) => `${e.instancePath} ${e.message ?? ''}`).join('; ')}`;
  }
}

function assertValid(objects: readonly K8sObject[], source: string): void {
  assert.ok(objects.length > 0, `${source} rendered nothing`);
  const problems = objects.flatMap((o) => {
    const e = schemaErrors(o);
    return e ? [`${describe(o)}: ${e}`] : [];
  });
  assert.deepEqual(problems, [], `${source}: objects failing the Kubernetes schema`);
}

const NAMES = Object.keys(KUSTOMIZATIONS) as KustomizationName[];

for (const name of NAMES) {
  test(`kustomization ${name} renders and every object passes the Kubernetes schema`, () => {
    assertValid(rendered(name), `kustomize build ${name}`);
  });

  test(`kustomization ${name}: unique names, everything in namespace sadp, references resolve`, () => {
    const objects = rendered(name);
    const keys = objects.map(describe);
    assert.deepEqual(
      keys.filter((k, i) => keys.indexOf(k) !== i),
      [],
      'duplicate kind/name',
    );
    for (const o of objects) {
      if (o.kind === 'Namespace') assert.equal(o.metadata.name, 'sadp');
      else assert.equal(o.metadata.namespace, 'sadp', `${describe(o)} namespace`);
      assert.equal(o.metadata.labels?.['app.kubernetes.io/part-of'], 'sadp', `${describe(o)} part-of label`);
    }
    const has = (kind: string, n: string | undefined) =>
      objects.some((o) => o.kind === kind && o.metadata.name === n);
    for (const { owner, spec } of podTemplates(objects)) {
      assert.ok(
        spec.serviceAccountName === undefined || has('ServiceAccount', spec.serviceAccountName),
        `${describe(owner)}: ServiceAccount ${spec.serviceAccountName} is not rendered`,
      );
      for (const v of spec.volumes ?? []) {
        if (v.configMap)
          assert.ok(has('ConfigMap', v.configMap.name), `${describe(owner)}: ConfigMap ${v.configMap.name}`);
      }
      for (const c of spec.containers) {
        for (const from of c.envFrom ?? []) {
          if (from.configMapRef)
            assert.ok(
              has('ConfigMap', from.configMapRef.name),
              `${describe(owner)}: ConfigMap ${from.configMapRef.name}`,
            );
          // A Secret created outside the manifests must be optional, or the pod never starts.
          if (from.secretRef)
            assert.ok(
              from.secretRef.optional === true || has('Secret', from.secretRef.name),
              `${describe(owner)}: Secret ${from.secretRef.name} is neither rendered nor optional`,
            );
        }
      }
    }
  });
}

test('overlays set a registry image for every container; the base leaves the placeholder', () => {
  for (const { spec } of podTemplates(rendered('base')))
    for (const c of spec.containers) assert.equal(c.image, 'sadp');
  for (const name of ['dev', 's3'] as const) {
    for (const { owner, spec } of podTemplates(rendered(name))) {
      for (const c of spec.containers) {
        assert.notEqual(c.image, 'sadp', `${name}: ${describe(owner)} keeps the placeholder image`);
        assert.match(c.image ?? '', /^[a-z0-9./-]+:[\w.-]+$/, `${name}: ${describe(owner)} image has a tag`);
      }
    }
  }
});

test('the dev overlay adds the embedded S3 server and drops the ServiceMonitor', () => {
  const dev = rendered('dev');
  assert.equal(ofKind(dev, 'ServiceMonitor').length, 0);
  assert.ok(dev.some((o) => o.kind === 'Deployment' && o.metadata.name === 'sadp-s3'));
  assert.equal(ofKind(rendered('s3'), 'ServiceMonitor').length, 1);
  assert.ok(!rendered('s3').some((o) => o.metadata.name === 'sadp-s3'));
});

test('the s3 overlay with its IRSA patch uncommented, as documented, annotates the ServiceAccount', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sadp-kustomize-'));
  try {
    cpSync(k8sDir, dir, { recursive: true });
    const file = join(dir, 'overlays', 's3', 'kustomization.yaml');
    const text = readFileSync(file, 'utf8');
    const commented = /^# patches:\n# {3}- path: patches\/service-account-irsa\.yaml$/m;
    assert.match(text, commented, 'the overlay carries the commented-out IRSA patch');
    writeFileSync(file, text.replace(commented, 'patches:\n  - path: patches/service-account-irsa.yaml'));
    const objects = kustomizeBuild(join(dir, 'overlays', 's3'));
    assertValid(objects, 's3 + IRSA');
    const sa = objects.find((o) => o.kind === 'ServiceAccount');
    assert.match(
      sa?.metadata.annotations?.['eks.amazonaws.com/role-arn'] ?? '',
      /^arn:aws:iam::\d{12}:role\//,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const file of EXAMPLES) {
  test(`example ${relative(k8sDir, file)} passes the Kubernetes schema`, () => {
    assertValid(exampleObjects(file), file);
  });
}

test('the schema check rejects a broken object (a named gRPC probe port)', () => {
  const loader = structuredClone(
    rendered('base').find((o) => o.kind === 'Deployment' && o.metadata.name === 'sadp-loader')!,
  );
  const spec = (loader.spec as { template: { spec: { containers: { readinessProbe: unknown }[] } } }).template
    .spec;
  spec.containers[0]!.readinessProbe = { grpc: { port: 'grpc' } };
  assert.match(schemaErrors(loader) ?? '', /readinessProbe\/grpc\/port must be integer/);
});
