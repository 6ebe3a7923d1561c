/**
 * Node-only: model specs from files, and the artifacts that `build-graph` writes and `train --graph` reads
 * (train_step.onnx, eval_step.onnx, model.onnx, checkpoint).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { builtinModels, builtinSpec, SpecError, validateSpec, type ModelSpec } from "../nn/spec.ts";
import { buildInferenceModel, buildProgram, initialValues, planModel, type ModelInput, type Program } from "../program/program.ts";
import { importOnnxFile } from "./onnx-file.ts";
import { optimizerConfig, optimizerState, type OptimizerConfig, type OptimizerName } from "../optim/optimizer.ts";
import { decodeCheckpoint, encodeCheckpoint, type CheckpointData } from "../runtime/checkpoint.ts";
import { checkpointData, modelOfCheckpoint, stateFromCheckpoint, Trainer, type TrainingProgram, type TrainingState } from "../runtime/trainer.ts";
import { startPosition } from "../runtime/fit.ts";
import { decodeModel, ModelProto, type ModelMsg } from "../onnx/proto.ts";
import { checkLimits } from "../runtime/limits.ts";
import { readFileOrFail, UserError, writeFileAtomic } from "./files.ts";

/** A built-in model name, or a path to a spec .json file (validated against the schema and shape-checked). */
export function resolveModelSpec(arg: string): ModelSpec {
  if (arg in builtinModels) return builtinSpec(arg);
  if (!arg.endsWith(".json") && !existsSync(arg)) return builtinSpec(arg); // throws "unknown model"
  const text = new TextDecoder().decode(readFileOrFail(arg, "a model spec"));
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new SpecError(`${arg}: not valid JSON (${(e as Error).message})`);
  }
  const spec = validateSpec(parsed, arg);
  try {
    planModel(spec);
  } catch (e) {
    throw new SpecError(`${arg}: ${(e as Error).message}`);
  }
  return spec;
}

/** What trains: a built-in model or spec file (`--model`), or an ONNX file to import (`--from`). */
export interface ModelChoice {
  model: string;
  from?: string;
  requiresGrad?: string[];
  frozen?: string[];
}

/** The model a command trains; an imported one is shape-checked here, before anything is written. */
export function resolveModel(o: ModelChoice): ModelInput {
  if (!o.from) return resolveModelSpec(o.model);
  const ir = importOnnxFile(o.from, { requiresGrad: o.requiresGrad, frozen: o.frozen });
  planModel(ir);
  return ir;
}

export interface BuildOptions extends ModelChoice {
  optimizer: OptimizerName;
  lr?: number;
  weightDecay?: number;
  momentum?: number;
  nesterov?: boolean;
  betas?: [number, number];
  eps?: number;
  seed: number;
}

export interface Built {
  program: Program;
  files: Record<string, Uint8Array>;
}

/** Everything build-graph writes, computed in memory first (so a bad input writes nothing). */
export function buildArtifacts(o: BuildOptions): Built {
  const model = resolveModel(o);
  checkLimits(planModel(model));
  const opt = optimizerConfig(o.optimizer, o);
  const program = buildProgram(model, opt);
  const init = initialValues(program.plan, o.seed);
  const state = Trainer.freshState(program, init.params, init.buffers);
  // One id for the four files, so that `train --graph` can tell a directory mixing two builds. Derived from
  // the graphs (the same build gives the same bytes), not drawn at random; not from the seed, which changes
  // only the initial weights: graphs of one seed train a checkpoint of another exactly as their own.
  const source = program.plan.ir.source;
  const hash = createHash("sha256").update(program.trainStep).update(program.evalStep).update(JSON.stringify({ opt, model: source.kind === "spec" ? source.spec : o.from }));
  if (source.kind === "onnx") hash.update(source.bytes);
  const build = hash.digest("hex").slice(0, 16);
  const config = { model: o.from ?? o.model, optimizer: o.optimizer, lr: opt.lr, seed: o.seed, build_id: build };
  const files = {
    "train_step.onnx": withBuildId(program.trainStep, build),
    "eval_step.onnx": withBuildId(program.evalStep, build),
    "model.onnx": buildInferenceModel(program.plan, init.params, init.buffers, { [BUILD_KEY]: build }),
    checkpoint: encodeCheckpoint(checkpointData(program, state, { ...startPosition(o.seed), config })),
  };
  return { program, files };
}

const BUILD_KEY = "onnx_mnist.build_id";

/**
 * The model with one more metadata entry. Appended as bytes, not decoded and re-encoded: a protobuf message
 * may be followed by more of its repeated fields, while a round trip through protobufjs's plain objects writes
 * every default value explicitly (an attribute with both `i` and `f` set, which onnxruntime rejects).
 */
function withBuildId(bytes: Uint8Array, build: string): Uint8Array {
  const entry = ModelProto.encode(ModelProto.fromObject({ metadata_props: [{ key: BUILD_KEY, value: build }] })).finish();
  const out = new Uint8Array(bytes.length + entry.length);
  out.set(bytes);
  out.set(entry, bytes.length);
  return out;
}

const buildIdOf = (model: ModelMsg) => model.metadata_props.find((p) => p.key === BUILD_KEY)?.value;

export function writeArtifacts(dir: string, files: Record<string, Uint8Array>): void {
  for (const [name, bytes] of Object.entries(files)) writeFileAtomic(join(dir, name), bytes);
}

export function readCheckpointFile(path: string): CheckpointData {
  return decodeCheckpoint(readFileOrFail(path, "a checkpoint"), path);
}

/** A training program from a build-graph directory: its graphs as written, the layout from its checkpoint. */
export function loadGraphDir(dir: string): { program: TrainingProgram; checkpoint: CheckpointData; state: TrainingState } {
  const checkpoint = readCheckpointFile(join(dir, "checkpoint"));
  const trainStep = readFileOrFail(join(dir, "train_step.onnx"), "the training-step graph written by build-graph");
  const evalStep = readFileOrFail(join(dir, "eval_step.onnx"), "the evaluation graph written by build-graph");
  const plan = planModel(modelOfCheckpoint(checkpoint));
  const noise: TrainingProgram["noise"] = [];
  const build = (checkpoint.header.config as { build_id?: string }).build_id;
  for (const [name, bytes] of [["train_step.onnx", trainStep], ["eval_step.onnx", evalStep]] as const) {
    let model: ReturnType<typeof decodeModel>;
    try {
      model = decodeModel(bytes);
    } catch (e) {
      throw new UserError(`${join(dir, name)}: not an ONNX model (${(e as Error).message})`);
    }
    // The graphs and the checkpoint must describe the same model: compare the flat parameter vector's length.
    const params = model.graph.input.find((i) => i.name === "params");
    const size = params?.type.tensor_type.shape?.dim[0]?.dim_value;
    if (!params || Number(size) !== plan.paramCount)
      throw new UserError(
        `${join(dir, name)} does not match ${join(dir, "checkpoint")}: ` +
          (params ? `it takes ${Number(size)} parameters, the checkpoint's ${plan.name} has ${plan.paramCount}` : "it is not an onnx-mnist training graph (no 'params' input)") +
          "; write all four files with one build-graph run",
      );
    // Same size is not enough: an SGD graph beside an Adam checkpoint of the same model has it too.
    const id = buildIdOf(model);
    if (id !== build)
      throw new UserError(
        `${join(dir, name)} and ${join(dir, "checkpoint")} come from different build-graph runs (build ${id ?? "unknown"} and ${build ?? "unknown"}); write all four files with one build-graph run`,
      );
    // Dropout's per-step noise inputs, as the graph declares them.
    if (name === "train_step.onnx")
      for (const i of model.graph.input)
        if (i.name.startsWith("noise.")) noise.push({ name: i.name, shape: (i.type.tensor_type.shape?.dim ?? []).map((d) => (d.dim_param ? d.dim_param : Number(d.dim_value))) });
  }
  const optimizer: OptimizerConfig = checkpoint.header.optimizer;
  const stateNames = optimizerState(optimizer);
  const program: TrainingProgram = { plan, optimizer, stateNames, noise, trainStep, evalStep };
  return { program, checkpoint, state: stateFromCheckpoint(program, checkpoint, join(dir, "checkpoint")) };
}
