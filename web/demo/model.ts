/**
 * The model side of the demo: onnxruntime-web's WASM backend set up to load everything from this server,
 * loading a model from bytes (checked before it replaces the current one), and running it.
 */
import * as ort from "onnxruntime-web/wasm";
import { summarizeModel, type ModelSummary } from "../../src/onnx/summary.ts";
import { checkMnistModel } from "../../src/runtime/check-model.ts";
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
  session: ort.InferenceSession;
  summary: ModelSummary;
}

/**
 * Loads and checks a model; throws an Error with a one-line message that says what is wrong, e.g. not ONNX,
 * or inputs/outputs that do not fit. Nothing is replaced here: the caller swaps on success.
 */
export async function loadModel(bytes: Uint8Array, name: string): Promise<LoadedModel> {
  let summary: ModelSummary;
  try {
    summary = summarizeModel(bytes);
  } catch (e) {
    throw new Error(`${name} is not an ONNX model (${(e as Error).message}); load a model.onnx written by onnx-mnist train or exported with input [N,1,28,28] and output logits [N,10]`);
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  } catch (e) {
    throw new Error(`${name}: onnxruntime cannot load it (${firstLine(e)})`);
  }
  try {
    checkMnistModel(session, name);
    // The metadata can leave dimensions open; one run on a blank image settles the output size.
    const logits = await run(session, new Float32Array(PIXELS), 1);
    if (logits.length !== 10) throw new Error(`${name}: gives ${logits.length} logits for one image, expected 10`);
  } catch (e) {
    await session.release();
    throw new Error(firstLine(e));
  }
  return { name, session, summary };
}

/** logits [n, 10] for n images of 784 pixels in [0, 1]. */
export async function run(session: ort.InferenceSession, pixels: Float32Array, n: number): Promise<Float32Array> {
  const input = new ort.Tensor("float32", pixels.subarray(0, n * PIXELS), [n, 1, 28, 28]);
  const out = await session.run({ input }, ["logits"]);
  const logits = out.logits.data as Float32Array;
  input.dispose();
  return logits;
}

/** Classifies one image; `ms` is the time of the session run alone. */
export async function predict(session: ort.InferenceSession, pixels: Float32Array): Promise<Classification & { ms: number }> {
  const t0 = performance.now();
  const logits = await run(session, pixels, 1);
  const ms = performance.now() - t0;
  return { ...classify(logits, 3), ms };
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
