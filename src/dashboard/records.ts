/**
 * The records of a run's metrics.jsonl as the dashboard reads them (the trainer writes them: see
 * src/runtime/records.ts), and the one-line parser both the page and the Node side use. Browser-safe.
 */

export interface LayerSummary {
  name: string;
  type: string;
  output_shape: number[];
  params: number;
}

export interface RunRecord {
  type: "run";
  version: number;
  started: string;
  config: Record<string, unknown>;
  model: { name: string; params: number; layers: LayerSummary[] };
  epochs: number;
  steps_per_epoch: number;
  train_count: number;
  test_count: number;
}

export interface ResumeRecord {
  type: "resume";
  step: number;
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

const TYPES = new Set(["run", "resume", "step", "epoch", "end"]);

/**
 * Parses one line of metrics.jsonl. Returns undefined for a record type this version does not know (newer
 * trainers may add some); throws a one-line Error naming `where` for anything that is not a record.
 */
export function parseRecord(line: string, where: string): MetricsRecord | undefined {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    throw new Error(`${where}: not a JSON object (${JSON.stringify(line.slice(0, 40))}...); metrics.jsonl holds one JSON record per line, as written by onnx-mnist train`);
  }
  if (typeof rec !== "object" || rec === null || Array.isArray(rec) || typeof (rec as { type?: unknown }).type !== "string")
    throw new Error(`${where}: a record must be a JSON object with a "type" field; metrics.jsonl holds one record per line, as written by onnx-mnist train`);
  const r = rec as MetricsRecord;
  if (!TYPES.has(r.type)) return undefined;
  if ((r.type === "step" || r.type === "epoch" || r.type === "end") && typeof r.step !== "number")
    throw new Error(`${where}: a "${r.type}" record needs a numeric "step"`);
  if (r.type === "step" && typeof r.loss !== "number" && r.loss !== null) throw new Error(`${where}: a "step" record needs a numeric "loss"`);
  return r;
}
