/**
 * The model side of the demo: onnxruntime-web's WASM backend set up to load everything from this server,
 * loading a model from bytes (checked before it replaces the current one), and running it.
 */
import * as ort from "onnxruntime-web/wasm";
import { summarizeModel, type ModelSummary } from "../../src/onnx/summary.ts";
import { ClassifierAdapter, graphFacts, type Calibration, type GraphFacts, type PixelHandling } from "../../src/interop/adapter.ts";
import { decodeSubset, SUBSET_FILE } from "../../src/web-assets/mnist-subset.ts";
import { classify, type Classification } from "../../src/image/classify.ts";

export { ort };
const PIXELS = 28 * 28;

/**
 * Points ORT at the glue and .wasm served beside the page (no network). `threads`: WASM threads to use;
 * default ORT's own choice (1 when the page is not cross-origin isolated).
 */
export function setupOrt(threads?: number): void {
  ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;
  if (threads !== undefined) ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
}

export interface LoadedModel {
  name: string;
  /** Where the model came from: the URL's origin, "this server", or "local file". */
  origin: string;
  session: ort.InferenceSession;
  adapter: ClassifierAdapter;
  /** What detection (or the model's metadata) chose, to go back to from an override. */
  detected: PixelHandling;
  summary: ModelSummary;
}

/**
 * Loads and checks a model (any single-input MNIST classifier, see src/interop/adapter.ts); throws an Error
 * with a one-line message that says what is wrong. Nothing is replaced here: the caller swaps on success.
 * `calibration` provides training images when the pixel convention has to be detected.
 */
export async function loadModel(bytes: Uint8Array, name: string, origin = "this page", calibration: () => Promise<Calibration> = subsetCalibration()): Promise<LoadedModel> {
  let summary: ModelSummary;
  let facts: GraphFacts;
  try {
    summary = summarizeModel(bytes);
    facts = graphFacts(bytes);
  } catch (e) {
    throw new Error(`${name} is not an ONNX model (${(e as Error).message}); load an MNIST classifier .onnx (input [N,1,28,28], [N,28,28], [N,784] or [N,28,28,1], 10 scores out)`);
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all", logSeverityLevel: 3 });
  } catch (e) {
    throw new Error(`${name}: onnxruntime cannot load it (${firstLine(e)})`);
  }
  try {
    const adapter = await ClassifierAdapter.create(ort, session, name, { facts, calibration });
    return { name, origin, session, adapter, detected: adapter.pixels, summary };
  } catch (e) {
    await session.release();
    throw new Error(firstLine(e));
  }
}

/** Scores [n, 10] (logits or log-probabilities) for n images of 784 pixels in [0, 1]. */
export async function run(model: LoadedModel, pixels: Float32Array, n: number): Promise<Float32Array> {
  return model.adapter.scores(pixels, n);
}

/** Classifies one image; `ms` is the time of the session run alone. */
export async function predict(model: LoadedModel, pixels: Float32Array): Promise<Classification & { ms: number }> {
  const t0 = performance.now();
  const scores = await run(model, pixels, 1);
  const ms = performance.now() - t0;
  return { ...classify(scores, 3), ms };
}

/** The first training images of the Train page's MNIST subset, fetched once, when a model needs calibrating. */
let calibrationImages: Promise<Calibration> | undefined;
export function subsetCalibration(count = 500): () => Promise<Calibration> {
  return () =>
    (calibrationImages ??= (async () => {
      const res = await fetch(`./${SUBSET_FILE}`);
      if (!res.ok) throw new Error(`cannot fetch training images to detect the pixel convention (HTTP ${res.status}); choose the pixels by hand`);
      const train = decodeSubset(new Uint8Array(await res.arrayBuffer())).train;
      const n = Math.min(count, train.count);
      const images = new Float32Array(n * PIXELS);
      for (let i = 0; i < images.length; i++) images[i] = train.images[i] / 255;
      return { images, labels: train.labels.subarray(0, n), count: n };
    })());
}

/** Fetches a model URL; throws a one-line message when that fails. */
export async function fetchModel(url: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url, { cache: "no-store" });
  } catch (e) {
    throw new Error(`cannot fetch the model ${url} (${firstLine(e)})`);
  }
  if (res.status === 404) throw new Error(`no model at ${url} (404); load a model.onnx with the file picker or by dropping it here`);
  if (!res.ok) throw new Error(`cannot fetch the model ${url} (HTTP ${res.status} ${res.statusText})`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Whether this browser validates a module that uses 128-bit SIMD instructions (the probe of wasm-feature-detect). */
export function simdSupported(): boolean {
  const bytes = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11];
  return WebAssembly.validate(new Uint8Array(bytes));
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}
