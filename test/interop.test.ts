/**
 * Models from elsewhere and weights to and from PyTorch, end to end through the real CLI:
 * - classifiers exported by Debian's PyTorch the ways people export them (test/helpers/torch_models.py: default
 *   names and fixed batch 1, dynamic batch, Softmax and LogSoftmax heads, an MLP on [N,784], 0-255 and mean/std
 *   pixels, a fixed batch of 10 on [N,28,28,1]): `eval` gives PyTorch's accuracy on the same 10,000 test images
 *   and detects the convention each was trained with;
 * - weights both ways by state_dict key (safetensors, read and written on the Python side with json + numpy);
 * - every bad input answered in one line, non-finite outputs refused, and no training files read when unused.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PNG } from "pngjs";
import { hasTorch, torchEvalSafetensors, torchModels, type TorchModel } from "./helpers/torch-models.ts";
import { trainedModel } from "./helpers/trained-model.ts";
import { readSafetensors, writeSafetensors, floatValues } from "../src/interop/safetensors.ts";
import { defaultMnistDir, loadMnist, MNIST_FILES } from "../src/data/node.ts";

const work = mkdtempSync(join(tmpdir(), "interop-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A private copy of the CLI-trained model: the shared cache keeps only the newest few, and parallel runs prune it. */
let ownModel: string | undefined;
async function trainedCopy(): Promise<string> {
  if (!ownModel) {
    ownModel = join(work, "trained.onnx");
    copyFileSync(await trainedModel(), ownModel);
  }
  return ownModel;
}

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, ["bin/onnx-mnist.js", ...args], { encoding: "utf8", input, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A failure users can fix: exit 1, exactly one line `error: ...`, no stack trace. */
function expectOneLine(r: ReturnType<typeof cli>, pattern: RegExp): void {
  expect(r.status, r.stdout + r.stderr).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
}

interface EvalJson {
  accuracy: number;
  count: number;
  input: { name: string; layout: string; batch: number | "dynamic" };
  output: { name: string; kind: string };
  pixels: { preset: string | null; source: string; calibration: { images: number; accuracy: Record<string, number> } | null };
  handling: string;
}

const evalJson = (model: string, extra: string[] = []): EvalJson => {
  const r = cli(["eval", "--model", model, "--json", ...extra]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};

let torch: { dir: string; models: Record<string, TorchModel> };
beforeAll(async () => {
  if (!hasTorch()) throw new Error("/usr/bin/python3 cannot import torch and onnx: apt-get install -y python3-torch python3-onnx (as .ci/run does)");
  torch = await torchModels();
}, 600_000);

describe("any MNIST classifier exported by PyTorch", () => {
  const names = ["tutorial", "dynamic", "softmax", "logsoftmax", "mlp", "byte", "mnist", "fixed10"];
  it.each(names)("%s: eval matches PyTorch's accuracy and detects how it was trained", (name) => {
    const m = torch.models[name];
    const r = evalJson(join(torch.dir, m.file));
    expect(r.count).toBe(m.count);
    // Within 0.1 %: 10 of 10,000 images (float summation order differs between PyTorch and onnxruntime).
    expect(Math.abs(Math.round(r.accuracy * r.count) - m.correct), r.handling).toBeLessThanOrEqual(10);
    expect(m.correct / m.count).toBeGreaterThan(0.8); // trained briefly, but far above chance
    expect(r.pixels.preset, r.handling).toBe(m.convention);
    expect(r.pixels.source).toBe("detected");
    expect(r.pixels.calibration!.images).toBe(500);
    expect(r.output.kind).toBe(m.kind);
    expect(r.input.batch).toBe(m.batch);
  }, 120_000);

  it("prints the handling in one line: input, batch, output kind and the detected pixels with the evidence", () => {
    const r = cli(["eval", "--model", join(torch.dir, "logsoftmax.onnx"), "--test-limit", "200"]);
    expect(r.status, r.stderr).toBe(0);
    const first = r.stdout.split("\n")[0];
    expect(first).toMatch(/input Input3 \[1,1,28,28\] fixed batch 1 -> chunks of 1; output Plus214_Output_0: log-probabilities; pixels \(p-0\.1307\)\/0\.3081 \(detected: \d+\.\d % on 500 calibration images vs \d+\.\d % for /);
    const t = cli(["eval", "--model", join(torch.dir, "tutorial.onnx"), "--test-limit", "200"]).stdout.split("\n")[0];
    expect(t).toMatch(/input input\.1 \[1,1,28,28\] fixed batch 1 -> chunks of 1; output \d+: logits; pixels 0-1 \(detected/);
  }, 120_000);

  it("takes the convention from flags instead of detecting it, and then reads no training files", () => {
    // Only the test files: a flag makes the training files unnecessary; without one, eval asks for it.
    const data = join(work, "test-only");
    mkdirSync(data, { recursive: true });
    for (const f of [MNIST_FILES.testImages, MNIST_FILES.testLabels]) copyFileSync(join(defaultMnistDir(), f), join(data, f));
    const model = join(torch.dir, "byte.onnx");
    const given = evalJson(model, ["--data", data, "--input-preset", "byte", "--test-limit", "500"]);
    expect(given.pixels.source).toBe("given");
    expect(given.pixels.preset).toBe("byte");
    expect(given.accuracy).toBeGreaterThan(0.85);
    const wrong = evalJson(model, ["--data", data, "--input-scale", "1", "--test-limit", "500"]);
    expect(wrong.accuracy).toBeLessThan(0.5); // a model trained on 0-255 fed 0-1 pixels
    expectOneLine(cli(["eval", "--model", model, "--data", data]), /detected on training images.*train-images-idx3-ubyte.*--input-preset/);
    const usage = cli(["eval", "--model", model, "--input-preset", "bytes"]); // a usage error: yargs' choices, exit 2
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/input-preset, Given: "bytes", Choices: "unit", "byte", "mnist"/);
    expectOneLine(cli(["eval", "--model", model, "--input-std", "0"]), /--input-std must be greater than 0/);
  }, 120_000);

  it("predict classifies images with a foreign model and says how it feeds it", () => {
    const data = loadMnist(undefined, { trainLimit: 1, testLimit: 20 });
    const dir = join(work, "digits");
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 20; i++) {
      const png = new PNG({ width: 28, height: 28 });
      for (let p = 0; p < 784; p++) png.data.set([data.test.images[i * 784 + p], data.test.images[i * 784 + p], data.test.images[i * 784 + p], 255], 4 * p);
      writeFileSync(join(dir, `d${String(i).padStart(2, "0")}-${data.test.labels[i]}.png`), PNG.sync.write(png));
    }
    const r = cli(["predict", "--model", join(torch.dir, "byte.onnx"), "--json", dir]);
    expect(r.status, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as { file: string; prediction: number; probabilities: number[] }[];
    expect(rows).toHaveLength(20);
    const right = rows.filter((x) => x.file.endsWith(`-${x.prediction}.png`)).length;
    expect(right).toBeGreaterThanOrEqual(17);
    for (const x of rows) expect(x.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    // The model's own probabilities are shown as they are, not softmaxed again (which would flatten them).
    const soft = JSON.parse(cli(["predict", "--model", join(torch.dir, "softmax.onnx"), "--json", dir]).stdout) as { probabilities: number[] }[];
    expect(Math.max(...soft.map((s) => Math.max(...s.probabilities)))).toBeGreaterThan(0.9);
    const text = cli(["predict", "--model", join(torch.dir, "byte.onnx"), join(dir, "d00-7.png")]);
    expect(text.stderr).toMatch(/pixels 0-255 \(detected/);
    expect(text.stdout).toMatch(/d00-7\.png: 7 /);
  }, 120_000);

  it("refuses models that are not 28x28 classifiers, and lost external data, in one line", () => {
    expectOneLine(cli(["eval", "--model", join(torch.dir, "two-inputs.onnx")]), /has 2 inputs \(a float32 \[1,784\], b float32 \[1,784\] -> .*expected a classifier of 28x28 grey images/);
    expectOneLine(cli(["eval", "--model", join(torch.dir, "features.onnx"), "--input-preset", "unit"]), /no output gives 10 float scores per image \(for 1 image: features float32 \[1,64\]\)/);
    expectOneLine(cli(["eval", "--model", join(torch.dir, "external.onnx")]), /external\.onnx: its weights are in an external data file .*external\.onnx\.data/);
  }, 60_000);
});

describe("weights by PyTorch state_dict key (safetensors)", () => {
  it("a run trained here loads into PyTorch's MyCNN with strict=True and gives the same accuracy, image for image", async () => {
    const model = await trainedCopy();
    const out = join(work, "ours.safetensors");
    const r = cli(["export", "--from", model, "--format", "safetensors", "--out", out]);
    expect(r.status, r.stderr).toBe(0);
    const ours = evalJson(model);
    const theirs = await torchEvalSafetensors("mycnn", out);
    expect(theirs.count).toBe(10_000);
    expect(Math.abs(theirs.correct - Math.round(ours.accuracy * ours.count))).toBeLessThanOrEqual(1);
    // num_batches_tracked is written as PyTorch keeps it: int64, one per BatchNorm, the steps taken.
    expect(Object.keys(theirs.num_batches_tracked).sort()).toEqual(["conv.1.num_batches_tracked", "conv.5.num_batches_tracked", "conv.9.num_batches_tracked"]);
    expect(Object.values(theirs.num_batches_tracked)[0]).toBe(Math.ceil(20_000 / 128));
  }, 300_000);

  it.each(["mycnn", "lenet5"])("%s weights trained by PyTorch -> build-graph --init-weights -> eval gives PyTorch's accuracy", (name) => {
    const m = torch.models[`${name}.safetensors`];
    const out = join(work, `init-${name}`);
    const b = cli(["build-graph", "--model", name, "--init-weights", join(torch.dir, m.file), "--out", out]);
    expect(b.status, b.stderr).toBe(0);
    const r = evalJson(join(out, "model.onnx"));
    expect(r.pixels.source).toBe("onnx-mnist");
    expect(Math.abs(Math.round(r.accuracy * r.count) - m.correct)).toBeLessThanOrEqual(1);
  }, 120_000);

  it("train --init-weights starts from PyTorch's weights", () => {
    const out = join(work, "run-init");
    const r = cli(["train", "--model", "lenet5", "--init-weights", join(torch.dir, "lenet5.safetensors"), "--epochs", "1", "--train-limit", "256", "--test-limit", "1000", "--out", out]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).init_weights).toMatch(/lenet5\.safetensors$/);
    // Two steps of Adam at 1e-3 from 88 % cannot fall to the ~10 % of a fresh initialisation.
    expect(evalJson(join(out, "model.onnx"), ["--test-limit", "1000"]).accuracy).toBeGreaterThan(0.8);
  }, 120_000);

  it("names every missing, unexpected and mis-shaped key", () => {
    const r = cli(["build-graph", "--model", "mycnn", "--init-weights", join(torch.dir, "lenet5.safetensors"), "--out", join(work, "nope")]);
    expectOneLine(r, /does not fit the model .*missing keys: conv\.0\.weight, conv\.0\.bias, .*unexpected keys: conv1\.bias, conv1\.weight, /);
    // A lenet5 file with one tensor of the wrong shape and one of the wrong dtype.
    const file = readSafetensors(readFileSync(join(torch.dir, "lenet5.safetensors")), "x");
    const tensors = new Map([...file.tensors].map(([k, t]) => [k, { dtype: "F32" as const, shape: t.shape, data: floatValues(t)! }]));
    tensors.set("fc3.bias", { dtype: "F32", shape: [12], data: new Float32Array(12) });
    const bad = join(work, "bad-shape.safetensors");
    writeFileSync(bad, writeSafetensors(tensors as never));
    expectOneLine(cli(["build-graph", "--model", "lenet5", "--init-weights", bad, "--out", join(work, "nope")]), /wrong shapes: fc3\.bias is \[12\], the model needs \[10\]/);
  });

  it("reads what Python writes and Python reads what we write, bit for bit", () => {
    const file = join(work, "py.safetensors");
    const py = (code: string) => {
      const r = spawnSync("/usr/bin/python3", ["-c", code], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    // Python's writer: header then data, offsets relative to the data, F32 and I64 and F64.
    py(`
import json, struct, numpy as np
t = {"a": np.arange(6, dtype="<f4").reshape(2, 3) / 7, "n": np.array(5, dtype="<i8"), "d": np.array([1.5, -2.25], dtype="<f8")}
h, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
for k in sorted(t):
    b = t[k].tobytes(); h[k] = {"dtype": {"float32": "F32", "int64": "I64", "float64": "F64"}[str(t[k].dtype)], "shape": list(t[k].shape), "data_offsets": [at, at + len(b)]}; blobs.append(b); at += len(b)
j = json.dumps(h).encode()
open("${file}", "wb").write(struct.pack("<Q", len(j)) + j + b"".join(blobs))`);
    const read = readSafetensors(readFileSync(file), file);
    expect(read.metadata).toEqual({ format: "pt" });
    expect(Array.from(floatValues(read.tensors.get("a")!)!)).toEqual(Array.from(Float32Array.from([0, 1, 2, 3, 4, 5], (x) => x / 7)));
    expect(read.tensors.get("n")!.shape).toEqual([]);
    expect(new DataView(Uint8Array.from(read.tensors.get("n")!.bytes).buffer).getBigInt64(0, true)).toBe(5n); // a copy: a Buffer's slice is a view into its pool
    expect(Array.from(floatValues(read.tensors.get("d")!)!)).toEqual([1.5, -2.25]);
    // Ours, read by Python's json + numpy.
    const mine = join(work, "ours-small.safetensors");
    writeFileSync(mine, writeSafetensors(new Map<string, any>([["w", { dtype: "F32", shape: [2, 2], data: Float32Array.of(0.1, -2, 3e-8, 4) }], ["k", { dtype: "I64", shape: [], data: BigInt64Array.of(-3n) }]]), { a: "b" }));
    const out = py(`
import json, struct, numpy as np
d = open("${mine}", "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8+n]); assert n % 8 == 0
w = h["w"]; b, e = w["data_offsets"]; k = h["k"]; kb, ke = k["data_offsets"]
print(json.dumps({"w": np.frombuffer(d[8+n+b:8+n+e], "<f4").tolist(), "shape": w["shape"], "k": int(np.frombuffer(d[8+n+kb:8+n+ke], "<i8")[0]), "kshape": k["shape"], "meta": h["__metadata__"]}))`);
    expect(JSON.parse(out)).toEqual({ w: Array.from(Float32Array.of(0.1, -2, 3e-8, 4)), shape: [2, 2], k: -3, kshape: [], meta: { a: "b" } });
  });

  it("rejects bad files in one line each", () => {
    const good = readFileSync(join(torch.dir, "lenet5.safetensors"));
    const n = Number(good.readBigUInt64LE(0));
    const header = JSON.parse(good.subarray(8, 8 + n).toString());
    const withHeader = (h: object, data = good.subarray(8 + n)) => {
      const j = Buffer.from(JSON.stringify(h));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(j.length));
      return Buffer.concat([len, j, data]);
    };
    const first = Object.keys(header).find((k) => k !== "__metadata__")!;
    const second = Object.keys(header).find((k) => k !== "__metadata__" && k !== first)!;
    const cases: [string, Uint8Array, RegExp][] = [
      ["truncated", good.subarray(0, good.length - 100), /truncated/],
      ["header length past the end", Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0]), good.subarray(8, 200)]), /header length 65535 runs past the end/],
      ["overlapping offsets", withHeader({ ...header, [second]: { ...header[second], data_offsets: header[first].data_offsets.map((x: number, i: number) => (i === 0 ? x : x + header[second].data_offsets[1] - header[second].data_offsets[0])) } }), /overlaps|needs \d+ bytes/],
      ["wrong dtype", withHeader({ ...header, [first]: { ...header[first], dtype: "F33" } }), /has dtype "F33"/],
      ["wrong shape for its bytes", withHeader({ ...header, [first]: { ...header[first], shape: [999] } }), /needs 3996 bytes/],
      ["not safetensors at all", Buffer.from("hello, this is not a weights file"), /not a valid safetensors file/],
    ];
    for (const [what, bytes, pattern] of cases) {
      const f = join(work, `bad-${what.replace(/ /g, "-")}.safetensors`);
      writeFileSync(f, bytes);
      const r = cli(["build-graph", "--model", "lenet5", "--init-weights", f, "--out", join(work, "nope")]);
      expectOneLine(r, pattern);
    }
    // An integer tensor where a weight belongs: the file is valid, the dtype is not a weight's.
    const ints = withHeader({ ...header, [first]: { ...header[first], dtype: "I32" } });
    const f = join(work, "int-weight.safetensors");
    writeFileSync(f, ints);
    expectOneLine(cli(["build-graph", "--model", "lenet5", "--init-weights", f, "--out", join(work, "nope")]), new RegExp(`wrong dtypes: ${first.replace(/\./g, "\\.")} is I32`));
  });
});

describe("non-finite outputs and many files", () => {
  it("eval and predict say the model produced non-finite outputs and exit non-zero", () => {
    // LeNet-5 with a NaN in the last bias: every image gets a NaN score.
    const file = readSafetensors(readFileSync(join(torch.dir, "lenet5.safetensors")), "x");
    const tensors = new Map([...file.tensors].map(([k, t]) => [k, { dtype: "F32" as const, shape: t.shape, data: floatValues(t)! }]));
    tensors.get("fc3.bias")!.data[3] = NaN;
    const nan = join(work, "nan.safetensors");
    writeFileSync(nan, writeSafetensors(tensors as never));
    const out = join(work, "nan-model");
    expect(cli(["build-graph", "--model", "lenet5", "--init-weights", nan, "--out", out]).status).toBe(0);
    expectOneLine(cli(["eval", "--model", join(out, "model.onnx"), "--test-limit", "100"]), /the model produced non-finite outputs/);
    const png = new PNG({ width: 28, height: 28 });
    png.data.fill(0);
    for (let y = 5; y < 23; y++) png.data.set([255, 255, 255, 255], 4 * (y * 28 + 14));
    const img = join(work, "one.png");
    writeFileSync(img, PNG.sync.write(png));
    expectOneLine(cli(["predict", "--model", join(out, "model.onnx"), img]), /the model produced non-finite outputs/);
  }, 120_000);

  it("predict takes a list on stdin or in a file, and a command line past onnxruntime's limit", async () => {
    const model = await trainedCopy();
    const png = new PNG({ width: 28, height: 28 });
    png.data.fill(0);
    for (let y = 5; y < 23; y++) png.data.set([255, 255, 255, 255], 4 * (y * 28 + 14));
    const dir = join(work, "many");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "one.png"), PNG.sync.write(png));
    // 600 names of ~60 bytes: a 36 KB command line, past the ~28 KB at which onnxruntime-node 1.30 segfaults.
    const names: string[] = [];
    for (let i = 0; i < 600; i++) {
      const name = join(dir, `a-rather-long-file-name-for-image-number-${String(i).padStart(4, "0")}.png`);
      symlinkSync(join(dir, "one.png"), name);
      names.push(name);
    }
    const long = cli(["predict", "--model", model, "--json", ...names]);
    expect(long.status, long.stderr).toBe(0);
    const rows = JSON.parse(long.stdout) as { file: string; prediction: number }[];
    expect(rows.map((r) => r.file)).toEqual(names);
    expect(rows.every((r) => r.prediction === 1)).toBe(true);
    const stdin = cli(["predict", "--model", model, "--list", "-"], names.slice(0, 5).join("\n") + "\n");
    expect(stdin.status, stdin.stderr).toBe(0);
    expect(stdin.stdout.trim().split("\n")).toHaveLength(5);
    const list = join(work, "list.txt");
    writeFileSync(list, names.slice(0, 3).join("\n"));
    expect(cli(["predict", "--model", model, "--list", list]).stdout.trim().split("\n")).toHaveLength(3);
    expectOneLine(cli(["predict", "--model", model]), /no images to classify/);
  }, 180_000);
});
