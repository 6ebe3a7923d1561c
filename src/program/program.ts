/**
 * Assembles the three ModelProtos of a model: the training step (forward, loss, backward, optimizer update in
 * one graph: one session.run = one step), the evaluation graph (same inputs, no update), and the inference
 * model (weights as initializers, BatchNorm with running statistics).
 *
 * State travels as flat float32 vectors: `params` (every parameter, in spec order), `buffers` (BatchNorm
 * running statistics) and one vector per optimizer state (`adam.m`, `adam.v`, ...). Inside the graphs each
 * parameter is a named slice (`conv.0.weight`, as PyTorch's state_dict), so graphs read like the model.
 */
import { G, type Lowering } from "../ops/builder.ts";
import { OPSET } from "../graph/graph.ts";
import { numel, type Dim, type Value } from "../graph/value.ts";
import { augmentInto, type AugmentConfig } from "../augment/augment.ts";
import { MNIST_SIDE } from "../data/dataset.ts";
import { encodeModel } from "../onnx/proto.ts";
import { gradients } from "../autodiff/backward.ts";
import type { ModelIR, IrConstant, TensorSpec } from "../ir/ir.ts";
import { initialValues, planModel as planIR, type ModelPlan } from "../ir/plan.ts";
import { replay, type ReplaySource } from "../ir/replay.ts";
import { lowerSpec } from "../nn/lower.ts";
import type { ModelSpec } from "../nn/spec.ts";
import { emitUpdate, optimizerState, type OptimizerConfig } from "../optim/optimizer.ts";

export const VERSION = "0.1.0";

/** Input and output names of the training-step and evaluation graphs. */
export const io = {
  input: "input",
  labels: "labels",
  params: "params",
  buffers: "buffers",
  step: "step",
  lr: "lr",
  loss: "loss",
  correct: "correct",
  logits: "logits",
  next: (name: string) => `${name}.next`,
} as const;

/**
 * The lowerings the training step is built with unless told otherwise (see Lowering in src/ops/builder.ts for
 * what each switch does). The evaluation graph and model.onnx compute no gradients and stay at opset 17.
 * Measured in the whole mycnn step (batch 128, 2 threads, interleaved, machine shared; npm run bench:levers):
 * - col2im on: 0.89-0.95x. It sums the input gradients in another order: float rounding differs from the
 *   flipped-weight Conv's (~1e-7 relative), so runs are not bit-identical to those of earlier versions.
 * - blockPool off: 1.08-1.09x (bit-identical results either way).
 */
export const DEFAULT_LOWERING: Readonly<Lowering> = { col2im: true, blockPool: false };

/** A per-step noise input of the training step (uniform [0,1), one per Dropout node), fed by the Trainer. */
export interface NoiseInput {
  name: string;
  shape: Dim[];
}

export interface Program {
  plan: ModelPlan;
  optimizer: OptimizerConfig;
  /** The lowerings the training step was built with. */
  lowering: Lowering;
  /** Names of the optimizer's flat state vectors (inputs of the train step; outputs are `<name>.next`). */
  stateNames: string[];
  /** Extra inputs of the training step, fed per step (empty for models without Dropout). */
  noise: NoiseInput[];
  /** The data augmentation at the head of the training step (src/augment), fed per step by the Trainer; or null. */
  augment: AugmentSpec | null;
  trainStep: Uint8Array;
  evalStep: Uint8Array;
  nodeCounts: { trainStep: number; evalStep: number };
  /** The default-domain opset of each graph (the training step's is 18 with the col2im lowering). */
  opsets: { trainStep: number; evalStep: number };
  opTypes: { trainStep: string[]; evalStep: string[] };
}

/** Augmentation in the training step: its configuration and the images' rows and columns. */
export interface AugmentSpec {
  config: AugmentConfig;
  rows: number;
  cols: number;
}

/**
 * Augmentation for a model's training step on the 28x28 images that onnx-mnist trains on (MNIST-format data), in
 * whatever layout of their pixels the model takes; null for none, or for a model that takes another size (which
 * that data cannot feed: refused with its own message where the data is read).
 */
export function augmentSpecFor(plan: ModelPlan, config: AugmentConfig | null | undefined): AugmentSpec | null {
  const px = plan.inputShape.reduce((a, b) => a * b, 1);
  return config && px === MNIST_SIDE * MNIST_SIDE ? { config, rows: MNIST_SIDE, cols: MNIST_SIDE } : null;
}

/** A model as a spec (lowered here) or as IR. */
export type ModelInput = ModelSpec | ModelIR;

export function toIR(model: ModelInput): ModelIR {
  return "layers" in model ? lowerSpec(model) : model;
}

function describe(g: G) {
  return { nodes: g.nodes.length, ops: [...new Set(g.nodes.map((n) => n.op_type))].sort() };
}

/** What a graph records about the model it was built from (the spec, or the imported model's name). */
function modelMetadata(plan: ModelPlan): Record<string, string> {
  const src = plan.ir.source;
  return { "onnx_mnist.model": plan.name, ...(src.kind === "spec" ? { "onnx_mnist.spec": JSON.stringify(src.spec) } : { "onnx_mnist.imported": "true" }) };
}

/**
 * Builds the training-step and evaluation graphs; `lowering` overrides DEFAULT_LOWERING's switches. With
 * `augment`, the training step distorts its batch first, with exactly the numbers of a separate augmentation
 * session (src/augment's Augmenter) but without its run per step (whole epochs measured 0.90-0.92x of that time).
 */
export function buildProgram(model: ModelInput, optimizer: OptimizerConfig, lowering: Partial<Lowering> = {}, augment: AugmentSpec | null = null): Program {
  const plan = planIR(toIR(model));
  const stateNames = optimizerState(optimizer);
  const noise: NoiseInput[] = [];
  const lowered = { ...DEFAULT_LOWERING, ...lowering };
  const train = buildGraph(plan, true, optimizer, false, noise, lowered, augment);
  const evalG = buildGraph(plan, false, optimizer);
  const meta = modelMetadata(plan);
  const a = describe(train);
  const b = describe(evalG);
  return {
    plan,
    optimizer,
    lowering: lowered,
    stateNames,
    noise,
    augment,
    trainStep: encodeModel(train.toModel({ docString: `onnx-mnist training step for ${plan.name}: one run = one ${optimizer.type} step`, metadata: { ...meta, "onnx_mnist.optimizer": JSON.stringify(optimizer) }, producerVersion: VERSION })),
    evalStep: encodeModel(evalG.toModel({ docString: `onnx-mnist evaluation graph for ${plan.name}`, metadata: meta, producerVersion: VERSION })),
    nodeCounts: { trainStep: a.nodes, evalStep: b.nodes },
    opsets: { trainStep: train.opset, evalStep: evalG.opset },
    opTypes: { trainStep: a.ops, evalStep: b.ops },
  };
}

/**
 * The training and evaluation graphs take MNIST's pixels in [0,1]; a model trained on another convention
 * (0-255, mean/std normalised, inverted) gets them mapped into it first. The inference model keeps the
 * model's own convention.
 */
function pixelsIn(g: G, x: Value, c: ModelIR["pixels"]): Value {
  if (!c || (c.scale === 1 && c.mean === 0 && c.std === 1 && !c.invert)) return x;
  return g.untaped(() => {
    let p = c.invert ? g.sub(1, x) : x;
    if (c.scale !== 1) p = g.mul(p, c.scale);
    if (c.mean !== 0) p = g.sub(p, c.mean);
    return c.std === 1 ? p : g.div(p, c.std);
  });
}

/** IR constants as initializers, keeping their names (frozen weights stay recognisable in Netron). */
function constantSource(g: G): (c: IrConstant) => Value {
  return (c) => g.initializer(c.name, c.shape, c.dtype, c.data);
}

/**
 * One of the program's graphs. `gradOnly` stops after the backward pass and outputs the flat gradient
 * (`params.grad`) instead of updating: the gradient tests check it against finite differences. `noise`
 * collects the training step's per-step noise inputs. `lowering` applies to training graphs only.
 */
export function buildGraph(plan: ModelPlan, training: boolean, optimizer: OptimizerConfig, gradOnly = false, noise: NoiseInput[] = [], lowering: Partial<Lowering> = DEFAULT_LOWERING, augment: AugmentSpec | null = null): G {
  const g = training ? new G(`${plan.name}_train_step`, lowering) : new G(`${plan.name}_eval`);
  let x = g.input(io.input, ["N", ...plan.inputShape], "float32");
  if (training && augment) {
    // One grey image per sample in any layout of its pixels: augmented as [N, 1, rows, cols], then laid out again.
    const { rows, cols } = augment;
    if (rows * cols !== plan.inputShape.reduce((a, b) => a * b, 1)) throw new RangeError(`cannot augment ${rows}x${cols} images for a model that takes [${plan.inputShape.join(", ")}]`);
    x = g.untaped(() => g.reshape(augmentInto(g, g.reshape(x, ["N", 1, rows, cols]), augment.config, rows, cols), ["N", ...plan.inputShape]));
  }
  const labels = g.input(io.labels, ["N"], "int64");
  const params = g.input(io.params, [plan.paramCount], "float32");
  const buffers = plan.bufferCount ? g.input(io.buffers, [plan.bufferCount], "float32") : undefined;
  const tape = training ? g.record() : undefined;
  const paramValues: Value[] = [];
  const bufferValues: Value[] = [];
  const slice = (vec: Value, spec: TensorSpec) => g.untaped(() => g.rename(g.reshape(g.slice(vec, [spec.offset], [spec.offset + spec.size], [0]), spec.shape), spec.name));
  const byName = (list: TensorSpec[], name: string) => list.find((p) => p.name === name)!;
  const src: ReplaySource = {
    param: (name) => {
      const v = slice(params, byName(plan.params, name));
      paramValues.push(v);
      return tape ? g.watch(v) : v;
    },
    buffer: (name) => {
      const v = slice(buffers!, byName(plan.buffers, name));
      bufferValues.push(v);
      return v;
    },
    constant: constantSource(g),
    noise: (node, like) => {
      const name = `noise.${node.name}`;
      noise.push({ name, shape: [...like.shape] });
      return g.input(name, like.shape, "float32");
    },
  };
  const { scores, bufferUpdates } = replay(g, plan.ir, training ? "train" : "eval", pixelsIn(g, x, plan.ir.pixels), src);
  const [loss] = g.softmaxCrossEntropy(scores, labels);
  const correct = g.untaped(() => g.reduceSum(g.cast(g.equal(g.argMax(scores, 1, false), labels), "int64"), [0], false));
  g.output(loss, io.loss);
  g.output(correct, io.correct);
  if (!training) {
    g.output(scores, io.logits);
    return g;
  }
  // Every parameter and buffer is in the flat vectors even if no node reads it (its gradient is then zero),
  // in the flat vectors' order, whatever order the replay met them in.
  for (const p of plan.params) if (!paramValues.some((v) => v.name === p.name)) src.param(p.name);
  for (const b of plan.buffers) if (!bufferValues.some((v) => v.name === b.name)) src.buffer(b.name);
  paramValues.sort((a, b) => byName(plan.params, a.name).offset - byName(plan.params, b.name).offset);
  bufferValues.sort((a, b) => byName(plan.buffers, a.name).offset - byName(plan.buffers, b.name).offset);
  const grads = gradients(g, loss, paramValues);
  g.untaped(() => {
    const flatGrad = g.concat(paramValues.map((p) => g.reshape(grads.get(p.name)!, [numel(p.shape)])), 0);
    if (gradOnly) {
      g.output(flatGrad, `${io.params}.grad`);
      return;
    }
    const stateNames = optimizerState(optimizer);
    const state = stateNames.map((n) => g.input(n, [plan.paramCount], "float32"));
    const step = g.input(io.step, [], "int64");
    const lr = g.input(io.lr, [], "float32");
    const nextStep = g.add(step, g.constant([1], [], "int64"));
    const t = g.cast(nextStep, "float32");
    const upd = emitUpdate(g, optimizer, { params, grads: flatGrad, state, t, lr });
    g.output(upd.params, io.next(io.params));
    // A buffer the model never updates (a frozen BatchNorm) carries over unchanged.
    if (buffers) g.output(g.concat(bufferValues.map((b) => g.reshape(bufferUpdates.get(b.name) ?? b, [b.shape[0] as number])), 0), io.next(io.buffers));
    upd.state.forEach((s, i) => g.output(s, io.next(stateNames[i])));
    g.output(nextStep, io.next(io.step));
  });
  return g;
}

/**
 * The inference model: the model's own input and output names (`input` -> `logits` for specs), weights as
 * named initializers, BatchNorm with running statistics, Dropout off, opset 17.
 */
export function buildInferenceModel(plan: ModelPlan, params: Float32Array, buffers: Float32Array, extraMeta: Record<string, string> = {}): Uint8Array {
  const { ir } = plan;
  const g = new G(plan.name);
  const x = g.input(ir.input.name, ["N", ...plan.inputShape], "float32");
  const init = (list: TensorSpec[], flat: Float32Array) => (name: string) => {
    const s = list.find((p) => p.name === name)!;
    return g.initializer(s.name, s.shape, "float32", flat.slice(s.offset, s.offset + s.size));
  };
  const { output } = replay(g, ir, "inference", x, { param: init(plan.params, params), buffer: init(plan.buffers, buffers), constant: constantSource(g) });
  g.output(output, ir.output.name);
  const meta = { ...modelMetadata(plan), "onnx_mnist.params": String(plan.paramCount), "onnx_mnist.classes": String(plan.classes), "onnx_mnist.output": ir.output.kind, ...(ir.pixels ? { "onnx_mnist.pixels": JSON.stringify(ir.pixels) } : {}), ...extraMeta };
  const what = ir.output.kind === "logits" ? "logits" : ir.output.kind;
  const convention = ir.source.kind === "spec" ? " pixels in [0,1]" : "";
  return encodeModel(
    g.toModel({
      docString: `onnx-mnist ${plan.name}: input ${ir.input.name} float32 [N,${plan.inputShape.join(",")}]${convention} -> ${ir.output.name}: ${what} float32 [N,${plan.classes}]. Opset ${OPSET}, default domain only.`,
      metadata: meta,
      producerVersion: VERSION,
    }),
  );
}

/** The plan of a model given as a spec or IR (shapes checked end to end). */
export function planModel(model: ModelInput): ModelPlan {
  return planIR(toIR(model));
}

export { initialValues };
export type { ModelPlan };
