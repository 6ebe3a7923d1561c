/** Option definitions shared by build-graph and train, and the checks yargs cannot express. */
import type { Options } from "yargs";
import { availableParallelism } from "node:os";
import { optimizerNames } from "../src/optim/optimizer.ts";
import { conventionFromFlags, conventionOptions, ConventionError, type ConventionFlags, type PixelConvention } from "../src/image/convention.ts";

/** A command line that does not say what it means (a flag value out of range, an unknown option): exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const modelOptions = {
  model: { type: "string", default: "mycnn", describe: "built-in model (mycnn, lenet5) or a spec .json file", requiresArg: true },
  from: { type: "string", describe: "an ONNX image classifier to train instead (e.g. exported by torch.onnx.export)", requiresArg: true },
  "requires-grad": { type: "array", string: true, describe: "with --from: only initializers matching these globs train [default: weights and biases]" },
  frozen: { type: "array", string: true, describe: "with --from: initializers matching these globs stay fixed" },
  // The pixel flags of eval/predict, for a model trained on other pixels: with --from they say what it takes.
  ...Object.fromEntries(Object.entries(conventionOptions).map(([k, o]) => [k, { ...o, describe: `with --from: ${o.describe.replace(/ \[default: detected[^\]]*\]/, " [default: unit]")}` }])),
  optimizer: { type: "string", choices: optimizerNames as unknown as string[], default: "adam", describe: "optimizer (PyTorch semantics)" },
  lr: { type: "number", describe: "learning rate [default: 1e-3 for adam/adamw, 1e-2 for sgd]", requiresArg: true },
  "weight-decay": { type: "number", describe: "weight decay (L2 for adam/sgd, decoupled for adamw) [default: 0; adamw 1e-2]", requiresArg: true },
  momentum: { type: "number", describe: "SGD momentum [default: 0, as PyTorch]", requiresArg: true },
  nesterov: { type: "boolean", describe: "SGD with Nesterov momentum" },
  seed: { type: "number", default: 0, describe: "seed for initialisation and shuffling", requiresArg: true },
} satisfies Record<string, Options>;

/** Checks a numeric flag; a bad value is a UsageError (one line, exit 2). */
export function checkNumber(name: string, v: number | undefined, o: { integer?: boolean; min?: number; max?: number; positive?: boolean } = {}): void {
  if (v === undefined) return;
  if (!Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got ${v}`);
  if (o.integer && !Number.isInteger(v)) throw new UsageError(`--${name} must be a whole number, got ${v}`);
  if (o.positive && !(v > 0)) throw new UsageError(`--${name} must be greater than 0, got ${v}`);
  if (o.min !== undefined && v < o.min) throw new UsageError(`--${name} must be at least ${o.min}, got ${v}`);
  if (o.max !== undefined && v > o.max) throw new UsageError(`--${name} must be at most ${o.max}, got ${v}`);
}

/** A TCP port to listen on: 0 (any free one) to 65535. */
export function checkPort(port: number | undefined): void {
  checkNumber("port", port, { integer: true, min: 0, max: 65535 });
}

/**
 * Checks the model flags; returns the pixel convention an imported model takes (undefined: [0,1], ours). Our own
 * models always take [0,1], so the pixel flags go with --from only.
 */
export function checkModelOptions(a: { lr?: number; weightDecay?: number; momentum?: number; seed: number; from?: string; requiresGrad?: string[]; frozen?: string[] } & ConventionFlags): PixelConvention | undefined {
  if (!a.from && (a.requiresGrad?.length || a.frozen?.length)) throw new UsageError("--requires-grad and --frozen choose what trains in an imported model: use them with --from model.onnx");
  let pixels: PixelConvention | undefined;
  try {
    pixels = conventionFromFlags(a);
  } catch (e) {
    if (e instanceof ConventionError) throw new UsageError(e.message);
    throw e;
  }
  if (pixels && !a.from) throw new UsageError("--input-preset, --input-scale, --input-mean, --input-std and --invert say what pixels an imported model takes: use them with --from model.onnx (onnx-mnist's own models take [0,1])");
  checkNumber("lr", a.lr, { positive: true });
  checkNumber("weight-decay", a.weightDecay, { min: 0 });
  checkNumber("momentum", a.momentum, { min: 0 });
  checkNumber("seed", a.seed, { integer: true, min: 0 });
  return pixels;
}

/** onnxruntime intra-op threads: more than a few per core only adds contention (1000 made a 5-second run take minutes). */
export function checkThreads(threads: number | undefined): void {
  const cores = availableParallelism();
  if (threads === undefined) return;
  checkNumber("threads", threads, { integer: true, min: 1 });
  if (threads > 4 * cores) throw new UsageError(`--threads ${threads} is more than 4 per core (this machine has ${cores} cores); use at most ${4 * cores}`);
}

/** `--threads` of train and start: a whole number, or "auto" (src/node/threads.ts); undefined stays undefined. */
export function parseThreadsFlag(v: string | number | undefined): number | "auto" | undefined {
  if (v === undefined || v === "auto") return v;
  const n = typeof v === "number" ? v : v.trim() === "" ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--threads must be a number or auto, got ${v}`);
  checkThreads(n);
  return n;
}

/** The candidate closest to `name` in edit distance, if it is close enough to be a typo (at most 1 edit in 4). */
export function nearest(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(1, Math.floor(name.length / 4)) + 1;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

/** Edit distance where a swap of two neighbours counts as one edit, as typos do (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
