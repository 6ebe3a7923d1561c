/**
 * A model trained by our own CLI (`onnx-mnist train --epochs 1 --train-limit 20000`, a few seconds), cached
 * under node_modules/.cache/onnx-mnist-test-model/ keyed by a hash of the sources that make it (src/, cli/,
 * bin/, the package lock), so test files share one training run until the code changes.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { contentHash } from "../../src/node/files.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const CACHE = join(ROOT, "node_modules", ".cache", "onnx-mnist-test-model");

const sourceHash = () => contentHash(ROOT, ["src", "cli", "bin", "package-lock.json"]);

/** Path of a trained model.onnx (trains it with the CLI when the cache has none for these sources). */
export async function trainedModel(): Promise<string> {
  const model = join(CACHE, `${sourceHash()}.onnx`);
  if (existsSync(model)) return model;
  const tmp = join(CACHE, `.run-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { recursive: true });
  try {
    const args = ["bin/onnx-mnist.js", "train", "--epochs", "1", "--train-limit", "20000", "--seed", "1", "--out", join(tmp, "run")];
    await promisify(execFile)(process.execPath, args, { cwd: ROOT, maxBuffer: 64 << 20 });
    renameSync(join(tmp, "run", "model.onnx"), model); // atomic: concurrent test files each write a whole file
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  prune(KEEP);
  return model;
}

const KEEP = 4;

/** Keeps the `keep` newest cached models (sources change often while developing). */
function prune(keep: number): void {
  const models = readdirSync(CACHE)
    .filter((f) => f.endsWith(".onnx"))
    .map((f) => ({ path: join(CACHE, f), mtime: statSync(join(CACHE, f)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const m of models.slice(keep)) rmSync(m.path, { force: true });
}
