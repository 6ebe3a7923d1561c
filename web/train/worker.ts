/**
 * The Train page's Web Worker: the same Trainer and fit loop as `onnx-mnist train`, with onnxruntime-web (WASM)
 * passed in instead of onnxruntime-node, so the page stays responsive however long a step takes.
 *
 * onnxruntime-web runs here with numThreads 1 by default: the page is responsive anyway (the work is off the
 * main thread), and one thread needs neither SharedArrayBuffer nor cross-origin isolation. `?threads=N` on the
 * page asks for more (ORT then starts its own pthread workers, which needs a cross-origin isolated page).
 *
 * Stop requests arrive as messages, and a message is only handled when the worker's event loop turns; ORT's
 * WASM session.run resolves through microtasks alone, so fit's stop check after each step first waits for one
 * macrotask (a MessageChannel round trip: unlike setTimeout, it is not clamped to 4 ms).
 */
import * as ort from "onnxruntime-web/wasm";
import { augmentSpecFor, buildProgram, initialValues, planModel } from "../../src/program/program.ts";
import { builtinSpec } from "../../src/nn/spec.ts";
import { importOnnx } from "../../src/ir/import.ts";
import { optimizerConfig } from "../../src/optim/optimizer.ts";
import { Trainer, type Ort } from "../../src/runtime/trainer.ts";
import type { RunConfig } from "../../src/runtime/config.ts";
import { fit, startPosition, type Position } from "../../src/runtime/fit.ts";
import { limitSplit, type MnistData } from "../../src/data/dataset.ts";
import { decodeSubset } from "../../src/web-assets/mnist-subset.ts";
import { AUGMENT_PRESET } from "../../src/augment/augment.ts";
import type { FromWorker, RunSettings, Snapshot, StepPoint, ToWorker } from "./protocol.ts";

const scope = self as unknown as DedicatedWorkerGlobalScope;
const post = (m: FromWorker, transfer: Transferable[] = []) => scope.postMessage(m, transfer);

interface Run {
  settings: RunSettings;
  trainer: Trainer;
  data: MnistData;
  position: Position;
  /** The checkpoint's `config`: the same keys `onnx-mnist train` writes, so `train --resume` continues the run. */
  config: RunConfig;
  seconds: number;
}

let run: Run | null = null;
let running = false;
let stopRequested = false;
let dataset: Promise<MnistData> | null = null;
let ortReady = false;

const channel = new MessageChannel();
const waiting: (() => void)[] = [];
channel.port1.onmessage = () => waiting.shift()?.();
/** Resolves after one turn of the event loop, so that queued messages (stop) are handled. */
function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(0);
  });
}

function loadData(url: string): Promise<MnistData> {
  dataset ??= (async () => {
    post({ type: "status", text: "loading the MNIST subset…" });
    const res = await fetch(url);
    if (!res.ok) throw new Error(`cannot load the MNIST subset ${url} (HTTP ${res.status}); rebuild the web page`);
    return decodeSubset(new Uint8Array(await res.arrayBuffer()));
  })();
  dataset.catch(() => (dataset = null)); // a failed load may be retried by the next start
  return dataset;
}

function setupOrt(ortBase: string, threads: number): void {
  if (ortReady) return;
  ort.env.wasm.wasmPaths = ortBase;
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
  ortReady = true;
}

/**
 * Warm-up, run once when the page opens. V8 compiles a WASM function when it is first called (the first training
 * step of a page took ~0.8 s) and optimises it only once it is hot, in background threads, so the first epoch
 * ran ~2.3x as long as the third. Here a throwaway trainer of the page's model runs steps on blank images (nothing
 * is kept) until the step time stops falling, or for at most WARM_MS, while the user is still choosing settings.
 * The compiled code belongs to the WASM module, so every later session of the page gets it. Start waits for it.
 */
const WARM_MS = 6000;
let warming: Promise<void> = Promise.resolve();

async function warm(m: Extract<ToWorker, { type: "warm" }>): Promise<void> {
  setupOrt(m.ortBase, m.threads);
  const program = buildProgram(builtinSpec(m.model), optimizerConfig("adam"));
  const init = initialValues(program.plan, 0);
  const trainer = await Trainer.create(ort as unknown as Ort, program, Trainer.freshState(program, init.params, init.buffers), { sessionOptions: { executionProviders: ["wasm"] } });
  try {
    const t0 = performance.now();
    const times: number[] = [];
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    while (performance.now() - t0 < WARM_MS) {
      const t = performance.now();
      await trainer.warmUp(1, m.batchSize);
      times.push(performance.now() - t);
      // steady: the last 8 runs are no faster than the 8 before them
      if (times.length >= 32 && med(times.slice(-8)) >= 0.95 * med(times.slice(-16, -8))) break;
    }
    post({ type: "warmed", runs: times.length, ms: performance.now() - t0, firstMs: times[0], lastMs: med(times.slice(-8)) });
  } finally {
    await trainer.release();
  }
}

async function start(m: Extract<ToWorker, { type: "start" }>): Promise<void> {
  const s = m.settings;
  post({ type: "status", text: "getting onnxruntime-web ready…" });
  await warming;
  setupOrt(m.ortBase, m.threads);
  const all = await loadData(m.dataUrl);
  if (s.trainCount > all.train.count || s.testCount > all.test.count)
    throw new Error(`the page's MNIST subset has ${all.train.count} training and ${all.test.count} test images; ask for at most that many`);
  const data = { train: limitSplit(all.train, s.trainCount), test: limitSplit(all.test, s.testCount) };
  post({ type: "status", text: `building the ${s.model} training graph…` });
  // A built-in model, or an ONNX classifier imported into the same model IR (fine-tuned from its own weights).
  const model = s.onnx ? importOnnx(s.onnx.bytes, { source: s.onnx.name }) : builtinSpec(s.model);
  // The Augment switch: the preset, at the head of the training step (drawn from the seed, as train --augment).
  const program = buildProgram(model, optimizerConfig("adam", { lr: s.lr }), {}, augmentSpecFor(planModel(model), s.augment ? AUGMENT_PRESET : null));
  const init = initialValues(program.plan, s.seed);
  const old = run;
  run = null;
  await old?.trainer.release();
  post({ type: "status", text: "creating the onnxruntime-web sessions…" });
  const trainer = await Trainer.create(ort as unknown as Ort, program, Trainer.freshState(program, init.params, init.buffers), {
    sessionOptions: { executionProviders: ["wasm"] },
    noiseSeed: s.seed,
  });
  const config: RunConfig = {
    model: s.model,
    epochs: s.epochs,
    batch_size: s.batchSize,
    optimizer: "adam",
    lr: program.optimizer.lr,
    lr_schedule: "constant",
    seed: s.seed,
    data: null, // the bundled MNIST: the subset is its first train_limit / test_limit images
    graph: null,
    threads: null,
    train_limit: s.trainCount,
    test_limit: s.testCount,
    augment: s.augment ? AUGMENT_PRESET : null,
    trained_in: `browser, onnxruntime-web ${ort.env.versions.web ?? "?"}`,
  };
  run = { settings: s, trainer, data, position: startPosition(s.seed), config, seconds: 0 };
  post({
    type: "started",
    params: program.plan.paramCount,
    batches: Math.ceil(data.train.count / s.batchSize),
    trainCount: data.train.count,
    testCount: data.test.count,
    ortVersion: ort.env.versions.web ?? "?",
    threads: m.threads,
  });
  await train_(run);
}

/** Runs fit from the run's position up to config.epochs, streaming steps and epochs, then posts the end. */
async function train_(r: Run): Promise<void> {
  const { trainer, data } = r;
  const epochs = r.config.epochs;
  const batchSize = r.config.batch_size;
  running = true;
  let points: StepPoint[] = [];
  let flushed = performance.now();
  const flush = () => {
    if (points.length) post({ type: "steps", points });
    points = [];
    flushed = performance.now();
  };
  const t0 = performance.now();
  const stepTimer = { last: performance.now() };
  post({ type: "status", text: `training: epoch ${r.position.epoch + 1}/${epochs}` });
  try {
    const result = await fit(trainer, data.train, data.test, {
      epochs,
      batchSize,
      position: r.position,
      shouldStop: async () => {
        await yieldToEvents();
        return stopRequested;
      },
      onStep: (s, pos) => {
        const now = performance.now();
        points.push({ step: s.step, epoch: s.epoch, batch: s.batch, batches: s.batches, loss: s.loss, ms: now - stepTimer.last });
        r.position = pos;
        if (s.batch === s.batches) {
          flush();
          post({ type: "status", text: `evaluating epoch ${s.epoch} on ${data.test.count} test images…` });
        } else if (now - flushed > 100) flush(); // ~10 messages a second, whatever the step time
        stepTimer.last = performance.now();
      },
      onEpoch: (e, pos) => {
        r.position = pos;
        post(
          {
            type: "epoch",
            point: { epoch: e.epoch, step: e.step, trainLoss: e.trainLoss, trainAccuracy: e.trainAccuracy, testLoss: e.test.loss, testAccuracy: e.test.accuracy, seconds: e.seconds },
            snapshot: snapshot(r),
          },
        );
        if (pos.epoch < epochs) post({ type: "status", text: `training: epoch ${pos.epoch + 1}/${epochs}` });
        stepTimer.last = performance.now();
      },
    });
    flush();
    r.position = result.position;
    r.seconds += (performance.now() - t0) / 1000;
    const snap = snapshot(r);
    post({ type: "end", status: result.status, snapshot: snap, seconds: r.seconds }, [snap.model.buffer, snap.checkpoint.buffer]);
  } finally {
    running = false;
  }
}

function snapshot(r: Run): Snapshot {
  const p = r.position;
  const step = r.trainer.step;
  return {
    model: r.trainer.exportModelForInferencing({ "onnx_mnist.step": String(step), "onnx_mnist.epoch": String(p.epoch) }),
    checkpoint: r.trainer.saveCheckpoint({ epoch: p.epoch, stepInEpoch: p.stepInEpoch, epochRng: p.epochRng, epochStats: p.epochStats, config: r.config }),
    step,
    epoch: p.epoch,
    stepInEpoch: p.stepInEpoch,
  };
}

async function resume(epochs: number): Promise<void> {
  const r = run;
  if (!r) throw new Error("nothing to continue: press Start first");
  if (r.position.epoch >= epochs) throw new Error(`this run has already trained ${r.position.epoch} epoch${r.position.epoch === 1 ? "" : "s"}; set Epochs higher to continue it`);
  r.config.epochs = epochs;
  await train_(r);
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

scope.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === "stop") {
    stopRequested = true;
    return;
  }
  if (m.type === "warm") {
    warming = warm(m).catch(() => undefined); // a failed warm-up only costs speed; start reports its own errors
    return;
  }
  if (running) return post({ type: "error", message: "training is already running; stop it first" });
  stopRequested = false; // a stop pressed while data loads or graphs build then stops after the first step
  const job = m.type === "start" ? start(m) : resume(m.epochs);
  running = true; // until the job's own train_ takes over (data loading, graph building)
  job.catch((e) => post({ type: "error", message: firstLine(e) })).finally(() => (running = false));
};
