/**
 * Replays a model IR onto the graph builder in a mode: "train" (batch statistics and PyTorch's running-statistic
 * update, Dropout masks from a per-step noise input), "eval" and "inference" (running statistics, Dropout off).
 * Mode semantics live in one table from IR op type to builder calls, typed as complete: an op added to IR_OPS
 * without a rule does not compile.
 */
import type { G } from "../ops/builder.ts";
import { shapeToString, type Dim, type Value } from "../graph/value.ts";
import { ModelError, type IrAttr, type IrConstant, type IrNode, type IrOp, type ModelIR } from "./ir.ts";
import { analyze, type Analysis } from "./passes.ts";

export type Mode = "train" | "eval" | "inference";

/** Where replay gets the tensors that are not computed: parameters, buffers, constants and Dropout noise. */
export interface ReplaySource {
  param(name: string): Value;
  buffer(name: string): Value;
  constant(c: IrConstant): Value;
  /** Train mode: a uniform [0,1) noise input shaped like `like`, fed per step (Dropout masks). */
  noise?(node: IrNode, like: Value): Value;
}

export interface ReplayResult {
  /** The model's output (what inference returns). */
  output: Value;
  /** The class scores the loss is taken on. */
  scores: Value;
  /** Train mode: the new value of each running-statistic buffer, by name. */
  bufferUpdates: Map<string, Value>;
  /** Every value by IR name (for summaries). */
  values: Map<string, Value>;
}

interface Ctx {
  g: G;
  mode: Mode;
  node: IrNode;
  analysis: Analysis;
  src: ReplaySource;
  bufferUpdates: Map<string, Value>;
  /** Conv biases handed to the training-mode BatchNorm that follows them, by BatchNorm node name. */
  foldedBias: Map<string, Value>;
  /** IR names of the node's inputs (to tell buffers from computed values). */
  inputNames: string[];
  isBuffer(name: string): boolean;
}

type Rule = (ctx: Ctx, x: (Value | undefined)[], a: Attrs) => Value[];

/** Typed access to a node's attributes, with ONNX defaults. */
class Attrs {
  constructor(
    private readonly attrs: Record<string, IrAttr>,
    private readonly node: IrNode,
  ) {}
  int(name: string, dflt?: number): number {
    const v = this.attrs[name] ?? dflt;
    if (typeof v !== "number") throw new ModelError(`node ${this.node.name} (${this.node.op}): attribute ${name} is missing or not a number`);
    return v;
  }
  float(name: string, dflt?: number): number {
    return this.int(name, dflt);
  }
  ints(name: string, dflt?: number[]): number[] {
    const v = this.attrs[name] ?? dflt;
    if (!Array.isArray(v)) throw new ModelError(`node ${this.node.name} (${this.node.op}): attribute ${name} is missing or not a list`);
    return v;
  }
  optFloat(name: string): number | undefined {
    const v = this.attrs[name];
    return typeof v === "number" ? v : undefined;
  }
  has(name: string): boolean {
    return this.attrs[name] !== undefined;
  }
}

function req(x: Value | undefined, ctx: Ctx, what: string): Value {
  if (!x) throw new ModelError(`node ${ctx.node.name} (${ctx.node.op}): missing input ${what}`);
  return x;
}

function pair(xs: number[]): [number, number] {
  return [xs[0], xs[1]];
}

/** 2-D kernel attributes in the builder's form; ONNX defaults (stride 1, no padding, dilation 1). */
function window(x: Value, a: Attrs, ctx: Ctx, kernel: number[]) {
  if (x.shape.length !== 4) throw new ModelError(`node ${ctx.node.name} (${ctx.node.op}) supports 2-D images [N, C, H, W], got ${shapeToString(x.shape)}`);
  return {
    kernel: pair(kernel),
    strides: pair(a.ints("strides", [1, 1])),
    pads: a.ints("pads", [0, 0, 0, 0]) as [number, number, number, number],
    dilations: pair(a.ints("dilations", [1, 1])),
  };
}

const unary =
  (f: (g: G, x: Value, a: Attrs) => Value): Rule =>
  ({ g }, [x], a) => [f(g, x!, a)];

/** Resolves an ONNX Reshape target (0 copies the input dim, -1 is inferred) into dims, symbolic where needed. */
function reshapeTarget(x: Value, target: number[], ctx: Ctx): Dim[] {
  const dims: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i] : d));
  const known = dims.filter((d): d is number => typeof d === "number" && d > 0).reduce((p, d) => p * d, 1);
  const inferred = dims.indexOf(-1);
  if (inferred < 0) return dims;
  const symbolic = x.shape.filter((d) => typeof d !== "number");
  const staticIn = x.shape.filter((d): d is number => typeof d === "number").reduce((p, d) => p * d, 1);
  const symbolicOut = dims.filter((d) => typeof d !== "number");
  // The symbolic dims on both sides must match one for one; what is left is static.
  const left = symbolic.filter((s) => !symbolicOut.includes(s));
  if (left.length > 1 || symbolicOut.some((s) => !symbolic.includes(s)))
    throw new ModelError(`node ${ctx.node.name} (Reshape): cannot reshape ${shapeToString(x.shape)} to [${target.join(", ")}]`);
  if (left.length === 1) {
    if (staticIn % known !== 0) throw new ModelError(`node ${ctx.node.name} (Reshape): cannot reshape ${shapeToString(x.shape)} to [${target.join(", ")}]`);
    dims[inferred] = staticIn / known === 1 ? left[0] : `${left[0]}*${staticIn / known}`;
  } else {
    if (staticIn % known !== 0) throw new ModelError(`node ${ctx.node.name} (Reshape): cannot reshape ${shapeToString(x.shape)} to [${target.join(", ")}]`);
    dims[inferred] = staticIn / known;
  }
  return dims;
}

const RULES: { [K in IrOp]: Rule } = {
  // y = x W^T + b and friends: the builder's ops carry their own VJPs.
  Add: ({ g }, [a, b]) => [g.add(a!, b!)],
  Sub: ({ g }, [a, b]) => [g.sub(a!, b!)],
  Mul: ({ g }, [a, b]) => [g.mul(a!, b!)],
  Div: ({ g }, [a, b]) => [g.div(a!, b!)],
  MatMul: ({ g }, [a, b]) => [g.matMul(a!, b!)],
  Gemm: ({ g }, [x, w, b], a) => [
    g.gemm(x!, w!, b, { transA: a.int("transA", 0) === 1, transB: a.int("transB", 0) === 1, alpha: a.float("alpha", 1), beta: a.float("beta", 1) }),
  ],
  Conv: (ctx, [x, w, b], a) => {
    const { g, node, mode, analysis, foldedBias } = ctx;
    const wv = req(w, ctx, "W");
    const win = window(req(x, ctx, "X"), a, ctx, wv.shape.slice(2) as number[]);
    const attrs = { strides: win.strides, pads: win.pads, dilations: win.dilations, group: a.int("group", 1) };
    // A training-mode BatchNorm subtracts the batch mean, so a bias added just before it cancels exactly: its
    // true gradient is 0, but computed it is float noise (~1e-9) that Adam normalises into random steps of
    // +-lr. So in training the bias goes to that BatchNorm, which adds it back where it counts: the running
    // mean (mean(conv + b) = mean(conv) + b). The pass checks the conv output has that BatchNorm as sole consumer.
    const bn = analysis.foldBiasInto.get(node.name);
    if (mode === "train" && b && bn) {
      foldedBias.set(bn, b);
      return [g.conv(x!, wv, undefined, attrs)];
    }
    return [g.conv(x!, wv, b, attrs)];
  },
  BatchNormalization: (ctx, [x, gamma, beta, mean, variance], a) => {
    const { g, mode, node, bufferUpdates, foldedBias } = ctx;
    const eps = a.float("epsilon", 1e-5);
    if (mode !== "train") return [g.batchNormInfer(x!, gamma!, beta!, mean!, variance!, eps)];
    // PyTorch: r <- (1 - m) r + m * batch, with the unbiased variance M/(M-1) for running_var; ONNX's
    // momentum attribute is the weight of the old value, 1 - m.
    const m = 1 - a.float("momentum", 0.9);
    const [y, batchMean, biasedVar] = g.batchNormTrain(x!, gamma!, beta!, eps);
    const [meanName, varName] = [ctx.inputNames[3], ctx.inputNames[4]];
    g.untaped(() => {
      const count = g.countRatio(x!, batchMean);
      const unbiased = g.mul(biasedVar, g.div(count, g.sub(count, 1)));
      const bias = foldedBias.get(node.name);
      const fullMean = bias ? g.add(batchMean, bias) : batchMean;
      if (ctx.isBuffer(meanName)) bufferUpdates.set(meanName, g.add(g.mul(mean!, 1 - m), g.mul(fullMean, m)));
      if (ctx.isBuffer(varName)) bufferUpdates.set(varName, g.add(g.mul(variance!, 1 - m), g.mul(unbiased, m)));
    });
    return [y];
  },
  Relu: unary((g, x) => g.relu(x)),
  LeakyRelu: unary((g, x, a) => g.leakyRelu(x, a.float("alpha", 0.01))),
  PRelu: ({ g }, [x, slope]) => [g.prelu(x!, slope!)],
  Elu: unary((g, x, a) => g.elu(x, a.float("alpha", 1))),
  Sigmoid: unary((g, x) => g.sigmoid(x)),
  Tanh: unary((g, x) => g.tanh(x)),
  Clip: unary((g, x, a) => g.clip(x, a.optFloat("min"), a.optFloat("max"))),
  HardSigmoid: unary((g, x, a) => g.hardSigmoid(x, a.float("alpha", 0.2), a.float("beta", 0.5))),
  HardSwish: unary((g, x) => g.hardSwish(x)),
  MaxPool: (ctx, [x], a) => {
    const w = window(req(x, ctx, "X"), a, ctx, a.ints("kernel_shape"));
    return [ctx.g.maxPool(x!, { ...w, ceilMode: a.int("ceil_mode", 0) === 1 })];
  },
  AveragePool: (ctx, [x], a) => {
    const { dilations: _d, ...w } = window(req(x, ctx, "X"), a, ctx, a.ints("kernel_shape"));
    return [ctx.g.averagePool(x!, { ...w, ceilMode: a.int("ceil_mode", 0) === 1, countIncludePad: a.int("count_include_pad", 0) === 1 })];
  },
  GlobalAveragePool: unary((g, x) => g.globalAveragePool(x)),
  ReduceMean: ({ g }, [x], a) => [g.reduceMean(x!, a.ints("axes", [...x!.shape.keys()]).map((ax) => (ax < 0 ? ax + x!.shape.length : ax)), a.int("keepdims", 1) === 1)],
  Flatten: ({ g }, [x], a) => {
    const axis = a.int("axis", 1);
    return [g.flatten(x!, axis < 0 ? axis + x!.shape.length : axis)];
  },
  Reshape: (ctx, [x], a) => [ctx.g.reshape(x!, reshapeTarget(x!, a.ints("shape"), ctx))],
  Squeeze: ({ g }, [x], a) => [g.squeeze(x!, a.ints("axes").map((ax) => (ax < 0 ? ax + x!.shape.length : ax)))],
  Unsqueeze: ({ g }, [x], a) => [g.unsqueeze(x!, a.ints("axes"))],
  Transpose: ({ g }, [x], a) => [g.transpose(x!, a.ints("perm", [...x!.shape.keys()].reverse()))],
  Concat: ({ g }, xs, a) => {
    const axis = a.int("axis");
    return [g.concat(xs as Value[], axis < 0 ? axis + xs[0]!.shape.length : axis)];
  },
  Pad: ({ g }, [x], a) => [g.pad(x!, a.ints("pads"), a.float("value", 0))],
  Identity: ({ g }, [x]) => [g.identity(x!)],
  // Dropout scales the kept activations by 1/(1-p) in training and is the identity otherwise. The mask comes
  // from a noise input drawn per step from the run's seed, so a resumed run draws the same masks.
  Dropout: (ctx, [x], a) => {
    const p = a.float("ratio", 0.5);
    if (ctx.mode !== "train" || p === 0) return [ctx.g.identity(x!)];
    if (!ctx.src.noise) throw new ModelError(`node ${ctx.node.name} (Dropout): no noise source in training mode`);
    const { g } = ctx;
    const u = ctx.src.noise(ctx.node, x!);
    const keep = g.untaped(() => g.div(g.cast(g.greater(u, p), "float32"), 1 - p));
    return [g.mul(x!, keep)];
  },
  Softmax: ({ g }, [x], a) => [g.softmax(x!, a.int("axis", -1))],
  LogSoftmax: ({ g }, [x], a) => [g.logSoftmax(x!, a.int("axis", -1))],
};

/**
 * Replays `ir` in `mode` onto `g`, with its image input `x`. Nodes are replayed in order; each node's values are
 * scoped under its name (shown as groups in Netron).
 */
export function replay(g: G, ir: ModelIR, mode: Mode, x: Value, src: ReplaySource, analysis: Analysis = analyze(ir)): ReplayResult {
  const values = new Map<string, Value>([[ir.input.name, x]]);
  const params = new Set(ir.params.map((p) => p.name));
  const buffers = new Set(ir.buffers.map((b) => b.name));
  const constants = new Map(ir.constants.map((c) => [c.name, c]));
  const lookup = (name: string, node: IrNode): Value | undefined => {
    if (name === "") return undefined;
    let v = values.get(name);
    if (v) return v;
    if (params.has(name)) v = src.param(name);
    else if (buffers.has(name)) v = src.buffer(name);
    else if (constants.has(name)) v = src.constant(constants.get(name)!);
    else throw new ModelError(`node ${node.name} (${node.op}): input '${name}' is not produced by any node`);
    values.set(name, v);
    return v;
  };
  const bufferUpdates = new Map<string, Value>();
  const foldedBias = new Map<string, Value>();
  for (const node of analysis.order) {
    const inputs = node.inputs.map((n) => lookup(n, node));
    const ctx: Ctx = { g, mode, node, analysis, src, bufferUpdates, foldedBias, inputNames: node.inputs, isBuffer: (n) => buffers.has(n) };
    let outs: Value[];
    try {
      outs = g.scoped(node.name, () => RULES[node.op](ctx, inputs, new Attrs(node.attrs, node)));
    } catch (e) {
      if (e instanceof ModelError) throw e;
      throw new ModelError(`node ${node.name} (${node.op}): ${(e as Error).message}`);
    }
    // Optional outputs (Dropout's mask, BatchNormalization's training outputs) are not replayed.
    node.outputs.forEach((name, i) => {
      if (name && outs[i]) values.set(name, outs[i]);
    });
  }
  const get = (name: string) => {
    const v = values.get(name);
    if (!v) throw new ModelError(`the model's output '${name}' is not produced by any node`);
    return v;
  };
  return { output: get(ir.output.name), scores: get(ir.scores), bufferUpdates, values };
}
