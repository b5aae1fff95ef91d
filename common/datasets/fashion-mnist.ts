// Reader for the Fashion-MNIST idx files shipped by Debian's
// `dataset-fashion-mnist` package (gzip-compressed idx3/idx1, big-endian
// headers as in LeCun's MNIST format).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SadpError, Status } from '../errors.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export type Split = 'train' | 'test';

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  /** count * rows * cols bytes, row-major, 0 = background. */
  pixels: Uint8Array;
  labels: Uint8Array;
}

const FILES: Record<Split, [string, string]> = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
};

/** True when the idx files of both splits are present in `dir`. */
export function fashionMnistAvailable(dir = FASHION_MNIST_DIR): boolean {
  return Object.values(FILES).every(([img, lbl]) => findFile(dir, img) && findFile(dir, lbl));
}

function findFile(dir: string, base: string): string | undefined {
  for (const name of [`${base}.gz`, base]) if (existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

async function readIdx(dir: string, base: string): Promise<{ path: string; bytes: Buffer }> {
  const path = findFile(dir, base);
  if (!path) {
    throw new SadpError(
      'SADP_DATASET_MISSING',
      `Fashion-MNIST file ${base}(.gz) not found in ${dir} (apt-get install -y dataset-fashion-mnist)`,
      { status: Status.NOT_FOUND },
    );
  }
  const raw = await readFile(path);
  return { path, bytes: path.endsWith('.gz') ? gunzipSync(raw) : raw };
}

function header(path: string, bytes: Buffer, magic: number, dims: number): number[] {
  const need = 4 + 4 * dims;
  if (bytes.length < need || bytes.readUInt32BE(0) !== magic) {
    throw new SadpError(
      'SADP_IDX_CORRUPT',
      `${path}: bad idx header at offset 0 (expected magic 0x${magic.toString(16)})`,
      {
        status: Status.DATA_LOSS,
      },
    );
  }
  return Array.from({ length: dims }, (_, i) => bytes.readUInt32BE(4 + 4 * i));
}

export async function readFashionMnist(split: Split, dir = FASHION_MNIST_DIR): Promise<IdxImages> {
  const [imgBase, lblBase] = FILES[split];
  const [img, lbl] = await Promise.all([readIdx(dir, imgBase), readIdx(dir, lblBase)]);
  const [count = 0, rows = 0, cols = 0] = header(img.path, img.bytes, 0x00000803, 3);
  const [labelCount = 0] = header(lbl.path, lbl.bytes, 0x00000801, 1);
  const pixelBytes = count * rows * cols;
  if (img.bytes.length !== 16 + pixelBytes) {
    throw new SadpError(
      'SADP_IDX_CORRUPT',
      `${img.path}: ${img.bytes.length - 16} pixel bytes after the header at offset 16, expected ${pixelBytes}`,
      { status: Status.DATA_LOSS },
    );
  }
  if (labelCount !== count || lbl.bytes.length !== 8 + count) {
    throw new SadpError('SADP_IDX_CORRUPT', `${lbl.path}: ${labelCount} labels for ${count} images`, {
      status: Status.DATA_LOSS,
    });
  }
  return {
    count,
    rows,
    cols,
    pixels: new Uint8Array(img.bytes.buffer, img.bytes.byteOffset + 16, pixelBytes),
    labels: new Uint8Array(lbl.bytes.buffer, lbl.bytes.byteOffset + 8, count),
  };
}
