/**
 * The IDX file format of MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
 * `00 00 <type> <ndims>`, then `ndims` big-endian uint32 dimensions, then the data, row-major.
 * MNIST and Fashion-MNIST use type 0x08 (unsigned byte) only, so that is the one type accepted.
 * Files may be gzipped (as they are distributed); gzip is recognised by its magic `1f 8b`. A gzip stream is
 * inflated step by step and stopped as soon as it passes the size its IDX header declares, so a small file
 * that expands to gigabytes costs at most one step beyond that size.
 * Browser-safe: bytes in, arrays out.
 */
import { Gunzip } from "fflate";

/** A data file that is missing, damaged or not what it should be. The message names the file and the fix. */
export class DataError extends Error {
  override name = "DataError";
}

export interface Idx {
  dims: number[];
  data: Uint8Array;
}

const UBYTE = 0x08;
const TYPE_NAMES: Record<number, string> = { 0x08: "ubyte", 0x09: "byte", 0x0b: "short", 0x0c: "int", 0x0d: "float", 0x0e: "double" };
const EXPECTED = "expected an MNIST-format image or label file (e.g. train-images-idx3-ubyte[.gz])";
/** Largest data an IDX file may declare: EMNIST ByClass, the largest MNIST-format set, holds 547 MB. */
export const MAX_IDX_BYTES = 768 << 20;
/** Compressed bytes per inflate step: deflate expands at most 1032:1, so one step yields at most ~16 MB. */
const STEP = 16 << 10;

/** Parses an IDX file (raw or gzipped). `what` names the file in error messages, e.g. its path. */
export function parseIdx(bytes: Uint8Array, what: string): Idx {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzip(bytes, what);
  if (bytes.length < 4) throw new DataError(`${what}: not an IDX file (only ${bytes.length} bytes); ${EXPECTED}`);
  const magic = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  const ndims = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0 || !(bytes[2] in TYPE_NAMES) || ndims === 0) {
    throw new DataError(`${what}: not an IDX file (magic 0x${magic.toString(16).padStart(8, "0")}, expected 0x0000080N); ${EXPECTED}`);
  }
  if (bytes[2] !== UBYTE) {
    throw new DataError(`${what}: IDX data type ${TYPE_NAMES[bytes[2]]} (0x${bytes[2].toString(16).padStart(2, "0")}) is not supported; only unsigned bytes (0x08), as in MNIST, are`);
  }
  const header = 4 + 4 * ndims;
  if (bytes.length < header) {
    throw new DataError(`${what}: truncated IDX header (${bytes.length} bytes, the ${ndims} dimensions need ${header}); re-download the file`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const size = dims.reduce((a, b) => a * b, 1);
  if (size > MAX_IDX_BYTES) {
    throw new DataError(`${what}: dimensions [${dims.join(", ")}] declare ${size} bytes of data, over the ${MAX_IDX_BYTES >> 20} MB limit; the file is damaged or not MNIST-format data`);
  }
  const found = bytes.length - header;
  if (found < size) {
    throw new DataError(`${what}: truncated: expected ${size} bytes of data for dimensions [${dims.join(", ")}], found ${found}; re-download the file`);
  }
  if (found > size) {
    throw new DataError(`${what}: has ${found - size} extra bytes after the ${size} bytes of data for dimensions [${dims.join(", ")}]; the file is damaged or not IDX`);
  }
  return { dims, data: bytes.subarray(header) };
}

/**
 * The whole file's length as the IDX header at the start of `head` declares it: null when `head` does not
 * start like an IDX file, undefined while the header is incomplete.
 */
function declaredLength(head: Uint8Array): number | null | undefined {
  if (head.length < 4) return undefined;
  if (head[0] !== 0 || head[1] !== 0 || head[3] === 0) return null;
  const header = 4 + 4 * head[3];
  if (head.length < header) return undefined;
  let size = 1;
  for (let d = 0; d < head[3]; d++) size *= ((head[4 + 4 * d] << 24) | (head[5 + 4 * d] << 16) | (head[6 + 4 * d] << 8) | head[7 + 4 * d]) >>> 0;
  return header + Math.min(size, MAX_IDX_BYTES);
}

/** Stops the inflation: the output so far is enough to reject the file by its magic. */
class NotIdx {}

function gunzip(bytes: Uint8Array, what: string): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let limit: number | undefined;
  const corrupt = (reason: string) => new DataError(`${what}: corrupt gzip stream (${reason}); re-download the file or pass the uncompressed IDX file`);
  const stream = new Gunzip((chunk) => {
    chunks.push(chunk);
    total += chunk.length;
    if (limit === undefined) {
      const declared = declaredLength(concat(chunks, total));
      if (declared === null) throw new NotIdx();
      limit = declared;
    }
    if (limit !== undefined && total > limit) {
      throw new DataError(`${what}: corrupt: the gzip stream expands past the ${limit} bytes its IDX header declares; re-download the file`);
    }
  });
  try {
    for (let i = 0; i < bytes.length; i += STEP) stream.push(bytes.subarray(i, i + STEP), i + STEP >= bytes.length);
  } catch (e) {
    if (e instanceof NotIdx) return concat(chunks, total);
    if (e instanceof DataError) throw e;
    throw corrupt(String((e as Error).message ?? e).split("\n")[0]);
  }
  const out = concat(chunks, total);
  // fflate does not check the gzip trailer (CRC-32 and length of the data), so a damaged byte could pass silently.
  const n = bytes.length;
  const crc = (bytes[n - 8] | (bytes[n - 7] << 8) | (bytes[n - 6] << 16) | (bytes[n - 5] << 24)) >>> 0;
  const size = (bytes[n - 4] | (bytes[n - 3] << 8) | (bytes[n - 2] << 16) | (bytes[n - 1] << 24)) >>> 0;
  if (size !== out.length >>> 0 || crc !== crc32(out)) throw corrupt("checksum mismatch");
  return out;
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  chunks.splice(0, chunks.length, out); // later calls start from the joined prefix
  return out;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, reflected polynomial 0xedb88320), as in the gzip trailer. */
function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
