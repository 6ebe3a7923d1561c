/**
 * MNIST classifiers trained and exported by Debian's PyTorch (test/helpers/torch_models.py), cached under
 * $TMPDIR/onnx-mnist-torch-models/<hash of the script>/ so test runs share one generation (about a minute of
 * CPU) until the script changes. Outside node_modules: `npm ci` would throw it away.
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { promisify } from "node:util";
import { contentHash } from "../../src/node/files.ts";
import { defaultMnistDir } from "../../src/data/node.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const CACHE = join(tmpdir(), "onnx-mnist-torch-models");
export const TORCH_MODELS_SCRIPT = join(ROOT, "test", "helpers", "torch_models.py");

export interface TorchModel {
  file: string;
  convention: "unit" | "byte" | "mnist";
  /** PyTorch's correct count on the 10,000 test images. */
  correct: number;
  count: number;
  batch?: number | "dynamic";
  kind?: string;
}

export function hasTorch(): boolean {
  return spawnSync("/usr/bin/python3", ["-c", "import torch, onnx"], { stdio: "ignore" }).status === 0;
}

/** The directory of exported models and their table (generates them when the cache has none for this script). */
export async function torchModels(): Promise<{ dir: string; models: Record<string, TorchModel> }> {
  const dir = join(CACHE, contentHash(ROOT, ["test/helpers/torch_models.py"]));
  if (!existsSync(join(dir, "models.json"))) {
    const tmp = `${dir}.${process.pid}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await promisify(execFile)("/usr/bin/python3", [TORCH_MODELS_SCRIPT, defaultMnistDir(), tmp], { maxBuffer: 64 << 20 });
    try {
      renameSync(tmp, dir); // atomic: a concurrent generator's whole directory wins
    } catch {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return { dir, models: JSON.parse(readFileSync(join(dir, "models.json"), "utf8")) };
}

/** PyTorch's test accuracy of MyCNN or LeNet-5 with a safetensors file loaded by load_state_dict(strict=True). */
export async function torchEvalSafetensors(name: "mycnn" | "lenet5", file: string): Promise<{ correct: number; count: number; num_batches_tracked: Record<string, number> }> {
  const { stdout } = await promisify(execFile)("/usr/bin/python3", [TORCH_MODELS_SCRIPT, "eval", defaultMnistDir(), name, file], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout.trim().split("\n").pop()!);
}
