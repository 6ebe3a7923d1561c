/**
 * The web demo: draw a digit (or pick a real MNIST test digit) and see what the model says, live.
 * Preprocessing is the same src/ code as `onnx-mnist predict`. URL parameters: `?model=URL` loads that model
 * instead of the served ./model.onnx; `?threads=N` sets the WASM thread count (default: onnxruntime's choice).
 */
import { DrawPad } from "./draw.ts";
import { GalleryView, paint } from "./gallery.ts";
import { ort, setupOrt, loadModel, fetchModel, predict, run, simdSupported, subsetCalibration, type LoadedModel } from "./model.ts";
import { PRESETS, PRESET_NAMES, describeConvention, type PresetName } from "../../src/image/convention.ts";
import { toMnistInput } from "../../src/image/preprocess.ts";
import { decodeGallery } from "../../src/web-assets/gallery.ts";
import type { Classification } from "../../src/image/classify.ts";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  canvas: $<HTMLCanvasElement>("canvas"),
  clear: $<HTMLButtonElement>("clear"),
  prediction: $("prediction"),
  confidence: $("confidence"),
  latency: $("latency"),
  inputView: $<HTMLCanvasElement>("input-view"),
  bars: $("probabilities"),
  modelName: $("model-name"),
  modelFile: $<HTMLInputElement>("model-file"),
  modelError: $("model-error"),
  modelHandling: $("model-handling"),
  modelOrigin: $("model-origin"),
  pixels: $<HTMLSelectElement>("pixels"),
  gallery: $("gallery"),
  accuracy: $("gallery-accuracy"),
  drop: $("drop"),
};
const params = new URLSearchParams(location.search);
const state = document.documentElement.dataset;

let current: LoadedModel | null = null;
let gallery: GalleryView | null = null;
/** Session runs and model swaps go one at a time through this chain. */
let chain: Promise<unknown> = Promise.resolve();
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const p = chain.then(fn);
  chain = p.catch(() => undefined);
  return p;
}

// ---- Prediction display
const bars = Array.from({ length: 10 }, (_, digit) => {
  const li = document.createElement("li");
  li.dataset.digit = String(digit);
  li.innerHTML = `<span class="d">${digit}</span><span class="track"><span class="fill"></span></span><span class="p">–</span>`;
  ui.bars.append(li);
  return { li, fill: li.querySelector<HTMLElement>(".fill")!, p: li.querySelector<HTMLElement>(".p")! };
});

function show(r: Classification & { ms: number }, note: string): void {
  ui.prediction.textContent = String(r.prediction);
  ui.confidence.textContent = `${(100 * r.probabilities[r.prediction]).toFixed(1)}% sure${note ? ` · ${note}` : ""}`;
  ui.latency.textContent = r.ms.toFixed(2);
  r.probabilities.forEach((p, d) => {
    bars[d].fill.style.width = `${(100 * p).toFixed(1)}%`;
    bars[d].p.textContent = `${(100 * p).toFixed(1)}%`;
    bars[d].li.classList.toggle("top", d === r.prediction);
    bars[d].li.setAttribute("aria-label", `${d}: ${(100 * p).toFixed(1)} percent`);
  });
}

function showNothing(message: string): void {
  ui.prediction.textContent = "";
  ui.confidence.textContent = message;
  for (const b of bars) {
    b.fill.style.width = "0";
    b.p.textContent = "–";
    b.li.classList.remove("top");
  }
}

// ---- Drawing, predicted while drawing: requests coalesce so at most one run is queued behind the current one.
let pending = false;
let running = false;
async function predictDrawing(): Promise<void> {
  pending = true;
  if (running) return;
  running = true;
  try {
    while (pending) {
      pending = false;
      await exclusive(async () => {
        const { data, width, height } = pad.pixels();
        const input = toMnistInput(data, width, height);
        paint(ui.inputView, input.pixels);
        if (input.empty) return showNothing("draw a digit");
for (const p of PRESET_NAMES) ui.pixels.append(new Option(`${p}: ${describeConvention(PRESETS[p])}`, p));
        if (!current) return showNothing("no model loaded");
        show(await predict(current, input.pixels), "");
      });
    }
  } catch (e) {
    showError(`prediction failed: ${firstLine(e)}`);
  } finally {
    running = false;
  }
}

const pad = new DrawPad(ui.canvas, () => {
  gallery?.select(null);
  void predictDrawing();
});
function clear(): void {
  pad.clear();
  gallery?.select(null);
  void predictDrawing();
}
ui.clear.addEventListener("click", clear);
document.addEventListener("keydown", (e) => {
  const typing = e.target instanceof HTMLInputElement;
  if (!typing && (e.key === "Escape" || ((e.key === "Delete" || e.key === "Backspace") && e.target === ui.canvas))) {
    e.preventDefault();
    clear();
  }
});

// ---- Models
function showError(message: string): void {
  ui.modelError.textContent = message;
  ui.modelError.hidden = false;
}

/** Loads a model; on any failure shows why and keeps the current model. */
async function useModel(source: () => Promise<Uint8Array>, name: string, origin: string): Promise<void> {
  state.model = current ? "ready" : "loading";
  try {
    const loaded = await loadModel(await source(), name, origin, subsetCalibration());
    await exclusive(async () => {
      const old = current;
      current = loaded;
      await old?.session.release();
    });
    ui.modelError.hidden = true;
    ui.modelError.textContent = "";
    describeModel(loaded);
    await classifyGallery();
    await predictDrawing();
  } catch (e) {
    showError(firstLine(e));
  } finally {
    if (!current) ui.modelName.textContent = "no model loaded";
    state.model = current ? "ready" : "none";
    state.loads = String(Number(state.loads ?? 0) + 1);
  }
}

function describeModel(m: LoadedModel): void {
  const s = m.summary;
  ui.modelOrigin.textContent = m.origin;
  ui.modelHandling.textContent = m.adapter.describe();
  ui.pixels.value = m.adapter.pixels.source === "given" ? (m.adapter.pixels.preset ?? "auto") : "auto";
  ui.modelName.textContent = `${m.name}: ${s.parameters.toLocaleString("en-US")} weights, opset ${s.opsets.find((o) => o.domain === "")?.version ?? "?"}`;
  $("opset").textContent = s.opsets.map((o) => `${o.domain || "ai.onnx"} ${o.version}`).join(", ") || "none";
  $("params").textContent = s.parameters.toLocaleString("en-US");
  $("producer").textContent = `${s.producer || "unknown"} (IR version ${s.irVersion})`;
  // After the first session, onnxruntime has settled these.
  $("backend").textContent = "wasm";
  $("threads").textContent = String(ort.env.wasm.numThreads ?? 1);
}

ui.modelFile.addEventListener("change", () => {
  const file = ui.modelFile.files?.[0];
  ui.modelFile.value = ""; // so choosing the same file again loads it again
  if (file) void useModel(async () => new Uint8Array(await file.arrayBuffer()), file.name, "local file");
});
let dragDepth = 0;
document.addEventListener("dragenter", (e) => {
  if (!e.dataTransfer?.types.includes("Files")) return;
  dragDepth++;
  ui.drop.hidden = false;
});
document.addEventListener("dragleave", () => {
  if (--dragDepth <= 0) (dragDepth = 0), (ui.drop.hidden = true);
});
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => {
  e.preventDefault();
  dragDepth = 0;
  ui.drop.hidden = true;
  const file = e.dataTransfer?.files[0];
  if (file) void useModel(async () => new Uint8Array(await file.arrayBuffer()), file.name, "local file");
});

// The pixel convention: detected (auto) or chosen here; the gallery and the drawing are classified again.
ui.pixels.addEventListener("change", () => {
  const m = current;
  if (!m) return;
  const choice = ui.pixels.value;
  m.adapter.pixels = choice in PRESETS ? { convention: PRESETS[choice as PresetName], preset: choice as PresetName, source: "given" } : m.detected;
  ui.modelHandling.textContent = m.adapter.describe();
  void classifyGallery().then(predictDrawing);
});

// ---- Gallery
async function classifyGallery(): Promise<void> {
  if (!gallery || !current) return;
  const g = gallery;
  const logits = await exclusive(() => run(current!, g.batch(), g.gallery.count));
  const predictions = Array.from({ length: g.gallery.count }, (_, k) => argmax(logits.subarray(10 * k, 10 * k + 10)));
  const right = g.mark(predictions);
  ui.accuracy.textContent = `${((100 * right) / g.gallery.count).toFixed(1)}% (${right}/${g.gallery.count})`;
}

async function pick(k: number): Promise<void> {
  if (!gallery) return;
  const g = gallery;
  pad.clear();
  g.select(k);
  const pixels = g.pixels(k);
  paint(ui.inputView, pixels);
  if (!current) return showNothing("no model loaded");
  const r = await exclusive(() => predict(current!, pixels));
  const label = g.gallery.labels[k];
  show(r, `test image ${g.gallery.indices[k]} is a ${label}: ${r.prediction === label ? "right" : "wrong"}`);
}

async function loadGallery(): Promise<void> {
  try {
    const res = await fetch("./mnist-gallery.bin");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    gallery = new GalleryView(ui.gallery, decodeGallery(new Uint8Array(await res.arrayBuffer())), (k) => void pick(k));
  } catch (e) {
    ui.accuracy.textContent = `gallery unavailable (${firstLine(e)})`;
  }
}

function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

/** Who serves the model: shown in the Model panel, since ?model= loads any CORS-enabled URL. */
function modelOrigin(url: string): string {
  const u = new URL(url, location.href);
  return u.origin === location.origin ? `this server (${u.pathname})` : `${u.origin} (not this server)`;
}

// ---- Start
function threadsParam(): number | undefined {
  const t = params.get("threads");
  if (t === null) return undefined;
  const n = Number(t);
  if (Number.isInteger(n) && n >= 1 && n <= 64) return n;
  showError(`?threads=${t} is not a whole number from 1 to 64; using onnxruntime's default`);
  return undefined;
}

setupOrt(threadsParam());
$("ort-version").textContent = ort.env.versions.web ?? "?";
$("simd").textContent = simdSupported() ? "yes" : "no (onnxruntime-web needs WebAssembly SIMD)";
$("isolated").textContent = String(globalThis.crossOriginIsolated === true);
showNothing("draw a digit");
for (const p of PRESET_NAMES) ui.pixels.append(new Option(`${p}: ${describeConvention(PRESETS[p])}`, p));
// For tests and bench/web-latency.ts: the ort module, the current session, and the preprocessing.
Object.assign(globalThis, { onnxMnist: { ort, run, toMnistInput, session: () => current?.session ?? null } });

const modelUrl = params.get("model") ?? "./model.onnx";
const modelName = params.get("name") ?? (params.has("model") ? modelUrl : "model.onnx");
await loadGallery();
await useModel(() => fetchModel(modelUrl), modelName, modelOrigin(modelUrl));
