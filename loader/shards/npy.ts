// Minimal NumPy .npy (format 1.0) for uint8 arrays: the WebDataset field
// Fashion-MNIST images are stored in. Python's webdataset decodes `.npy`
// natively; JS readers can skip the fixed 128-byte header.
import { SadpError, Status } from '../../common/errors.js';

/** Header bytes of every array written by encodeNpyUint8 (pixels start here). */
const NPY_HEADER_BYTES = 128;
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function encodeNpyUint8(data: Uint8Array, shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let dict = `{'descr': '|u1', 'fortran_order': False, 'shape': (${dims}), }`;
  const room = NPY_HEADER_BYTES - 10 - 1; // magic+version+len, trailing \n
  if (dict.length > room) throw new Error(`npy header too long for shape ${dims}`);
  dict = dict.padEnd(room, ' ') + '\n';
  const out = new Uint8Array(NPY_HEADER_BYTES + data.length);
  out.set(MAGIC, 0);
  out[6] = 1; // major
  out[7] = 0; // minor
  out[8] = (NPY_HEADER_BYTES - 10) & 0xff;
  out[9] = (NPY_HEADER_BYTES - 10) >> 8;
  out.set(Buffer.from(dict, 'latin1'), 10);
  out.set(data, NPY_HEADER_BYTES);
  return out;
}

/** Decodes a uint8 .npy (format 1.x/2.x, C order) into its shape and bytes. */
export function decodeNpyUint8(bytes: Uint8Array): { shape: number[]; data: Uint8Array } {
  const bad = (why: string): SadpError =>
    new SadpError('SADP_NPY_INVALID', `not a uint8 .npy array: ${why}`, { status: Status.INVALID_ARGUMENT });
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b))
    throw bad('missing \\x93NUMPY magic at offset 0');
  const major = bytes[6] ?? 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > bytes.length) throw bad('header runs past the end');
  const dict = Buffer.from(bytes.buffer, bytes.byteOffset + start, headerLen).toString('latin1');
  if (!/'descr':\s*'[|<>]u1'/.test(dict)) throw bad(`dtype is not uint8 (${dict.trim()})`);
  if (/'fortran_order':\s*True/.test(dict)) throw bad('Fortran order is not supported');
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(dict)?.[1] ?? '';
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  const data = bytes.subarray(start + headerLen);
  const expected = shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) throw bad(`${data.length} data bytes for shape (${shape.join(', ')})`);
  return { shape, data };
}
