/**
 * Node-only: one training run from options to files. Builds (or loads, or resumes) the program, trains with
 * onnxruntime-node, and keeps the run directory current: checkpoint and model.onnx after every epoch and on
 * interruption, metrics.jsonl throughout. Ctrl-C finishes the current step, saves, and reports how to resume.
 */
import { chooseThreads } from "./threads.ts";
import { applyInitWeights } from "../interop/node.ts";
import * as ort from "onnxruntime-node";
import type { PixelConvention } from "../ir/ir.ts";
import { basename, dirname, resolve } from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { augmentSpecFor, buildProgram, initialValues, planModel } from "../program/program.ts";
import { optimizerConfig, type OptimizerName } from "../optim/optimizer.ts";
import { lrAt, type LrSchedule } from "../optim/schedule.ts";
import { Trainer, modelOfCheckpoint, stateFromCheckpoint, type TrainingProgram, type TrainingState } from "../runtime/trainer.ts";
import { fit, startPosition, type EpochInfo, type FitStatus, type Position, type StepInfo } from "../runtime/fit.ts";
import { checkpointRecord, epochRecord, runRecord, stepRecord, type MetricsRecord, type RunRecord } from "../runtime/records.ts";
import { checkLimits } from "../runtime/limits.ts";
import type { CheckpointData } from "../runtime/checkpoint.ts";
import type { ModelPlan } from "../ir/plan.ts";
import { loadMnist } from "../data/node.ts";
import { checkLabels } from "../data/dataset.ts";
import { loadGraphDir, readCheckpointFile, resolveModel } from "./artifacts.ts";
import { RunDir } from "./run-dir.ts";
import { FileError, UserError } from "./files.ts";
import { parseRunConfig, type RunConfig } from "../runtime/config.ts";
import { Augmenter, batchRng, describeAugment, type AugmentConfig } from "../augment/augment.ts";

export interface TrainOptions {
  model: string;
  /** An ONNX file to import and train instead of `model`, with what trains in it. */
  from?: string;
  requiresGrad?: string[];
  frozen?: string[];
  /** The pixels an imported model takes (default [0,1]). */
  pixels?: PixelConvention;
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
  /** Allow --out to be an existing run or non-empty directory (its metrics log starts over). */
  overwrite?: boolean;
  resume?: string;
  graph?: string;
  /** Intra-op threads; "auto" or undefined: chosen from the idle cores (src/node/threads.ts) and recorded. */
  threads?: number | "auto";
  trainLimit?: number;
  testLimit?: number;
  /** A .safetensors file of PyTorch state_dict weights to start from instead of the seeded initialisation. */
  initWeights?: string;
  /** Augment every training batch (src/augment); kept in config.json and the checkpoint, so resume keeps it. */
  augment?: AugmentConfig;
}

export interface TrainHooks {
  /** Called once the run directory and data are ready. */
  onStart?: (info: { dir: string; epochs: number; batches: number; startEpoch: number; startBatch: number; resumed: boolean; plan: TrainingProgram["plan"]; augment?: string; threads: string }) => void | Promise<void>;
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
  if (o.initWeights && (o.resume || o.graph)) throw new UserError(`--init-weights starts a new run; it does not go with ${o.resume ? "--resume" : "--graph"} (give it to build-graph instead)`);
  if (o.resume && o.graph) throw new UserError("--resume and --graph do not go together: a resumed run continues with its own graph");
  if (o.from && (o.resume || o.graph)) throw new UserError(`--from does not go with --${o.resume ? "resume" : "graph"}: ${o.resume ? "a resumed run continues with its own model" : "the graphs already hold their model"}`);
  if (o.resume && o.overwrite) throw new UserError("--resume continues a run where it stopped; --overwrite starts a new one: give one of them");
  // The run directory is held (locked) from here to the end; a full disk is reported with the last good checkpoint.
  const held: { run?: RunDir; savedStep?: number } = {};
  try {
    return await trainHeld(o, hooks, held);
  } catch (e) {
    if (e instanceof FileError && (e.code === "ENOSPC" || e.code === "EDQUOT"))
      throw new UserError(
        e.message +
          (held.savedStep !== undefined ? `; the last checkpoint is step ${held.savedStep} (${held.run!.file("checkpoint")})` : o.resume ? "; the run is as it was" : "; no checkpoint was saved"),
      );
    throw e;
  } finally {
    held.run?.unlock();
  }
}

async function trainHeld(o: TrainOptions, hooks: TrainHooks, held: { run?: RunDir; savedStep?: number }): Promise<TrainOutcome> {
  let program: TrainingProgram;
  let state: TrainingState;
  let position: Position;
  let config: RunConfig;
  if (o.resume) {
    const resumed = (held.run = RunDir.open(o.resume)); // locked first: no other trainer writes while we check
    const ckPath = resumed.file("checkpoint");
    if (!existsSync(ckPath)) throw new UserError(`${o.resume}: no checkpoint to resume from (expected ${ckPath})`);
    const ck = readCheckpointFile(ckPath);
    config = parseRunConfig(ck.header.config, ckPath);
    if (o.epochs !== undefined) config.epochs = o.epochs;
    if (o.threads !== undefined) config.threads = o.threads === "auto" ? null : o.threads;
    const model = modelOfCheckpoint(ck);
    const plan = planModel(model);
    checkLimits(plan, config.batch_size);
    checkRunIdentity(resumed, ck, plan, ckPath);
    program = buildProgram(model, ck.header.optimizer, {}, augmentSpecFor(plan, config.augment));
    state = stateFromCheckpoint(program, ck, ckPath);
    held.savedStep = ck.header.step;
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
      threads: o.threads === "auto" ? null : (o.threads ?? null),
      train_limit: o.trainLimit ?? null,
      test_limit: o.testLimit ?? null,
      init_weights: o.initWeights ? resolve(o.initWeights) : null,
      augment: o.augment ?? null,
    };
    if (o.graph) {
      const loaded = loadGraphDir(o.graph);
      checkLimits(loaded.program.plan, o.batchSize);
      program = loaded.program;
      state = loaded.state;
      config.model = loaded.program.plan.name;
      config.optimizer = loaded.program.optimizer.type;
    } else {
      const model = resolveModel(o);
      const plan = planModel(model);
      checkLimits(plan, o.batchSize);
      program = buildProgram(model, optimizerConfig(o.optimizer, o), {}, augmentSpecFor(plan, config.augment));
      const init = initialValues(program.plan, o.seed);
      if (o.initWeights) applyInitWeights(o.initWeights, program.plan, init);
      state = Trainer.freshState(program, init.params, init.buffers);
    }
    config.lr = program.optimizer.lr;
    position = startPosition(o.seed);
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
  // Auto (null) is resolved here and recorded in config.json and the checkpoints, so that --resume runs with the
  // same count: thread counts can change float rounding (onnxruntime splits long MatMul sums between threads).
  const auto = config.threads === null ? await chooseThreads() : undefined;
  if (auto) config.threads = auto.threads;
  const threads = config.threads as number;
  const threadsNote = `${threads} thread${threads > 1 ? "s" : ""}` + (auto ? ` (auto: ${auto.idle.toFixed(1)} of ${auto.cores} cores idle)` : "");
  const trainer = await Trainer.create(ort, program, state, { threads, noiseSeed: config.seed });
  const augmentConfig = config.augment ?? undefined;
  // The augmentation runs at the head of the training step; graphs from build-graph (--graph) have none, and get
  // it from a session of its own. No spinning in that session's threads: they would compete with the training
  // session's (measured: 1.12x the time without augmentation with 2 threads and no spinning; 2.5x with spinning).
  const augmenter = augmentConfig && !program.augment
    ? await Augmenter.create(ort, augmentConfig, { rows: data.train.rows, cols: data.train.cols, threads, sessionOptions: { extra: { session: { intra_op: { allow_spinning: "0" } } } } })
    : undefined;
  const seed = config.seed;
  // A new run's directory is made only now, when everything it needs has been checked.
  const run = (held.run ??= o.out ? RunDir.create(o.out, { overwrite: o.overwrite }) : RunDir.createUnique());
  const dir = run.path;
  if (o.resume) {
    const repaired = run.repairLog();
    if (repaired) process.stderr.write(`warning: ${repaired}\n`);
  }
  const batches = Math.ceil(data.train.count / batchSize);
  const t0 = performance.now();
  const time = () => (performance.now() - t0) / 1000;
  const emit = (rec: MetricsRecord) => {
    run.record(rec);
    hooks.onRecord?.(rec);
  };
  const saveState = (pos: Position) => {
    run.write("checkpoint", trainer.saveCheckpoint({ ...pos, config }));
    held.savedStep = trainer.step;
    run.write("model.onnx", trainer.exportModelForInferencing({ "onnx_mnist.step": String(trainer.step), "onnx_mnist.epoch": String(pos.epoch) }));
    run.record(checkpointRecord(trainer.step, pos)); // what a later --resume holds a checkpoint against
    run.flush();
  };
  run.write("config.json", JSON.stringify(config, null, 2) + "\n");
  if (o.resume) emit({ type: "resume", step: trainer.step, epoch: position.epoch, time: 0 });
  else {
    emit(runRecord({ config, plan: program.plan, epochs, batches, trainCount: data.train.count, testCount: data.test.count }));
    saveState(position); // so that there is always a last good checkpoint
  }
  if (basename(dirname(resolve(dir))) === "runs") run.markLatest(); // runs/latest -> the newest run
  run.flush(); // the run/resume record is on disk before anyone (the dashboard) reads the file
  await hooks.onStart?.({ dir, epochs, batches, startEpoch: position.epoch, startBatch: position.stepInEpoch, resumed: !!o.resume, plan: program.plan, augment: augmentConfig && describeAugment(augmentConfig), threads: threadsNote });

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
    augment: augmenter && ((x, n, at) => augmenter.apply(x, n, batchRng(seed, at.epoch, at.batch))),
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
  await augmenter?.release();
  return { status: result.status, dir, position: result.position, step: trainer.step, testAccuracy, lastLoss: result.lastLoss };
}

/**
 * Before a resume writes anything: the checkpoint must be this run's (the model, layer shapes and training
 * configuration recorded when the run started) and not older than a checkpoint the run has already saved.
 */
function checkRunIdentity(run: RunDir, ck: CheckpointData, plan: ModelPlan, ckPath: string): void {
  const log = run.readLog();
  const start = log.find((r) => r.type === "run") as RunRecord | undefined;
  const notOurs = (what: string) =>
    new UserError(`${ckPath} is not this run's checkpoint: ${what}; put back the run's own checkpoint, or train it as a new run (--out another directory)`);
  if (start?.model) {
    const m = start.model;
    if (m.name !== plan.name || m.params !== plan.paramCount)
      throw notOurs(`it holds model ${plan.name} (${plan.paramCount.toLocaleString("en-US")} parameters), the run trains ${m.name} (${Number(m.params).toLocaleString("en-US")})`);
    const differs = plan.layers.findIndex((l, i) => JSON.stringify(l) !== JSON.stringify(m.layers?.[i]));
    if (differs >= 0 || m.layers?.length !== plan.layers.length) {
      const i = differs >= 0 ? differs : plan.layers.length;
      const show = (l?: { name: string; type: string; output_shape: unknown[] }) => (l ? `${l.name} (${l.type}) -> [${l.output_shape.join(", ")}]` : "nothing");
      throw notOurs(`its layer ${i + 1} is ${show(plan.layers[i])}, the run's is ${show(m.layers?.[i])}`);
    }
  }
  let config = start?.config;
  if (!config) {
    try {
      config = JSON.parse(readFileSync(run.file("config.json"), "utf8"));
    } catch {
      // no record of the run's configuration to hold the checkpoint against
    }
  }
  const mine = ck.header.config;
  if (config && typeof config === "object") {
    if (typeof config.optimizer === "string" && config.optimizer !== ck.header.optimizer.type)
      throw notOurs(`it was saved by optimizer ${ck.header.optimizer.type}, the run uses ${config.optimizer}`);
    for (const key of ["model", "optimizer", "batch_size", "seed", "data", "train_limit"] as const)
      if (key in config && key in mine && JSON.stringify(config[key]) !== JSON.stringify(mine[key]))
        throw notOurs(`its ${key} is ${JSON.stringify(mine[key])}, the run's is ${JSON.stringify(config[key])}`);
  }
  // Every save is logged after it happens (older runs: their "end" records), so the newest logged one is a floor.
  let saved = -1;
  for (const r of log)
    if ((r.type === "checkpoint" || (r.type === "end" && (r.status === "completed" || r.status === "interrupted"))) && typeof r.step === "number") saved = Math.max(saved, r.step);
  if (ck.header.step < saved)
    throw new UserError(`${ckPath} is at step ${ck.header.step}, but this run already saved step ${saved} (metrics.jsonl): it is an older checkpoint or another run's; put back the newest one`);
}
