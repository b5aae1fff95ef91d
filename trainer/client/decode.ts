// Turns a batch's raw member bytes into model inputs: flat Float32Array
// images in [0, 1] and Int32Array labels. Supported encodings are the ones
// the project's shard writers produce; anything else fails naming the sample
// key and field so a dataset problem is found at its first sample.
import { SadpError, Status } from '../../common/errors.js';
import type { Batch } from './batch.js';

export interface ImageDecodeOptions {
  /** Field holding the image; default: the first of IMAGE_FIELDS present in the batch. */
  imageField?: string;
  /** Field holding the class; default: the first of LABEL_FIELDS present. */
  labelField?: string;
  /** Image geometry; default 28 x 28 x 1 (Fashion-MNIST). */
  width?: number;
  height?: number;
  channels?: number;
  /** Labels must be in [0, classes). Default 10. */
  classes?: number;
  /** Reuse these outputs (length >= size * pixels, >= size) instead of allocating. */
  into?: { inputs: Float32Array; labels: Int32Array };
}

export interface DecodedImages {
  /** size * height * width * channels values in [0, 1], sample-major (NHWC). */
  inputs: Float32Array;
  labels: Int32Array;
  size: number;
}

/**
 * Image fields understood, in order of preference: NumPy `.npy` uint8 arrays
 * of shape (H, W) or (H, W, C) (what `sadp shards build` writes for
 * Fashion-MNIST), raw pixel bytes (`gray`, `u8`, `raw`: exactly H*W*C bytes)
 * and binary PGM/PPM (`pgm`, `ppm`: P5/P6, maxval 255). Compressed formats
 * (PNG, JPEG) need an image decoder and are refused by name.
 */
const IMAGE_FIELDS = ['npy', 'gray', 'u8', 'raw', 'pgm', 'ppm'] as const;
/** Label fields understood: ASCII decimal class index (WebDataset `cls` convention). */
const LABEL_FIELDS = ['cls', 'label', 'cls.txt'] as const;

function decodeError(batch: Batch, j: number, field: string, problem: string): SadpError {
  return new SadpError(
    'SADP_SAMPLE_DECODE',
    `sample ${batch.keys[j] ?? '?'} (id ${batch.ids[j]}, batch ${batch.index}) field .${field}: ${problem}`,
    { status: Status.INVALID_ARGUMENT },
  );
}

function pick(batch: Batch, wanted: string | undefined, known: readonly string[], what: string): string {
  const have = Object.keys(batch.fields);
  if (wanted !== undefined) {
    if (!batch.fields[wanted]) {
      throw new SadpError(
        'SADP_SAMPLE_DECODE',
        `batch ${batch.index}: no field .${wanted} (fields: ${have.join(', ') || 'none'})`,
        { status: Status.INVALID_ARGUMENT },
      );
    }
    return wanted;
  }
  const found = known.find((f) => batch.fields[f]);
  if (found === undefined) {
    throw new SadpError(
      'SADP_SAMPLE_DECODE',
      `batch ${batch.index} (first sample ${batch.keys[0] ?? '?'}): no ${what} field among ${have.join(', ') || 'none'}; ` +
        `supported: ${known.join(', ')}`,
      { status: Status.INVALID_ARGUMENT },
    );
  }
  return found;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Offset of the pixel data in a uint8 C-order .npy array of the expected shape. */
function npyPixels(bytes: Uint8Array, w: number, h: number, c: number): number | string {
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b))
    return 'missing \\x93NUMPY magic at offset 0';
  const major = bytes[6]!;
  const start = major === 1 ? 10 : 12;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = major === 1 ? view.getUint16(8, true) : bytes.length >= 12 ? view.getUint32(8, true) : Infinity;
  if (start + len > bytes.length)
    return `.npy header of ${len} bytes runs past the end (${bytes.length} bytes)`;
  const dict = new TextDecoder('latin1').decode(bytes.subarray(start, start + len));
  if (!/'descr':\s*'[|<>]u1'/.test(dict)) return `dtype is not uint8 (${dict.trim()})`;
  if (/'fortran_order':\s*True/.test(dict)) return 'Fortran-order arrays are not supported';
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(dict)?.[1] ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
    .map(Number);
  const ok =
    shape[0] === h && shape[1] === w && (shape.length === 2 ? c === 1 : shape.length === 3 && shape[2] === c);
  if (!ok) return `array shape (${shape.join(', ')}), expected (${h}, ${w}${c === 1 ? '' : `, ${c}`})`;
  return start + len;
}

/** Offset of the pixel data in a binary PNM (P5/P6) file; validates its header. */
function pnmPixels(bytes: Uint8Array, magic: 'P5' | 'P6', w: number, h: number): number | string {
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, Math.min(bytes.length, 64)));
  const m = /^(P[56])\s+(?:#[^\n]*\n\s*)*(\d+)\s+(\d+)\s+(\d+)\s/.exec(head);
  if (!m) return `not a binary PNM header (${JSON.stringify(head.slice(0, 16))})`;
  if (m[1] !== magic) return `PNM type ${m[1]}, expected ${magic}`;
  if (Number(m[2]) !== w || Number(m[3]) !== h) return `image is ${m[2]}x${m[3]}, expected ${w}x${h}`;
  if (Number(m[4]) !== 255) return `maxval ${m[4]}, only 255 is supported`;
  return m[0].length;
}

export function decodeImageBatch(batch: Batch, options: ImageDecodeOptions = {}): DecodedImages {
  const width = options.width ?? 28;
  const height = options.height ?? 28;
  const channels = options.channels ?? 1;
  const classes = options.classes ?? 10;
  const pixels = width * height * channels;
  const imageField = pick(batch, options.imageField, IMAGE_FIELDS, 'image');
  const labelField = pick(batch, options.labelField, LABEL_FIELDS, 'label');
  const images = batch.fields[imageField]!;
  const labelBytes = batch.fields[labelField]!;
  const size = batch.size;
  const inputs = options.into?.inputs ?? new Float32Array(size * pixels);
  const labels = options.into?.labels ?? new Int32Array(size);
  if (inputs.length < size * pixels || labels.length < size) {
    throw new SadpError(
      'SADP_INVALID_OPTION',
      `decode buffers hold ${inputs.length} pixels / ${labels.length} labels, batch needs ${size * pixels} / ${size}`,
      { status: Status.INVALID_ARGUMENT },
    );
  }
  const pnm = imageField === 'pgm' ? 'P5' : imageField === 'ppm' ? 'P6' : undefined;
  if (pnm && channels !== (pnm === 'P5' ? 1 : 3)) {
    throw new SadpError(
      'SADP_INVALID_OPTION',
      `.${imageField} images have ${pnm === 'P5' ? 1 : 3} channel(s), decode asked for ${channels}`,
      { status: Status.INVALID_ARGUMENT },
    );
  }
  const scale = 1 / 255;
  for (let j = 0; j < size; j++) {
    const img = images[j]!;
    let start = 0;
    if (pnm || imageField === 'npy') {
      const at = pnm ? pnmPixels(img, pnm, width, height) : npyPixels(img, width, height, channels);
      if (typeof at === 'string') throw decodeError(batch, j, imageField, at);
      start = at;
    }
    if (img.length - start !== pixels) {
      throw decodeError(
        batch,
        j,
        imageField,
        `${img.length - start} pixel bytes, expected ${pixels} (${width}x${height}x${channels})`,
      );
    }
    const base = j * pixels;
    for (let p = 0; p < pixels; p++) inputs[base + p] = img[start + p]! * scale;

    const lb = labelBytes[j]!;
    let v = 0;
    let digits = 0;
    let k = 0;
    while (k < lb.length && (lb[k] === 0x20 || lb[k] === 0x0a || lb[k] === 0x0d || lb[k] === 0x09)) k++;
    for (; k < lb.length && lb[k]! >= 0x30 && lb[k]! <= 0x39 && digits < 9; k++, digits++)
      v = v * 10 + lb[k]! - 0x30;
    while (k < lb.length && (lb[k] === 0x20 || lb[k] === 0x0a || lb[k] === 0x0d || lb[k] === 0x09)) k++;
    if (digits === 0 || k !== lb.length) {
      const text = new TextDecoder('latin1').decode(lb.subarray(0, 16));
      throw decodeError(batch, j, labelField, `label ${JSON.stringify(text)} is not an ASCII class index`);
    }
    if (v >= classes) throw decodeError(batch, j, labelField, `class ${v} is not below ${classes}`);
    labels[j] = v;
  }
  return { inputs, labels, size };
}

/** Fashion-MNIST as written by the shard builder: 28x28 grayscale, 10 classes. */
export function decodeFashionMnist(batch: Batch, into?: ImageDecodeOptions['into']): DecodedImages {
  return decodeImageBatch(batch, { width: 28, height: 28, channels: 1, classes: 10, into });
}
