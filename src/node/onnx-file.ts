/** Node-only: import an ONNX model file (and any external-data files beside it) into the model IR. */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, normalize } from "node:path";
import { importOnnx } from "../ir/import.ts";
import type { ImportOptions, ModelIR } from "../ir/ir.ts";
import { readFileOrFail, UserError } from "./files.ts";

export function importOnnxFile(path: string, options: ImportOptions = {}): ModelIR {
  if (existsSync(path) && statSync(path).isDirectory()) throw new UserError(`${path}: is a directory; pass the .onnx file`);
  const bytes = readFileOrFail(path, "an ONNX model");
  return importOnnx(bytes, {
    ...options,
    source: path,
    // External data lives beside the model, named relative to it; a location that climbs out is refused.
    readExternal: (location) => {
      const rel = normalize(location);
      if (isAbsolute(rel) || rel.startsWith("..")) return undefined;
      const file = join(dirname(path), rel);
      return existsSync(file) ? new Uint8Array(readFileSync(file)) : undefined;
    },
  });
}
