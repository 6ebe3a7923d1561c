/**
 * Logits -> probabilities and a ranking of the digits. Browser-safe; `onnx-mnist predict` uses it, and so
 * can the web demo.
 */
import { ModelError } from "../runtime/check-model.ts";

export interface Classification {
  prediction: number;
  probabilities: number[];
  top: { digit: number; p: number }[];
}

/** softmax(z)_i = exp(z_i - max z) / sum_j exp(z_j - max z), in float64 (subtracting the max avoids overflow). */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const e = Array.from(logits, (z) => Math.exp(z - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Probabilities of one row of logits and its `k` likeliest classes, likeliest first (ties: lower digit first). */
export function classify(logits: ArrayLike<number>, k = 3): Classification {
  const probabilities = softmax(logits);
  const order = probabilities.map((p, digit) => ({ digit, p })).sort((a, b) => b.p - a.p || a.digit - b.digit);
  return { prediction: order[0].digit, probabilities, top: order.slice(0, k) };
}

/**
 * Runs `run` (images [n, 784] -> logits [n, classes]) over many 28x28 inputs in batches and classifies each.
 * The buffer for a batch is allocated once.
 */
export async function classifyAll(
  run: (x: Float32Array, n: number) => Promise<Float32Array>,
  inputs: readonly Float32Array[],
  o: { batchSize?: number; classes?: number; top?: number } = {},
): Promise<Classification[]> {
  const bs = o.batchSize ?? 256;
  const classes = o.classes ?? 10;
  const px = 28 * 28;
  const x = new Float32Array(Math.min(bs, inputs.length) * px);
  const out: Classification[] = [];
  for (let start = 0; start < inputs.length; start += bs) {
    const n = Math.min(bs, inputs.length - start);
    for (let k = 0; k < n; k++) x.set(inputs[start + k], k * px);
    const logits = await run(x, n);
    if (logits.length !== n * classes) throw new ModelError(`the model gave ${logits.length} logits for ${n} images, expected ${n * classes}`);
    for (let k = 0; k < n; k++) out.push(classify(logits.subarray(k * classes, (k + 1) * classes), o.top ?? 3));
  }
  return out;
}
