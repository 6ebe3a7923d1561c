/** Node-only: open a `model.onnx` with onnxruntime-node, with clear errors for files that are not one. */
import * as ort from "onnxruntime-node";
import { existsSync, statSync } from "node:fs";
import { readFileOrFail, UserError } from "./files.ts";
import { ClassifierAdapter, graphFacts, type Calibration, type GraphFacts } from "../interop/adapter.ts";
import { checkMnistModel } from "../runtime/check-model.ts";
import type { Predictor } from "../runtime/fit.ts";
import { PRESET_NAMES, type PixelConvention } from "../image/convention.ts";
import { loadMnistSplit } from "../data/node.ts";

/** A session over the model file; the bytes are read here so that callers can also inspect the graph. */
export async function openSession(path: string, threads?: number): Promise<{ session: ort.InferenceSession; bytes: Uint8Array }> {
  if (!existsSync(path)) throw new UserError(`${path}: no such file (expected an ONNX model, e.g. runs/latest/model.onnx)`);
  if (statSync(path).isDirectory()) throw new UserError(`${path}: is a directory; pass the model.onnx file inside it`);
  const bytes = readFileOrFail(path, "an ONNX model");
  let session: ort.InferenceSession;
  try {
    // From the path, not the bytes, so that external data files resolve beside the model.
    session = await ort.InferenceSession.create(path, { logSeverityLevel: 3, ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}) });
  } catch (e) {
    const reason = String((e as Error).message).split("\n")[0];
    // onnxruntime: `External data path does not exist: "/dir/model.onnx.data"` (1.30), or similar wording.
    if (/external data/i.test(reason)) {
      const file = /"([^"]+)"/.exec(reason)?.[1];
      throw new UserError(`${path}: its weights are in an external data file that is missing or unreadable${file ? ` (${file})` : ""}; keep the .onnx and its data file together, as they were exported`);
    }
    throw new UserError(`${path}: not a loadable ONNX model (${reason.slice(0, 200)})`);
  }
  return { session, bytes };
}

/**
 * Opens any MNIST classifier (see src/interop/adapter.ts). `calibration` is called only if the pixel
 * convention must be detected.
 */
export async function openClassifier(
  path: string,
  o: { threads?: number; convention?: PixelConvention; calibration?: () => Promise<Calibration> } = {},
): Promise<ClassifierAdapter & { release(): Promise<void> }> {
  const { session, bytes } = await openSession(path, o.threads);
  let facts: GraphFacts | undefined;
  try {
    facts = graphFacts(bytes);
  } catch {
    facts = undefined; // onnxruntime loaded it, so it is ONNX; without facts, outputs are judged by their values
  }
  try {
    const adapter = await ClassifierAdapter.create(ort, session, path, { facts, convention: o.convention, calibration: o.calibration });
    return Object.assign(adapter, { release: () => session.release() });
  } catch (e) {
    await session.release();
    throw e;
  }
}

/** How many training images calibrate the pixel convention: enough to tell 98 % from 90 % apart, fast at batch 1. */
export const CALIBRATION_IMAGES = 500;

/** The first training images of `dir` (default: the bundled MNIST), read only when this is called. */
export function trainingCalibration(dir: string | undefined, count = CALIBRATION_IMAGES): () => Promise<Calibration> {
  return async () => {
    let split;
    try {
      split = loadMnistSplit(dir, "train", count);
    } catch (e) {
      throw new UserError(`the model's pixel convention is detected on training images, and they cannot be read (${(e as Error).message}); pass --input-preset (${PRESET_NAMES.join(", ")}) or --data DIR with the training files`);
    }
    const images = new Float32Array(split.count * 784);
    for (let i = 0; i < images.length; i++) images[i] = split.images[i] / 255;
    return { images, labels: split.labels, count: split.count };
  };
}

/** A session over a model that keeps onnx-mnist's own contract (`input` [N,1,28,28] -> `logits`), checked. */
export async function openModel(path: string, threads?: number): Promise<ort.InferenceSession> {
  const { session } = await openSession(path, threads);
  try {
    checkMnistModel(session, path);
  } catch (e) {
    await session.release();
    throw e;
  }
  return session;
}

/** A Predictor over a session that keeps onnx-mnist's contract (any other classifier: `openClassifier`). */
export function sessionPredictor(session: ort.InferenceSession, shape: [number, number, number] = [1, 28, 28]): Predictor {
  const px = shape[0] * shape[1] * shape[2];
  return async (x, _y, n) => {
    const out = await session.run({ input: new ort.Tensor("float32", x.subarray(0, n * px), [n, ...shape]) });
    return out.logits.data as Float32Array;
  };
}
