/**
 * The checkpoint format: one self-describing, versioned binary file.
 *
 *   bytes 0..7    magic "OMNISTCK"
 *   bytes 8..11   format version (uint32 LE), currently 1
 *   bytes 12..15  header length H (uint32 LE)
 *   bytes 16..    header: UTF-8 JSON {config, step, epoch, ..., tensors: [{name, dtype, shape, offset}]}
 *   then          the tensors' float32 data, little-endian, offsets in bytes from the data start
 *   last 4 bytes  CRC-32 of everything before them
 *
 * An imported model's own ONNX bytes are stored as one uint8 entry named `model.onnx` (the header says how it
 * was imported), so the checkpoint alone re-imports the same model IR.
 *
 * Every tensor is stored under its own name (`conv.0.weight`, `conv.1.running_mean`, `adam.m.conv.0.weight`),
 * so a checkpoint can be read without this program (see README), and the header carries the model spec and
 * optimizer so that a checkpoint alone can rebuild the training graph. Browser-safe (no node:*).
 */
import type { ModelSpec } from "../nn/spec.ts";
import type { ImportOptions } from "../ir/ir.ts";
import type { OptimizerConfig } from "../optim/optimizer.ts";
import type { RngState } from "../random.ts";
import type { RunConfig } from "./config.ts";

export const CHECKPOINT_MAGIC = "OMNISTCK";
export const CHECKPOINT_VERSION = 1;

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

/** The model a checkpoint was saved from: a spec, or an imported ONNX model (its bytes are the `model.onnx` entry). */
export type StoredModel = { kind: "spec"; spec: ModelSpec } | { kind: "onnx"; options: ImportOptions };

/** The entry that holds an imported model's ONNX bytes. */
export const MODEL_ENTRY = "model.onnx";

export interface CheckpointHeader {
  format: "onnx-mnist-checkpoint";
  model: StoredModel;
  optimizer: OptimizerConfig;
  /** Optimizer steps taken so far. */
  step: number;
  /** Completed epochs. */
  epoch: number;
  /** Steps taken within the current (incomplete) epoch. */
  stepInEpoch: number;
  /** The data-shuffling RNG state at the start of the current epoch. */
  epochRng: RngState;
  /** Running sums of the current epoch's training loss (times batch size), correct count and images seen. */
  epochStats?: { lossSum: number; correct: number; seen: number };
  /** The run's configuration (complete for runs of `train` and the Train page; a library user may save less). */
  config: Partial<RunConfig>;
  tensors: { name: string; dtype: "float32" | "uint8"; shape: number[]; offset: number }[];
}

export interface CheckpointData {
  header: Omit<CheckpointHeader, "tensors" | "format">;
  tensors: { name: string; shape: number[]; data: Float32Array }[];
  /** An imported model's ONNX bytes. */
  modelBytes?: Uint8Array;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function encodeCheckpoint({ header, tensors, modelBytes }: CheckpointData): Uint8Array {
  let offset = 0;
  const all: { name: string; dtype: "float32" | "uint8"; shape: number[]; data: Float32Array | Uint8Array }[] = tensors.map((t) => ({ ...t, dtype: "float32" }));
  if (modelBytes) all.push({ name: MODEL_ENTRY, dtype: "uint8", shape: [modelBytes.length], data: modelBytes });
  const entries = all.map((t) => {
    const e = { name: t.name, dtype: t.dtype, shape: t.shape, offset };
    offset += t.data.byteLength;
    return e;
  });
  const full: CheckpointHeader = { format: "onnx-mnist-checkpoint", ...header, tensors: entries };
  const json = new TextEncoder().encode(JSON.stringify(full));
  const out = new Uint8Array(16 + json.length + offset + 4);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode(CHECKPOINT_MAGIC), 0);
  dv.setUint32(8, CHECKPOINT_VERSION, true);
  dv.setUint32(12, json.length, true);
  out.set(json, 16);
  const base = 16 + json.length;
  all.forEach((t, i) => out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), base + entries[i].offset));
  dv.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

/** Values a tensor may hold: a bound that keeps every product, offset and allocation exact and sane. */
const MAX_TENSOR_VALUES = 2 ** 31;

export function decodeCheckpoint(bytes: Uint8Array, source: string): CheckpointData {
  const fail = (why: string): never => {
    throw new CheckpointError(`${source}: ${why}`);
  };
  if (bytes.length < 20 || new TextDecoder().decode(bytes.subarray(0, 8)) !== CHECKPOINT_MAGIC)
    fail("not an onnx-mnist checkpoint (bad magic); pass the 'checkpoint' file of a run or build-graph directory");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== CHECKPOINT_VERSION) fail(`checkpoint format version ${version} is not supported (this onnx-mnist reads version ${CHECKPOINT_VERSION})`);
  if (crc32(bytes.subarray(0, bytes.length - 4)) !== dv.getUint32(bytes.length - 4, true))
    fail("checkpoint is corrupt or truncated (CRC mismatch); use an earlier checkpoint or start a new run");
  const hlen = dv.getUint32(12, true);
  if (16 + hlen > bytes.length - 4) fail(`checkpoint header length ${hlen} runs past the end of the file`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(16, 16 + hlen)));
  } catch {
    return fail("checkpoint header is not valid JSON");
  }
  const header = checkHeader(parsed, bytes.length - 4 - (16 + hlen), (why) => fail(`malformed checkpoint header: ${why}`));
  const base = 16 + hlen;
  let modelBytes: Uint8Array | undefined;
  const tensors: CheckpointData["tensors"] = [];
  for (const t of header.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const start = base + t.offset; // inside the data section: checked with the header
    if (t.dtype === "uint8") {
      if (t.name === MODEL_ENTRY) modelBytes = bytes.slice(start, start + n);
      continue;
    }
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(bytes.subarray(start, start + 4 * n));
    tensors.push({ name: t.name, shape: t.shape, data });
  }
  const { tensors: _t, format: _f, ...rest } = header;
  // Checkpoints written before the model IR stored the spec itself as `model`.
  const model = rest.model as StoredModel | ModelSpec;
  if (model && typeof model === "object" && "layers" in model) rest.model = { kind: "spec", spec: model };
  if (rest.model?.kind === "onnx" && !modelBytes) fail("the checkpoint names an imported ONNX model but does not contain its bytes (entry model.onnx)");
  return { header: rest, tensors, modelBytes };
}

/**
 * The header's schema, checked before any of it is used: field types and ranges, and tensors whose shapes are
 * non-negative integers with a product that fits, at integer offsets inside the data section (`dataBytes`
 * long), none overlapping another. The model spec is only required to be an object: the model loader judges
 * its contents.
 */
function checkHeader(h: unknown, dataBytes: number, fail: (why: string) => never): CheckpointHeader {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  const count = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  if (!isObject(h)) fail("not a JSON object");
  if (h.format !== "onnx-mnist-checkpoint") fail(`"format" is ${JSON.stringify(h.format)}, expected "onnx-mnist-checkpoint"`);
  if (!isObject(h.model)) fail(`"model" must be an object (the model description)`);
  const opt = h.optimizer;
  if (!isObject(opt) || typeof opt.type !== "string") fail(`"optimizer" must be an object with a "type"`);
  if (typeof opt.lr !== "number" || !Number.isFinite(opt.lr) || opt.lr <= 0) fail(`"optimizer.lr" must be a positive number`);
  for (const key of ["step", "epoch", "stepInEpoch"]) if (!count(h[key])) fail(`"${key}" must be a non-negative integer, got ${JSON.stringify(h[key])}`);
  const rng = h.epochRng;
  if (!Array.isArray(rng) || rng.length !== 4 || !rng.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff))
    fail(`"epochRng" must be four unsigned 32-bit integers`);
  if (h.epochStats !== undefined) {
    const st = h.epochStats;
    // lossSum may be null: JSON's spelling of a NaN or infinite sum
    if (!isObject(st) || (typeof st.lossSum !== "number" && st.lossSum !== null) || !count(st.correct) || !count(st.seen))
      fail(`"epochStats" must be {lossSum: number, correct: integer, seen: integer}`);
  }
  if (!isObject(h.config)) fail(`"config" must be an object (the run's training configuration)`);
  if (!Array.isArray(h.tensors)) fail(`"tensors" must be an array`);
  const names = new Set<string>();
  const spans: [number, number, string][] = [];
  for (const [i, t] of (h.tensors as unknown[]).entries()) {
    if (!isObject(t) || typeof t.name !== "string" || !t.name) fail(`tensors[${i}] must be an object with a "name"`);
    const where = `tensor '${t.name}'`;
    if (names.has(t.name)) fail(`${where} appears twice`);
    names.add(t.name);
    if (t.dtype !== "float32" && t.dtype !== "uint8") fail(`${where} has dtype ${JSON.stringify(t.dtype)}; checkpoints hold "float32" tensors (and "uint8" bytes)`);
    const width = t.dtype === "uint8" ? 1 : 4;
    if (!Array.isArray(t.shape) || !t.shape.every(count)) fail(`${where} needs a shape of non-negative integers, got ${JSON.stringify(t.shape)}`);
    let n = 1;
    for (const d of t.shape as number[]) if ((n *= d) > MAX_TENSOR_VALUES) fail(`${where} has shape [${t.shape}]: more than ${MAX_TENSOR_VALUES} values`);
    if (!count(t.offset)) fail(`${where} has offset ${JSON.stringify(t.offset)}; offsets are non-negative integers`);
    const start = t.offset as number;
    if (start + width * n > dataBytes) fail(`${where} (bytes ${start}..${start + width * n}) runs past the end of the data section (${dataBytes} bytes)`);
    if (n) spans.push([start, start + width * n, t.name]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++)
    if (spans[i][0] < spans[i - 1][1]) fail(`tensors '${spans[i - 1][2]}' and '${spans[i][2]}' overlap (bytes ${spans[i][0]}..${spans[i - 1][1]})`);
  return h as unknown as CheckpointHeader;
}
