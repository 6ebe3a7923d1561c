/**
 * `--from model.onnx` on the command line: build-graph writes the usual artifacts for an imported model (bad
 * files write nothing and say why in one line); train fine-tunes a PyTorch export on real MNIST, improving its
 * test accuracy, keeps the model's own names in the exported model.onnx, and resumes.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { decodeModel } from "../src/onnx/proto.ts";
import { loadMnist } from "../src/data/node.ts";
import { importModels, type ImportModel } from "./helpers/import-models.ts";

const root = mkdtempSync(join(tmpdir(), "import-cli-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let models: ImportModel[];
beforeAll(async () => {
  models = await importModels();
});
const pathOf = (f: string) => models.find((m) => m.file === f)!.path;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/onnx-mnist.js", ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Test accuracy of an inference model (the original export or ours) on the first n MNIST test images. */
async function accuracy(bytes: Uint8Array, n: number): Promise<number> {
  const data = loadMnist(undefined, { trainLimit: 1, testLimit: n });
  const session = await ort.InferenceSession.create(bytes);
  const x = Float32Array.from(data.test.images.subarray(0, n * 784), (v) => v / 255);
  const out = (await session.run({ input: new ort.Tensor("float32", x, [n, 1, 28, 28]) })).output.data as Float32Array;
  await session.release();
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.from(out.subarray(i * 10, i * 10 + 10));
    if (row.indexOf(Math.max(...row)) === data.test.labels[i]) correct++;
  }
  return correct / n;
}

describe("build-graph --from", () => {
  it("writes the four artifacts for an imported model, with --frozen applied", () => {
    const out = join(root, "graphs");
    const r = cli("build-graph", "--from", pathOf("rescnn_train_op13_dynamic.onnx"), "--frozen", "stem.*", "--out", out);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/model\s+rescnn_train_op13_dynamic: 7,194 parameters, 112 buffer values/);
    expect(readdirSync(out).sort()).toEqual(["checkpoint", "eval_step.onnx", "model.onnx", "train_step.onnx"]);
    const m = decodeModel(readFileSync(join(out, "model.onnx")));
    expect(m.graph.input.map((i) => i.name)).toEqual(["input"]);
    expect(m.graph.output.map((o) => o.name)).toEqual(["output"]); // the user's names
    expect(m.graph.initializer.map((t) => t.name)).toContain("stem.0.weight");
  });

  it("a bad model or flag writes nothing and says why in one line", () => {
    const bad = join(root, "bad.onnx");
    writeFileSync(bad, "not a model");
    for (const [args, code, message] of [
      [["--from", bad], 1, /^error: .*bad\.onnx: not an ONNX model/],
      [["--from", join(root, "missing.onnx")], 1, /^error: .*missing\.onnx: no such file \(an ONNX model\)/],
      [["--from", pathOf("mycnn_train_op13_dynamic.onnx"), "--frozen", "conv.0.wieght"], 1, /^error: .*--frozen 'conv.0.wieght' matches no initializer/],
      [["--frozen", "conv.*"], 2, /^error: --requires-grad and --frozen choose what trains in an imported model: use them with --from model\.onnx/], // a usage error
    ] as const) {
      const out = join(root, "nothing");
      const r = cli("build-graph", ...args, "--out", out);
      expect(r.code, r.err).toBe(code);
      expect(r.err.trim().split("\n"), r.err).toHaveLength(1);
      expect(r.err).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  }, 600_000);
});

describe("train --from", () => {
  it("fine-tunes a PyTorch export: test accuracy improves, names kept, and the run resumes", async () => {
    const file = pathOf("mycnn_eval_op13_dynamic.onnx");
    const before = await accuracy(new Uint8Array(readFileSync(file)), 1000);
    const run = join(root, "run");
    const flags = ["--train-limit", "6000", "--test-limit", "1000", "--threads", "1", "--out", run];
    const r = cli("train", "--from", file, "--epochs", "1", ...flags);
    expect(r.code, r.err).toBe(0);
    const after = await accuracy(new Uint8Array(readFileSync(join(run, "model.onnx"))), 1000);
    expect(after, `test accuracy ${before} before fine-tuning, ${after} after`).toBeGreaterThan(before + 0.3);
    const config = JSON.parse(readFileSync(join(run, "config.json"), "utf8"));
    expect(config.model).toBe(file);
    const names = decodeModel(readFileSync(join(run, "model.onnx"))).graph.initializer.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(["onnx::Conv_48", "lin.weight", "lin.bias"]));

    const again = cli("train", "--resume", run, "--epochs", "2");
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/resuming mycnn_eval_op13_dynamic .* from epoch 2/);
    expect(again.out).toMatch(/epoch 2\/2/);
  }, 900_000);
});
