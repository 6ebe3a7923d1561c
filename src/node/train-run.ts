/**
 * Node-only: one training run from options to files. Builds (or loads, or resumes) the program, trains with
 * onnxruntime-node, and keeps the run directory current: checkpoint and model.onnx after every epoch and on
 * interruption, metrics.jsonl throughout. Ctrl-C finishes the current step, saves, and reports how to resume.
 */
import * as ort from "onnxruntime-node";
import { basename, dirname, join, resolve } from "node:path";
import { existsSync } from "node:fs";
import { buildProgram, initialValues } from "../program/program.ts";
import { optimizerConfig, type OptimizerName } from "../optim/optimizer.ts";
import { lrAt, type LrSchedule } from "../optim/schedule.ts";
import { Trainer, modelOfCheckpoint, stateFromCheckpoint, type TrainingProgram, type TrainingState } from "../runtime/trainer.ts";
import { fit, startPosition, type EpochInfo, type FitStatus, type Position, type StepInfo } from "../runtime/fit.ts";
import { epochRecord, runRecord, stepRecord, type MetricsRecord } from "../runtime/records.ts";
import { loadMnist } from "../data/node.ts";
import { checkLabels } from "../data/dataset.ts";
import { loadGraphDir, readCheckpointFile, resolveModel } from "./artifacts.ts";
import { defaultRunPath, RunDir } from "./run-dir.ts";
import { UserError } from "./files.ts";
import { parseRunConfig, type RunConfig } from "../runtime/config.ts";

export interface TrainOptions {
  model: string;
  /** An ONNX file to import and train instead of `model`, with what trains in it. */
  from?: string;
  requiresGrad?: string[];
  frozen?: string[];
  epochs?: number;
  batchSize: number;
  optimizer: OptimizerName;
  lr?: number;
  weightDecay?: number;
  momentum?: number;
  nesterov?: boolean;
  lrSchedule?: LrSchedule;
  seed: number;
  data?: string;
  out?: string;
  resume?: string;
  graph?: string;
  threads?: number;
  trainLimit?: number;
  testLimit?: number;
}

export interface TrainHooks {
  /** Called once the run directory and data are ready. */
  onStart?: (info: { dir: string; epochs: number; batches: number; startEpoch: number; startBatch: number; resumed: boolean; plan: TrainingProgram["plan"] }) => void | Promise<void>;
  onStep?: (s: StepInfo, imagesPerSecond: number) => void;
  onEpoch?: (e: EpochInfo, epochs: number) => void;
  /** Every record also appended to metrics.jsonl (for the live dashboard). */
  onRecord?: (rec: object) => void;
  /** Called after each epoch's files are written (e.g. report.html). */
  afterEpochFiles?: (dir: string) => void | Promise<void>;
}

export interface TrainOutcome {
  status: FitStatus;
  dir: string;
  position: Position;
  step: number;
  testAccuracy?: number;
  lastLoss: number;
}

/** Set by a SIGINT handler: training stops after the current step. */
export const stopSignal = { requested: false };

export async function trainRun(o: TrainOptions, hooks: TrainHooks = {}): Promise<TrainOutcome> {
  if (o.resume && o.graph) throw new UserError("--resume and --graph do not go together: a resumed run continues with its own graph");
  if (o.from && (o.resume || o.graph)) throw new UserError(`--from does not go with --${o.resume ? "resume" : "graph"}: ${o.resume ? "a resumed run continues with its own model" : "the graphs already hold their model"}`);
  let program: TrainingProgram;
  let state: TrainingState;
  let position: Position;
  let config: RunConfig;
  let dir: string;
  if (o.resume) {
    dir = o.resume;
    const ckPath = join(dir, "checkpoint");
    if (!existsSync(ckPath)) throw new UserError(`${dir}: no checkpoint to resume from (expected ${ckPath})`);
    const ck = readCheckpointFile(ckPath);
    config = parseRunConfig(ck.header.config, ckPath);
    if (o.epochs !== undefined) config.epochs = o.epochs;
    if (o.threads !== undefined) config.threads = o.threads;
    const built = buildProgram(modelOfCheckpoint(ck), ck.header.optimizer);
    program = built;
    state = stateFromCheckpoint(program, ck, ckPath);
    position = { epoch: ck.header.epoch, stepInEpoch: ck.header.stepInEpoch, epochRng: ck.header.epochRng, epochStats: ck.header.epochStats ?? { lossSum: 0, correct: 0, seen: 0 } };
  } else {
    config = {
      model: o.from ? resolve(o.from) : o.model,
      epochs: o.epochs ?? 3,
      batch_size: o.batchSize,
      optimizer: o.optimizer,
      lr: o.lr ?? 0, // set from the optimizer below
      weight_decay: o.weightDecay,
      momentum: o.momentum,
      nesterov: o.nesterov,
      lr_schedule: o.lrSchedule ?? "constant",
      seed: o.seed,
      data: o.data ? resolve(o.data) : null,
      graph: o.graph ? resolve(o.graph) : null,
      threads: o.threads ?? null,
      train_limit: o.trainLimit ?? null,
      test_limit: o.testLimit ?? null,
    };
    if (o.graph) {
      const loaded = loadGraphDir(o.graph);
      program = loaded.program;
      state = loaded.state;
      config.model = loaded.program.plan.name;
      config.optimizer = loaded.program.optimizer.type;
    } else {
      program = buildProgram(resolveModel(o), optimizerConfig(o.optimizer, o));
      const init = initialValues(program.plan, o.seed);
      state = Trainer.freshState(program, init.params, init.buffers);
    }
    config.lr = program.optimizer.lr;
    position = startPosition(o.seed);
    dir = o.out ?? defaultRunPath();
  }
  const epochs = config.epochs;
  const batchSize = config.batch_size;
  const data = loadMnist(config.data ?? undefined, { trainLimit: config.train_limit ?? undefined, testLimit: config.test_limit ?? undefined });
  checkLabels(data.train, program.plan.classes, "training");
  checkLabels(data.test, program.plan.classes, "test");
  // One grey image per sample, in any layout of its pixels ([1,H,W], [H,W], [H*W], [H,W,1]).
  const dims = program.plan.inputShape;
  const channels = dims.length === 3 ? (dims[0] === 1 || dims[2] === 1 ? 1 : dims[0]) : 1;
  if (channels !== 1 || dims.reduce((a, b) => a * b, 1) !== data.train.rows * data.train.cols)
    throw new UserError(`the model takes input [${dims.join(", ")}], the data has [1, ${data.train.rows}, ${data.train.cols}] images: set "input": [1, ${data.train.rows}, ${data.train.cols}] in the spec`);
  const threads = config.threads ?? undefined;
  const trainer = await Trainer.create(ort, program, state, { threads, noiseSeed: config.seed });
  const run = new RunDir(dir);
  const batches = Math.ceil(data.train.count / batchSize);
  const t0 = performance.now();
  const time = () => (performance.now() - t0) / 1000;
  const emit = (rec: MetricsRecord) => {
    run.record(rec);
    hooks.onRecord?.(rec);
  };
  const saveState = (pos: Position) => {
    run.write("checkpoint", trainer.saveCheckpoint({ ...pos, config }));
    run.write("model.onnx", trainer.exportModelForInferencing({ "onnx_mnist.step": String(trainer.step), "onnx_mnist.epoch": String(pos.epoch) }));
  };
  run.write("config.json", JSON.stringify(config, null, 2) + "\n");
  if (o.resume) emit({ type: "resume", step: trainer.step, epoch: position.epoch, time: 0 });
  else {
    emit(runRecord({ config, plan: program.plan, epochs, batches, trainCount: data.train.count, testCount: data.test.count }));
    saveState(position); // so that there is always a last good checkpoint
  }
  if (basename(dirname(resolve(dir))) === "runs") run.markLatest(); // runs/latest -> the newest run
  run.flush(); // the run/resume record is on disk before anyone (the dashboard) reads the file
  await hooks.onStart?.({ dir, epochs, batches, startEpoch: position.epoch, startBatch: position.stepInEpoch, resumed: !!o.resume, plan: program.plan });

  // Throughput: an exponential moving average of each step's images per second (evaluation excluded).
  let lastStepEnd = performance.now();
  let ips = 0;
  let testAccuracy: number | undefined;
  const schedule = config.lr_schedule;
  const lr0 = config.lr;
  const result = await fit(trainer, data.train, data.test, {
    epochs,
    batchSize,
    position,
    lrAt: (t) => lrAt(schedule, lr0, t, epochs * batches),
    shouldStop: () => stopSignal.requested,
    onStep: (s) => {
      const now = performance.now();
      const rate = (s.size * 1000) / Math.max(now - lastStepEnd, 1e-3);
      ips = ips ? 0.9 * ips + 0.1 * rate : rate;
      lastStepEnd = now;
      emit(stepRecord(s, ips, time()));
      hooks.onStep?.(s, ips);
    },
    onEpoch: async (e, pos) => {
      testAccuracy = e.test.accuracy;
      emit(epochRecord(e, data.test, time()));
      run.flush();
      saveState(pos);
      hooks.onEpoch?.(e, epochs);
      await hooks.afterEpochFiles?.(dir);
      lastStepEnd = performance.now();
    },
  });
  if (result.status === "interrupted") saveState(result.position);
  emit({ type: "end", status: result.status, step: trainer.step, time: time() });
  run.flush();
  if (result.status !== "diverged") await hooks.afterEpochFiles?.(dir);
  await trainer.release();
  return { status: result.status, dir, position: result.position, step: trainer.step, testAccuracy, lastLoss: result.lastLoss };
}
