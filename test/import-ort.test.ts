/**
 * Does the imported IR still compute what the model did? Each IR is written back node for node as a plain
 * ONNX model (test/helpers/ir-onnx.ts: no builder, no replay) and run in onnxruntime-node: eval-mode exports
 * against onnxruntime on the original file on 1,000 real MNIST test images, every export against PyTorch's own
 * scores for the reference batch (training-mode exports compute batch statistics in onnxruntime, so for them
 * PyTorch's eval-mode scores are the reference).
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { importOnnx } from "../src/ir/import.ts";
import type { ModelIR } from "../src/ir/ir.ts";
import { firstTestImages, importModels, type ImportModel } from "./helpers/import-models.ts";
import { irToOnnx } from "./helpers/ir-onnx.ts";

const N = 1000;
let models: ImportModel[];
let images: Float32Array;
beforeAll(async () => {
  models = await importModels();
  images = firstTestImages(N);
});

const imageDims = (ir: ModelIR, n: number) => [n, ...(ir.input.shape.slice(1) as number[])];

async function run(bytes: Uint8Array, ir: ModelIR, x: Float32Array, n: number, outputs: string[]): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const out = await session.run({ [ir.input.name]: new ort.Tensor("float32", x, imageDims(ir, n)) }, outputs);
    return outputs.map((o) => out[o].data as Float32Array);
  } finally {
    await session.release();
  }
}

async function oneByOne(bytes: Uint8Array, ir: ModelIR, x: Float32Array, n: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  const out = new Float32Array(n * ir.classes);
  for (let i = 0; i < n; i++) {
    const r = await session.run({ [ir.input.name]: new ort.Tensor("float32", x.slice(i * 784, (i + 1) * 784), imageDims(ir, 1)) });
    out.set(r[ir.output.name].data as Float32Array, i * ir.classes);
  }
  await session.release();
  return out;
}

const maxAbs = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
};

describe("the imported IR computes what the original model does", () => {
  it("eval-mode exports: equal to onnxruntime on the original file, 1,000 MNIST test images", async () => {
    const evals = models.filter((m) => m.mode === "eval");
    expect(evals.length).toBeGreaterThanOrEqual(9);
    for (const m of evals) {
      const ir = importOnnx(m.bytes(), { source: m.file });
      // A fixed-batch export takes one image per run (its batch is 1); the IR takes all at once.
      const theirs = m.batch === "dynamic" ? await run(m.bytes(), ir, images, N, [ir.output.name]) : [await oneByOne(m.bytes(), ir, images, N)];
      const ours = await run(irToOnnx(ir), ir, images, N, [ir.output.name]);
      const diff = maxAbs(ours[0], theirs[0]);
      expect(diff, `${m.file}: max |IR - original| ${diff}`).toBeLessThan(1e-4);
      // not vacuous: the scores differ between images
      expect(new Set(Array.from(theirs[0].subarray(0, 100), (v) => v.toPrecision(4))).size, m.file).toBeGreaterThan(20);
    }
  }, 900_000);

  it("every export: its class scores equal PyTorch's on the reference batch", async () => {
    for (const m of models) {
      const ir = importOnnx(m.bytes(), { source: m.file });
      const ref = m.ref();
      const x = ref.get("images")!;
      const logits = ref.get("logits")!;
      const [scores] = await run(irToOnnx(ir, [ir.scores]), ir, x.data, x.shape[0], [ir.scores]);
      const diff = maxAbs(scores, logits.data);
      const scale = logits.data.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      expect(diff, `${m.file}: max |IR - PyTorch| ${diff} (scores up to ${scale})`).toBeLessThan(1e-4 * Math.max(1, scale));
    }
  }, 900_000);
});
