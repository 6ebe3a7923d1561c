/**
 * Assembles the three ModelProtos of a model: the training step (forward, loss, backward, optimizer update in
 * one graph: one session.run = one step), the evaluation graph (same inputs, no update), and the inference
 * model (weights as initializers, BatchNorm with running statistics).
 *
 * State travels as flat float32 vectors: `params` (every parameter, in spec order), `buffers` (BatchNorm
 * running statistics) and one vector per optimizer state (`adam.m`, `adam.v`, ...). Inside the graphs each
 * parameter is a named slice (`conv.0.weight`, as PyTorch's state_dict), so graphs read like the model.
 */
import { G } from "../ops/builder.ts";
import { OPSET } from "../graph/graph.ts";
import { numel, type Value } from "../graph/value.ts";
import { encodeModel } from "../onnx/proto.ts";
import { gradients } from "../autodiff/backward.ts";
import { forward, initialValues, planModel, type ModelPlan, type TensorSpec } from "../nn/model.ts";
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

export interface Program {
  plan: ModelPlan;
  optimizer: OptimizerConfig;
  /** Names of the optimizer's flat state vectors (inputs of the train step; outputs are `<name>.next`). */
  stateNames: string[];
  trainStep: Uint8Array;
  evalStep: Uint8Array;
  nodeCounts: { trainStep: number; evalStep: number };
  opTypes: { trainStep: string[]; evalStep: string[] };
}

function describe(g: G) {
  return { nodes: g.nodes.length, ops: [...new Set(g.nodes.map((n) => n.op_type))].sort() };
}

/** Builds the training-step and evaluation graphs. */
export function buildProgram(spec: ModelSpec, optimizer: OptimizerConfig): Program {
  const plan = planModel(spec);
  const stateNames = optimizerState(optimizer);
  const train = buildGraph(plan, true, optimizer);
  const evalG = buildGraph(plan, false, optimizer);
  const meta = { "onnx_mnist.model": plan.name, "onnx_mnist.spec": JSON.stringify(spec) };
  const a = describe(train);
  const b = describe(evalG);
  return {
    plan,
    optimizer,
    stateNames,
    trainStep: encodeModel(train.toModel({ docString: `onnx-mnist training step for ${plan.name}: one run = one ${optimizer.type} step`, metadata: { ...meta, "onnx_mnist.optimizer": JSON.stringify(optimizer) }, producerVersion: VERSION })),
    evalStep: encodeModel(evalG.toModel({ docString: `onnx-mnist evaluation graph for ${plan.name}`, metadata: meta, producerVersion: VERSION })),
    nodeCounts: { trainStep: a.nodes, evalStep: b.nodes },
    opTypes: { trainStep: a.ops, evalStep: b.ops },
  };
}

/**
 * One of the program's graphs. `gradOnly` stops after the backward pass and outputs the flat gradient
 * (`params.grad`) instead of updating: the gradient tests check it against finite differences.
 */
export function buildGraph(plan: ModelPlan, training: boolean, optimizer: OptimizerConfig, gradOnly = false): G {
  const g = new G(training ? `${plan.name}_train_step` : `${plan.name}_eval`);
  const x = g.input(io.input, ["N", ...plan.inputShape], "float32");
  const labels = g.input(io.labels, ["N"], "int64");
  const params = g.input(io.params, [plan.paramCount], "float32");
  const buffers = plan.bufferCount ? g.input(io.buffers, [plan.bufferCount], "float32") : undefined;
  const tape = training ? g.record() : undefined;
  const paramValues: Value[] = [];
  const bufferValues: Value[] = [];
  const slice = (vec: Value, spec: TensorSpec) => g.untaped(() => g.rename(g.reshape(g.slice(vec, [spec.offset], [spec.offset + spec.size], [0]), spec.shape), spec.name));
  const src = {
    param: (t: { name: string }) => {
      const v = slice(params, plan.params.find((p) => p.name === t.name)!);
      paramValues.push(v);
      return tape ? g.watch(v) : v;
    },
    buffer: (t: { name: string }) => {
      const v = slice(buffers!, plan.buffers.find((p) => p.name === t.name)!);
      bufferValues.push(v);
      return v;
    },
  };
  const { logits, bufferUpdates } = forward(g, plan.spec, x, src, training);
  const [loss] = g.softmaxCrossEntropy(logits, labels);
  const correct = g.untaped(() => g.reduceSum(g.cast(g.equal(g.argMax(logits, 1, false), labels), "int64"), [0], false));
  g.output(loss, io.loss);
  g.output(correct, io.correct);
  if (!training) {
    g.output(logits, io.logits);
    return g;
  }
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
    if (buffers) g.output(g.concat(bufferValues.map((b) => g.reshape(bufferUpdates.get(b.name)!, [b.shape[0] as number])), 0), io.next(io.buffers));
    upd.state.forEach((s, i) => g.output(s, io.next(stateNames[i])));
    g.output(nextStep, io.next(io.step));
  });
  return g;
}

/** The inference model: `input` [N,C,H,W] -> `logits` [N,classes], weights as named initializers. */
export function buildInferenceModel(plan: ModelPlan, params: Float32Array, buffers: Float32Array, extraMeta: Record<string, string> = {}): Uint8Array {
  const g = new G(plan.name);
  const x = g.input(io.input, ["N", ...plan.inputShape], "float32");
  const init = (list: TensorSpec[], flat: Float32Array) => (t: { name: string }) => {
    const s = list.find((p) => p.name === t.name)!;
    return g.initializer(s.name, s.shape, "float32", flat.slice(s.offset, s.offset + s.size));
  };
  const { logits } = forward(g, plan.spec, x, { param: init(plan.params, params), buffer: init(plan.buffers, buffers) }, false);
  g.output(logits, io.logits);
  const meta = { "onnx_mnist.model": plan.name, "onnx_mnist.spec": JSON.stringify(plan.spec), "onnx_mnist.params": String(plan.paramCount), ...extraMeta };
  return encodeModel(
    g.toModel({
      docString: `onnx-mnist ${plan.name}: input float32 [N,${plan.inputShape.join(",")}] pixels in [0,1] -> logits float32 [N,${plan.classes}]. Opset ${OPSET}, default domain only.`,
      metadata: meta,
      producerVersion: VERSION,
    }),
  );
}

export { initialValues, planModel };
