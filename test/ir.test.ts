/**
 * The model IR: specs lower into it with PyTorch's names, the passes rewrite only single-consumer values, the
 * number of classes flows from the model into training and evaluation, and Dropout draws its masks per step
 * from the run's seed (so resume is exact).
 */
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { lowerSpec } from "../src/nn/lower.ts";
import { builtinSpec, type ModelSpec } from "../src/nn/spec.ts";
import { analyze } from "../src/ir/passes.ts";
import type { ModelIR } from "../src/ir/ir.ts";
import { buildInferenceModel, buildProgram, initialValues, planModel } from "../src/program/program.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer } from "../src/runtime/trainer.ts";
import { fit, startPosition } from "../src/runtime/fit.ts";
import { fillBatch } from "../src/data/dataset.ts";
import { loadMnist } from "../src/data/node.ts";
import { decodeModel } from "../src/onnx/proto.ts";

const adam = optimizerConfig("adam", { lr: 1e-3 });

async function trainerFor(model: ModelSpec | ModelIR, seed = 0, noiseSeed = 0) {
  const program = buildProgram(model, adam);
  const init = initialValues(program.plan, seed);
  return Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads: 1, noiseSeed });
}

function batch(n: number, offset = 0) {
  const { train } = loadMnist(undefined, { trainLimit: offset + n, testLimit: 1 });
  const x = new Float32Array(n * 784);
  const y = new BigInt64Array(n);
  fillBatch(train, Uint32Array.from({ length: n }, (_, i) => offset + i), 0, n, x, y);
  return { x, y };
}

describe("lowerSpec", () => {
  it("keeps the spec's layer names as node names and PyTorch's state_dict names for tensors", () => {
    const ir = lowerSpec(builtinSpec("mycnn"));
    expect(ir.nodes.map((n) => n.name)).toEqual(builtinSpec("mycnn").layers.map((l) => l.name));
    expect(ir.nodes.map((n) => n.op).slice(0, 4)).toEqual(["Conv", "BatchNormalization", "LeakyRelu", "MaxPool"]);
    expect(ir.params.map((p) => p.name).slice(0, 4)).toEqual(["conv.0.weight", "conv.0.bias", "conv.1.weight", "conv.1.bias"]);
    expect(ir.buffers.map((b) => b.name).slice(0, 2)).toEqual(["conv.1.running_mean", "conv.1.running_var"]);
    expect(ir.output).toEqual({ name: "logits", kind: "logits" });
    expect(ir.params.at(-1)).toMatchObject({ name: "lin.bias", shape: [10], offset: 8100, size: 10 });
  });

  it("the passes swap each activation/MaxPool pair and fold each conv bias into its BatchNorm", () => {
    const a = analyze(lowerSpec(builtinSpec("mycnn")));
    expect(a.order.map((n) => n.name).slice(0, 4)).toEqual(["conv.0", "conv.1", "conv.3", "conv.2"]);
    expect([...a.foldBiasInto]).toEqual([
      ["conv.0", "conv.1"],
      ["conv.4", "conv.5"],
      ["conv.8", "conv.9"],
    ]);
  });
});

/** x -> Relu -> MaxPool -> Flatten -> Gemm, plus the Relu's output read a second time by another branch. */
function branchy(): ModelIR {
  const t = (name: string, shape: number[], offset: number) => ({ name, shape, size: shape.reduce((a, b) => a * b, 1), offset, init: { kind: "uniform" as const, bound: 0.3 } });
  return {
    name: "branchy",
    input: { name: "x", shape: ["N", 1, 28, 28] },
    output: { name: "logits", kind: "logits" },
    scores: "logits",
    classes: 10,
    nodes: [
      { name: "relu", op: "Relu", inputs: ["x"], outputs: ["r"], attrs: {} },
      { name: "pool", op: "MaxPool", inputs: ["r"], outputs: ["p"], attrs: { kernel_shape: [2, 2], strides: [2, 2] } },
      { name: "flat_p", op: "Flatten", inputs: ["p"], outputs: ["fp"], attrs: { axis: 1 } },
      { name: "flat_r", op: "Flatten", inputs: ["r"], outputs: ["fr"], attrs: { axis: 1 } },
      { name: "fc_p", op: "Gemm", inputs: ["fp", "wp"], outputs: ["lp"], attrs: { transB: 1 } },
      { name: "fc_r", op: "Gemm", inputs: ["fr", "wr"], outputs: ["lr"], attrs: { transB: 1 } },
      { name: "sum", op: "Add", inputs: ["lp", "lr"], outputs: ["logits"], attrs: {} },
    ],
    params: [t("wp", [10, 196], 0), t("wr", [10, 784], 1960)],
    buffers: [],
    constants: [],
    source: { kind: "spec", spec: { layers: [] } },
  };
}

describe("passes on branching graphs", () => {
  it("leave an activation read by two consumers where it is, and the graph still trains", async () => {
    const ir = branchy();
    expect(analyze(ir).order.map((n) => n.name)).toEqual(ir.nodes.map((n) => n.name));
    const trainer = await trainerFor(ir);
    const { x, y } = batch(32);
    const first = await trainer.trainStep(x, y);
    for (let i = 0; i < 20; i++) await trainer.trainStep(x, y);
    const last = await trainer.trainStep(x, y);
    expect(last.loss).toBeLessThan(first.loss);
  });
});

describe("the number of classes is the model's", () => {
  const withClasses = (k: number): ModelSpec => ({
    name: `k${k}`,
    classes: k,
    layers: [{ type: "flatten" }, { type: "linear", name: "fc", out_features: k }],
  });

  it("a 12-class model trains and is evaluated with 12 scores per image", async () => {
    const data = loadMnist(undefined, { trainLimit: 2000, testLimit: 300 });
    const trainer = await trainerFor(withClasses(12));
    let accuracy = -1;
    await fit(trainer, data.train, data.test, { epochs: 1, batchSize: 64, position: startPosition(0), onEpoch: (e) => void (accuracy = e.test.accuracy) });
    // Recompute from the logits: 12 per image.
    const { x, y } = { x: new Float32Array(300 * 784), y: new BigInt64Array(300) };
    fillBatch(data.test, Uint32Array.from({ length: 300 }, (_, i) => i), 0, 300, x, y);
    const { logits, correct } = await trainer.evalStep(x, y);
    expect(logits.length).toBe(300 * 12);
    let mine = 0;
    for (let i = 0; i < 300; i++) {
      const row = Array.from(logits.subarray(i * 12, i * 12 + 12));
      if (row.indexOf(Math.max(...row)) === Number(y[i])) mine++;
    }
    expect(mine).toBe(correct);
    expect(accuracy).toBeCloseTo(mine / 300, 10);
    expect(accuracy).toBeGreaterThan(0.7);
  });

  it("labels outside a 5-class model are a clear data error, before any step", async () => {
    const data = loadMnist(undefined, { trainLimit: 200, testLimit: 50 });
    const trainer = await trainerFor(withClasses(5));
    await expect(fit(trainer, data.train, data.test, { epochs: 1, batchSize: 64, position: startPosition(0) })).rejects.toThrow(
      /training data has labels up to 9, but the model has 5 classes/,
    );
    expect(trainer.step).toBe(0);
  });
});

describe("Dropout", () => {
  const spec: ModelSpec = {
    name: "mlp",
    layers: [{ type: "flatten" }, { type: "linear", name: "fc1", out_features: 64 }, { type: "relu" }, { type: "dropout", p: 0.5 }, { type: "linear", name: "fc2", out_features: 10 }],
  };

  it("draws its masks per step from the noise seed: same seed, same run; resumed runs match bit for bit", async () => {
    const { x, y } = batch(64);
    const a = await trainerFor(spec, 0, 7);
    for (let i = 0; i < 4; i++) await a.trainStep(x, y);
    const b = await trainerFor(spec, 0, 7);
    for (let i = 0; i < 2; i++) await b.trainStep(x, y);
    const ck = b.saveCheckpoint({ epoch: 0, stepInEpoch: 2, epochRng: [1, 2, 3, 4], config: {} });
    const { trainer: c } = await Trainer.fromCheckpoint(ort, ck, { threads: 1, noiseSeed: 7 });
    for (let i = 0; i < 2; i++) await c.trainStep(x, y);
    expect(Buffer.from(c.getParameters().buffer).equals(Buffer.from(a.getParameters().buffer))).toBe(true);
    const d = await trainerFor(spec, 0, 8);
    for (let i = 0; i < 4; i++) await d.trainStep(x, y);
    expect(Buffer.from(d.getParameters().buffer).equals(Buffer.from(a.getParameters().buffer))).toBe(false);
  });

  it("is off in evaluation and absent from the inference model", async () => {
    const { x, y } = batch(64);
    const t = await trainerFor(spec, 0, 1);
    const e1 = await t.evalStep(x, y);
    const e2 = await t.evalStep(x, y);
    expect(Array.from(e1.logits)).toEqual(Array.from(e2.logits));
    const m = decodeModel(t.exportModelForInferencing());
    expect(m.graph.input.map((i) => i.name)).toEqual(["input"]);
    expect(m.graph.node.some((n) => n.op_type === "Greater")).toBe(false);
    // Training-mode output differs from evaluation (half the hidden units are dropped, the rest scaled by 2).
    const p = planModel(spec);
    const init = initialValues(p, 0);
    const inference = await ort.InferenceSession.create(buildInferenceModel(p, init.params, init.buffers));
    const out = await inference.run({ input: new ort.Tensor("float32", x, [64, 1, 28, 28]) });
    expect(Math.max(...Array.from(out.logits.data as Float32Array).map((v, i) => Math.abs(v - e1.logits[i])))).toBeLessThan(1e-5);
  });
});

describe("the CLI with a 12-class model", () => {
  it("eval scores its own 12-class model.onnx with 12 columns", async () => {
    const { execFileSync } = await import("node:child_process");
    const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "onnx-mnist-k12-"));
    try {
      writeFileSync(join(dir, "k12.json"), JSON.stringify({ name: "k12", classes: 12, layers: [{ type: "flatten" }, { type: "linear", name: "fc", out_features: 12 }] }));
      const root = join(import.meta.dirname, "..");
      execFileSync(process.execPath, ["bin/onnx-mnist.js", "build-graph", "--model", join(dir, "k12.json"), "--out", join(dir, "g")], { cwd: root });
      const r = JSON.parse(execFileSync(process.execPath, ["bin/onnx-mnist.js", "eval", "--model", join(dir, "g", "model.onnx"), "--json"], { cwd: root, encoding: "utf8" }));
      expect(r.count).toBe(10_000);
      expect(r.confusion).toHaveLength(12);
      expect(r.confusion[0]).toHaveLength(12);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
