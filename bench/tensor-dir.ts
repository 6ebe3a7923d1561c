/**
 * Tensor directories: how tensors travel between TypeScript and bench/torch_ref.py (Node-only).
 *
 *   DIR/index.json  {"tensors": [{"name", "shape", "dtype": "float32", "offset", "length"}, ...]}
 *   DIR/data.bin    every tensor's elements, concatenated, little-endian float32 (offset and length count elements)
 *
 * data.bin is written before index.json, each through temp file + rename, so a reader never sees a part file.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readFileOrFail, UserError, writeFileAtomic } from "../src/node/files.ts";

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

interface IndexEntry {
  name: string;
  shape: number[];
  dtype: string;
  offset: number;
  length: number;
}

// Float32Array views use the host's byte order; the format is little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("tensor-dir.ts assumes a little-endian host");

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function writeTensorDir(dir: string, tensors: NamedTensor[]): void {
  const seen = new Set<string>();
  const entries: IndexEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`writeTensorDir: tensor '${t.name}' given twice`);
    if (t.data.length !== size(t.shape)) throw new Error(`writeTensorDir: tensor '${t.name}' has ${t.data.length} elements, shape [${t.shape}] needs ${size(t.shape)}`);
    seen.add(t.name);
    entries.push({ name: t.name, shape: t.shape, dtype: "float32", offset, length: t.data.length });
    offset += t.data.length;
  }
  const data = new Float32Array(offset);
  tensors.forEach((t, i) => data.set(t.data, entries[i].offset));
  writeFileAtomic(join(dir, "data.bin"), new Uint8Array(data.buffer));
  writeFileAtomic(join(dir, "index.json"), JSON.stringify({ tensors: entries }, null, 1) + "\n");
}

/** The tensors of a directory, by name, in index order. */
export function readTensorDir(dir: string): Map<string, NamedTensor> {
  if (!existsSync(dir)) throw new UserError(`${dir}: no such tensor directory (expected index.json and data.bin)`);
  const indexPath = join(dir, "index.json");
  let index: { tensors?: IndexEntry[] };
  try {
    index = JSON.parse(new TextDecoder().decode(readFileOrFail(indexPath, "tensor index")));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const bytes = readFileOrFail(join(dir, "data.bin"), "tensor data");
  if (bytes.length % 4) throw new UserError(`${join(dir, "data.bin")}: ${bytes.length} bytes is not a whole number of float32s`);
  // Copy into an aligned buffer: the file's bytes may start at any offset of a pooled Buffer.
  const all = new Float32Array(bytes.slice().buffer);
  const out = new Map<string, NamedTensor>();
  for (const t of index.tensors ?? []) {
    if (t.dtype !== "float32") throw new UserError(`${indexPath}: tensor '${t.name}' has dtype ${t.dtype}, only float32 is exchanged`);
    if (size(t.shape) !== t.length || t.offset < 0 || t.offset + t.length > all.length)
      throw new UserError(`${indexPath}: tensor '${t.name}' (shape [${t.shape}], offset ${t.offset}, length ${t.length}) does not fit data.bin (${all.length} floats)`);
    out.set(t.name, { name: t.name, shape: t.shape, data: all.slice(t.offset, t.offset + t.length) });
  }
  return out;
}
