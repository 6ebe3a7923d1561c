/**
 * The Trainer: runs the training-step graph with a plain InferenceSession, shaped after onnxruntime's
 * on-device training API (create, trainStep, evalStep, get/set parameters as one flat buffer,
 * exportModelForInferencing, checkpoints). It takes the `ort` module as a parameter, so the same code
 * drives onnxruntime-node and onnxruntime-web.
 *
 * State tensors live in two preallocated sets that the session writes into alternately (ping-pong):
 * step k reads set A and writes set B, step k+1 reads B and writes A. Nothing is copied between steps.
 */
import type * as OrtCommon from "onnxruntime-common";
import { io, augmentSpecFor, buildInferenceModel, buildProgram, planModel, toIR, type Program } from "../program/program.ts";
import type { ModelIR } from "../ir/ir.ts";
import { importOnnx } from "../ir/import.ts";
import { decodeCheckpoint, encodeCheckpoint, CheckpointError, type CheckpointData } from "./checkpoint.ts";
import { Rng, type RngState } from "../random.ts";
import { augmentFeeds, batchRng, checkAugmentConfig, drawBatch } from "../augment/augment.ts";
import type { RunConfig } from "./config.ts";

export type Ort = Pick<typeof OrtCommon, "InferenceSession" | "Tensor" | "env">;
type Session = OrtCommon.InferenceSession;
type Tensor = OrtCommon.Tensor;

/** What a Trainer needs: the two graphs, the model plan and the optimizer (a Program, or read from files). */
export type TrainingProgram = Pick<Program, "plan" | "optimizer" | "stateNames" | "noise" | "trainStep" | "evalStep"> & Partial<Pick<Program, "augment">>;

/** Where a batch is in the run: what the augmentation's draws of an augmenting training step depend on. */
export interface BatchPosition {
  epoch: number;
  batch: number;
}

export interface CheckpointPosition {
  epoch: number;
  stepInEpoch: number;
  epochRng: RngState;
  epochStats?: { lossSum: number; correct: number; seen: number };
  config: Partial<RunConfig>;
}

export interface TrainingState {
  params: Float32Array;
  buffers: Float32Array;
  /** One flat vector per optimizer state name (program.stateNames). */
  optimizer: Float32Array[];
  step: number;
}

export interface TrainerOptions {
  /** Intra-op threads (default: the runtime's choice). */
  threads?: number;
  /** Passed to InferenceSession.create (e.g. executionProviders for onnxruntime-web). */
  sessionOptions?: OrtCommon.InferenceSession.SessionOptions;
  /** Write outputs into preallocated tensors (default: true on onnxruntime-node, false elsewhere). */
  preallocate?: boolean;
  /** Seed of the per-step noise of Dropout masks and of an augmenting step's draws (the run's seed), so a resumed run draws the same. */
  noiseSeed?: number;
}

export interface StepResult {
  loss: number;
  correct: number;
}

export class Trainer {
  readonly program: TrainingProgram;
  private readonly ort: Ort;
  private readonly train: Session;
  private readonly evaluate: Session;
  private sets: [Record<string, Tensor>, Record<string, Tensor>];
  private cur = 0;
  private stepCount: number;
  private readonly preallocate: boolean;
  private readonly noiseSeed: number;
  lr: number;

  private constructor(ort: Ort, program: TrainingProgram, train: Session, evaluate: Session, state: TrainingState, preallocate: boolean, noiseSeed: number) {
    this.ort = ort;
    this.program = program;
    this.train = train;
    this.evaluate = evaluate;
    this.preallocate = preallocate;
    this.noiseSeed = noiseSeed;
    this.lr = program.optimizer.lr;
    this.stepCount = state.step;
    this.sets = [this.makeSet(state), this.makeSet(state)];
  }

  static async create(ort: Ort, program: TrainingProgram, state: TrainingState, opts: TrainerOptions = {}): Promise<Trainer> {
    checkState(program, state);
    const so: OrtCommon.InferenceSession.SessionOptions = {
      // "extended", not "all": the NCHWc layout rewrites of "all" add reorders that cost more than they save
      // on this graph (measured: 7.05 vs 6.56 ms per step at batch 128).
      graphOptimizationLevel: "extended",
      ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
      ...opts.sessionOptions,
    };
    const [train, evaluate] = await Promise.all([ort.InferenceSession.create(program.trainStep, so), ort.InferenceSession.create(program.evalStep, so)]);
    // onnxruntime-node writes outputs into preallocated tensors; onnxruntime-web 1.30's WASM backend ignores
    // them (measured: the state did not change), so there the session allocates outputs and we keep those.
    const isNode = !!(ort as { env?: { versions?: { node?: string } } }).env?.versions?.node;
    return new Trainer(ort, program, train, evaluate, state, opts.preallocate ?? isNode, opts.noiseSeed ?? 0);
  }

  /**
   * A Trainer from checkpoint bytes alone (like onnxruntime's CheckpointState + TrainingSession): the model
   * spec, optimizer and run configuration in its header rebuild the same graphs (with the run's augmentation,
   * drawn from the run's seed unless opts.noiseSeed says otherwise), its tensors restore the state. Returns the
   * checkpoint too, for its position (epoch, step in epoch, RNG state) and config.
   */
  static async fromCheckpoint(ort: Ort, bytes: Uint8Array, opts: TrainerOptions & { source?: string } = {}): Promise<{ trainer: Trainer; checkpoint: CheckpointData }> {
    const source = opts.source ?? "checkpoint";
    const checkpoint = decodeCheckpoint(bytes, source);
    const { augment, seed } = checkpoint.header.config;
    if (augment) {
      try {
        checkAugmentConfig(augment);
      } catch (e) {
        throw new CheckpointError(`${source}: the run's augmentation is not valid (${(e as Error).message}); the file is damaged`);
      }
    }
    const model = modelOfCheckpoint(checkpoint);
    const program = buildProgram(model, checkpoint.header.optimizer, {}, augmentSpecFor(planModel(model), augment));
    const noiseSeed = opts.noiseSeed ?? (Number.isInteger(seed) ? seed : undefined);
    const trainer = await Trainer.create(ort, program, stateFromCheckpoint(program, checkpoint, source), { ...opts, noiseSeed });
    return { trainer, checkpoint };
  }

  /** The initial training state: given parameters and buffers, zero optimizer state, step 0. */
  static freshState(program: TrainingProgram, params: Float32Array, buffers: Float32Array): TrainingState {
    return { params, buffers, optimizer: program.stateNames.map(() => new Float32Array(params.length)), step: 0 };
  }

  private makeSet(s: TrainingState): Record<string, Tensor> {
    const T = this.ort.Tensor;
    const set: Record<string, Tensor> = { [io.params]: new T("float32", s.params.slice(), [s.params.length]) };
    if (this.program.plan.bufferCount) set[io.buffers] = new T("float32", s.buffers.slice(), [s.buffers.length]);
    this.program.stateNames.forEach((n, i) => (set[n] = new T("float32", s.optimizer[i].slice(), [s.optimizer[i].length])));
    return set;
  }

  get step(): number {
    return this.stepCount;
  }

  private batchFeeds(images: Float32Array, labels: BigInt64Array, n: number): Record<string, Tensor> {
    const dims = this.program.plan.inputShape;
    const px = dims.reduce((a, b) => a * b, 1);
    if (n < 1 || images.length < n * px || labels.length < n) throw new RangeError(`batch of ${n} does not fit the given buffers`);
    const T = this.ort.Tensor;
    return {
      [io.input]: new T("float32", images.subarray(0, n * px), [n, ...dims]),
      [io.labels]: new T("int64", labels.subarray(0, n), [n]),
    };
  }

  /**
   * Uniform [0,1) noise for each Dropout node, drawn from (noise seed, step): the same step of the same run
   * always gets the same masks, so an interrupted and resumed run matches an uninterrupted one bit for bit.
   */
  private noiseFeeds(n: number): Record<string, Tensor> {
    const feeds: Record<string, Tensor> = {};
    if (!this.program.noise.length) return feeds;
    const rng = new Rng((Math.imul(this.noiseSeed >>> 0, 0x9e3779b1) ^ Math.imul(this.stepCount + 1, 0x85ebca6b)) >>> 0);
    for (const { name, shape } of this.program.noise) {
      const dims = shape.map((d, i) => (i === 0 ? n : (d as number)));
      const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
      for (let i = 0; i < data.length; i++) data[i] = rng.uniform(0, 1);
      feeds[name] = new this.ort.Tensor("float32", data, dims);
    }
    return feeds;
  }

  /** The training step's inputs: the batch, the current state, the step number, `lr`, the Dropout noise and the augmentation's draws. */
  private trainFeeds(images: Float32Array, labels: BigInt64Array, n: number, lr: number, at?: BatchPosition): Record<string, Tensor> {
    const T = this.ort.Tensor;
    return {
      ...this.batchFeeds(images, labels, n),
      ...this.sets[this.cur],
      [io.step]: new T("int64", BigInt64Array.of(BigInt(this.stepCount)), []),
      [io.lr]: new T("float32", Float32Array.of(lr), []),
      ...this.noiseFeeds(n),
      ...this.augmentFeeds(n, at),
    };
  }

  /**
   * The draws of an augmenting training step: a function of (seed, epoch, batch) alone (batchRng), the same as a
   * separate Augmenter's, so a resumed run redoes them exactly.
   */
  private augmentFeeds(n: number, at: BatchPosition | undefined): Record<string, Tensor> {
    const a = this.program.augment;
    if (!a) return {};
    if (!at)
      throw new TypeError(
        "trainStep: this program augments inside its training step, and the augmentation's draws depend on the batch's place in the run; pass it as the fourth argument, e.g. trainStep(images, labels, n, { epoch, batch })",
      );
    return augmentFeeds(this.ort, drawBatch(a.config, batchRng(this.noiseSeed, at.epoch, at.batch), n, a.rows, a.cols), n, a.rows, a.cols);
  }

  /** The evaluation graph's inputs: the batch, the current parameters and buffers. */
  private evalFeeds(images: Float32Array, labels: BigInt64Array, n: number): Record<string, Tensor> {
    const s = this.sets[this.cur];
    const feeds: Record<string, Tensor> = { ...this.batchFeeds(images, labels, n), [io.params]: s[io.params] };
    if (s[io.buffers]) feeds[io.buffers] = s[io.buffers];
    return feeds;
  }

  /**
   * One optimizer step on a batch of n images ([n, C, H, W] floats) and labels; `at`, the batch's place in the
   * run, is needed when the program augments (its draws depend on it).
   */
  async trainStep(images: Float32Array, labels: BigInt64Array, n = labels.length, at?: BatchPosition): Promise<StepResult> {
    const dst = this.sets[1 - this.cur];
    const feeds = this.trainFeeds(images, labels, n, this.lr, at);
    const stateNames = Object.keys(dst);
    let out: Record<string, Tensor>;
    if (this.preallocate) {
      const fetches: Record<string, Tensor | null> = { [io.loss]: null, [io.correct]: null };
      for (const k of stateNames) fetches[io.next(k)] = dst[k];
      out = (await this.train.run(feeds, fetches as OrtCommon.InferenceSession.FetchesType)) as Record<string, Tensor>;
    } else {
      out = (await this.train.run(feeds, [io.loss, io.correct, ...stateNames.map(io.next)])) as Record<string, Tensor>;
      for (const k of stateNames) dst[k] = out[io.next(k)];
    }
    this.cur = 1 - this.cur;
    this.stepCount++;
    return { loss: Number(out[io.loss].data[0]), correct: Number(out[io.correct].data[0]) };
  }

  /**
   * Runs the training step and the evaluation step `runs` times each on n blank images, keeping nothing: the
   * state, the step count and every output are left as they were. For onnxruntime-web, whose WASM functions are
   * compiled when first called and optimised only once they are hot (V8's lazy compilation and dynamic tiering):
   * without this the first step of a page took ~0.8 s and the first epoch ~2.3x as long as the third (README).
   */
  async warmUp(runs = 1, n = 8): Promise<void> {
    const images = new Float32Array(n * this.program.plan.inputShape.reduce((a, b) => a * b, 1));
    const labels = new BigInt64Array(n);
    const feeds = this.trainFeeds(images, labels, n, 0, { epoch: 0, batch: 0 });
    const evalFeeds = this.evalFeeds(images, labels, n);
    for (let i = 0; i < runs; i++) {
      await this.train.run(feeds); // outputs allocated by the session and dropped: the state is not touched
      await this.evaluate.run(evalFeeds);
    }
  }

  /** Loss, number correct and logits on a batch, with the current parameters (BatchNorm in inference mode). */
  async evalStep(images: Float32Array, labels: BigInt64Array, n = labels.length): Promise<StepResult & { logits: Float32Array }> {
    const out = (await this.evaluate.run(this.evalFeeds(images, labels, n))) as Record<string, Tensor>;
    return { loss: Number(out[io.loss].data[0]), correct: Number(out[io.correct].data[0]), logits: out[io.logits].data as Float32Array };
  }

  /** All parameters as one flat vector (a copy), in program.plan.params order. */
  getParameters(): Float32Array {
    return (this.sets[this.cur][io.params].data as Float32Array).slice();
  }

  setParameters(flat: Float32Array): void {
    if (flat.length !== this.program.plan.paramCount) throw new RangeError(`expected ${this.program.plan.paramCount} parameters, got ${flat.length}`);
    (this.sets[this.cur][io.params].data as Float32Array).set(flat);
  }

  /** A copy of the whole training state. */
  getState(): TrainingState {
    const s = this.sets[this.cur];
    return {
      params: (s[io.params].data as Float32Array).slice(),
      buffers: s[io.buffers] ? (s[io.buffers].data as Float32Array).slice() : new Float32Array(0),
      optimizer: this.program.stateNames.map((n) => (s[n].data as Float32Array).slice()),
      step: this.stepCount,
    };
  }

  /** The inference model (`input` -> `logits`) with the current weights, as ONNX bytes. */
  exportModelForInferencing(metadata: Record<string, string> = {}): Uint8Array {
    const s = this.getState();
    return buildInferenceModel(this.program.plan, s.params, s.buffers, metadata);
  }

  /**
   * Restores every state tensor (parameters, statistics, optimizer state, step) from checkpoint bytes saved
   * for the same model and optimizer; returns the checkpoint for its position and config.
   */
  loadCheckpoint(bytes: Uint8Array, source = "checkpoint"): CheckpointData {
    const checkpoint = decodeCheckpoint(bytes, source);
    const state = stateFromCheckpoint(this.program, checkpoint, source);
    this.sets = [this.makeSet(state), this.makeSet(state)];
    this.cur = 0;
    this.stepCount = state.step;
    return checkpoint;
  }

  /** The checkpoint bytes: every state tensor by name, plus where training stands. */
  saveCheckpoint(position: CheckpointPosition): Uint8Array {
    return encodeCheckpoint(checkpointData(this.program, this.getState(), position));
  }

  async release(): Promise<void> {
    await Promise.all([this.train.release(), this.evaluate.release()]);
  }
}

export function checkpointData(
  program: TrainingProgram,
  state: TrainingState,
  position: CheckpointPosition,
): CheckpointData {
  const { plan } = program;
  const tensors: CheckpointData["tensors"] = [];
  for (const p of plan.params) tensors.push({ name: p.name, shape: p.shape, data: state.params.subarray(p.offset, p.offset + p.size) });
  for (const b of plan.buffers) tensors.push({ name: b.name, shape: b.shape, data: state.buffers.subarray(b.offset, b.offset + b.size) });
  program.stateNames.forEach((n, i) => {
    for (const p of plan.params) tensors.push({ name: `${n}.${p.name}`, shape: p.shape, data: state.optimizer[i].subarray(p.offset, p.offset + p.size) });
  });
  const src = plan.ir.source;
  return {
    header: { model: src.kind === "spec" ? { kind: "spec", spec: src.spec } : { kind: "onnx", options: src.options }, optimizer: program.optimizer, step: state.step, ...position },
    tensors,
    modelBytes: src.kind === "onnx" ? src.bytes : undefined,
  };
}

/** Rebuilds the model IR a checkpoint was saved from (a spec is lowered, an imported model re-imported). */
export function modelOfCheckpoint(ck: CheckpointData): ModelIR {
  const m = ck.header.model;
  if (m.kind === "spec") return toIR(m.spec);
  // Named after the file it was imported from (the run's `model`), as when it was first imported.
  return importOnnx(ck.modelBytes!, { ...m.options, source: ck.header.config.model ?? "imported" });
}

/** The training state stored in a checkpoint, checked against the program's layout. */
export function stateFromCheckpoint(program: TrainingProgram, ck: CheckpointData, source: string): TrainingState {
  const { plan } = program;
  const byName = new Map(ck.tensors.map((t) => [t.name, t]));
  const gather = (list: { name: string; shape: number[]; offset: number; size: number }[], total: number, prefix = "") => {
    const out = new Float32Array(total);
    for (const t of list) {
      const found = byName.get(prefix + t.name);
      if (!found) throw new CheckpointError(`${source}: has no tensor '${prefix + t.name}': it was saved from a different model or optimizer`);
      if (found.shape.join(",") !== t.shape.join(","))
        throw new CheckpointError(`${source}: tensor '${prefix + t.name}' has shape [${found.shape}], the model needs [${t.shape}]`);
      out.set(found.data, t.offset);
    }
    return out;
  };
  return {
    params: gather(plan.params, plan.paramCount),
    buffers: gather(plan.buffers, plan.bufferCount),
    optimizer: program.stateNames.map((n) => gather(plan.params, plan.paramCount, `${n}.`)),
    step: ck.header.step,
  };
}

export { decodeCheckpoint };

function checkState(program: TrainingProgram, s: TrainingState): void {
  const { plan } = program;
  if (s.params.length !== plan.paramCount) throw new RangeError(`state has ${s.params.length} parameters, the model needs ${plan.paramCount}`);
  if (s.buffers.length !== plan.bufferCount) throw new RangeError(`state has ${s.buffers.length} buffer values, the model needs ${plan.bufferCount}`);
  if (s.optimizer.length !== program.stateNames.length) throw new RangeError(`state has ${s.optimizer.length} optimizer vectors, ${program.optimizer.type} needs ${program.stateNames.length}`);
}
