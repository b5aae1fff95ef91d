// The Kustomize subset renderer the deploy tests use: each feature on small
// fixtures, refusals outside the subset, and (where a real kustomize or
// kubectl is installed) identical output to the real tool on every fixture.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { KustomizeSubsetError, kustomizeSubsetBuild, type KObject } from './kustomize-subset.js';
import { realKustomize, realKustomizeBuild } from './manifests.js';

const root = mkdtempSync(join(tmpdir(), 'sadp-kustomize-subset-'));
after(() => rmSync(root, { recursive: true, force: true }));

let fixtures = 0;
/** Writes files (path -> text) under a fresh directory and returns it. */
function fixture(files: Record<string, string>): string {
  const dir = join(root, String(fixtures++));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const get = (objects: KObject[], kind: string, prefix: string): KObject => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name.startsWith(prefix));
  assert.ok(o, `no ${kind} ${prefix}*`);
  return o;
};

const deployment = (name: string, extra = ''): string => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      containers:
        - name: main
          image: app:1.0
          envFrom:
            - configMapRef: {name: settings}
        - name: side
          image: registry.example.com/side
      volumes:
        - name: cfg
          configMap: {name: settings}
${extra}`;

// Fixtures whose output must equal a real kustomize's.
const CASES: Record<string, Record<string, string>> = {
  'generators, labels, namespace, images': {
    'kustomization.yaml': `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ns
labels:
  - pairs: {team: a}
    includeSelectors: false
resources: [ns.yaml, app.yaml]
configMapGenerator:
  - name: settings
    files: [conf.yaml, renamed.txt=conf.yaml]
    literals: [A=1, "B=<x> & y"]
secretGenerator:
  - name: creds
    literals: [KEY=secret]
images:
  - name: app
    newName: registry.example.com/app
    newTag: '2.0'
  - name: registry.example.com/side
    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`,
    'ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns\n',
    'app.yaml': deployment('web'),
    'conf.yaml': 'listen: 0.0.0.0:1 # SADP_<SECTION>_<KEY>\n',
  },
  'overlay: merge, replace, patches, delete': {
    'base/kustomization.yaml': `resources: [app.yaml, extra.yaml]
configMapGenerator:
  - name: settings
    literals: [A=1, B=2]
  - name: other
    literals: [X=1]
`,
    'base/app.yaml': deployment('web'),
    'base/extra.yaml': `apiVersion: v1
kind: Service
metadata:
  name: gone
spec:
  ports: [{port: 80}]
`,
    'overlay/kustomization.yaml': `resources: [../base]
namespace: prod
configMapGenerator:
  - name: settings
    behavior: merge
    literals: [B=3, C=4]
  - name: other
    behavior: replace
    literals: [Y=2]
secretGenerator:
  - name: plain
    options:
      disableNameSuffixHash: true
    literals: [K=v]
patches:
  - path: patch.yaml
  - patch: |-
      apiVersion: v1
      kind: Service
      metadata:
        name: gone
      $patch: delete
`,
    'overlay/patch.yaml': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {note: patched}
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: side
          image: side:9
        - name: added
          image: added:1
      volumes:
        - name: cfg
          $patch: delete
`,
  },
};

for (const [name, files] of Object.entries(CASES)) {
  const dir = fixture(files);
  const target = files['overlay/kustomization.yaml'] ? join(dir, 'overlay') : dir;
  const real = realKustomize();
  test(
    `subset renderer equals a real kustomize: ${name}`,
    { skip: real ? false : 'neither kustomize nor kubectl is installed' },
    () => {
      assert.deepEqual(kustomizeSubsetBuild(target), realKustomizeBuild(real!, target));
    },
  );
}

test('generated names carry kustomize hashes of their data, and references follow them', () => {
  const dir = fixture(CASES['generators, labels, namespace, images']!);
  const objects = kustomizeSubsetBuild(dir);
  // Test vectors from kustomize v4.5.4 and v5.5 for the same data.
  const vectors = kustomizeSubsetBuild(
    fixture({
      'kustomization.yaml':
        'configMapGenerator:\n  - name: x\n    literals: [a=1]\nsecretGenerator:\n  - name: x\n    literals: [a=1]\n',
    }),
  );
  assert.equal(get(vectors, 'ConfigMap', 'x').metadata.name, 'x-h29d89cmmt');
  assert.equal(get(vectors, 'Secret', 'x').metadata.name, 'x-25khgmg44c');
  const cm = get(objects, 'ConfigMap', 'settings-');
  assert.match(cm.metadata.name, /^settings-[a-z0-9]{10}$/);
  assert.deepEqual(Object.keys(cm.data as object).sort(), ['A', 'B', 'conf.yaml', 'renamed.txt']);
  assert.equal((cm.data as Record<string, string>).B, '<x> & y');
  assert.equal(get(objects, 'Secret', 'creds-').type, 'Opaque');
  assert.equal((get(objects, 'Secret', 'creds-').data as Record<string, string>).KEY, 'c2VjcmV0');
  const web = get(objects, 'Deployment', 'web');
  const pod = (
    web.spec as {
      template: {
        spec: { containers: Record<string, unknown>[]; volumes: { configMap: { name: string } }[] };
      };
    }
  ).template.spec;
  assert.equal(pod.volumes[0]!.configMap.name, cm.metadata.name);
  assert.equal(
    (pod.containers[0]!.envFrom as { configMapRef: { name: string } }[])[0]!.configMapRef.name,
    cm.metadata.name,
  );
  assert.equal(pod.containers[0]!.image, 'registry.example.com/app:2.0');
  assert.match(String(pod.containers[1]!.image), /^registry\.example\.com\/side@sha256:[0-9a-f]{64}$/);
  for (const o of objects) {
    assert.equal(o.metadata.labels?.team, 'a');
    assert.equal(o.metadata.namespace, o.kind === 'Namespace' ? undefined : 'ns');
  }
  assert.deepEqual(
    objects.map((o) => o.kind),
    ['Namespace', 'ConfigMap', 'Secret', 'Deployment'],
  );
});

test('an overlay merges and replaces generated data, patches, and deletes', () => {
  const dir = fixture(CASES['overlay: merge, replace, patches, delete']!);
  const base = kustomizeSubsetBuild(join(dir, 'base'));
  const overlay = kustomizeSubsetBuild(join(dir, 'overlay'));
  const settings = get(overlay, 'ConfigMap', 'settings-');
  assert.deepEqual(settings.data, { A: '1', B: '3', C: '4' });
  assert.notEqual(settings.metadata.name, get(base, 'ConfigMap', 'settings-').metadata.name);
  assert.deepEqual(get(overlay, 'ConfigMap', 'other-').data, { Y: '2' });
  assert.equal(get(overlay, 'Secret', 'plain').metadata.name, 'plain');
  assert.ok(!overlay.some((o) => o.kind === 'Service'), 'the delete patch removed the Service');
  const web = get(overlay, 'Deployment', 'web');
  const spec = web.spec as {
    replicas: number;
    template: {
      spec: {
        containers: { name: string; image: string; envFrom?: { configMapRef: { name: string } }[] }[];
        volumes?: unknown[];
      };
    };
  };
  assert.equal(spec.replicas, 3);
  assert.deepEqual(
    spec.template.spec.containers.map((c) => `${c.name}=${c.image}`),
    ['side=side:9', 'added=added:1', 'main=app:1.0'],
  );
  assert.deepEqual(spec.template.spec.volumes, []);
  assert.equal(spec.template.spec.containers[2]!.envFrom![0]!.configMapRef.name, settings.metadata.name);
  assert.equal((web.metadata as { annotations?: Record<string, string> }).annotations?.note, 'patched');
  for (const o of overlay) assert.equal(o.metadata.namespace, 'prod');
});

test('refuses what kustomize would render differently or the subset does not implement', () => {
  const refuse = (files: Record<string, string>, pattern: RegExp, dir = ''): void => {
    const root = fixture(files);
    assert.throws(
      () => kustomizeSubsetBuild(join(root, dir)),
      (err: unknown) => err instanceof KustomizeSubsetError && pattern.test(err.message),
    );
  };
  refuse({ 'kustomization.yaml': 'commonLabels: {a: b}\n' }, /unsupported field 'commonLabels'/);
  refuse({ 'kustomization.yaml': 'resources: [https://example.com/x.yaml]\n' }, /only local files/);
  refuse(
    { 'kustomization.yaml': 'labels:\n  - pairs: {a: b}\n    includeSelectors: true\n' },
    /includeSelectors true/,
  );
  // A base resource referring to a hashed object an overlay generates: kustomize
  // leaves the reference alone, so the pod would miss it.
  refuse(
    {
      'base/kustomization.yaml': 'resources: [app.yaml]\n',
      'base/app.yaml': deployment('web'),
      'overlay/kustomization.yaml':
        'resources: [../base]\nconfigMapGenerator:\n  - name: settings\n    literals: [A=1]\n',
    },
    /generated with a name hash by an overlay/,
    'overlay',
  );
  refuse(
    {
      'kustomization.yaml': 'resources: [app.yaml]\npatches:\n  - path: p.yaml\n',
      'app.yaml': deployment('web'),
      'p.yaml':
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: main\n          ports: [{containerPort: 1}]\n',
    },
    /merging the list .*ports/,
  );
  refuse(
    {
      'kustomization.yaml': 'resources: [app.yaml]\npatches:\n  - path: p.yaml\n',
      'app.yaml': deployment('web'),
      'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nope\n',
    },
    /Deployment\/nope matches 0 objects/,
  );
  refuse(
    {
      'kustomization.yaml': 'configMapGenerator:\n  - name: a\n    behavior: merge\n    literals: [A=1]\n',
    },
    /no ConfigMap a to merge/,
  );
  refuse(
    {
      'kustomization.yaml': 'namespace: x\nresources: [ns.yaml]\n',
      'ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: y\n',
    },
    /Namespace y differs/,
  );
});
