/**
 * The safetensors format (what PyTorch users load with `safetensors.torch.load_file`):
 *
 *   8 bytes    N, the header's length (uint64 little-endian)
 *   N bytes    a JSON object: for each tensor name {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *              and optionally "__metadata__": {string: string}; may be padded with trailing spaces
 *   the rest   the data; offsets are relative to its start, little-endian, row-major
 *
 * The rules we enforce on reading, as the reference implementation does: the header fits in the file and starts
 * with '{', every tensor's byte length is its shape's product times its dtype's size, and the tensors, sorted
 * by offset, cover the data exactly (no overlaps, no holes, nothing after the last one). Browser-safe.
 */

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

/** Bytes per element of the dtypes the format defines that we can decode. */
const DTYPE_SIZE = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 } as const;
export type Dtype = keyof typeof DTYPE_SIZE;

export interface SafeTensor {
  dtype: Dtype;
  shape: number[];
  /** The raw little-endian bytes (a view into the file). */
  bytes: Uint8Array;
}

export interface Safetensors {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

// A header past this is not a weights file (the reference implementation's limit is 100 MB).
const MAX_HEADER = 100_000_000;

export function readSafetensors(file: Uint8Array, source: string): Safetensors {
  const bad = (why: string) => new SafetensorsError(`${source}: not a valid safetensors file (${why})`);
  if (file.length < 8) throw bad(`${file.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(file.length - 8)) throw bad(`the header length ${n} runs past the end of the ${file.length}-byte file; it is truncated or not safetensors`);
  if (n > BigInt(MAX_HEADER)) throw bad(`a header of ${n} bytes`);
  const headerEnd = 8 + Number(n);
  const text = new TextDecoder("utf-8", { fatal: false }).decode(file.subarray(8, headerEnd));
  if (!text.startsWith("{")) throw bad("the header is not a JSON object");
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw bad(`the header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) throw bad("the header is not a JSON object");
  const data = file.subarray(headerEnd);
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad("__metadata__ is not an object");
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== "string") throw bad(`__metadata__.${k} is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== "object" || t === null) throw bad(`tensor ${name} is not an object`);
    if (typeof t.dtype !== "string" || !(t.dtype in DTYPE_SIZE)) throw bad(`tensor ${name} has dtype ${JSON.stringify(t.dtype)}; expected one of ${Object.keys(DTYPE_SIZE).join(", ")}`);
    const isIndex = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
    if (!Array.isArray(t.shape) || !t.shape.every(isIndex)) throw bad(`tensor ${name} has shape ${JSON.stringify(t.shape)}; expected a list of non-negative integers`);
    if (!Array.isArray(t.data_offsets) || t.data_offsets.length !== 2 || !t.data_offsets.every(isIndex)) throw bad(`tensor ${name} has data_offsets ${JSON.stringify(t.data_offsets)}; expected [begin, end]`);
    const [begin, end] = t.data_offsets as number[];
    const dtype = t.dtype as Dtype;
    const shape = t.shape as number[];
    const want = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
    if (end < begin || end - begin !== want) throw bad(`tensor ${name}: ${dtype} ${JSON.stringify(shape)} needs ${want} bytes, its offsets [${begin}, ${end}] hold ${end - begin}`);
    if (end > data.length) throw bad(`tensor ${name} ends at byte ${end} of the data, which has ${data.length}; the file is truncated`);
    entries.push({ name, dtype, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin < at) throw bad(`tensor ${e.name} [${e.begin}, ${e.end}] overlaps the tensor before it (which ends at ${at})`);
    if (e.begin > at) throw bad(`a hole in the data before tensor ${e.name} (bytes ${at} to ${e.begin} belong to no tensor)`);
    at = e.end;
  }
  if (at !== data.length) throw bad(`${data.length - at} bytes after the last tensor belong to no tensor`);
  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) tensors.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: data.subarray(e.begin, e.end) });
  return { tensors, metadata };
}

/** A tensor's values as float32 (from any float dtype); undefined for integer dtypes. */
export function floatValues(t: SafeTensor): Float32Array | undefined {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const v = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out = new Float32Array(n);
  if (t.dtype === "F32") for (let i = 0; i < n; i++) out[i] = v.getFloat32(4 * i, true);
  else if (t.dtype === "F64") for (let i = 0; i < n; i++) out[i] = v.getFloat64(8 * i, true);
  else if (t.dtype === "BF16") for (let i = 0; i < n; i++) out[i] = bf16(v.getUint16(2 * i, true));
  else if (t.dtype === "F16") for (let i = 0; i < n; i++) out[i] = f16(v.getUint16(2 * i, true));
  else return undefined;
  return out;
}

/** bfloat16 is the top half of a float32. */
function bf16(h: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setUint32(0, h << 16);
  return b.getFloat32(0);
}

/** IEEE half: sign, 5-bit exponent (bias 15), 10-bit fraction. */
function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

export type WritableTensor = { dtype: "F32"; shape: number[]; data: Float32Array } | { dtype: "I64"; shape: number[]; data: BigInt64Array };

/**
 * Encodes tensors in name order (so the same tensors give the same bytes), with the header padded by spaces
 * to a multiple of 8 bytes so that every tensor starts aligned, as the reference writer does.
 */
export function writeSafetensors(tensors: Map<string, WritableTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let at = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== size) throw new RangeError(`tensor ${name}: ${t.data.length} values for shape [${t.shape}]`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.data.byteLength] };
    at += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + at);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let o = 8 + padded;
  for (const name of names) {
    const t = tensors.get(name)!;
    // Explicitly little-endian, whatever the host.
    if (t.dtype === "F32") t.data.forEach((x, i) => view.setFloat32(o + 4 * i, x, true));
    else t.data.forEach((x, i) => view.setBigInt64(o + 8 * i, x, true));
    o += t.data.byteLength;
  }
  return out;
}
