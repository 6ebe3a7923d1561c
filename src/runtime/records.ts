/**
 * The records of metrics.jsonl (and of the dashboard's live stream): one JSON object per line.
 *   {"type":"run", ...}    once, at the start: config, model summary, sizes
 *   {"type":"resume", ...} when a run is resumed
 *   {"type":"step", ...}   every optimizer step: loss, lr, throughput
 *   {"type":"epoch", ...}  every epoch: train/test loss and accuracy, confusion matrix, per-class accuracy,
 *                          the most confident mistakes with their pixels (base64 of 28x28 uint8)
 *   {"type":"end", ...}    status completed | interrupted | diverged
 */
import type { ModelPlan } from "../nn/model.ts";
import type { EpochInfo, Split, StepInfo } from "./fit.ts";

export const METRICS_VERSION = 1;

export function runRecord(o: { config: Record<string, unknown>; plan: ModelPlan; epochs: number; batches: number; trainCount: number; testCount: number; started?: string }) {
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

export function stepRecord(s: StepInfo, imagesPerSecond: number, time: number) {
  return { type: "step", step: s.step, epoch: s.epoch, loss: s.loss, lr: s.lr, images_per_s: round(imagesPerSecond, 1), time: round(time, 3) };
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}

export function epochRecord(e: EpochInfo, test: Split, time: number) {
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
