import { describe, expect, it, beforeAll, afterAll, vi } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import yargs from "yargs";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { encodeModel, DataType, type ModelMsg, type ValueInfoMsg } from "../src/onnx/proto.ts";
import { checkMnistModel, ModelError, type SessionLike } from "../src/runtime/check-model.ts";
import { classify, classifyAll, softmax } from "../src/image/classify.ts";
import { loadMnist } from "../src/data/node.ts";
import predict from "../cli/predict.ts";

const data = loadMnist(undefined, { testLimit: 20 });

/**
 * A real (if weak) MNIST classifier as an ONNX model, so predict can be tested before any training:
 * nearest class mean, logits_c = x . m_c - |m_c|^2 / 2 = -|x - m_c|^2 / 2 + |x|^2 / 2 (same argmax).
 * Built as input [N,1,28,28] -> Flatten -> MatMul M [784,10] -> Add b [10] -> logits [N,10].
 */
function nearestMeanModel(io: { input?: ValueInfoMsg; output?: ValueInfoMsg } = {}): Uint8Array {
  const px = 784;
  const sums = new Float64Array(10 * px);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < data.train.count; i++) {
    const c = data.train.labels[i];
    counts[c]++;
    for (let j = 0; j < px; j++) sums[c * px + j] += data.train.images[i * px + j] / 255;
  }
  const M = new Float32Array(px * 10);
  const b = new Float32Array(10);
  for (let c = 0; c < 10; c++) {
    for (let j = 0; j < px; j++) {
      const m = sums[c * px + j] / counts[c];
      M[j * 10 + c] = m;
      b[c] -= (m * m) / 2;
    }
  }
  const tensor = (name: string, dims: number[], v: Float32Array) => ({ name, dims, data_type: DataType.FLOAT, raw_data: new Uint8Array(v.buffer) });
  const model: ModelMsg = {
    ir_version: 8,
    opset_import: [{ domain: "", version: 17 }],
    producer_name: "predict.test",
    producer_version: "0",
    metadata_props: [],
    graph: {
      name: "nearest_mean",
      node: [
        { input: [io.input?.name ?? "input"], output: ["flat"], name: "n0", op_type: "Flatten", attribute: [{ name: "axis", type: 2, i: 1 }] },
        { input: ["flat", "M"], output: ["scores"], name: "n1", op_type: "MatMul", attribute: [] },
        { input: ["scores", "b"], output: [io.output?.name ?? "logits"], name: "n2", op_type: "Add", attribute: [] },
      ],
      initializer: [tensor("M", [784, 10], M), tensor("b", [10], b)],
      input: [io.input ?? valueInfo("input", ["N", 1, 28, 28])],
      output: [io.output ?? valueInfo("logits", ["N", 10])],
      value_info: [],
    },
  };
  return encodeModel(model);
}

function valueInfo(name: string, dims: (number | string)[]): ValueInfoMsg {
  return { name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })) } } } };
}

function thrown(f: () => unknown, context = ""): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error(`expected an error, nothing was thrown ${context}`);
}

describe("checkMnistModel on real onnxruntime sessions", () => {
  it("accepts a model that keeps the contract", async () => {
    const s = await ort.InferenceSession.create(nearestMeanModel());
    expect(() => checkMnistModel(s, "good.onnx")).not.toThrow();
  });

  it("names what a model has when its input or output differ", async () => {
    const cases: [Parameters<typeof nearestMeanModel>[0], string][] = [
      [
        { input: valueInfo("x", ["N", 1, 28, 28]) },
        "m.onnx: has inputs x float32 [N,1,28,28], outputs logits float32 [N,10]; onnx-mnist models take `input` float32 [N,1,28,28] and give `logits` float32 [N,10]",
      ],
      [
        { output: valueInfo("probs", ["N", 10]) },
        "m.onnx: has no output `logits` (inputs input float32 [N,1,28,28], outputs probs float32 [N,10]); onnx-mnist models take `input` float32 [N,1,28,28] and give `logits` float32 [N,10]",
      ],
      [{ input: valueInfo("input", ["N", 784]) }, "m.onnx: `input` has shape [N,784], not [N,1,28,28] (inputs input float32 [N,784]"],
      [{ input: valueInfo("input", ["N", 1, 14, 56]) }, "m.onnx: `input` has shape [N,1,14,56], not [N,1,28,28]"],
      [{ input: valueInfo("input", [1, 1, 28, 28]) }, "m.onnx: `input` has a fixed batch size 1 (shape [1,1,28,28]); export it with a dynamic first dimension [N,1,28,28]"],
    ];
    for (const [io, message] of cases) {
      // ORT checks shapes it can infer, so the [N,784] input needs a graph that accepts it: Flatten does.
      const s = await ort.InferenceSession.create(nearestMeanModel(io));
      const e = thrown(() => checkMnistModel(s, "m.onnx"), JSON.stringify([s.inputMetadata, s.outputMetadata]));
      expect(e).toBeInstanceOf(ModelError);
      expect(e.message.startsWith(message), `${e.message}\n  should start with\n${message}`).toBe(true);
    }
  });

  it("checks types, and only names when a runtime gives no metadata", () => {
    const meta = (type: string, shape: (number | string)[]) => ({ name: "input", isTensor: true, type, shape });
    const f16: SessionLike = { inputNames: ["input"], outputNames: ["logits"], inputMetadata: [meta("float16", ["N", 1, 28, 28])] };
    expect(thrown(() => checkMnistModel(f16, "h.onnx")).message).toMatch(/^h\.onnx: `input` is float16, not float32/);
    const twelve: SessionLike = { inputNames: ["input"], outputNames: ["logits"], outputMetadata: [{ ...meta("float32", ["N", 12]), name: "logits" }] };
    expect(thrown(() => checkMnistModel(twelve, "t.onnx")).message).toMatch(/^t\.onnx: `logits` has shape \[N,12\], not \[N,10\]/);
    expect(() => checkMnistModel({ inputNames: ["input"], outputNames: ["logits"] }, "old")).not.toThrow();
    expect(() => checkMnistModel({ inputNames: ["input", "extra"], outputNames: ["logits"] }, "two")).toThrow(/^two: has inputs input, extra, outputs logits;/);
    // Unknown shape ([]) and unknown dims ("") cannot be judged: they pass.
    expect(() => checkMnistModel({ inputNames: ["input"], outputNames: ["logits"], inputMetadata: [meta("float32", [])] }, "u")).not.toThrow();
    expect(() => checkMnistModel({ inputNames: ["input"], outputNames: ["logits"], inputMetadata: [meta("float32", ["", 1, "", 28])] }, "u")).not.toThrow();
  });
});

describe("classify", () => {
  it("computes softmax without overflow and ranks the digits", () => {
    const p = softmax([0, Math.log(3)]);
    expect(p[0]).toBeCloseTo(0.25, 12);
    expect(p[1]).toBeCloseTo(0.75, 12);
    const big = softmax([1000, 0, 1000]);
    expect(big).toEqual([0.5, 0, 0.5]);
    const c = classify([1, 5, 3, 5, -2, 0, 0, 0, 0, 0]);
    expect(c.prediction).toBe(1); // a tie goes to the lower digit
    expect(c.top.map((t) => t.digit)).toEqual([1, 3, 2]);
    expect(c.probabilities.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
  });

  it("classifies in batches through a real session, the same as one run over everything", async () => {
    const s = await ort.InferenceSession.create(nearestMeanModel());
    const run = async (x: Float32Array, n: number) => (await s.run({ input: new ort.Tensor("float32", x.slice(0, n * 784), [n, 1, 28, 28]) })).logits.data as Float32Array;
    const inputs = Array.from({ length: 20 }, (_, i) => Float32Array.from(data.test.images.subarray(i * 784, (i + 1) * 784), (v) => v / 255));
    const batched = await classifyAll(run, inputs, { batchSize: 6 });
    const whole = await classifyAll(run, inputs, { batchSize: 20 });
    expect(batched.map((r) => r.prediction)).toEqual(whole.map((r) => r.prediction));
    // The nearest-mean model is weak but real: most of the first 20 test digits come out right.
    const right = batched.filter((r, i) => r.prediction === data.test.labels[i]).length;
    expect(right).toBeGreaterThanOrEqual(14);
  });
});

describe("onnx-mnist predict", () => {
  let tmp: string;
  let modelPath: string;
  const files: string[] = [];
  let onOriginals: number[];

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "onnx-mnist-predict-"));
    modelPath = join(tmp, "model.onnx");
    writeFileSync(modelPath, nearestMeanModel());
    // Ten real test digits as files in several forms: PNG black on white, PNG white on black, JPEG on grey paper.
    for (let i = 0; i < 10; i++) {
      const d = data.test.images.subarray(i * 784, (i + 1) * 784);
      const w = 100, h = 90, s = 3, ox = 5 + i * 2, oy = 2;
      const rgba = new Uint8Array(w * h * 4);
      const [paper, ink] = i % 3 === 0 ? [255, 0] : i % 3 === 1 ? [0, 255] : [190, 40];
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const inside = x >= ox && x < ox + 28 * s && y >= oy && y < oy + 28 * s;
          const v = inside ? d[Math.floor((y - oy) / s) * 28 + Math.floor((x - ox) / s)] / 255 : 0;
          rgba.fill(Math.round(paper * (1 - v) + ink * v), 4 * (y * w + x), 4 * (y * w + x) + 3);
          rgba[4 * (y * w + x) + 3] = 255;
        }
      }
      const file = join(tmp, `digit${i}.${i % 3 === 2 ? "jpg" : "png"}`);
      if (i % 3 === 2) writeFileSync(file, jpeg.encode({ width: w, height: h, data: rgba }, 90).data);
      else {
        const png = new PNG({ width: w, height: h });
        png.data.set(rgba);
        writeFileSync(file, PNG.sync.write(png));
      }
      files.push(file);
    }
    const blank = new PNG({ width: 40, height: 40 });
    blank.data.fill(255);
    writeFileSync(join(tmp, "blank.png"), PNG.sync.write(blank));
    writeFileSync(join(tmp, "notes.txt"), "not an image\n");
    writeFileSync(join(tmp, "fake.onnx"), "not a model\n");
    // What the model says about the original 28x28 digits.
    const s = await ort.InferenceSession.create(modelPath);
    const x = Float32Array.from(data.test.images.subarray(0, 10 * 784), (v) => v / 255);
    const logits = (await s.run({ input: new ort.Tensor("float32", x, [10, 1, 28, 28]) })).logits.data as Float32Array;
    onOriginals = Array.from({ length: 10 }, (_, i) => classify(logits.subarray(i * 10, (i + 1) * 10)).prediction);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** Runs the command as the CLI would (yargs parsing included) and returns what it printed. */
  async function run(args: string[]): Promise<string> {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.join(" ")));
    try {
      await yargs(args).command(predict).strict().fail((msg, err) => {
        throw err ?? new Error(msg);
      }).parseAsync();
    } finally {
      spy.mockRestore();
    }
    return lines.join("\n");
  }

  it("predicts from image files what the model says about the original digits", async () => {
    const out = JSON.parse(await run(["predict", "--model", modelPath, ...files, join(tmp, "blank.png"), "--json"]));
    expect(out).toHaveLength(11);
    const predictions = out.slice(0, 10).map((r: { prediction: number }) => r.prediction);
    expect(predictions.filter((p: number, i: number) => p === onOriginals[i]).length).toBeGreaterThanOrEqual(9);
    for (const r of out.slice(0, 10)) {
      expect(r.empty).toBe(false);
      expect(r.probabilities).toHaveLength(10);
      expect(r.probabilities.reduce((a: number, b: number) => a + b)).toBeCloseTo(1, 6);
      expect(r.top3).toHaveLength(3);
      expect(r.top3[0]).toEqual({ digit: r.prediction, p: r.probabilities[r.prediction] });
    }
    expect(out[10]).toEqual({ file: join(tmp, "blank.png"), empty: true, prediction: null, probabilities: null, top3: [] });
  });

  it("prints one line per image, and the 28x28 input with --show", async () => {
    const out = (await run(["predict", "--model", modelPath, files[0], join(tmp, "blank.png")])).split("\n");
    expect(out[0]).toMatch(new RegExp(`^${files[0].replace(/[.]/g, "\\.")}: ${onOriginals[0]}  \\(\\d \\d+\\.\\d%, \\d \\d+\\.\\d%, \\d \\d+\\.\\d%\\)$`));
    expect(out[1]).toBe(`${join(tmp, "blank.png")}: no digit found (the image is blank)`);
    const shown = (await run(["predict", "--model", modelPath, files[0], "--show"])).split("\n");
    expect(shown).toHaveLength(29);
    expect(shown.slice(1).some((l) => l.includes("@"))).toBe(true);
  });

  it("fails with one clear line for a bad image, a missing file or a file that is not a model", async () => {
    await expect(run(["predict", "--model", modelPath, join(tmp, "notes.txt")])).rejects.toThrow(`${join(tmp, "notes.txt")}: not a PNG or JPEG image; convert it to PNG or JPEG`);
    await expect(run(["predict", "--model", modelPath, join(tmp, "missing.png")])).rejects.toThrow(`${join(tmp, "missing.png")}: no such file`);
    await expect(run(["predict", "--model", join(tmp, "fake.onnx"), files[0]])).rejects.toThrow(/fake\.onnx: not a loadable ONNX model \(/);
    await expect(run(["predict", "--model", modelPath, files[0], "--threads", "0"])).rejects.toThrow("--threads must be at least 1, got 0");
  });
});
