/**
 * The records of metrics.jsonl (and of the dashboard's live stream): one JSON object per line.
 *   {"type":"run", ...}    once, at the start: config, model summary, sizes
 *   {"type":"resume", ...} when a run is resumed
 *   {"type":"step", ...}   every optimizer step: loss, lr, throughput
 *   {"type":"epoch", ...}  every epoch: train/test loss and accuracy, confusion matrix, per-class accuracy,
 *                          the most confident mistakes with their pixels (base64 of 28x28 uint8)
 *   {"type":"checkpoint", ...} after each save of the checkpoint: its step and position (only in the file, not
 *                          streamed: what `train --resume` holds a checkpoint against, so steps never go back)
 *   {"type":"end", ...}    status completed | interrupted | diverged
 */
import type { RunConfig } from "./config.ts";
import type { LayerSummary, ModelPlan } from "../ir/plan.ts";
import type { EpochInfo, Split, StepInfo } from "./fit.ts";

export const METRICS_VERSION = 1;

export interface RunRecord {
  type: "run";
  version: number;
  started: string;
  config: Partial<RunConfig>;
  model: { name: string; params: number; layers: LayerSummary[] };
  epochs: number;
  steps_per_epoch: number;
  train_count: number;
  test_count: number;
}

export interface ResumeRecord {
  type: "resume";
  step: number;
  epoch: number; // completed epochs
  time: number;
}

export interface StepRecord {
  type: "step";
  step: number; // global, 1-based
  epoch: number; // 1-based
  loss: number;
  lr: number;
  images_per_s: number;
  time: number; // seconds since the (re)start
}

export interface Mistake {
  index: number;
  label: number;
  prediction: number;
  confidence: number;
  pixels: string; // base64 of 28x28 uint8, row-major
}

export interface EpochRecord {
  type: "epoch";
  epoch: number;
  step: number;
  train_loss: number;
  train_accuracy: number;
  test_loss: number;
  test_accuracy: number; // fraction
  seconds: number;
  time: number;
  confusion: number[][]; // [true][predicted]
  per_class_accuracy: number[];
  misclassified: Mistake[];
}

export interface EndRecord {
  type: "end";
  status: "completed" | "interrupted" | "diverged";
  step: number;
  time: number;
}

export type MetricsRecord = RunRecord | ResumeRecord | StepRecord | EpochRecord | EndRecord;

/** Written to the file only; readers of the stream (the dashboard) skip record types they do not show. */
export interface CheckpointRecord {
  type: "checkpoint";
  step: number;
  epoch: number; // completed epochs
  stepInEpoch: number;
}

export function checkpointRecord(step: number, pos: { epoch: number; stepInEpoch: number }): CheckpointRecord {
  return { type: "checkpoint", step, epoch: pos.epoch, stepInEpoch: pos.stepInEpoch };
}


export function runRecord(o: { config: Partial<RunConfig>; plan: ModelPlan; epochs: number; batches: number; trainCount: number; testCount: number; started?: string }): RunRecord {
  return {
    type: "run",
    version: METRICS_VERSION,
    started: o.started ?? new Date().toISOString(),
    config: o.config,
    model: { name: o.plan.name, params: o.plan.paramCount, layers: o.plan.layers },
    epochs: o.epochs,
    steps_per_epoch: o.batches,
    train_count: o.trainCount,
    test_count: o.testCount,
  };
}

export function stepRecord(s: StepInfo, imagesPerSecond: number, time: number): StepRecord {
  return { type: "step", step: s.step, epoch: s.epoch, loss: s.loss, lr: s.lr, images_per_s: round(imagesPerSecond, 1), time: round(time, 3) };
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}

export function epochRecord(e: EpochInfo, test: Split, time: number): EpochRecord {
  const px = test.rows * test.cols;
  return {
    type: "epoch",
    epoch: e.epoch,
    step: e.step,
    train_loss: e.trainLoss,
    train_accuracy: e.trainAccuracy,
    test_loss: e.test.loss,
    test_accuracy: e.test.accuracy,
    seconds: round(e.seconds, 3),
    time: round(time, 3),
    confusion: e.test.confusion,
    per_class_accuracy: e.test.perClassAccuracy,
    misclassified: e.test.misclassified.map((m) => ({
      ...m,
      confidence: round(m.confidence, 4),
      pixels: base64(test.images.subarray(m.index * px, (m.index + 1) * px)),
    })),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
