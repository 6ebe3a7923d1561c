/**
 * Lowers a sequential model spec onto the graph builder, in training mode (batch statistics, running-stat
 * updates) or inference mode (running statistics), and plans its parameters with PyTorch's names and
 * default initialisation.
 */
import { G } from "../ops/builder.ts";
import { shapeToString, type Dim, type Value } from "../graph/value.ts";
import { Rng } from "../random.ts";
import { SpecError, type LayerSpec, type ModelSpec } from "./spec.ts";

export type Init = { kind: "uniform"; bound: number } | { kind: "fill"; value: number };
export interface TensorSpec {
  name: string;
  shape: number[];
  size: number;
  /** Offset in the flat vector that holds all tensors of its kind. */
  offset: number;
  init: Init;
}
export interface LayerSummary {
  name: string;
  type: string;
  output_shape: Dim[];
  params: number;
}
export interface ModelPlan {
  name: string;
  spec: ModelSpec;
  inputShape: [number, number, number];
  classes: number;
  params: TensorSpec[];
  buffers: TensorSpec[];
  paramCount: number;
  bufferCount: number;
  layers: LayerSummary[];
}

/** Where a layer gets its tensors: graph inputs, slices of a flat vector, or initializers. */
export interface TensorSource {
  param(spec: Omit<TensorSpec, "offset" | "size">): Value;
  buffer(spec: Omit<TensorSpec, "offset" | "size">): Value;
}

export interface ForwardResult {
  logits: Value;
  /** Training mode: new value of each running-statistic buffer, by name. */
  bufferUpdates: Map<string, Value>;
}

const MONOTONE = new Set(["relu", "leaky_relu", "tanh", "sigmoid"]);

/**
 * Emits the forward pass. Activations that are non-decreasing commute with max-pooling (the max of
 * f(x) is f(max x), with the same argmax and ties), so Activation -> MaxPool is emitted as
 * MaxPool -> Activation: same numbers, a quarter of the activation work.
 */
export function forward(g: G, spec: ModelSpec, x: Value, src: TensorSource, training: boolean, summary?: LayerSummary[]): ForwardResult {
  const bufferUpdates = new Map<string, Value>();
  const layers = spec.layers;
  let h = x;
  let foldedBias: Value | undefined;
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const name = layer.name ?? String(i);
    const next = layers[i + 1];
    const swap = MONOTONE.has(layer.type) && next?.type === "maxpool2d" && (layer.type !== "leaky_relu" || (layer.negative_slope ?? 0.01) >= 0);
    try {
      if (swap) {
        const nextName = next.name ?? String(i + 1);
        const pooledFrom = h;
        const pooled = g.scoped(nextName, () => emitLayer(g, next, nextName, h, src, { training, updates: bufferUpdates }));
        h = g.scoped(name, () => emitLayer(g, layer, name, pooled, src, { training, updates: bufferUpdates }));
        // reported in the spec's order: the activation keeps the pre-pooling shape
        summary?.push({ ...summarise(layer, name, h), output_shape: h.shape.slice(1).map((d, k) => (k === 0 ? d : (pooledFrom.shape[k + 1] as number))) }, summarise(next, nextName, h));
        i++;
        continue;
      }
      const ctx: LayerContext = { training, updates: bufferUpdates, next, foldedBias };
      h = g.scoped(name, () => emitLayer(g, layer, name, h, src, ctx));
      foldedBias = layer.type === "conv2d" ? ctx.foldedBias : undefined;
      summary?.push(summarise(layer, name, h));
    } catch (e) {
      if (e instanceof SpecError) throw e;
      throw new SpecError(`layer ${name} (${layer.type}): ${(e as Error).message}`);
    }
  }
  if (h.shape.length !== 2) throw new SpecError(`the last layer must give [N, classes], got ${shapeToString(h.shape)}: end with flatten and linear`);
  const classes = spec.classes ?? 10;
  if (h.shape[1] !== classes) throw new SpecError(`the last layer gives ${h.shape[1]} outputs, expected ${classes} classes`);
  return { logits: h, bufferUpdates };
}

/** A layer's name, type and output shape; planModel fills in its parameter count. */
function summarise(layer: LayerSpec, name: string, h: Value): LayerSummary {
  return { name, type: layer.type, output_shape: h.shape.slice(1), params: 0 };
}

function channels(h: Value, what: string): number {
  if (h.shape.length !== 4) throw new Error(`${what} expects a 4-D input [N, C, H, W], the previous layer gives ${shapeToString(h.shape)}`);
  return h.shape[1] as number;
}

interface LayerContext {
  training: boolean;
  updates: Map<string, Value>;
  /** The next layer (a training-mode BatchNorm after a conv takes over the conv's bias, see below). */
  next?: LayerSpec;
  /** A conv bias handed to the BatchNorm that follows. */
  foldedBias?: Value;
}

function emitLayer(g: G, l: LayerSpec, name: string, h: Value, src: TensorSource, ctx: LayerContext): Value {
  const { training, updates } = ctx;
  switch (l.type) {
    case "conv2d": {
      const cin = channels(h, "Conv2d");
      if (l.in_channels !== undefined && l.in_channels !== cin) throw new Error(`Conv2d expects ${l.in_channels} input channels, the previous layer gives ${cin}`);
      const k = l.kernel_size;
      const fanIn = cin * k * k;
      const bound = 1 / Math.sqrt(fanIn); // kaiming_uniform(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
      const w = src.param({ name: `${name}.weight`, shape: [l.out_channels, cin, k, k], init: { kind: "uniform", bound } });
      const b = l.bias === false ? undefined : src.param({ name: `${name}.bias`, shape: [l.out_channels], init: { kind: "uniform", bound } });
      const s = l.stride ?? 1;
      const p = l.padding ?? 0;
      // A training-mode BatchNorm subtracts the batch mean, so a bias added just before it cancels exactly: the
      // output does not depend on it and its true gradient is 0. Adding it would only make its gradient float
      // noise (~1e-9) that Adam normalises into random steps of +-lr. So the bias goes to the BatchNorm, which
      // adds it back where it does count: the running mean (mean(conv + b) = mean(conv) + b).
      if (training && b && ctx.next?.type === "batchnorm2d") {
        ctx.foldedBias = b;
        return g.conv(h, w, undefined, { strides: [s, s], pads: [p, p, p, p] });
      }
      return g.conv(h, w, b, { strides: [s, s], pads: [p, p, p, p] });
    }
    case "batchnorm2d": {
      const c = channels(h, "BatchNorm2d");
      if (l.num_features !== undefined && l.num_features !== c) throw new Error(`BatchNorm2d expects ${l.num_features} channels, the previous layer gives ${c}`);
      const eps = l.eps ?? 1e-5;
      const momentum = l.momentum ?? 0.1;
      const gamma = src.param({ name: `${name}.weight`, shape: [c], init: { kind: "fill", value: 1 } });
      const beta = src.param({ name: `${name}.bias`, shape: [c], init: { kind: "fill", value: 0 } });
      const runMean = src.buffer({ name: `${name}.running_mean`, shape: [c], init: { kind: "fill", value: 0 } });
      const runVar = src.buffer({ name: `${name}.running_var`, shape: [c], init: { kind: "fill", value: 1 } });
      if (!training) return g.batchNormInfer(h, gamma, beta, runMean, runVar, eps);
      const [y, mean, biasedVar] = g.batchNormTrain(h, gamma, beta, eps);
      // PyTorch: r <- (1 - momentum) r + momentum * batch, with the unbiased variance M/(M-1) for running_var.
      g.untaped(() => {
        const m = g.countRatio(h, mean);
        const unbiased = g.mul(biasedVar, g.div(m, g.sub(m, 1)));
        const fullMean = ctx.foldedBias ? g.add(mean, ctx.foldedBias) : mean;
        updates.set(runMean.name, g.add(g.mul(runMean, 1 - momentum), g.mul(fullMean, momentum)));
        updates.set(runVar.name, g.add(g.mul(runVar, 1 - momentum), g.mul(unbiased, momentum)));
      });
      return y;
    }
    case "relu":
      return g.relu(h);
    case "leaky_relu":
      return g.leakyRelu(h, l.negative_slope ?? 0.01);
    case "tanh":
      return g.tanh(h);
    case "sigmoid":
      return g.sigmoid(h);
    case "maxpool2d":
    case "avgpool2d": {
      channels(h, l.type === "maxpool2d" ? "MaxPool2d" : "AvgPool2d");
      const k = l.kernel_size;
      const s = l.stride ?? k;
      const p = l.padding ?? 0;
      const a = { kernel: [k, k] as [number, number], strides: [s, s] as [number, number], pads: [p, p, p, p] as [number, number, number, number] };
      return l.type === "maxpool2d" ? g.maxPool(h, a) : g.averagePool(h, a);
    }
    case "flatten":
      return g.flatten(h, 1);
    case "linear": {
      if (h.shape.length !== 2) throw new Error(`Linear expects a 2-D input [N, features], the previous layer gives ${shapeToString(h.shape)}: add a flatten layer before it`);
      const fin = h.shape[1] as number;
      if (l.in_features !== undefined && l.in_features !== fin) throw new Error(`Linear expects ${l.in_features} inputs, the previous layer gives ${fin}`);
      const bound = 1 / Math.sqrt(fin);
      const w = src.param({ name: `${name}.weight`, shape: [l.out_features, fin], init: { kind: "uniform", bound } });
      const b = l.bias === false ? undefined : src.param({ name: `${name}.bias`, shape: [l.out_features], init: { kind: "uniform", bound } });
      return g.gemm(h, w, b, { transA: false, transB: true });
    }
  }
}

/** Walks the spec once on a scratch graph: checks every shape and lists parameters and buffers in order. */
export function planModel(spec: ModelSpec): ModelPlan {
  const input = (spec.input ?? [1, 28, 28]) as [number, number, number];
  const g = new G("plan");
  const params: TensorSpec[] = [];
  const buffers: TensorSpec[] = [];
  const add = (list: TensorSpec[]) => (t: Omit<TensorSpec, "offset" | "size">) => {
    if ([...params, ...buffers].some((p) => p.name === t.name)) throw new SpecError(`two layers are both named '${t.name.replace(/\.[a-z_]+$/, "")}'`);
    const size = t.shape.reduce((a, b) => a * b, 1);
    const offset = list.length ? list[list.length - 1].offset + list[list.length - 1].size : 0;
    list.push({ ...t, size, offset });
    return g.input(t.name, t.shape, "float32");
  };
  const layers: LayerSummary[] = [];
  const x = g.input("input", ["N", ...input], "float32");
  forward(g, spec, x, { param: add(params), buffer: add(buffers) }, false, layers);
  // A parameter belongs to the layer whose name prefixes it (`conv.0.weight` -> `conv.0`).
  for (const p of params) layers.find((l) => l.name === p.name.slice(0, p.name.lastIndexOf(".")))!.params += p.size;
  return {
    name: spec.name ?? "custom",
    spec,
    inputShape: input,
    classes: spec.classes ?? 10,
    params,
    buffers,
    paramCount: params.reduce((a, p) => a + p.size, 0),
    bufferCount: buffers.reduce((a, p) => a + p.size, 0),
    layers,
  };
}

/** PyTorch-default initial values, drawn from `seed` in parameter order. */
export function initialValues(plan: ModelPlan, seed: number): { params: Float32Array; buffers: Float32Array } {
  const rng = new Rng(seed);
  const fill = (list: TensorSpec[], total: number) => {
    const out = new Float32Array(total);
    for (const t of list) {
      const view = out.subarray(t.offset, t.offset + t.size);
      if (t.init.kind === "fill") view.fill(t.init.value);
      else for (let i = 0; i < view.length; i++) view[i] = rng.uniform(-t.init.bound, t.init.bound);
    }
    return out;
  };
  return { params: fill(plan.params, plan.paramCount), buffers: fill(plan.buffers, plan.bufferCount) };
}
