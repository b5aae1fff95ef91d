// Checkpoint bytes for a model's weights: magic, a JSON header naming each
// tensor's shape, then the float32 values (little-endian) in header order.
import { SadpError, Status } from '../../common/errors.js';

export type NamedWeights = Record<string, { shape: number[]; values: Float32Array }>;

const MAGIC = 'SADPSNN1';
const HEADER_AT = MAGIC.length + 4;
/** A header larger than this is corrupt, not a model (bounds the JSON parse). */
const MAX_HEADER_BYTES = 1 << 20;

export function encodeWeights(weights: NamedWeights): Uint8Array {
  const entries = Object.entries(weights);
  const header = new TextEncoder().encode(
    JSON.stringify(entries.map(([name, w]) => ({ name, shape: w.shape, length: w.values.length }))),
  );
  // Pad the header so the float data starts 4-byte aligned.
  const dataAt = HEADER_AT + header.length + ((4 - ((HEADER_AT + header.length) % 4)) % 4);
  const total = entries.reduce((acc, [, w]) => acc + w.values.length, 0);
  const out = new Uint8Array(dataAt + 4 * total);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(MAGIC.length, header.length, true);
  out.set(header, HEADER_AT);
  let at = dataAt;
  for (const [, w] of entries) {
    for (const v of w.values) {
      view.setFloat32(at, v, true);
      at += 4;
    }
  }
  return out;
}

export function decodeWeights(bytes: Uint8Array): NamedWeights {
  const corrupt = (what: string): SadpError =>
    new SadpError('SADP_SNN_BAD_CHECKPOINT', `weights checkpoint (${bytes.length} bytes): ${what}`, {
      status: Status.DATA_LOSS,
    });
  if (bytes.length < HEADER_AT || new TextDecoder().decode(bytes.subarray(0, MAGIC.length)) !== MAGIC) {
    throw corrupt(`no ${MAGIC} magic at offset 0`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(MAGIC.length, true);
  if (headerLength > MAX_HEADER_BYTES || HEADER_AT + headerLength > bytes.length) {
    throw corrupt(`header length ${headerLength} at offset ${MAGIC.length} is out of range`);
  }
  let entries: { name: string; shape: number[]; length: number }[];
  try {
    entries = JSON.parse(
      new TextDecoder().decode(bytes.subarray(HEADER_AT, HEADER_AT + headerLength)),
    ) as typeof entries;
  } catch (err) {
    throw new SadpError(
      'SADP_SNN_BAD_CHECKPOINT',
      `weights checkpoint header at offset ${HEADER_AT} is not JSON`,
      {
        status: Status.DATA_LOSS,
        cause: err,
      },
    );
  }
  let at = HEADER_AT + headerLength;
  at += (4 - (at % 4)) % 4;
  const out: NamedWeights = {};
  for (const e of entries) {
    if (at + 4 * e.length > bytes.length)
      throw corrupt(`tensor '${e.name}' at offset ${at} runs past the end`);
    const values = new Float32Array(e.length);
    for (let i = 0; i < e.length; i++, at += 4) values[i] = view.getFloat32(at, true);
    out[e.name] = { shape: e.shape, values };
  }
  if (at !== bytes.length) throw corrupt(`${bytes.length - at} trailing bytes at offset ${at}`);
  return out;
}
