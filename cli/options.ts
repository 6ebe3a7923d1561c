/** Option definitions shared by build-graph and train, and the checks yargs cannot express. */
import type { Options } from "yargs";
import { availableParallelism } from "node:os";
import { optimizerNames } from "../src/optim/optimizer.ts";
import { UserError } from "../src/node/files.ts";

export const modelOptions = {
  model: { type: "string", default: "mycnn", describe: "built-in model (mycnn, lenet5) or a spec .json file", requiresArg: true },
  from: { type: "string", describe: "an ONNX image classifier to train instead (e.g. exported by torch.onnx.export)", requiresArg: true },
  "requires-grad": { type: "array", string: true, describe: "with --from: only initializers matching these globs train (default: every weight and bias)" },
  frozen: { type: "array", string: true, describe: "with --from: initializers matching these globs stay fixed" },
  optimizer: { type: "string", choices: optimizerNames as unknown as string[], default: "adam", describe: "optimizer (PyTorch semantics)" },
  lr: { type: "number", describe: "learning rate [default: 1e-3 for adam/adamw, 1e-2 for sgd]", requiresArg: true },
  "weight-decay": { type: "number", describe: "weight decay (L2 for adam/sgd, decoupled for adamw) [default: 0; adamw 1e-2]", requiresArg: true },
  momentum: { type: "number", describe: "SGD momentum [default: 0, as PyTorch]", requiresArg: true },
  nesterov: { type: "boolean", describe: "SGD with Nesterov momentum" },
  seed: { type: "number", default: 0, describe: "seed for initialisation and shuffling", requiresArg: true },
} satisfies Record<string, Options>;

/** Checks a numeric flag; a bad value is a UserError (one line, exit 1). */
export function checkNumber(name: string, v: number | undefined, o: { integer?: boolean; min?: number; max?: number; positive?: boolean } = {}): void {
  if (v === undefined) return;
  if (!Number.isFinite(v)) throw new UserError(`--${name} must be a number, got ${v}`);
  if (o.integer && !Number.isInteger(v)) throw new UserError(`--${name} must be a whole number, got ${v}`);
  if (o.positive && !(v > 0)) throw new UserError(`--${name} must be greater than 0, got ${v}`);
  if (o.min !== undefined && v < o.min) throw new UserError(`--${name} must be at least ${o.min}, got ${v}`);
  if (o.max !== undefined && v > o.max) throw new UserError(`--${name} must be at most ${o.max}, got ${v}`);
}

/** A TCP port to listen on: 0 (any free one) to 65535. */
export function checkPort(port: number | undefined): void {
  checkNumber("port", port, { integer: true, min: 0, max: 65535 });
}

export function checkModelOptions(a: { lr?: number; weightDecay?: number; momentum?: number; seed: number; from?: string; requiresGrad?: string[]; frozen?: string[] }): void {
  if (!a.from && (a.requiresGrad?.length || a.frozen?.length)) throw new UserError("--requires-grad and --frozen choose what trains in an imported model: use them with --from model.onnx");
  checkNumber("lr", a.lr, { positive: true });
  checkNumber("weight-decay", a.weightDecay, { min: 0 });
  checkNumber("momentum", a.momentum, { min: 0 });
  checkNumber("seed", a.seed, { integer: true, min: 0 });
}

/** onnxruntime intra-op threads: more than a few per core only adds contention (1000 made a 5-second run take minutes). */
export function checkThreads(threads: number | undefined): void {
  const cores = availableParallelism();
  if (threads === undefined) return;
  checkNumber("threads", threads, { integer: true, min: 1 });
  if (threads > 4 * cores) throw new UserError(`--threads ${threads} is more than 4 per core (this machine has ${cores} cores); use at most ${4 * cores}`);
}
