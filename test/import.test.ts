/**
 * importOnnx on its own: PyTorch's exports of the test models (test/fixtures/import_models.py) come in with the
 * state_dict's names and values, sorted into parameters, buffers and constants; shape chains are folded; a
 * fixed-batch export becomes batch-dynamic; every opset gives the same IR. Hand-built models check the
 * normalisation of old op forms and that bad models fail with one clear line naming what is wrong.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { importOnnx } from "../src/ir/import.ts";
import { ModelError, type ModelIR } from "../src/ir/ir.ts";
import { AttrType, encodeModel, type AttributeMsg, type TensorMsg } from "../src/onnx/proto.ts";
import { makeTensor } from "../src/onnx/tensor.ts";
import { importOnnxFile } from "../src/node/onnx-file.ts";
import { importModelDir, importModels, type ImportModel } from "./helpers/import-models.ts";

let models: ImportModel[];
beforeAll(async () => {
  models = await importModels();
});
const byFile = (f: string) => {
  const m = models.find((x) => x.file === f);
  if (!m) throw new Error(`no test model ${f}`);
  return m;
};
const load = (f: string, o = {}) => importOnnx(byFile(f).bytes(), { source: f, ...o });

/** PyTorch's state_dict of MyCNN, in order (what the spec's mycnn calls its tensors too). */
const MYCNN_PARAMS = ["conv.0", "conv.1", "conv.4", "conv.5", "conv.8", "conv.9", "lin"].flatMap((l) => [`${l}.weight`, `${l}.bias`]);
const MYCNN_BUFFERS = ["conv.1", "conv.5", "conv.9"].flatMap((l) => [`${l}.running_mean`, `${l}.running_var`]);

/** The IR without names that depend on the exporter's counters: op types, attributes and the wiring by position. */
function skeleton(ir: ModelIR) {
  const index = new Map<string, string>([[ir.input.name, "input"]]);
  ir.nodes.forEach((n, i) => n.outputs.forEach((o, k) => index.set(o, `n${i}.${k}`)));
  return ir.nodes.map((n) => ({ op: n.op, attrs: n.attrs, inputs: n.inputs.map((v) => index.get(v) ?? `init:${ir.params.findIndex((p) => p.name === v)}`) }));
}

describe("PyTorch exports of MyCNN", () => {
  it("training-mode exports keep the state_dict: parameters, buffers and their values, in order", () => {
    for (const m of models.filter((x) => x.family === "mycnn" && x.mode === "train")) {
      const ir = load(m.file);
      expect(ir.params.map((p) => p.name), m.file).toEqual(MYCNN_PARAMS);
      expect(ir.buffers.map((b) => b.name), m.file).toEqual(MYCNN_BUFFERS);
      expect(ir.constants, m.file).toEqual([]);
      const ref = m.ref();
      for (const t of [...ir.params, ...ir.buffers]) {
        const before = ref.get(`before.${t.name}`)!;
        expect(t.shape, t.name).toEqual(before.shape);
        expect(t.init.kind === "data" && Array.from(t.init.data), `${m.file} ${t.name}`).toEqual(Array.from(before.data));
      }
      // flat layout: offsets follow sizes
      let offset = 0;
      for (const p of ir.params) {
        expect(p.offset).toBe(offset);
        expect(p.size).toBe(p.shape.reduce((a, b) => a * b, 1));
        offset += p.size;
      }
      expect(ir.input).toEqual({ name: "input", shape: ["N", 1, 28, 28] });
      expect(ir.output).toEqual({ name: "output", kind: "logits" });
      expect(ir.scores).toBe("output");
      expect(ir.classes).toBe(10);
      expect(ir.source).toEqual({ kind: "onnx", options: {}, bytes: m.bytes() });
    }
  });

  it("every opset and batch form gives the same IR: shape chains folded, the batch copied by the Reshape", () => {
    const train = models.filter((x) => x.family === "mycnn" && x.mode === "train").map((m) => skeleton(load(m.file)));
    for (const s of train.slice(1)) expect(s).toEqual(train[0]);
    expect(train[0].map((n) => n.op)).toEqual([
      ...["Conv", "BatchNormalization", "LeakyRelu", "MaxPool"].flatMap((op) => [op]).concat(["Conv", "BatchNormalization", "LeakyRelu", "MaxPool"], ["Conv", "BatchNormalization", "LeakyRelu", "MaxPool"]),
      "Reshape",
      "Gemm",
    ]);
    const reshape = train[0].find((n) => n.op === "Reshape")!;
    expect(reshape.attrs).toEqual({ shape: [0, -1] }); // from Shape -> Gather -> Unsqueeze -> Concat (dynamic) or [1, -1] (fixed batch 1)
    expect(reshape.inputs).toHaveLength(1);
    const bn = train[0].find((n) => n.op === "BatchNormalization")!;
    expect(bn.attrs).toEqual({ epsilon: 1e-5, momentum: 0.9 }); // float32 attributes read back as the exporter meant them
    expect(train[0][0].attrs).toEqual({ kernel_shape: [3, 3], strides: [1, 1], pads: [2, 2, 2, 2], dilations: [1, 1], group: 1 });
    expect(train[0].at(-1)!.attrs).toEqual({ alpha: 1, beta: 1, transA: 0, transB: 1 });

    const evals = models.filter((x) => x.family === "mycnn" && x.mode === "eval").map((m) => skeleton(load(m.file)));
    for (const s of evals.slice(1)) expect(s).toEqual(evals[0]);
    expect(evals[0].map((n) => n.op)).not.toContain("BatchNormalization");
  });

  it("eval-mode exports (BatchNorm folded into Conv) train the folded weights under the exporter's names", () => {
    const ir = load("mycnn_eval_op17_dynamic.onnx");
    expect(ir.params).toHaveLength(8);
    expect(ir.params.slice(0, 6).every((p) => p.name.startsWith("onnx::Conv_"))).toBe(true);
    expect(ir.params.slice(6).map((p) => p.name)).toEqual(["lin.weight", "lin.bias"]);
    expect(ir.params.map((p) => p.shape)).toEqual([[3, 1, 3, 3], [3], [16, 3, 3, 3], [16], [32, 16, 3, 3], [32], [10, 288], [10]]);
    expect(ir.buffers).toEqual([]);
  });

  it("a fixed-batch export is made batch-dynamic", () => {
    for (const f of ["mycnn_eval_op9_fixed.onnx", "mycnn_train_op17_fixed.onnx", "rescnn_eval_op17_fixed.onnx"]) {
      const ir = load(f);
      expect(ir.input.shape[0], f).toBe("N");
    }
  });

  it("--requires-grad and --frozen choose what trains; a glob that matches nothing is an error", () => {
    const f = "mycnn_train_op13_dynamic.onnx";
    const head = load(f, { requiresGrad: ["lin.*"] });
    expect(head.params.map((p) => p.name)).toEqual(["lin.weight", "lin.bias"]);
    expect(head.buffers.map((b) => b.name)).toEqual(MYCNN_BUFFERS); // running statistics stay buffers
    expect(head.constants.map((c) => c.name)).toEqual(MYCNN_PARAMS.filter((n) => !n.startsWith("lin.")));
    expect(head.constants.every((c) => c.dtype === "float32")).toBe(true);
    expect(head.source).toMatchObject({ kind: "onnx", options: { requiresGrad: ["lin.*"] } });

    const frozen = load(f, { frozen: ["conv.0.*", "conv.?.bias"] });
    expect(frozen.params.map((p) => p.name)).toEqual(["conv.1.weight", "conv.4.weight", "conv.5.weight", "conv.8.weight", "conv.9.weight", "lin.weight", "lin.bias"]);
    expect(() => load(f, { frozen: ["conv.0.wieght"] })).toThrow(/--frozen 'conv.0.wieght' matches no initializer of the model \(its float initializers: conv.0.weight, conv.0.bias/);
  });
});

describe("a model with its weights in an external-data file", () => {
  it("reads them from beside the model; a missing file is named", async () => {
    const dir = await importModelDir();
    const external = importOnnxFile(join(dir, "external", "mycnn.onnx"));
    const embedded = load("mycnn_eval_op17_dynamic.onnx");
    expect(external.params.map((p) => [p.name, p.shape])).toEqual(embedded.params.map((p) => [p.name, p.shape]));
    external.params.forEach((p, i) => expect(p.init, p.name).toEqual(embedded.params[i].init));
    expect(external.nodes).toEqual(embedded.nodes);
    // What a checkpoint stores holds the weights itself.
    const bytes = external.source.kind === "onnx" ? external.source.bytes : new Uint8Array();
    expect(importOnnx(bytes).params.map((p) => p.init)).toEqual(embedded.params.map((p) => p.init));

    const alone = mkdtempSync(join(tmpdir(), "import-external-"));
    try {
      copyFileSync(join(dir, "external", "mycnn.onnx"), join(alone, "mycnn.onnx"));
      expect(() => importOnnxFile(join(alone, "mycnn.onnx"))).toThrow(`${join(alone, "mycnn.onnx")}: initializer lin.weight: external data file 'mycnn.weights' not found (it must sit beside the model file)`);
    } finally {
      rmSync(alone, { recursive: true, force: true });
    }
    expect(() => importOnnxFile(join(dir, "no-such.onnx"))).toThrow(/no-such\.onnx: no such file \(an ONNX model\)/);
  });
});

describe("the other test models", () => {
  it("LeNet-5 ending in Softmax: the output holds probabilities, the loss reads the Gemm before it", () => {
    const ir = load("lenet5_eval_op13_dynamic.onnx");
    expect(ir.output).toEqual({ name: "output", kind: "probabilities" });
    expect(ir.scores).toBe("/fc3/Gemm_output_0");
    expect(ir.nodes.at(-1)).toMatchObject({ op: "Softmax", attrs: { axis: 1 } });
    expect(ir.params.map((p) => p.name)).toEqual(["conv1", "conv2", "fc1", "fc2", "fc3"].flatMap((l) => [`${l}.weight`, `${l}.bias`]));
    expect(ir.nodes.find((n) => n.op === "Reshape")!.attrs).toEqual({ shape: [-1, 400] });
  });

  it("the residual CNN: GlobalAveragePool, residual Adds without parameters, LogSoftmax output", () => {
    const ir = load("rescnn_train_op13_dynamic.onnx");
    expect(ir.output.kind).toBe("log-probabilities");
    const ops = ir.nodes.map((n) => n.op);
    expect(ops).toContain("GlobalAveragePool");
    expect(ops.filter((o) => o === "Add")).toHaveLength(2);
    expect(ir.params.map((p) => p.name)).toContain("down.bias");
    expect(ir.params.map((p) => p.name).slice(0, 4)).toEqual(["stem.0.weight", "stem.1.weight", "stem.1.bias", "block1.conv1.weight"]);
    expect(ir.buffers).toHaveLength(10);
    expect(ir.nodes.find((n) => n.op === "Flatten")!.attrs).toEqual({ axis: 1 });
  });

  it("the MLP on flat images: Dropout keeps its ratio (its training_mode input is the replay mode's business)", () => {
    const ir = load("mlp_train_op13_dynamic.onnx");
    expect(ir.input.shape).toEqual(["N", 784]);
    const drop = ir.nodes.find((n) => n.op === "Dropout")!;
    expect(drop.attrs).toEqual({ ratio: 0.25 });
    expect(drop.inputs).toHaveLength(1);
    expect(drop.outputs).toHaveLength(1);
    expect(ir.constants).toEqual([]);
    expect(load("mlp_eval_op11_dynamic.onnx").nodes.map((n) => n.op)).toEqual(["Gemm", "Relu", "Gemm"]);
  });

  it("torchvision's resnet18 imports with its state_dict names", () => {
    const ir = load("resnet18_train_op13_dynamic.onnx");
    expect(ir.params).toHaveLength(62);
    expect(ir.buffers).toHaveLength(40);
    expect(ir.params[0].name).toBe("net.conv1.weight");
    expect(ir.params.at(-1)!.name).toBe("net.fc.bias");
    expect(ir.params.reduce((a, p) => a + p.size, 0)).toBe(11_175_370);
    expect(ir.nodes.find((n) => n.op === "MaxPool")!.attrs).toMatchObject({ kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  });
});

// ---- hand-built models ------------------------------------------------------------------------------------------

type A = { i: number } | { f: number } | { ints: number[] } | { s: string } | { t: TensorMsg };
function attrMsg(name: string, a: A): AttributeMsg {
  if ("i" in a) return { name, type: AttrType.INT, i: a.i };
  if ("f" in a) return { name, type: AttrType.FLOAT, f: a.f };
  if ("ints" in a) return { name, type: AttrType.INTS, ints: a.ints };
  if ("t" in a) return { name, type: AttrType.TENSOR, t: a.t };
  return { name, type: AttrType.STRING, s: new TextEncoder().encode(a.s) };
}

interface Spec {
  opset?: number;
  irVersion?: number;
  inputs?: [string, number, (number | string)[]][];
  outputs?: string[];
  nodes: [op: string, inputs: string[], outputs: string[], attrs?: Record<string, A>, name?: string][];
  inits?: TensorMsg[];
}

function onnx(s: Spec): Uint8Array {
  const vi = (name: string, elem: number, dims?: (number | string)[]) => ({
    name,
    type: { tensor_type: { elem_type: elem, ...(dims ? { shape: { dim: dims.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })) } } : {}) } },
  });
  return encodeModel({
    ir_version: s.irVersion ?? 8,
    opset_import: [{ domain: "", version: s.opset ?? 17 }],
    producer_name: "test",
    producer_version: "",
    graph: {
      name: "g",
      node: s.nodes.map(([op, input, output, attrs = {}, name = ""]) => ({ op_type: op, input, output, name, attribute: Object.entries(attrs).map(([k, v]) => attrMsg(k, v)) })),
      initializer: s.inits ?? [],
      input: (s.inputs ?? [["x", 1, ["batch", 784]]]).map(([n, e, d]) => vi(n, e, d)),
      output: (s.outputs ?? ["y"]).map((n) => vi(n, 1)),
      value_info: [],
    },
    metadata_props: [],
  });
}

const f32 = (name: string, dims: number[], fill = 0.5) => makeTensor(name, "float32", dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(fill));
const i64 = (name: string, values: number[]) => makeTensor(name, "int64", [values.length], BigInt64Array.from(values, BigInt));
const linear = (x: string, y: string): Spec["nodes"][number] => ["Gemm", [x, "w", "b"], [y], { transB: { i: 1 } }, "fc"];
const linearInits = (fin = 784) => [f32("w", [10, fin]), f32("b", [10])];

/** The one-line message importOnnx throws for `bytes`. */
function errorOf(bytes: Uint8Array): string {
  try {
    importOnnx(bytes, { source: "bad.onnx" });
  } catch (e) {
    expect(e).toBeInstanceOf(ModelError);
    const message = (e as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected importOnnx to fail");
}

describe("normalising op forms", () => {
  it("old and new forms of Squeeze/Unsqueeze, Clip, Pad, ReduceMean and Dropout give the same IR", () => {
    const image = ["x", 1, ["N", 1, 28, 28]] as [string, number, (number | string)[]];
    const old = importOnnx(
      onnx({
        opset: 9,
        inputs: [image],
        inits: linearInits(900), // padded to 30x30,
        nodes: [
          ["Clip", ["x"], ["c"], { min: { f: 0 }, max: { f: 6 } }],
          ["Pad", ["c"], ["p"], { pads: { ints: [0, 0, 1, 1, 0, 0, 1, 1] }, value: { f: 0.5 } }],
          ["ReduceMean", ["p"], ["m"], { axes: { ints: [1] }, keepdims: { i: 1 } }],
          ["Dropout", ["m"], ["d"], { ratio: { f: 0.3 } }],
          ["Unsqueeze", ["d"], ["u"], { axes: { ints: [0] } }],
          ["Squeeze", ["u"], ["s"], { axes: { ints: [0] } }],
          ["Flatten", ["s"], ["f"], { axis: { i: 1 } }],
          linear("f", "y"),
        ],
      }),
    );
    const newer = (opset: number) =>
      importOnnx(
        onnx({
          opset,
          inputs: [image],
          inits: [...linearInits(900), i64("pads", [0, 0, 1, 1, 0, 0, 1, 1]), i64("ax1", [1]), i64("ax0", [0]), makeTensor("lo", "float32", [], Float32Array.of(0)), makeTensor("hi", "float32", [], Float32Array.of(6))],
          nodes: [
            ["Clip", ["x", "lo", "hi"], ["c"]],
            ["Constant", [], ["v"], { value: { t: makeTensor("", "float32", [], Float32Array.of(0.5)) } }],
            ["Pad", ["c", "pads", "v"], ["p"]],
            opset >= 18 ? ["ReduceMean", ["p", "ax1"], ["m"], { keepdims: { i: 1 } }] : ["ReduceMean", ["p"], ["m"], { axes: { ints: [1] }, keepdims: { i: 1 } }],
            ["Constant", [], ["r"], { value_float: { f: 0.3 } }],
            ["Dropout", ["m", "r"], ["d"]],
            ["Unsqueeze", ["d", "ax0"], ["u"]],
            ["Squeeze", ["u", "ax0"], ["s"]],
            ["Flatten", ["s"], ["f"], { axis: { i: 1 } }],
            linear("f", "y"),
          ],
        }),
      );
    const strip = (ir: ModelIR) => ir.nodes.map((n) => ({ op: n.op, attrs: n.attrs, inputs: n.inputs.length }));
    const expected = [
      { op: "Clip", attrs: { min: 0, max: 6 }, inputs: 1 },
      { op: "Pad", attrs: { pads: [0, 0, 1, 1, 0, 0, 1, 1], value: 0.5 }, inputs: 1 },
      { op: "ReduceMean", attrs: { axes: [1], keepdims: 1 }, inputs: 1 },
      { op: "Dropout", attrs: { ratio: 0.3 }, inputs: 1 },
      { op: "Unsqueeze", attrs: { axes: [0] }, inputs: 1 },
      { op: "Squeeze", attrs: { axes: [0] }, inputs: 1 },
      { op: "Flatten", attrs: { axis: 1 }, inputs: 1 },
      { op: "Gemm", attrs: { alpha: 1, beta: 1, transA: 0, transB: 1 }, inputs: 3 },
    ];
    expect(strip(old)).toEqual(expected);
    expect(strip(newer(13))).toEqual(expected);
    expect(strip(newer(18))).toEqual(expected);
    expect(newer(18).constants).toEqual([]); // the axes, pads and bounds went into attributes
  });

  it("auto_pad becomes explicit pads; pooling keeps ceil_mode and count_include_pad", () => {
    const ir = importOnnx(
      onnx({
        inputs: [["x", 1, ["N", 1, 28, 28]]],
        inits: [f32("k", [4, 1, 3, 3]), f32("w", [10, 4 * 8 * 8]), f32("b", [10])],
        nodes: [
          ["Conv", ["x", "k"], ["c"], { auto_pad: { s: "SAME_UPPER" }, strides: { ints: [2, 2] } }],
          ["AveragePool", ["c"], ["a"], { kernel_shape: { ints: [2, 2] }, auto_pad: { s: "SAME_LOWER" }, strides: { ints: [1, 1] }, count_include_pad: { i: 1 } }],
          ["MaxPool", ["a"], ["m"], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] }, ceil_mode: { i: 1 } }],
          ["Flatten", ["m"], ["f"]],
          linear("f", "y"),
        ],
      }),
    );
    // 28 -> Conv SAME_UPPER k3 s2: 14 (total pad 13*2 + 3 - 28 = 1: 0 before, 1 after) -> AveragePool
    // SAME_LOWER k2 s1: 14 (total 1: 1 before) -> MaxPool k3 s2 p1 ceil: ceil((14 + 2 - 3) / 2) + 1 = 8 (the
    // last window starts at 14, inside 14 + 1 padded pixels, so it stays); the Gemm's 4*8*8 inputs fit.
    expect(ir.nodes[0].attrs).toMatchObject({ pads: [0, 0, 1, 1], strides: [2, 2], kernel_shape: [3, 3] });
    expect(ir.nodes[1].attrs).toEqual({ kernel_shape: [2, 2], strides: [1, 1], pads: [1, 1, 0, 0], ceil_mode: 0, count_include_pad: 1 });
    expect(ir.nodes[2].attrs).toEqual({ kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, dilations: [1, 1] });
  });

  it("a Softmax over a non-last axis before opset 13 becomes Flatten -> Softmax -> Reshape", () => {
    const ir = importOnnx(
      onnx({
        opset: 11,
        inputs: [["x", 1, ["N", 784]]],
        inits: [...linearInits(), i64("shape", [-1, 2, 5])],
        nodes: [linear("x", "z"), ["Reshape", ["z", "shape"], ["r"]], ["Softmax", ["r"], ["s"], { axis: { i: 1 } }], ["Flatten", ["s"], ["y"]]],
      }),
    );
    expect(ir.nodes.map((n) => n.op)).toEqual(["Gemm", "Reshape", "Flatten", "Softmax", "Reshape", "Flatten"]);
    expect(ir.nodes[2].attrs).toEqual({ axis: 1 });
    expect(ir.nodes[4].attrs).toEqual({ shape: [0, 2, 5] });
  });

  it("an Add after a MatMul trains as its bias; MatMul's initializer operand is a weight; node names made unique", () => {
    const ir = importOnnx(
      onnx({
        inputs: [["x", 1, ["N", 28, 28]]],
        inits: [f32("W", [784, 10]), f32("bias", [10]), f32("scale", [1])],
        nodes: [
          ["Flatten", ["x"], ["f"], {}, "same"],
          ["MatMul", ["f", "W"], ["mm"], {}, "same"],
          ["Add", ["mm", "bias"], ["a"]],
          ["Mul", ["a", "scale"], ["y"]],
        ],
      }),
    );
    expect(ir.params.map((p) => p.name)).toEqual(["W", "bias"]);
    expect(ir.constants.map((c) => c.name)).toEqual(["scale"]);
    expect(ir.nodes.map((n) => n.name)).toEqual(["same", "MatMul_0", "Add_0", "Mul_0"]);
    expect(ir.input.shape).toEqual(["N", 28, 28]);
  });
});

describe("bad models fail with one clear line", () => {
  it("every unsupported op type is listed with a node name, before anything else", () => {
    const msg = errorOf(
      onnx({
        inputs: [["x", 1, ["N", 1, 28, 28]]],
        nodes: [
          ["Resize", ["x"], ["r"], {}, "up"],
          ["TopK", ["r"], ["t"], {}, "top"],
          ["Resize", ["t"], ["r2"], {}, "up2"],
          ["Flatten", ["r2"], ["y"]],
        ],
      }),
    );
    expect(msg).toMatch(/^bad\.onnx: unsupported ops: Resize \(node up and 1 more\), TopK \(node top\)\./);
  });

  it("a shape op applied to run-time data is unsupported, named", () => {
    const msg = errorOf(onnx({ inputs: [["x", 1, ["N", 784]]], inits: [i64("idx", [0, 1])], nodes: [["Gather", ["x", "idx"], ["y"], { axis: { i: 1 } }, "pick"]] }));
    expect(msg).toMatch(/unsupported ops: Gather \(node pick\)/);
  });

  it("inputs: two, none float, not an image", () => {
    expect(errorOf(onnx({ inputs: [["x", 1, ["N", 784]], ["z", 1, ["N", 784]]], nodes: [["Add", ["x", "z"], ["y"]]] }))).toBe(
      "bad.onnx: the model has 2 inputs (x, z); an image classifier takes one float image input",
    );
    expect(errorOf(onnx({ inputs: [["x", 7, ["N", 784]]], nodes: [["Identity", ["x"], ["y"]]] }))).toBe("bad.onnx: the input x is int64, expected float32 images");
    expect(errorOf(onnx({ inputs: [["x", 1, ["N", 3, 32, 32]]], nodes: [["Identity", ["x"], ["y"]]] }))).toMatch(/the input x is \[N, 3, 32, 32\]; MNIST images go in as \[N, 1, 28, 28\]/);
  });

  it("no class-score output", () => {
    expect(errorOf(onnx({ inputs: [["x", 1, ["N", 1, 28, 28]]], nodes: [["Relu", ["x"], ["y"]]] }))).toBe("bad.onnx: the output y is [N, 1, 28, 28], expected class scores [N, classes]");
    expect(errorOf(onnx({ inputs: [["x", 1, ["N", 784]]], outputs: ["a", "b"], inits: linearInits(), nodes: [linear("x", "a"), ["Relu", ["a"], ["b"]]] }))).toMatch(
      /the model has 2 outputs \(a, b\) and none is the one class-score output/,
    );
  });

  it("versions, garbage, missing external data", () => {
    expect(errorOf(onnx({ opset: 6, nodes: [] }))).toMatch(/default-domain opset 6 is not supported \(7 to 21\)/);
    expect(errorOf(onnx({ irVersion: 2, nodes: [] }))).toMatch(/ONNX IR version 2 is too old/);
    expect(errorOf(new TextEncoder().encode("this is not a model at all, just text"))).toMatch(/^bad\.onnx: not an ONNX model/);
    const external: TensorMsg = { name: "w", dims: [10, 784], data_type: 1, data_location: 1, external_data: [{ key: "location", value: "weights.bin" }] };
    const bytes = onnx({ inputs: [["x", 1, ["N", 784]]], inits: [external, f32("b", [10])], nodes: [linear("x", "y")] });
    expect(errorOf(bytes)).toBe("bad.onnx: initializer w: external data file 'weights.bin' not found (it must sit beside the model file)");
    const data = new Float32Array(7840).fill(0.25);
    const ir = importOnnx(bytes, { readExternal: (loc) => (loc === "weights.bin" ? new Uint8Array(data.buffer) : undefined) });
    expect(ir.params[0].init.kind === "data" && ir.params[0].init.data[7839]).toBe(0.25);
  });

  it("a shape that depends on the batch in a way a static shape cannot say names the node", () => {
    const msg = errorOf(
      onnx({
        inputs: [["x", 1, ["N", 1, 28, 28]]],
        inits: [i64("zero", [0]), i64("c32", [32]), i64("axes", [0])],
        nodes: [
          ["Shape", ["x"], ["s"]],
          ["Gather", ["s", "zero"], ["n"]],
          ["Mul", ["n", "c32"], ["n32"], {}, "times32"],
          ["Reshape", ["x", "n32"], ["y"]],
        ],
      }),
    );
    expect(msg).toMatch(/^bad\.onnx: node times32 \(Mul\): Mul\(N, 32\) depends on the batch size/);
  });

  it("a fixed batch that cannot be made dynamic says so", () => {
    const msg = errorOf(
      onnx({
        inputs: [["x", 1, [2, 784]]],
        inits: [...linearInits(392), i64("shape", [4, 392])],
        nodes: [["Reshape", ["x", "shape"], ["r"], {}, "regroup"], linear("r", "y")],
      }),
    );
    expect(msg).toMatch(/^bad\.onnx: node regroup \(Reshape\): cannot reshape \[N, 784\] to \[4,392\] for every batch size \(the model was exported with a fixed batch of 2/);
  });
});
