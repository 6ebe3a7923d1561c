/** The messages between the Train page and its Web Worker (structured-cloned; byte arrays are transferred). */

/** What the page asks for. The CLI's names for the same settings are in the comments. */
import type { StepInfo } from "../../src/runtime/fit.ts";
export interface RunSettings {
  model: string; // --model (a built-in name), or the name of the ONNX file in `onnx`
  /** --from: an ONNX classifier to fine-tune instead of a built-in model (its own weights are the start). */
  onnx?: { name: string; bytes: Uint8Array };
  epochs: number; // --epochs
  batchSize: number; // --batch-size
  trainCount: number; // --train-limit: the first N images of MNIST's training file
  testCount: number; // --test-limit: the first N images of MNIST's test file
  lr: number; // --lr (Adam)
  seed: number; // --seed
  augment: boolean; // --augment (the preset)
}

export type ToWorker =
  /** Starts a fresh run (releasing any previous one). URLs are absolute: the worker's own location differs. */
  | { type: "start"; settings: RunSettings; ortBase: string; dataUrl: string; threads: number }
  /** Continues the current run where it stopped, up to `epochs` epochs in all. */
  | { type: "continue"; epochs: number }
  /** Stops after the current step; the state stays, ready to continue or download. */
  | { type: "stop" }
  /** Sent when the page opens: gets onnxruntime-web's WASM compiled and optimised before the first Start. */
  | { type: "warm"; model: string; batchSize: number; ortBase: string; threads: number };

/** A training step as the page sees it: fit()'s StepInfo plus its time. */
export interface StepPoint extends Pick<StepInfo, "step" | "epoch" | "batch" | "batches" | "loss"> {
  /** Wall time since the previous step ended, ms: batch filling and the session run (bench/web-train.ts reads these). */
  ms: number;
}

export interface EpochPoint {
  epoch: number;
  step: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
}

/** The trained state as files: model.onnx (inference) and the checkpoint `onnx-mnist train --resume` reads. */
export interface Snapshot {
  model: Uint8Array;
  checkpoint: Uint8Array;
  step: number;
  epoch: number; // completed epochs
  stepInEpoch: number;
}

export type FromWorker =
  | { type: "status"; text: string }
  | { type: "started"; params: number; batches: number; trainCount: number; testCount: number; ortVersion: string; threads: number }
  | { type: "steps"; points: StepPoint[] }
  | { type: "epoch"; point: EpochPoint; snapshot: Snapshot }
  | { type: "end"; status: "completed" | "interrupted" | "diverged"; snapshot: Snapshot; seconds: number }
  | { type: "error"; message: string }
  /** The warm-up ended: how many blank steps it ran, in how long, and the first and last step times (ms). */
  | { type: "warmed"; runs: number; ms: number; firstMs: number; lastMs: number };
