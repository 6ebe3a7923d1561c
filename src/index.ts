/**
 * `import ... from "onnx-mnist"`: the browser-safe library. Everything here runs in Node and in browsers alike
 * (no node:* module, no onnxruntime-node): the `ort` module (onnxruntime-node or onnxruntime-web) is passed in.
 * Node-only additions (IDX files, run directories, servers) are in "onnx-mnist/node" (src/node/index.ts).
 * test/package.test.ts bundles this file for the browser and checks that the README documents every export.
 */

// The graph builder and reverse-mode autodiff.
export { Graph, OPSET, IR_VERSION } from "./graph/graph.ts";
export type { Value, DType, Dim, Shape } from "./graph/value.ts";
export { G } from "./ops/builder.ts";
export { defineOp, type OpDef } from "./ops/op.ts";
export { gradients } from "./autodiff/backward.ts";
export { encodeModel, decodeModel } from "./onnx/proto.ts";

// Models, optimizers and the three ONNX programs (train step, evaluation, inference).
export { builtinModels, builtinSpec, validateSpec, SpecError, type ModelSpec, type LayerSpec } from "./nn/spec.ts";
export { planModel, initialValues, type ModelPlan, type ModelInput } from "./program/program.ts";
export type { ModelIR } from "./ir/ir.ts";
export { optimizerConfig, optimizerNames, type OptimizerConfig, type OptimizerName } from "./optim/optimizer.ts";
export { lrAt, lrSchedules, type LrSchedule } from "./optim/schedule.ts";
export { buildProgram, buildInferenceModel, DEFAULT_LOWERING, augmentSpecFor, type Program, type AugmentSpec } from "./program/program.ts";
export { AUGMENT_PRESET, AUGMENT_NONE, checkAugmentConfig, describeAugment, type AugmentConfig } from "./augment/augment.ts";
export type { Lowering } from "./ops/builder.ts";

// Training: the Trainer over any `ort` module, the epoch loop, checkpoints.
export { Trainer, type Ort, type TrainingProgram, type TrainingState, type TrainerOptions, type StepResult, type CheckpointPosition, type BatchPosition } from "./runtime/trainer.ts";
export { fit, evaluate, logitsOf, startPosition, type FitOptions, type FitStatus, type StepInfo, type EpochInfo, type EvalResult, type Position, type Predictor } from "./runtime/fit.ts";
export { encodeCheckpoint, decodeCheckpoint, CheckpointError, type CheckpointData } from "./runtime/checkpoint.ts";

// Data from bytes (IDX files, however they were fetched) and MNIST-style preprocessing of drawings and photos.
export { parseIdx, DataError, type Idx } from "./data/idx.ts";
export { makeSplit, limitSplit, type Split, type MnistData } from "./data/dataset.ts";
export { toMnistInput, type MnistInput, type PreprocessOptions } from "./image/preprocess.ts";
export { classify, softmax, type Classification } from "./image/classify.ts";
