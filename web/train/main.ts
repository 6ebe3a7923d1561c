/**
 * The Train page: settings, Start / Stop / Continue, a live loss curve and per-epoch test accuracy, while a Web
 * Worker (worker.ts) trains with the same Trainer and fit loop as `onnx-mnist train`. After each epoch, and
 * when training ends, the trained model goes at once into the draw pad here (and the "Open in the draw demo"
 * link), and model.onnx and a checkpoint for `onnx-mnist train --resume` / `eval` can be downloaded.
 * URL parameter `?threads=N`: WASM threads for training (default 1, see worker.ts).
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { DrawPad } from "../demo/draw.ts";
import { paint } from "../demo/gallery.ts";
import { loadModel, predict, setupOrt, simdSupported, type LoadedModel } from "../demo/model.ts";
import { toMnistInput } from "../../src/image/preprocess.ts";
import { builtinModels } from "../../src/nn/spec.ts";
import { SUBSET_FILE, SUBSET_TEST, SUBSET_TRAIN } from "../../src/web-assets/mnist-subset.ts";
import type { EpochPoint, FromWorker, RunSettings, Snapshot, StepPoint, ToWorker } from "./protocol.ts";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  envError: $("env-error"),
  model: $<HTMLSelectElement>("model"),
  epochs: $<HTMLInputElement>("epochs"),
  batchSize: $<HTMLInputElement>("batch-size"),
  trainCount: $<HTMLInputElement>("train-count"),
  testCount: $<HTMLInputElement>("test-count"),
  lr: $<HTMLInputElement>("lr"),
  seed: $<HTMLInputElement>("seed"),
  onnxRow: $("onnx-row"),
  onnxFile: $<HTMLInputElement>("onnx-file"),
  augment: $<HTMLInputElement>("augment"),
  start: $<HTMLButtonElement>("start"),
  stop: $<HTMLButtonElement>("stop"),
  cont: $<HTMLButtonElement>("continue"),
  progress: $<HTMLProgressElement>("progress"),
  status: $("status"),
  chart: $("loss-chart"),
  accuracy: $("test-accuracy"),
  epochRows: $("epoch-rows"),
  params: $("params"),
  speed: $("speed"),
  resultNote: $("result-note"),
  downloadModel: $<HTMLAnchorElement>("download-model"),
  downloadCheckpoint: $<HTMLAnchorElement>("download-checkpoint"),
  openDemo: $<HTMLAnchorElement>("open-demo"),
  canvas: $<HTMLCanvasElement>("canvas"),
  clear: $<HTMLButtonElement>("clear"),
  prediction: $("prediction"),
  confidence: $("confidence"),
  inputView: $<HTMLCanvasElement>("input-view"),
};
const params = new URLSearchParams(location.search);
const state = document.documentElement.dataset;

// ---- What the page needs from the browser, said plainly when it is missing
function missingFeature(): string | null {
  const browsers = "use a current Chrome, Edge, Firefox or Safari (16.4+)";
  if (typeof WebAssembly !== "object") return `This browser has no WebAssembly, which onnxruntime-web needs to train; ${browsers}.`;
  if (!simdSupported()) return `This browser's WebAssembly lacks SIMD, which onnxruntime-web needs; ${browsers}, or turn WebAssembly SIMD back on.`;
  if (typeof Worker !== "function") return `This browser has no Web Workers, which the page trains in; ${browsers}.`;
  if (typeof BigInt64Array !== "function") return `This browser has no BigInt64Array (for int64 labels); ${browsers}.`;
  return null;
}

function threadsParam(): number {
  const t = params.get("threads");
  if (t === null) return 1;
  const n = Number(t);
  if (Number.isInteger(n) && n >= 1 && n <= 16) return n;
  ui.envError.textContent = `?threads=${t} is not a whole number from 1 to 16; training with 1 thread`;
  ui.envError.hidden = false;
  return 1;
}

// ---- Settings
for (const name of Object.keys(builtinModels)) ui.model.append(new Option(name, name));
// An ONNX classifier from elsewhere, picked or dropped: fine-tuned from its own weights (`train --from`).
const ONNX_CHOICE = "onnx-file";
ui.model.append(new Option("your ONNX file…", ONNX_CHOICE));
let onnx: { name: string; bytes: Uint8Array } | null = null;
const showOnnxRow = () => (ui.onnxRow.hidden = ui.model.value !== ONNX_CHOICE);
ui.model.addEventListener("change", showOnnxRow);
async function takeOnnx(file: File): Promise<void> {
  onnx = { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
  ui.model.value = ONNX_CHOICE;
  showOnnxRow();
  setStatus(`${file.name} (${(file.size / 1024).toFixed(0)} kB) will be fine-tuned: press Start`);
}
ui.onnxFile.addEventListener("change", () => {
  const f = ui.onnxFile.files?.[0];
  if (f) void takeOnnx(f).catch(showError);
});
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => {
  e.preventDefault();
  const f = e.dataTransfer?.files?.[0];
  if (f && state.training !== "running") void takeOnnx(f).catch(showError);
});
ui.trainCount.max = String(SUBSET_TRAIN);
ui.testCount.max = String(SUBSET_TEST);
$("subset-size").textContent = `up to ${SUBSET_TRAIN.toLocaleString("en-US")} and ${SUBSET_TEST.toLocaleString("en-US")}`;

/** The settings, or a one-line reason why not. */
function readSettings(): RunSettings | string {
  const whole = (input: HTMLInputElement, label: string, min: number, max: number): number | string => {
    const v = Number(input.value);
    return input.value.trim() !== "" && Number.isInteger(v) && v >= min && v <= max ? v : `${label} must be a whole number from ${min} to ${max}, got "${input.value}"`;
  };
  const epochs = whole(ui.epochs, "Epochs", 1, 100);
  const batchSize = whole(ui.batchSize, "Batch size", 1, 1024);
  const trainCount = whole(ui.trainCount, "Training images", 1, SUBSET_TRAIN);
  const testCount = whole(ui.testCount, "Test images", 1, SUBSET_TEST);
  const seed = whole(ui.seed, "Seed", 0, 2 ** 31 - 1);
  const lr = Number(ui.lr.value);
  for (const v of [epochs, batchSize, trainCount, testCount, seed]) if (typeof v === "string") return v;
  if (!(ui.lr.value.trim() !== "" && Number.isFinite(lr) && lr > 0 && lr <= 1)) return `Learning rate must be a number above 0 and at most 1, got "${ui.lr.value}"`;
  if (ui.model.value === ONNX_CHOICE) {
    if (!onnx) return "Choose an ONNX file to fine-tune (or drop one on the page)";
    return { model: onnx.name, onnx: { name: onnx.name, bytes: onnx.bytes.slice() }, epochs, batchSize, trainCount, testCount, lr, seed, augment: ui.augment.checked } as RunSettings;
  }
  return { model: ui.model.value, epochs, batchSize, trainCount, testCount, lr, seed, augment: ui.augment.checked } as RunSettings;
}

// ---- The loss curve: raw loss per step and an exponential moving average (bias-corrected).
const steps = { x: [] as number[], loss: [] as number[], smooth: [] as number[], ema: 0, n: 0 };
const plot = new uPlot(
  {
    width: Math.max(300, ui.chart.clientWidth),
    height: 260,
    legend: { show: true, live: true },
    scales: { x: { time: false } },
    axes: [{ label: "step", labelSize: 20, size: 36 }, { size: 56 }],
    series: [
      { label: "step" },
      { label: "loss", stroke: "rgba(37, 99, 235, 0.35)", width: 1 },
      { label: "smoothed", stroke: "#2563eb", width: 2 },
    ],
  },
  [[], [], []],
  ui.chart,
);
new ResizeObserver(() => plot.setSize({ width: Math.max(300, ui.chart.clientWidth), height: 260 })).observe(ui.chart);
let redraw = 0;
function addSteps(points: StepPoint[]): void {
  for (const p of points) {
    steps.ema = 0.95 * steps.ema + 0.05 * p.loss;
    steps.n++;
    steps.x.push(p.step);
    steps.loss.push(p.loss);
    steps.smooth.push(steps.ema / (1 - 0.95 ** steps.n));
  }
  ui.chart.dataset.points = String(steps.x.length);
  redraw ||= requestAnimationFrame(() => {
    redraw = 0;
    plot.setData([steps.x, steps.loss, steps.smooth]);
  });
}
function resetCurve(): void {
  Object.assign(steps, { x: [], loss: [], smooth: [], ema: 0, n: 0 });
  ui.chart.dataset.points = "0";
  plot.setData([[], [], []]);
}

// ---- The draw pad, with the model trained here
let model: LoadedModel | null = null;
let chain: Promise<unknown> = Promise.resolve();
/** Model swaps and runs go one at a time. */
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const p = chain.then(fn);
  chain = p.catch(() => undefined);
  return p;
}

async function classifyDrawing(): Promise<void> {
  await exclusive(async () => {
    const { data, width, height } = pad.pixels();
    const input = toMnistInput(data, width, height);
    paint(ui.inputView, input.pixels);
    if (input.empty) return showPrediction("", model ? "draw a digit" : "the model appears here after the first epoch");
    if (!model) return showPrediction("", "no model yet: train first");
    const r = await predict(model, input.pixels);
    showPrediction(String(r.prediction), `${(100 * r.probabilities[r.prediction]).toFixed(1)}% sure · ${model.name}`);
  });
}
function showPrediction(digit: string, note: string): void {
  ui.prediction.textContent = digit;
  ui.confidence.textContent = note;
}
const pad = new DrawPad(ui.canvas, () => void classifyDrawing().catch(showError));
const clear = () => {
  pad.clear();
  void classifyDrawing().catch(showError);
};
ui.clear.addEventListener("click", clear);
ui.canvas.addEventListener("keydown", (e) => {
  if (e.key === "Escape" || e.key === "Delete" || e.key === "Backspace") (e.preventDefault(), clear());
});

async function useModel(bytes: Uint8Array, name: string): Promise<void> {
  const loaded = await loadModel(bytes, name);
  await exclusive(async () => {
    const old = model;
    model = loaded;
    await old?.session.release();
  });
  state.models = String(Number(state.models ?? 0) + 1);
  await classifyDrawing();
}

// ---- Downloads: object URLs of the latest snapshot
const urls: string[] = [];
function offer(s: Snapshot): void {
  for (const u of urls.splice(0)) URL.revokeObjectURL(u);
  const url = (bytes: Uint8Array) => {
    const u = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
    urls.push(u);
    return u;
  };
  ui.downloadModel.href = url(s.model);
  ui.downloadCheckpoint.href = url(s.checkpoint);
  // The demo loads `?model=URL`; an object URL of this page is readable by any page of this origin while this one is open.
  ui.openDemo.href = `./index.html?model=${encodeURIComponent(ui.downloadModel.href)}&name=${encodeURIComponent("model trained in this browser")}`;
  for (const a of [ui.downloadModel, ui.downloadCheckpoint, ui.openDemo]) a.setAttribute("aria-disabled", "false");
  const where = s.stepInEpoch ? `epoch ${s.epoch + 1}, after step ${s.stepInEpoch}` : `the end of epoch ${s.epoch}`;
  ui.resultNote.textContent = `${s.step} steps, saved at ${where}: ${(s.model.length / 1024).toFixed(0)} kB model, ${(s.checkpoint.length / 1024).toFixed(0)} kB checkpoint.`;
  void useModel(s.model.slice(), `trained here, step ${s.step}`).catch(showError);
}

// ---- The worker
const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
const threads = threadsParam();
let hasRun = false;
let batches = 0;
let totalEpochs = 0;
let lastStep: StepPoint | null = null;
let speed = { t: 0, step: 0 };
/** For tests and bench/web-train.ts: every step and epoch seen, and the latest snapshot. */
const record = { steps: [] as StepPoint[], epochs: [] as EpochPoint[], snapshot: null as Snapshot | null, ends: 0, warmed: null as Extract<FromWorker, { type: "warmed" }> | null };
Object.assign(globalThis, { onnxMnistTrain: record });

function send(m: ToWorker): void {
  worker.postMessage(m);
}

function setRunning(on: boolean): void {
  state.training = on ? "running" : "idle";
  ui.start.disabled = on;
  ui.stop.disabled = !on;
  ui.cont.disabled = on || !hasRun;
  for (const el of [ui.model, ui.onnxFile, ui.batchSize, ui.trainCount, ui.testCount, ui.lr, ui.seed, ui.augment, ui.epochs]) el.disabled = on;
}

function setStatus(text: string): void {
  ui.status.textContent = text;
}

function showError(e: unknown): void {
  setStatus(`error: ${String((e as Error)?.message ?? e).split("\n")[0]}`);
}

worker.onmessage = (ev: MessageEvent<FromWorker>) => {
  const m = ev.data;
  switch (m.type) {
    case "status":
      return setStatus(m.text);
    case "warmed":
      record.warmed = m;
      return;
    case "started":
      hasRun = true;
      batches = m.batches;
      ui.params.textContent = m.params.toLocaleString("en-US");
      $("ort-version").textContent = m.ortVersion;
      $("threads").textContent = String(m.threads);
      return;
    case "steps": {
      addSteps(m.points);
      record.steps.push(...m.points);
      const p = (lastStep = m.points[m.points.length - 1]);
      const now = performance.now();
      if (now - speed.t > 1000) {
        if (speed.t) ui.speed.textContent = (((p.step - speed.step) * 1000) / (now - speed.t)).toFixed(1);
        speed = { t: now, step: p.step };
      }
      ui.progress.value = (p.epoch - 1 + p.batch / p.batches) / totalEpochs;
      return setStatus(`training: epoch ${p.epoch}/${totalEpochs}, step ${p.batch}/${p.batches} · loss ${steps.smooth[steps.smooth.length - 1].toFixed(4)}`);
    }
    case "epoch": {
      const e = m.point;
      record.epochs.push(e);
      ui.accuracy.textContent = (100 * e.testAccuracy).toFixed(2);
      const row = document.createElement("tr");
      const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
      for (const v of [String(e.epoch), e.trainLoss.toFixed(4), pct(e.trainAccuracy), e.testLoss.toFixed(4), pct(e.testAccuracy), e.seconds.toFixed(1)]) {
        const td = document.createElement("td");
        td.textContent = v;
        row.append(td);
      }
      ui.epochRows.append(row);
      record.snapshot = m.snapshot;
      offer(m.snapshot);
      return;
    }
    case "end": {
      record.snapshot = m.snapshot;
      record.ends++;
      offer(m.snapshot);
      setRunning(false);
      const s = m.snapshot;
      if (m.status === "completed") {
        ui.progress.value = 1;
        setStatus(`trained ${s.epoch} epoch${s.epoch === 1 ? "" : "s"} (${s.step} steps) in ${m.seconds.toFixed(1)} s: done`);
      } else if (m.status === "interrupted") {
        const where = s.stepInEpoch ? `at epoch ${s.epoch + 1}, step ${s.stepInEpoch}/${batches}` : `after epoch ${s.epoch}`;
        setStatus(`stopped ${where}: Continue goes on from here`);
      } else {
        setStatus(`the loss diverged (not a finite number) at step ${lastStep?.step ?? s.step}: lower the learning rate and Start again`);
      }
      state.status = m.status;
      return;
    }
    case "error":
      setRunning(false);
      return showError(m.message);
  }
};
worker.onerror = (e) => {
  setRunning(false);
  showError(`the training worker failed to run (${e.message || "it could not be loaded"}); reload the page`);
};

ui.start.addEventListener("click", () => {
  const s = readSettings();
  if (typeof s === "string") return showError(s);
  resetCurve();
  ui.epochRows.textContent = "";
  ui.accuracy.textContent = "–";
  ui.progress.value = 0;
  record.steps = [];
  record.epochs = [];
  speed = { t: 0, step: 0 };
  totalEpochs = s.epochs;
  setRunning(true);
  setStatus("starting…");
  send({ type: "start", settings: s, ortBase: new URL("./ort/", location.href).href, dataUrl: new URL(`./${SUBSET_FILE}`, location.href).href, threads });
});
ui.stop.addEventListener("click", () => {
  send({ type: "stop" });
  setStatus("stopping after this step…");
});
ui.cont.addEventListener("click", () => {
  const s = readSettings();
  if (typeof s === "string") return showError(s);
  totalEpochs = s.epochs;
  speed = { t: 0, step: 0 };
  setRunning(true);
  setStatus("continuing…");
  send({ type: "continue", epochs: s.epochs });
});

// ---- Start
const missing = missingFeature();
if (missing) {
  ui.envError.textContent = missing;
  ui.envError.hidden = false;
  setStatus("cannot train in this browser (see above)");
  ui.start.disabled = true;
  state.ready = "unsupported";
} else {
  setupOrt(1); // the draw pad's inference, on this thread; training has the worker
  // onnxruntime-web's WASM compiled and optimised while the settings are chosen (worker.ts: warm); ?warm=0 skips
  // it (to measure what it saves: bench/web-train.ts)
  const b = Number(ui.batchSize.value);
  if (params.get("warm") !== "0") send({ type: "warm", model: ui.model.value in builtinModels ? ui.model.value : "mycnn", batchSize: Number.isInteger(b) && b >= 1 && b <= 1024 ? b : 64, ortBase: new URL("./ort/", location.href).href, threads });
  setRunning(false);
  setStatus("ready: choose the settings and press Start");
  state.ready = "yes";
}
