// Property-based fuzzing (fast-check) of everything that parses bytes from
// storage: the tar offset scanner, the shard indexer (scanner + tar-stream),
// and the readers of the dataset manifest and shard index JSON behind
// openDataset. Inputs are real shards and manifests mutated by bit flips,
// truncations, header fields rewritten with a valid checksum (so the parser
// gets past the checksum), huge sizes, random headers, PAX records of
// garbage, spliced blocks and JSON values swapped for hostile ones.
//
// The property: every input either parses into something self-consistent or
// fails with a SadpError whose code is one of the target's documented codes
// and whose message names the object; nothing else is thrown, and no input
// hangs (an async parse is raced against a hang bound far beyond any honest
// parse on a busy machine; speed itself is not judged here). The scanner must also give the same
// answer however its input is chunked.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isSadpError } from '../../common/errors.js';
import {
  TarScanner,
  buildShards,
  indexShard,
  openDataset,
  type DatasetManifest,
  type ShardIndex,
  type TarRecord,
} from '../../loader/shards/index.js';
import { openStore } from '../../storage/index.js';
import { mixedSource } from '../loader/fetch/fixtures.js';

const BLOCK = 512;

export const TAR_CODES = ['SADP_TAR_CORRUPT', 'SADP_TAR_TRUNCATED'] as const;
export const INDEX_CODES = [...TAR_CODES, 'SADP_SHARD_INVALID'] as const;
export const DATASET_CODES = [
  'SADP_MANIFEST_INVALID',
  'SADP_INDEX_INVALID',
  'SADP_INDEX_MISMATCH',
  'SADP_INDEX_MISSING',
  'SADP_INVALID_KEY',
] as const;

/** What one fuzz target saw. */
export interface FuzzStats {
  target: string;
  inputs: number;
  /** Inputs that parsed (the mutation kept the input valid or harmless). */
  parsed: number;
  /** Rejections by error code. */
  errors: Record<string, number>;
  /** Slowest single input. */
  maxMs: number;
  /** Inputs by the mutations applied to them (first mutation's kind). */
  mutations: Record<string, number>;
}

function newStats(target: string): FuzzStats {
  return { target, inputs: 0, parsed: 0, errors: {}, maxMs: 0, mutations: {} };
}

function noteError(stats: FuzzStats, code: string): void {
  stats.errors[code] = (stats.errors[code] ?? 0) + 1;
}

export interface FuzzFixture {
  dir: string;
  /** Seed shards: the project's writer (ustar + PAX long names) and, when GNU tar exists, gnu and pax archives. */
  tars: Array<{ name: string; bytes: Buffer; headers: number[] }>;
  manifest: DatasetManifest;
  indexes: Map<string, ShardIndex>;
  close(): Promise<void>;
}

/** Offsets of every header block of a well-formed tar (ustar and extension headers). */
function headerOffsets(bytes: Uint8Array): number[] {
  const records: TarRecord[] = [];
  const scanner = new TarScanner('seed');
  scanner.push(bytes, records);
  scanner.finish();
  const out = new Set<number>();
  for (const r of records) {
    out.add(r.headerOffset);
    out.add(r.ustarOffset);
  }
  return [...out].sort((a, b) => a - b);
}

function gnuTar(dir: string, format: 'gnu' | 'pax'): Buffer | undefined {
  try {
    const src = join(dir, `src-${format}`);
    execFileSync('mkdir', ['-p', join(src, 'a'.repeat(120))]);
    for (let i = 0; i < 6; i++) {
      const long = join(src, 'a'.repeat(120), `${String(i).padStart(4, '0')}_${'n'.repeat(90)}`);
      execFileSync('sh', [
        '-c',
        `printf '%s' "${'x'.repeat(i * 300)}" > "${long}.bin" && echo ${i} > "${long}.cls"`,
      ]);
    }
    return execFileSync('tar', [`--format=${format}`, '--sort=name', '-C', src, '-cf', '-', '.'], {
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch {
    return undefined; // no GNU tar: the writer's shard alone still covers ustar + PAX
  }
}

export async function startFuzzFixture(): Promise<FuzzFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'sadp-fuzz-'));
  const root = join(dir, 'ds');
  const manifest = await buildShards(mixedSource(60, 9), { out: root, shardBytes: 40 * 1024 });
  const indexes = new Map<string, ShardIndex>();
  for (const s of manifest.shards) {
    indexes.set(s.index, JSON.parse(await readFile(join(root, s.index), 'utf8')) as ShardIndex);
  }
  const first = manifest.shards[0];
  if (!first) throw new Error('fixture has no shard');
  const tars: FuzzFixture['tars'] = [];
  const own = await readFile(join(root, first.url));
  tars.push({ name: 'writer', bytes: own, headers: headerOffsets(own) });
  for (const format of ['gnu', 'pax'] as const) {
    const bytes = gnuTar(dir, format);
    if (bytes) tars.push({ name: `gnu-tar-${format}`, bytes, headers: headerOffsets(bytes) });
  }
  return { dir, tars, manifest, indexes, close: () => rm(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------- tar mutations

type TarMutation =
  | { kind: 'bit-flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'header-field'; header: number; field: keyof typeof FIELDS; bytes: Uint8Array; fix: boolean }
  | { kind: 'huge-size'; header: number; encoding: 'octal' | 'base256' | 'negative' | 'pax'; fix: boolean }
  | { kind: 'random-header'; header: number; typeflag: number; size: number; fix: boolean }
  | { kind: 'pax-garbage'; header: number; records: Uint8Array }
  | { kind: 'splice'; from: number; length: number; to: number }
  | { kind: 'zero-block'; header: number };

/** ustar header fields: [offset, length]. */
const FIELDS = {
  name: [0, 100],
  mode: [100, 8],
  size: [124, 12],
  mtime: [136, 12],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 8],
  prefix: [345, 155],
} as const;

const TYPEFLAGS = [0, 0x30, 0x31, 0x32, 0x35, 0x37, 0x78, 0x67, 0x4c, 0x4b, 0x53, 0x41, 0xff];

function fixChecksum(buf: Buffer, at: number): void {
  if (at + BLOCK > buf.length) return;
  buf.fill(0x20, at + 148, at + 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[at + i] as number;
  buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
}

function writeOctal(buf: Buffer, at: number, length: number, value: number): void {
  buf.write(
    `${value
      .toString(8)
      .padStart(length - 1, '0')
      .slice(-(length - 1))}\0`,
    at,
    'latin1',
  );
}

function paxHeader(records: Uint8Array): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write('PaxHeaders/fuzz', 0, 'latin1');
  writeOctal(header, 100, 8, 0o644);
  writeOctal(header, 124, 12, records.length);
  header[156] = 0x78;
  header.write('ustar\u000000', 257, 'latin1');
  fixChecksum(header, 0);
  const body = Buffer.alloc(Math.ceil(records.length / BLOCK) * BLOCK);
  body.set(records);
  return Buffer.concat([header, body]);
}

function applyTar(seed: { bytes: Buffer; headers: number[] }, m: TarMutation, input: Buffer): Buffer {
  const len = input.length;
  const header = (i: number): number =>
    (seed.headers[i % Math.max(1, seed.headers.length)] ?? 0) % Math.max(1, len);
  switch (m.kind) {
    case 'bit-flip': {
      if (len === 0) return input;
      const at = m.at % len;
      input[at] = (input[at] as number) ^ (1 << m.bit);
      return input;
    }
    case 'truncate':
      return input.subarray(0, m.at % (len + 1));
    case 'header-field': {
      const at = header(m.header);
      const [off, size] = FIELDS[m.field];
      if (at + BLOCK > len) return input;
      input.fill(0, at + off, at + off + size);
      input.set(m.bytes.subarray(0, size), at + off);
      if (m.fix) fixChecksum(input, at);
      return input;
    }
    case 'huge-size': {
      const at = header(m.header);
      if (at + BLOCK > len) return input;
      if (m.encoding === 'octal') input.write('77777777777\0', at + 124, 'latin1');
      else if (m.encoding === 'base256') {
        input[at + 124] = 0x80;
        input.fill(0xff, at + 125, at + 136);
      } else if (m.encoding === 'negative') input.fill(0xff, at + 124, at + 136);
      else {
        const pax = paxHeader(Buffer.from('30 size=99999999999999999999\n', 'latin1'));
        return Buffer.concat([input.subarray(0, at), pax, input.subarray(at)]);
      }
      if (m.fix) fixChecksum(input, at);
      return input;
    }
    case 'random-header': {
      const at = header(m.header);
      if (at + BLOCK > len) return input;
      input[at + 156] = m.typeflag;
      writeOctal(input, at + 124, 12, m.size);
      input.write('ustar\u000000', at + 257, 'latin1');
      if (m.fix) fixChecksum(input, at);
      return input;
    }
    case 'pax-garbage': {
      const at = header(m.header);
      return Buffer.concat([input.subarray(0, at), paxHeader(m.records), input.subarray(at)]);
    }
    case 'splice': {
      if (len === 0) return input;
      const from = m.from % len;
      const piece = Buffer.from(input.subarray(from, Math.min(len, from + m.length)));
      const rest = Buffer.concat([input.subarray(0, from), input.subarray(from + piece.length)]);
      const to = m.to % (rest.length + 1);
      return Buffer.concat([rest.subarray(0, to), piece, rest.subarray(to)]);
    }
    case 'zero-block': {
      const at = header(m.header);
      if (at + BLOCK <= len) input.fill(0, at, at + BLOCK);
      return input;
    }
  }
}

const paxRecords = fc.oneof(
  fc.string({ maxLength: 300 }).map((s) => Buffer.from(s, 'utf8')),
  fc.uint8Array({ maxLength: 700 }),
  fc
    .tuple(
      fc.oneof(fc.integer({ min: -5, max: 80 }), fc.constantFrom(0, 99_999_999_999)),
      fc.constantFrom('size', 'path', 'linkpath', 'uid', 'mtime', 'GNU.sparse.size', ''),
      fc.oneof(
        fc.constantFrom('-1', '1e30', '99999999999999999999', 'abc', '', '0x10', '512', '\u0000'),
        fc.nat().map(String),
      ),
    )
    .map(([n, k, v]) => Buffer.from(`${n} ${k}=${v}\n`, 'latin1')),
);

const tarMutation: fc.Arbitrary<TarMutation> = fc.oneof(
  fc.record({ kind: fc.constant('bit-flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('header-field' as const),
    header: fc.nat(),
    field: fc.constantFrom(...(Object.keys(FIELDS) as Array<keyof typeof FIELDS>)),
    bytes: fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 155 }),
      fc.string({ minLength: 1, maxLength: 40 }).map((s) => Buffer.from(s, 'utf8')),
    ),
    fix: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('huge-size' as const),
    header: fc.nat(),
    encoding: fc.constantFrom('octal' as const, 'base256' as const, 'negative' as const, 'pax' as const),
    fix: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('random-header' as const),
    header: fc.nat(),
    typeflag: fc.constantFrom(...TYPEFLAGS),
    size: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 0o77777777777 })),
    fix: fc.constant(true),
  }),
  fc.record({ kind: fc.constant('pax-garbage' as const), header: fc.nat(), records: paxRecords }),
  fc.record({
    kind: fc.constant('splice' as const),
    from: fc.nat(),
    length: fc.integer({ min: 1, max: 2048 }),
    to: fc.nat(),
  }),
  fc.record({ kind: fc.constant('zero-block' as const), header: fc.nat() }),
);

export interface MutatedTar {
  seed: number;
  mutations: TarMutation[];
  /** Chunk sizes for the chunked scan. */
  chunk: number;
}

const mutatedTar = (seeds: number): fc.Arbitrary<MutatedTar> =>
  fc.record({
    seed: fc.integer({ min: 0, max: seeds - 1 }),
    mutations: fc.array(tarMutation, { minLength: 1, maxLength: 3 }),
    chunk: fc.oneof(fc.integer({ min: 1, max: 37 }), fc.integer({ min: 500, max: 5000 })),
  });

function materialize(fx: FuzzFixture, t: MutatedTar): Buffer {
  const seed = fx.tars[t.seed] as FuzzFixture['tars'][number];
  let bytes: Buffer = Buffer.from(seed.bytes);
  for (const m of t.mutations) bytes = applyTar(seed, m, bytes);
  return bytes;
}

type ScanOutcome = { records: TarRecord[] } | { code: string; message: string };

function scan(bytes: Uint8Array, chunk: number): ScanOutcome {
  const scanner = new TarScanner('fuzz.tar');
  const records: TarRecord[] = [];
  try {
    for (let at = 0; at < bytes.length; at += chunk) scanner.push(bytes.subarray(at, at + chunk), records);
    scanner.finish();
    return { records };
  } catch (err) {
    if (!isSadpError(err))
      throw new Error(`TarScanner threw a non-SadpError: ${String(err)}`, { cause: err });
    return { code: err.code, message: err.message };
  }
}

function checkRecords(records: TarRecord[], length: number): void {
  let prevEnd = 0;
  for (const r of records) {
    const aligned = [r.headerOffset, r.ustarOffset, r.dataOffset, r.end].every((x) => x % BLOCK === 0);
    if (!aligned) throw new Error(`record not block-aligned: ${JSON.stringify(r)}`);
    if (!(prevEnd <= r.headerOffset && r.headerOffset <= r.ustarOffset && r.ustarOffset < r.dataOffset))
      throw new Error(`record out of order: ${JSON.stringify(r)}`);
    if (r.dataOffset + r.size > r.end || r.end > length)
      throw new Error(`record past its end or the input (${length}): ${JSON.stringify(r)}`);
    prevEnd = r.end;
  }
}

function codeCheck(allowed: readonly string[], code: string, message: string, names: string): void {
  if (!allowed.includes(code)) throw new Error(`unexpected code ${code}: ${message}`);
  if (!message.includes(names)) throw new Error(`message does not name ${names}: ${message}`);
}

/** fc.assert, with the failing input's own error in the message (fast-check keeps it as `cause`). */
async function check<T>(property: fc.IAsyncProperty<T> | fc.IProperty<T>, o: FuzzRunOptions): Promise<void> {
  try {
    await fc.assert(property, { numRuns: o.numRuns, seed: o.seed });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : '';
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nfailure: ${cause}`, { cause: err });
  }
}

export interface FuzzRunOptions {
  numRuns: number;
  seed: number;
  /**
   * Hang bound on one asynchronous input; default 60,000 ms. Inputs are tens
   * of KB and a healthy parse takes milliseconds, so only a hang reaches it.
   */
  perInputMs?: number;
}

/** TarScanner alone: same outcome for whole and chunked input; errors are TAR codes naming the shard. */
export async function fuzzTarScanner(fx: FuzzFixture, o: FuzzRunOptions): Promise<FuzzStats> {
  const stats = newStats('TarScanner');
  await check(
    fc.property(mutatedTar(fx.tars.length), (t) => {
      const bytes = materialize(fx, t);
      const started = performance.now();
      const whole = scan(bytes, Math.max(1, bytes.length));
      const chunked = scan(bytes, t.chunk);
      const ms = performance.now() - started;
      stats.inputs++;
      stats.maxMs = Math.max(stats.maxMs, ms);
      const kind = t.mutations[0]?.kind ?? 'none';
      stats.mutations[kind] = (stats.mutations[kind] ?? 0) + 1;
      if (JSON.stringify(whole) !== JSON.stringify(chunked))
        throw new Error(
          `chunking changed the outcome: ${JSON.stringify(whole)} vs ${JSON.stringify(chunked)}`,
        );
      if ('records' in whole) {
        checkRecords(whole.records, bytes.length);
        stats.parsed++;
      } else {
        codeCheck(TAR_CODES, whole.code, whole.message, 'fuzz.tar');
        noteError(stats, whole.code);
      }
    }),
    o,
  );
  return stats;
}

/** Rejects with a hang error when `work` takes longer than `ms` (the work itself cannot be stopped). */
async function bounded<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms (hang)`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** indexShard (scanner + tar-stream + sample grouping) over a local store. */
export async function fuzzIndexShard(fx: FuzzFixture, o: FuzzRunOptions): Promise<FuzzStats> {
  const stats = newStats('indexShard');
  const bound = o.perInputMs ?? 60_000;
  const dir = join(fx.dir, 'index-fuzz');
  await mkdir(dir, { recursive: true });
  const store = openStore(dir);
  let n = 0;
  await check(
    fc.asyncProperty(mutatedTar(fx.tars.length), async (t) => {
      const bytes = materialize(fx, t);
      const key = `s-${n++}.tar`;
      await writeFile(join(dir, key), bytes);
      const started = performance.now();
      let outcome: { index: ShardIndex } | { code: string; message: string };
      try {
        outcome = await bounded(`indexShard ${key}`, bound, indexShard(store, key));
      } catch (err) {
        if (!isSadpError(err))
          throw new Error(`indexShard threw a non-SadpError: ${String(err)}`, { cause: err });
        outcome = { code: err.code, message: err.message };
      } finally {
        await rm(join(dir, key), { force: true });
      }
      const ms = performance.now() - started;
      stats.inputs++;
      stats.maxMs = Math.max(stats.maxMs, ms);
      const kind = t.mutations[0]?.kind ?? 'none';
      stats.mutations[kind] = (stats.mutations[kind] ?? 0) + 1;
      if ('index' in outcome) {
        checkIndex(outcome.index, bytes.length);
        stats.parsed++;
      } else {
        codeCheck(INDEX_CODES, outcome.code, outcome.message, key);
        noteError(stats, outcome.code);
      }
    }),
    o,
  );
  return stats;
}

function checkIndex(index: ShardIndex, size: number): void {
  if (index.size !== size) throw new Error(`index size ${index.size} != ${size}`);
  let prev = 0;
  for (const s of index.samples) {
    if (s.offset % BLOCK !== 0 || s.end % BLOCK !== 0 || s.offset < prev || s.end > size || s.end <= s.offset)
      throw new Error(`bad sample range in a successful index: ${JSON.stringify(s)}`);
    if (s.members.length === 0) throw new Error(`sample without members: ${s.key}`);
    prev = s.end;
  }
}

// ---------------------------------------------------------- manifest / index JSON

/** Values that break assumptions: huge, negative, fractional, wrong types, escaping keys. */
const hostile = fc.oneof(
  fc.constantFrom(
    -1,
    0,
    1.5,
    2 ** 31,
    2 ** 32,
    2 ** 32 + 1,
    2 ** 40,
    Number.MAX_SAFE_INTEGER,
    1e300,
    '',
    '../../../etc/passwd',
    '/etc/passwd',
    'index/../../x.json',
    'a\u0000b',
    null,
    true,
    [],
    {},
    'sadp-webdataset',
    'sadp-shard-index',
  ),
  fc.integer(),
  fc.string({ maxLength: 20 }),
  fc.jsonValue({ maxDepth: 2 }),
);

type JsonMutation =
  | { kind: 'set'; path: number[]; value: unknown }
  | { kind: 'delete'; path: number[] }
  | { kind: 'duplicate-array-item'; path: number[] }
  | { kind: 'text-flip'; at: number; bit: number }
  | { kind: 'text-truncate'; at: number }
  | { kind: 'consistent-count'; shard: number; samples: number };

const jsonMutation: fc.Arbitrary<JsonMutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      path: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
      value: hostile,
    }),
  },
  fc.record({
    kind: fc.constant('delete' as const),
    path: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant('duplicate-array-item' as const),
    path: fc.array(fc.nat(), { minLength: 0, maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant('text-flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('text-truncate' as const), at: fc.nat() }),
  // A manifest whose arithmetic still adds up (totals, firstIds) around a hostile sample count.
  fc.record({
    kind: fc.constant('consistent-count' as const),
    shard: fc.nat(),
    samples: fc.constantFrom(0, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40, Number.MAX_SAFE_INTEGER - 2 ** 20),
  }),
);

/** Sets one shard's sample count and shifts the manifest's total and later firstIds to match. */
function consistentCount(doc: unknown, shard: number, samples: number): void {
  const m = doc as { samples?: unknown; shards?: unknown };
  if (!Array.isArray(m.shards) || m.shards.length === 0 || typeof m.samples !== 'number') return;
  const shards = m.shards as unknown[];
  const isEntry = (v: unknown): v is { samples: number; firstId: number } =>
    typeof v === 'object' && v !== null && typeof (v as { samples?: unknown }).samples === 'number';
  const i = shard % shards.length;
  const victim = shards[i];
  if (!isEntry(victim)) return;
  const delta = samples - victim.samples;
  victim.samples = samples;
  for (let j = i + 1; j < shards.length; j++) {
    const s = shards[j];
    if (isEntry(s) && typeof s.firstId === 'number') s.firstId += delta;
  }
  m.samples += delta;
}

/** Walks `path` (indexes into each level's keys) and returns the container and key it lands on. */
function locate(
  root: unknown,
  path: number[],
): { parent: Record<string, unknown> | unknown[]; key: string | number } | undefined {
  let node = root;
  let parent: Record<string, unknown> | unknown[] | undefined;
  let key: string | number | undefined;
  for (const step of path) {
    if (typeof node !== 'object' || node === null) break;
    const keys: Array<string | number> = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    const next = keys[step % Math.max(1, keys.length)];
    if (next === undefined) break;
    key = next;
    parent = node as Record<string, unknown> | unknown[];
    node = (parent as Record<string | number, unknown>)[next];
  }
  return parent && key !== undefined ? { parent, key } : undefined;
}

function applyJson(value: unknown, ms: JsonMutation[]): string {
  const doc = structuredClone(value);
  const textOps: JsonMutation[] = [];
  for (const m of ms) {
    if (m.kind === 'text-flip' || m.kind === 'text-truncate') {
      textOps.push(m);
      continue;
    }
    if (m.kind === 'consistent-count') {
      consistentCount(doc, m.shard, m.samples);
      continue;
    }
    if (m.kind === 'duplicate-array-item') {
      const at = m.path.length ? locate(doc, m.path) : undefined;
      const arr = at ? (at.parent as Record<string | number, unknown>)[at.key] : doc;
      if (Array.isArray(arr) && arr.length > 0) arr.push(structuredClone(arr[m.path.length % arr.length]));
      continue;
    }
    const at = locate(doc, m.path);
    if (!at) continue;
    if (m.kind === 'set') (at.parent as Record<string | number, unknown>)[at.key] = m.value;
    else if (Array.isArray(at.parent)) at.parent.splice(Number(at.key), 1);
    else delete at.parent[at.key];
  }
  let text = JSON.stringify(doc);
  for (const m of textOps) {
    if (m.kind === 'text-flip' && text.length > 0) {
      const buf = Buffer.from(text, 'latin1');
      const i = m.at % buf.length;
      buf[i] = (buf[i] as number) ^ (1 << m.bit);
      text = buf.toString('latin1');
    } else if (m.kind === 'text-truncate') text = text.slice(0, m.at % (text.length + 1));
  }
  return text;
}

export interface MutatedDataset {
  /** -1: mutate the manifest; otherwise the index of that shard. */
  target: number;
  mutations: JsonMutation[];
}

/** openDataset on a copy of a real dataset whose manifest or one index was mutated. */
export async function fuzzDatasetJson(fx: FuzzFixture, o: FuzzRunOptions): Promise<FuzzStats> {
  const stats = newStats('openDataset');
  const bound = o.perInputMs ?? 60_000;
  const shards = fx.manifest.shards.length;
  const root = join(fx.dir, 'json-fuzz');
  await mkdir(join(root, 'index'), { recursive: true });
  const writeAll = async (manifestText: string, replaced: number, indexText: string): Promise<void> => {
    await writeFile(join(root, 'manifest.json'), manifestText);
    await Promise.all(
      fx.manifest.shards.map((s, i) =>
        writeFile(join(root, s.index), i === replaced ? indexText : JSON.stringify(fx.indexes.get(s.index))),
      ),
    );
  };
  // The shards themselves are not read by openDataset; the indexes say which size/ETag they had.
  const url = join(root, 'manifest.json');
  await check(
    fc.asyncProperty(
      fc.record({
        target: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: shards - 1 })),
        mutations: fc.array(jsonMutation, { minLength: 1, maxLength: 3 }),
      }),
      async (d: MutatedDataset) => {
        const manifestText = d.target < 0 ? applyJson(fx.manifest, d.mutations) : JSON.stringify(fx.manifest);
        const victim = fx.manifest.shards[Math.max(0, d.target)];
        const indexText = d.target >= 0 && victim ? applyJson(fx.indexes.get(victim.index), d.mutations) : '';
        await writeAll(manifestText, d.target, indexText);
        const started = performance.now();
        let outcome: { size: number } | { code: string; message: string };
        try {
          const ds = await bounded('openDataset', bound, openDataset(url));
          outcome = { size: ds.size };
          checkDataset(ds);
        } catch (err) {
          if (err instanceof Error && err.message.startsWith('dataset invariant')) throw err;
          if (!isSadpError(err))
            throw new Error(`openDataset threw a non-SadpError: ${String(err)}`, { cause: err });
          outcome = { code: err.code, message: err.message };
        }
        const ms = performance.now() - started;
        stats.inputs++;
        stats.maxMs = Math.max(stats.maxMs, ms);
        const kind = `${d.target < 0 ? 'manifest' : 'index'}:${d.mutations[0]?.kind ?? 'none'}`;
        stats.mutations[kind] = (stats.mutations[kind] ?? 0) + 1;
        if ('size' in outcome) stats.parsed++;
        else {
          codeCheck(DATASET_CODES, outcome.code, outcome.message, root);
          noteError(stats, outcome.code);
        }
      },
    ),
    o,
  );
  return stats;
}

function checkDataset(ds: Awaited<ReturnType<typeof openDataset>>): void {
  const fail = (why: string): never => {
    throw new Error(`dataset invariant: ${why}`);
  };
  if (ds.size !== ds.manifest.shards.reduce((n, s) => n + s.samples, 0)) fail('size != sum of shard samples');
  for (let id = 0; id < ds.size; id++) {
    const shard = ds.shardOf(id);
    const entry = ds.manifest.shards[shard];
    if (!entry) fail(`id ${id} maps to no shard`);
    const a = ds.offsets[id] as number;
    const b = ds.ends[id] as number;
    if (!(a >= 0 && b > a && b <= (entry?.size ?? 0) && a % BLOCK === 0 && b % BLOCK === 0))
      fail(`id ${id} range [${a}, ${b}) in shard of ${entry?.size} bytes`);
  }
}
