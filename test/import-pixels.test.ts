/**
 * Fine-tuning a model trained elsewhere on other pixels (0-255, mean/std): the training and evaluation graphs
 * map MNIST's [0,1] images into the model's convention (`--input-preset` and friends, with --from), and the
 * exported model keeps taking what it took.
 */
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { importOnnxFile } from "../src/node/onnx-file.ts";
import { buildProgram, initialValues } from "../src/program/program.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer } from "../src/runtime/trainer.ts";
import { fillBatch } from "../src/data/dataset.ts";
import { loadMnist } from "../src/data/node.ts";
import { PRESETS, type PixelConvention } from "../src/image/convention.ts";
import { torchModels } from "./helpers/torch-models.ts";

const ROOT = join(import.meta.dirname, "..");
const N = 1000;

async function accuracy(file: string, pixels?: PixelConvention): Promise<{ accuracy: number; trainer: Trainer }> {
  const program = buildProgram(importOnnxFile(file, { pixels }), optimizerConfig("adam", { lr: 1e-4 }));
  const init = initialValues(program.plan, 0);
  const trainer = await Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads: 1 });
  const { test } = loadMnist(undefined, { trainLimit: 1, testLimit: N });
  const x = new Float32Array(N * 784);
  const y = new BigInt64Array(N);
  fillBatch(test, Uint32Array.from({ length: N }, (_, i) => i), 0, N, x, y);
  return { accuracy: (await trainer.evalStep(x, y)).correct / N, trainer };
}

describe("pixel conventions of imported models", () => {
  it("a model trained by PyTorch on 0-255 pixels keeps its accuracy when told --input-preset byte, and loses it when not", async () => {
    const { dir, models } = await torchModels();
    const file = join(dir, models.byte.file);
    const told = await accuracy(file, PRESETS.byte);
    const untold = await accuracy(file);
    expect(told.accuracy).toBeGreaterThan(models.byte.correct / models.byte.count - 0.03);
    expect(told.accuracy).toBeGreaterThan(untold.accuracy + 0.3);
    // The exported model still takes 0-255 (what the user's pipeline feeds it), and says so in its metadata.
    const exported = await ort.InferenceSession.create(told.trainer.exportModelForInferencing());
    expect(exported.inputNames).toEqual(["input.1"]);
  }, 600_000);

  it("the same for MNIST's mean/std normalisation", async () => {
    const { dir, models } = await torchModels();
    const told = await accuracy(join(dir, models.mnist.file), PRESETS.mnist);
    expect(told.accuracy).toBeGreaterThan(models.mnist.correct / models.mnist.count - 0.03);
  }, 600_000);

  it("pixel flags without --from are a usage error (our own models take [0,1])", async () => {
    const r = await promisify(execFile)(process.execPath, ["bin/onnx-mnist.js", "train", "--input-preset", "byte", "--epochs", "1"], { cwd: ROOT }).catch((e) => e);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/use them with --from model\.onnx/);
  }, 120_000);
});
