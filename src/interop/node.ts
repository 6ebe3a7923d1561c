/** Node-only: safetensors files in and out (`train --init-weights`, `build-graph --init-weights`, `export`). */
import { readFileOrFail } from "../node/files.ts";
import { readSafetensors } from "./safetensors.ts";
import { applyStateDict, type Slot } from "./state-dict.ts";

/** Overwrites freshly initialised `params`/`buffers` with the weights of a safetensors file, matched by name. */
export function applyInitWeights(path: string, plan: { params: readonly Slot[]; buffers: readonly Slot[] }, init: { params: Float32Array; buffers: Float32Array }): void {
  const file = readSafetensors(readFileOrFail(path, "a .safetensors file of PyTorch state_dict weights"), path);
  applyStateDict(plan, init.params, init.buffers, file.tensors, path);
}
