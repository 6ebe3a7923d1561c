/** Node-only: open a `model.onnx` with onnxruntime-node, with clear errors for files that are not one. */
import * as ort from "onnxruntime-node";
import { existsSync, statSync } from "node:fs";
import { checkMnistModel } from "../runtime/check-model.ts";
import { UserError } from "./files.ts";
import type { Predictor } from "../runtime/fit.ts";

export async function openModel(path: string, threads?: number): Promise<ort.InferenceSession> {
  if (!existsSync(path)) throw new UserError(`${path}: no such file (expected an ONNX model, e.g. runs/latest/model.onnx)`);
  if (statSync(path).isDirectory()) throw new UserError(`${path}: is a directory; pass the model.onnx file inside it`);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {});
  } catch (e) {
    const reason = String((e as Error).message).split("\n")[0].slice(0, 200);
    throw new UserError(`${path}: not a loadable ONNX model (${reason})`);
  }
  checkMnistModel(session, path);
  return session;
}

/** A Predictor over an inference session with input `input` [N,1,28,28] and output `logits` [N,10]. */
export function sessionPredictor(session: ort.InferenceSession, shape: [number, number, number] = [1, 28, 28]): Predictor {
  const px = shape[0] * shape[1] * shape[2];
  return async (x, _y, n) => {
    const out = await session.run({ input: new ort.Tensor("float32", x.subarray(0, n * px), [n, ...shape]) });
    return out.logits.data as Float32Array;
  };
}
