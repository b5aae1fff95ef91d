// Sample sources for `sadp shards build`. Each yields samples one at a time
// (bounded memory: one sample) in a deterministic order.
//
// - fashion-mnist: `<id>.npy` (uint8 28x28 array, 128-byte .npy header, so
//   the pixels are the member's last 784 bytes) and `<id>.cls` (ASCII label).
//   .npy rather than a bare `.gray`: it carries dtype and shape, and Python's
//   webdataset decodes it without a custom handler.
// - imagefolder: `<input>/<class>/**/<stem>.<ext>` -> sample `<class>/<stem>`
//   with every file sharing the stem plus `.cls` (class index in sorted
//   folder order); classes.json lists the folder names.
// - synthetic: ImageNet-shaped samples: `.jpg` of lognormal size around
//   `meanBytes` (sigma 0.5) and `.cls` 0..classes-1. The payload is an
//   AES-CTR keystream keyed by (seed, id): reproducible, incompressible,
//   cheap to make - and not a decodable JPEG.
import { createCipheriv, createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SadpError, Status } from '../../common/errors.js';
import { FASHION_MNIST_DIR, readFashionMnist, type Split } from '../../common/datasets/fashion-mnist.js';
import { encodeNpyUint8 } from './npy.js';
import { throwIfCancelled } from '../../common/signals.js';
import type { Sample, SampleSource } from './writer.js';

const ascii = (s: string): Uint8Array => Buffer.from(s, 'ascii');

function keyWidth(count: number): number {
  return Math.max(6, String(Math.max(0, count - 1)).length);
}

export function fashionMnistSource(
  options: { split?: Split; dir?: string; limit?: number } = {},
): SampleSource {
  const split = options.split ?? 'train';
  const dir = options.dir ?? FASHION_MNIST_DIR;
  return {
    name: `fashion-mnist:${split}`,
    async *samples(signal?: AbortSignal): AsyncIterable<Sample> {
      const data = await readFashionMnist(split, dir);
      const count = Math.min(data.count, options.limit ?? data.count);
      const pixels = data.rows * data.cols;
      const width = keyWidth(count);
      for (let i = 0; i < count; i++) {
        throwIfCancelled(signal, `fashion-mnist:${split}`);
        yield {
          key: String(i).padStart(width, '0'),
          members: [
            { ext: 'cls', data: ascii(String(data.labels[i])) },
            {
              ext: 'npy',
              data: encodeNpyUint8(data.pixels.subarray(i * pixels, (i + 1) * pixels), [
                data.rows,
                data.cols,
              ]),
            },
          ],
        };
      }
    },
    async count() {
      const data = await readFashionMnist(split, dir);
      return Math.min(data.count, options.limit ?? data.count);
    },
  };
}

interface FolderGroup {
  key: string;
  files: Array<{ ext: string; path: string }>;
}

/** Sample groups of one directory (recursing), in sorted order. */
async function* walkFolder(
  dir: string,
  keyPrefix: string,
  signal?: AbortSignal,
): AsyncGenerator<FolderGroup> {
  throwIfCancelled(signal, dir);
  const names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  const groups = new Map<string, FolderGroup>();
  const subdirs: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const st = await stat(path);
    if (st.isDirectory()) {
      subdirs.push(name);
      continue;
    }
    const dot = name.indexOf('.');
    if (!st.isFile() || dot <= 0) continue; // no extension: not a sample member
    const stem = name.slice(0, dot);
    const ext = name.slice(dot + 1);
    const key = `${keyPrefix}${stem}`;
    let group = groups.get(stem);
    if (!group) {
      group = { key, files: [] };
      groups.set(stem, group);
    }
    if (ext === 'cls') {
      throw new SadpError('SADP_SOURCE_INVALID', `${path}: .cls is reserved for the class index`, {
        status: Status.INVALID_ARGUMENT,
      });
    }
    group.files.push({ ext, path });
  }
  yield* groups.values();
  for (const sub of subdirs) yield* walkFolder(join(dir, sub), `${keyPrefix}${sub}/`, signal);
}

async function listClasses(input: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(input, { withFileTypes: true });
  } catch (err) {
    throw new SadpError('SADP_SOURCE_INVALID', `image folder ${input} cannot be read`, {
      status: Status.INVALID_ARGUMENT,
      cause: err,
    });
  }
  const classes = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  if (classes.length === 0) {
    throw new SadpError('SADP_SOURCE_INVALID', `image folder ${input} has no class subfolders`, {
      status: Status.INVALID_ARGUMENT,
    });
  }
  return classes;
}

export function imageFolderSource(options: { input: string }): SampleSource {
  const { input } = options;
  let classes: Promise<string[]> | undefined;
  const getClasses = (): Promise<string[]> => (classes ??= listClasses(input));
  return {
    name: `imagefolder:${input}`,
    async *samples(signal?: AbortSignal): AsyncIterable<Sample> {
      const names = await getClasses();
      for (let c = 0; c < names.length; c++) {
        const cls = names[c] as string;
        for await (const group of walkFolder(join(input, cls), `${cls}/`, signal)) {
          const members: Sample['members'] = await Promise.all(
            group.files.map(async (f) => ({ ext: f.ext, data: await readFile(f.path, { signal }) })),
          );
          members.push({ ext: 'cls', data: ascii(String(c)) });
          yield { key: group.key, members };
        }
      }
    },
    async count() {
      let n = 0;
      for (const cls of await getClasses())
        for await (const _ of walkFolder(join(input, cls), `${cls}/`)) n++;
      return n;
    },
    async extras() {
      return [{ key: 'classes.json', body: Buffer.from(`${JSON.stringify(await getClasses(), null, 1)}\n`) }];
    },
  };
}

export interface SyntheticOptions {
  count: number;
  /** Default 0. */
  seed?: number;
  /** Mean payload size; default 110,000 bytes (ImageNet-1k JPEGs average ~110 KB). */
  meanBytes?: number;
  /** Lognormal sigma; default 0.5. */
  sigma?: number;
  /** Default 1000. */
  classes?: number;
}

const SYNTHETIC_DEFAULTS = { seed: 0, meanBytes: 110_000, sigma: 0.5, classes: 1000 } as const;
/** Payload bounds: at least a 1 KiB, at most 16 MiB (bounds per-sample memory). */
const MIN_BYTES = 1024;
const MAX_BYTES = 16 * 1024 * 1024;

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Counter-based hash of (seed, id, stream) -> uniform in (0, 1). */
function uniform(seed: number, id: number, stream: number): number {
  let h = mix32((seed >>> 0) ^ 0x9e3779b9);
  h = mix32(h ^ Math.floor(seed / 2 ** 32));
  h = mix32(h ^ (id >>> 0));
  h = mix32(h ^ Math.floor(id / 2 ** 32));
  h = mix32(h ^ Math.imul(stream + 1, 0x27d4eb2d));
  return (h + 0.5) / 2 ** 32;
}

/** Payload size of synthetic sample `id` (deterministic in seed and id). */
export function syntheticSampleSize(id: number, options: Omit<SyntheticOptions, 'count'> = {}): number {
  const seed = options.seed ?? SYNTHETIC_DEFAULTS.seed;
  const mean = options.meanBytes ?? SYNTHETIC_DEFAULTS.meanBytes;
  const sigma = options.sigma ?? SYNTHETIC_DEFAULTS.sigma;
  // Box-Muller; mu chosen so the lognormal's mean is `mean`.
  const z = Math.sqrt(-2 * Math.log(uniform(seed, id, 0))) * Math.cos(2 * Math.PI * uniform(seed, id, 1));
  const mu = Math.log(mean) - (sigma * sigma) / 2;
  return Math.min(MAX_BYTES, Math.max(MIN_BYTES, Math.round(Math.exp(mu + sigma * z))));
}

function syntheticLabel(id: number, seed = 0, classes = 1000): number {
  return Math.floor(uniform(seed, id, 2) * classes);
}

export function syntheticSource(options: SyntheticOptions): SampleSource {
  const seed = options.seed ?? SYNTHETIC_DEFAULTS.seed;
  const classes = options.classes ?? SYNTHETIC_DEFAULTS.classes;
  if (!Number.isSafeInteger(options.count) || options.count < 0) {
    throw new SadpError(
      'SADP_SOURCE_INVALID',
      `synthetic count must be a non-negative integer, got ${options.count}`,
      {
        status: Status.INVALID_ARGUMENT,
      },
    );
  }
  const key = createHash('sha256').update(`sadp-synthetic:${seed}`).digest().subarray(0, 16);
  const width = keyWidth(options.count);
  return {
    name: `synthetic:count=${options.count},seed=${seed},mean=${options.meanBytes ?? SYNTHETIC_DEFAULTS.meanBytes}`,
    *samples(signal?: AbortSignal): Iterable<Sample> {
      for (let id = 0; id < options.count; id++) {
        throwIfCancelled(signal, 'synthetic source');
        const size = syntheticSampleSize(id, options);
        const iv = Buffer.alloc(16);
        iv.writeUInt32BE(Math.floor(id / 2 ** 32), 0);
        iv.writeUInt32BE(id >>> 0, 4);
        const payload = createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(size));
        yield {
          key: String(id).padStart(width, '0'),
          members: [
            { ext: 'cls', data: ascii(String(syntheticLabel(id, seed, classes))) },
            { ext: 'jpg', data: payload },
          ],
        };
      }
    },
    count() {
      return Promise.resolve(options.count);
    },
  };
}

export interface SyntheticImagesOptions {
  count: number;
  /** Default 0; the test split of a demo uses another seed for its noise. */
  seed?: number;
  /** Seeds the class prototypes: train and test splits must share it. Default 0. */
  prototypeSeed?: number;
  /** Default 10. */
  classes?: number;
  /** Default 28 x 28 (Fashion-MNIST's shape). */
  rows?: number;
  cols?: number;
  /** Amplitude of the per-pixel noise added to the class prototype, 0..255; default 96. */
  noise?: number;
  /** Peak brightness of a prototype's blobs over the background, 0..255; default 220. */
  contrast?: number;
  /** Brightness of the background the blobs sit on, 0..255; default 0. */
  background?: number;
  /**
   * Class overlap, 0..1; default 0 (separable). Each image blends its class's
   * prototype with a random other class's at a weight drawn uniformly from
   * [0, overlap]: above 0.5 the image looks more like the other class, so a
   * fraction of about (overlap - 0.5) / overlap of the set cannot be
   * classified right by any model, and near 0.5 the noise decides.
   */
  overlap?: number;
}

/**
 * A small learnable image dataset for machines without Fashion-MNIST: each
 * class has a fixed random prototype (a few bright blobs), and a sample is its
 * class prototype plus uniform noise, stored like Fashion-MNIST (`.npy` uint8
 * rows x cols, ASCII `.cls`), so the same trainer decodes both.
 */
export function syntheticImagesSource(options: SyntheticImagesOptions): SampleSource {
  const seed = options.seed ?? 0;
  const protoSeed = options.prototypeSeed ?? 0;
  const classes = options.classes ?? 10;
  const rows = options.rows ?? 28;
  const cols = options.cols ?? 28;
  const noise = options.noise ?? 96;
  const overlap = options.overlap ?? 0;
  const contrast = options.contrast ?? 220;
  const background = options.background ?? 0;
  const pixels = rows * cols;
  const prototypes = new Float32Array(classes * pixels);
  for (let c = 0; c < classes; c++) {
    for (let blob = 0; blob < 4; blob++) {
      const cy = uniform(protoSeed, c, 10 + blob * 3) * rows;
      const cx = uniform(protoSeed, c, 11 + blob * 3) * cols;
      const radius = 2 + uniform(protoSeed, c, 12 + blob * 3) * 5;
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          const d2 = (y - cy) ** 2 + (x - cx) ** 2;
          const i = c * pixels + y * cols + x;
          prototypes[i] = Math.min(255, prototypes[i]! + contrast * Math.exp(-d2 / (2 * radius * radius)));
        }
      }
    }
  }
  const width = keyWidth(options.count);
  return {
    name: `synthetic-images:count=${options.count},seed=${seed},classes=${classes}${overlap > 0 ? `,overlap=${overlap}` : ''}`,
    *samples(signal?: AbortSignal): Iterable<Sample> {
      const image = new Uint8Array(pixels);
      for (let id = 0; id < options.count; id++) {
        throwIfCancelled(signal, 'synthetic-images source');
        const label = Math.floor(uniform(seed, id, 2) * classes);
        const other = (label + 1 + Math.floor(uniform(seed, id, 3) * (classes - 1))) % classes;
        const a = overlap * uniform(seed, id, 4);
        for (let p = 0; p < pixels; p++) {
          const base = (1 - a) * prototypes[label * pixels + p]! + a * prototypes[other * pixels + p]!;
          const v = background + base + noise * (uniform(seed, id, 100 + p) - 0.5);
          image[p] = Math.max(0, Math.min(255, Math.round(v)));
        }
        yield {
          key: String(id).padStart(width, '0'),
          members: [
            { ext: 'cls', data: ascii(String(label)) },
            { ext: 'npy', data: encodeNpyUint8(image, [rows, cols]) },
          ],
        };
      }
    },
    count: () => Promise.resolve(options.count),
  };
}
