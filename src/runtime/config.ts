/**
 * A training run's configuration: what `onnx-mnist train` writes to config.json and into every checkpoint, and
 * what the browser Train page writes into its checkpoints, so that `train --resume` continues either. One type,
 * checked when read back from a checkpoint. Browser-safe.
 */
import type { OptimizerName } from "../optim/optimizer.ts";
import { lrSchedules, type LrSchedule } from "../optim/schedule.ts";
import { checkAugmentConfig, type AugmentConfig } from "../augment/augment.ts";

export interface RunConfig {
  /** A built-in model name, a spec file, or the ONNX file a model was imported from. */
  model: string;
  epochs: number;
  batch_size: number;
  optimizer: OptimizerName;
  lr: number;
  weight_decay?: number;
  momentum?: number;
  nesterov?: boolean;
  lr_schedule: LrSchedule;
  seed: number;
  /** The MNIST-format directory, or null for the bundled MNIST. */
  data: string | null;
  /** The build-graph directory whose graphs are trained, or null. */
  graph: string | null;
  threads: number | null;
  train_limit: number | null;
  test_limit: number | null;
  /** The data augmentation of every training batch (src/augment), or null/absent for none. */
  augment?: AugmentConfig | null;
  /** Where the run was trained, when not by the CLI (e.g. "browser, onnxruntime-web 1.30.0"). */
  trained_in?: string;
  /** The safetensors file the weights started from (`--init-weights`), or null for the seeded initialisation. */
  init_weights?: string | null;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const isCount = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 1;
const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const nullable = (check: (v: unknown) => boolean) => (v: unknown) => v === null || v === undefined || check(v);
const optional = (check: (v: unknown) => boolean) => (v: unknown) => v === undefined || v === null || check(v);

const FIELDS: { [K in keyof RunConfig]-?: (v: unknown) => boolean } = {
  model: (v) => typeof v === "string" && v.length > 0,
  epochs: isCount,
  batch_size: isCount,
  optimizer: (v) => v === "adam" || v === "adamw" || v === "sgd",
  lr: (v) => isNumber(v) && (v as number) > 0,
  weight_decay: optional((v) => isNumber(v) && (v as number) >= 0),
  momentum: optional((v) => isNumber(v) && (v as number) >= 0),
  nesterov: optional((v) => typeof v === "boolean"),
  lr_schedule: (v) => v === undefined || lrSchedules.includes(v as LrSchedule),
  seed: (v) => typeof v === "number" && Number.isInteger(v),
  data: nullable((v) => typeof v === "string"),
  graph: nullable((v) => typeof v === "string"),
  threads: nullable(isCount),
  train_limit: nullable(isCount),
  test_limit: nullable(isCount),
  augment: optional(isAugment),
  trained_in: optional((v) => typeof v === "string"),
  init_weights: optional((v) => typeof v === "string"),
};

function isAugment(v: unknown): boolean {
  const c = v as AugmentConfig;
  if (typeof v !== "object" || !Array.isArray(c.scale) || c.scale.length !== 2) return false;
  try {
    checkAugmentConfig(c);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks a configuration read from a checkpoint; names the first bad field. Keys it does not know are kept
 * (a newer onnx-mnist may add some), missing optional ones get their defaults.
 */
export function parseRunConfig(raw: unknown, source: string): RunConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`${source}: the run configuration is missing or not an object`);
  const r = raw as Record<string, unknown>;
  for (const [key, ok] of Object.entries(FIELDS)) {
    if (!ok(r[key])) throw new ConfigError(`${source}: run configuration field '${key}' is ${JSON.stringify(r[key]) ?? "missing"}, which is not valid`);
  }
  return {
    ...(r as unknown as RunConfig),
    lr_schedule: (r.lr_schedule as LrSchedule | undefined) ?? "constant",
    data: (r.data as string | null | undefined) ?? null,
    graph: (r.graph as string | null | undefined) ?? null,
    threads: (r.threads as number | null | undefined) ?? null,
    train_limit: (r.train_limit as number | null | undefined) ?? null,
    test_limit: (r.test_limit as number | null | undefined) ?? null,
  };
}
