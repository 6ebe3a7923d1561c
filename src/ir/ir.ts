/**
 * The model IR: the one description of a model, whatever it came from. It is essentially an ONNX graph (nodes
 * in topological order, default-domain op types and attributes) whose initializers are sorted into trainable
 * parameters, buffers (BatchNorm running statistics) and constants, with one image input and one class-score
 * output. Two front ends compile into it: `lowerSpec` (src/nn/lower.ts, our JSON spec) and `importOnnx`
 * (src/ir/import.ts, any supported ONNX classifier). The training, evaluation and inference graphs are built by
 * replaying it in a mode (src/ir/replay.ts), with one rule per op type.
 */
import type { Dim, DType } from "../graph/value.ts";
import type { TypedData } from "../onnx/tensor.ts";
import type { ModelSpec } from "../nn/spec.ts";

/**
 * The op types the IR holds: what the replay table knows. Shape-computing chains (Shape, Gather, Cast, ...)
 * are folded into constants by the importer and never reach the IR.
 */
export const IR_OPS = [
  "Add",
  "AveragePool",
  "BatchNormalization",
  "Clip",
  "Concat",
  "Conv",
  "Div",
  "Dropout",
  "Elu",
  "Flatten",
  "Gemm",
  "GlobalAveragePool",
  "HardSigmoid",
  "HardSwish",
  "Identity",
  "LeakyRelu",
  "LogSoftmax",
  "MatMul",
  "MaxPool",
  "Mul",
  "Pad",
  "PRelu",
  "ReduceMean",
  "Relu",
  "Reshape",
  "Sigmoid",
  "Softmax",
  "Squeeze",
  "Sub",
  "Tanh",
  "Transpose",
  "Unsqueeze",
] as const;
export type IrOp = (typeof IR_OPS)[number];

/** Attribute values as plain JSON (the replay rule of each op knows which are floats and which are ints). */
export type IrAttr = number | string | number[];

export interface IrNode {
  /** Unique and readable (the ONNX node name, or `<op>_<k>`); errors name it. */
  name: string;
  op: IrOp;
  /** Value names; "" for an omitted optional input. Inputs that are constants name an `IrConstant`. */
  inputs: string[];
  outputs: string[];
  attrs: Record<string, IrAttr>;
}

/** How a parameter or buffer gets its initial value. */
export type Init =
  | { kind: "uniform"; bound: number } // PyTorch's default for Conv/Linear weights and biases
  | { kind: "fill"; value: number }
  | { kind: "data"; data: Float32Array }; // an imported model's own values

/** A trainable parameter or a buffer: a named float32 tensor, placed in a flat vector. */
export interface TensorSpec {
  name: string;
  shape: number[];
  size: number;
  /** Offset in the flat vector that holds all tensors of its kind. */
  offset: number;
  init: Init;
}

/** A constant tensor (frozen weights, shapes, scalars): stays an initializer in every mode. */
export interface IrConstant {
  name: string;
  dtype: DType;
  shape: number[];
  data: TypedData;
}

/** What the model's output holds. The loss is always taken on `scores` (logits or log-probabilities). */
export type OutputKind = "logits" | "probabilities" | "log-probabilities";

/** How a model expects its pixels (src/image/convention.ts); our own models take MNIST's p in [0,1]. */
import type { PixelConvention } from "../image/convention.ts";
export type { PixelConvention };

/** Choices made when importing an ONNX model (stored with it, so a checkpoint re-imports identically). */
export interface ImportOptions {
  /** The pixel convention the model was trained with (default: [0,1], as ours). */
  pixels?: PixelConvention;
  /** Globs over initializer names: only these train (default: every weight/bias of a trainable op). */
  requiresGrad?: string[];
  /** Globs over initializer names that stay constant. */
  frozen?: string[];
}

/** Where an IR came from: enough to rebuild it exactly (a checkpoint stores this). */
export type ModelSource = { kind: "spec"; spec: ModelSpec } | { kind: "onnx"; options: ImportOptions; bytes: Uint8Array };

export interface ModelIR {
  name: string;
  /** The image input: its graph name and shape with a symbolic batch ("N"), e.g. ["N", 1, 28, 28] or ["N", 784]. */
  input: { name: string; shape: Dim[] };
  /** The model's output value (what inference returns) and what it holds. */
  output: { name: string; kind: OutputKind };
  /**
   * The value the loss is taken on: the output itself when it holds logits, the input of a trailing
   * Softmax/LogSoftmax otherwise (what PyTorch's CrossEntropyLoss / NLLLoss would see).
   */
  scores: string;
  classes: number;
  /** The model's pixel convention; the training and evaluation graphs map [0,1] images into it. */
  pixels?: PixelConvention;
  nodes: IrNode[];
  params: TensorSpec[];
  buffers: TensorSpec[];
  constants: IrConstant[];
  source: ModelSource;
}

export class ModelError extends Error {
  override name = "ModelError";
}
