/**
 * The JSON spec front end: lowers a sequential model spec into the model IR, with PyTorch's state_dict names
 * (`conv.0.weight`) and default initialisation. Each layer's input shape is known when it is lowered (the IR so
 * far is replayed on a scratch graph), so channel and feature counts are inferred and checked layer by layer.
 */
import { shapeToString, type Value } from "../graph/value.ts";
import { ModelError, type IrNode, type ModelIR, type TensorSpec } from "../ir/ir.ts";
import { shapesOf } from "../ir/plan.ts";
import { SpecError, type LayerSpec, type ModelSpec } from "./spec.ts";

type Tensor = Omit<TensorSpec, "offset" | "size">;

/** What one layer adds to the IR: its node and the parameters/buffers it introduces. */
interface Lowered {
  node: Omit<IrNode, "name" | "outputs">;
  params?: Tensor[];
  buffers?: Tensor[];
}

function channels(h: Value, what: string): number {
  if (h.shape.length !== 4) throw new Error(`${what} expects a 4-D input [N, C, H, W], the previous layer gives ${shapeToString(h.shape)}`);
  return h.shape[1] as number;
}

function lowerLayer(l: LayerSpec, name: string, h: Value, x: string): Lowered {
  switch (l.type) {
    case "conv2d": {
      const cin = channels(h, "Conv2d");
      if (l.in_channels !== undefined && l.in_channels !== cin) throw new Error(`Conv2d expects ${l.in_channels} input channels, the previous layer gives ${cin}`);
      const k = l.kernel_size;
      const bound = 1 / Math.sqrt(cin * k * k); // kaiming_uniform(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
      const s = l.stride ?? 1;
      const p = l.padding ?? 0;
      const w: Tensor = { name: `${name}.weight`, shape: [l.out_channels, cin, k, k], init: { kind: "uniform", bound } };
      const b: Tensor | undefined = l.bias === false ? undefined : { name: `${name}.bias`, shape: [l.out_channels], init: { kind: "uniform", bound } };
      return {
        node: { op: "Conv", inputs: [x, w.name, ...(b ? [b.name] : [])], attrs: { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], dilations: [1, 1], group: 1 } },
        params: b ? [w, b] : [w],
      };
    }
    case "batchnorm2d": {
      const c = channels(h, "BatchNorm2d");
      if (l.num_features !== undefined && l.num_features !== c) throw new Error(`BatchNorm2d expects ${l.num_features} channels, the previous layer gives ${c}`);
      const t = (suffix: string, value: number): Tensor => ({ name: `${name}.${suffix}`, shape: [c], init: { kind: "fill", value } });
      const params = [t("weight", 1), t("bias", 0)];
      const buffers = [t("running_mean", 0), t("running_var", 1)];
      // ONNX's momentum is the weight of the old running value: PyTorch's momentum m becomes 1 - m.
      const attrs = { epsilon: l.eps ?? 1e-5, momentum: 1 - (l.momentum ?? 0.1) };
      return { node: { op: "BatchNormalization", inputs: [x, ...params.map((p) => p.name), ...buffers.map((b) => b.name)], attrs }, params, buffers };
    }
    case "relu":
      return { node: { op: "Relu", inputs: [x], attrs: {} } };
    case "tanh":
      return { node: { op: "Tanh", inputs: [x], attrs: {} } };
    case "sigmoid":
      return { node: { op: "Sigmoid", inputs: [x], attrs: {} } };
    case "leaky_relu":
      return { node: { op: "LeakyRelu", inputs: [x], attrs: { alpha: l.negative_slope ?? 0.01 } } };
    case "maxpool2d":
    case "avgpool2d": {
      channels(h, l.type === "maxpool2d" ? "MaxPool2d" : "AvgPool2d");
      const k = l.kernel_size;
      const s = l.stride ?? k;
      const p = l.padding ?? 0;
      const attrs = { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] };
      return l.type === "maxpool2d"
        ? { node: { op: "MaxPool", inputs: [x], attrs } }
        : { node: { op: "AveragePool", inputs: [x], attrs: { ...attrs, count_include_pad: 1 } } };
    }
    case "flatten":
      return { node: { op: "Flatten", inputs: [x], attrs: { axis: 1 } } };
    case "dropout":
      return { node: { op: "Dropout", inputs: [x], attrs: { ratio: l.p ?? 0.5 } } };
    case "linear": {
      if (h.shape.length !== 2) throw new Error(`Linear expects a 2-D input [N, features], the previous layer gives ${shapeToString(h.shape)}: add a flatten layer before it`);
      const fin = h.shape[1] as number;
      if (l.in_features !== undefined && l.in_features !== fin) throw new Error(`Linear expects ${l.in_features} inputs, the previous layer gives ${fin}`);
      const bound = 1 / Math.sqrt(fin);
      const w: Tensor = { name: `${name}.weight`, shape: [l.out_features, fin], init: { kind: "uniform", bound } };
      const b: Tensor | undefined = l.bias === false ? undefined : { name: `${name}.bias`, shape: [l.out_features], init: { kind: "uniform", bound } };
      return { node: { op: "Gemm", inputs: [x, w.name, ...(b ? [b.name] : [])], attrs: { transB: 1 } }, params: b ? [w, b] : [w] };
    }
  }
}

function place(list: Tensor[]): TensorSpec[] {
  let offset = 0;
  return list.map((t) => {
    const size = t.shape.reduce((a, b) => a * b, 1);
    const placed = { ...t, size, offset };
    offset += size;
    return placed;
  });
}

/** The output of the IR so far (the input itself before the first layer). */
function lastValue(ir: ModelIR): Value {
  return ir.nodes.length ? shapesOf(ir).output : { name: ir.input.name, shape: ir.input.shape, dtype: "float32" };
}

/** Lowers a (validated) spec into the model IR; shape errors name the layer. */
export function lowerSpec(spec: ModelSpec): ModelIR {
  const inputShape = spec.input ?? [1, 28, 28];
  const params: Tensor[] = [];
  const buffers: Tensor[] = [];
  const ir: ModelIR = {
    name: spec.name ?? "custom",
    input: { name: "input", shape: ["N", ...inputShape] },
    output: { name: "input", kind: "logits" },
    scores: "input",
    classes: spec.classes ?? 10,
    nodes: [],
    params: [],
    buffers: [],
    constants: [],
    source: { kind: "spec", spec },
  };
  const seen = new Set<string>();
  let h = lastValue(ir);
  spec.layers.forEach((layer, i) => {
    const name = layer.name ?? String(i);
    if (seen.has(name)) throw new SpecError(`two layers are both named '${name}'`);
    seen.add(name);
    try {
      const lowered = lowerLayer(layer, name, h, ir.output.name);
      const out = `${name}:out`;
      ir.nodes.push({ ...lowered.node, name, outputs: [out] });
      params.push(...(lowered.params ?? []));
      buffers.push(...(lowered.buffers ?? []));
      ir.params = place(params);
      ir.buffers = place(buffers);
      ir.output = { name: out, kind: "logits" };
      ir.scores = out;
      h = lastValue(ir);
    } catch (e) {
      if (e instanceof SpecError) throw e;
      const why = (e as Error).message.replace(/^node \S+ \(\w+\): /, "");
      throw new SpecError(`layer ${name} (${layer.type}): ${why}`);
    }
  });
  if (h.shape.length !== 2) throw new SpecError(`the last layer must give [N, classes], got ${shapeToString(h.shape)}: end with flatten and linear`);
  if (h.shape[1] !== ir.classes) throw new SpecError(`the last layer gives ${h.shape[1]} outputs, expected ${ir.classes} classes`);
  // Our models' contract: the output is called `logits`.
  ir.nodes[ir.nodes.length - 1].outputs = ["logits"];
  ir.output = { name: "logits", kind: "logits" };
  ir.scores = "logits";
  return ir;
}

export { ModelError };
