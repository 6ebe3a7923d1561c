/**
 * A model trained by our own CLI (`onnx-mnist train --epochs 1 --train-limit 20000`, a few seconds), cached
 * under node_modules/.cache/onnx-mnist-test-model/ keyed by a hash of the sources that make it (src/, cli/,
 * bin/, the package lock), so test files share one training run until the code changes.
 */
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const ROOT = join(import.meta.dirname, "..", "..");
const CACHE = join(ROOT, "node_modules", ".cache", "onnx-mnist-test-model");

function sourceHash(): string {
  const h = createHash("sha256");
  const visit = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, e.name);
      if (e.isDirectory()) visit(path);
      else if (e.isFile()) h.update(path.slice(ROOT.length)).update("\0").update(readFileSync(path)).update("\0");
    }
  };
  for (const dir of ["src", "cli", "bin"]) visit(join(ROOT, dir));
  h.update(readFileSync(join(ROOT, "package-lock.json")));
  return h.digest("hex").slice(0, 16);
}

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
