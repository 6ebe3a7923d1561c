/**
 * The emitted graphs run in onnxruntime-web (its WASM backend, in Node) exactly as in onnxruntime-node:
 * the same training steps from the same state and batches, and the same logits from model.onnx.
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web";
import { buildProgram, initialValues } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer, type Ort } from "../src/runtime/trainer.ts";
import { loadMnist } from "../src/data/node.ts";
import { fillBatch } from "../src/data/dataset.ts";
import { Rng } from "../src/random.ts";

const data = loadMnist(undefined, { trainLimit: 4000, testLimit: 1000 });
const defaultProgram = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"));
const init = initialValues(defaultProgram.plan, 0);

beforeAll(() => {
  ortWeb.env.wasm.numThreads = 1; // Node has no cross-origin isolation: single-threaded WASM
});

function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

async function trainBoth(steps: number, batch: number, program = defaultProgram) {
  const make = (ort: Ort) => Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), ort === (ortWeb as unknown as Ort) ? { sessionOptions: { executionProviders: ["wasm"] } } : { threads: 1 });
  const [web, node] = await Promise.all([make(ortWeb as unknown as Ort), make(ortNode)]);
  const order = new Rng(9).permutation(data.train.count);
  const x = new Float32Array(batch * 784);
  const y = new BigInt64Array(batch);
  const losses: [number, number][] = [];
  for (let s = 0; s < steps; s++) {
    const n = fillBatch(data.train, order, s * batch, (s + 1) * batch, x, y);
    const a = await web.trainStep(x, y, n);
    const b = await node.trainStep(x, y, n);
    losses.push([a.loss, b.loss]);
  }
  return { web, node, losses };
}

describe("onnxruntime-web runs the same graphs as onnxruntime-node", () => {
  // Every lowering on and every one off (Col2Im moves the training step to opset 18), whatever the defaults are.
  it.each([
    ["the default lowerings", defaultProgram],
    ["every lowering on (Col2Im at opset 18, the SpaceToDepth max pool)", buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"), { col2im: true, blockPool: true })],
    ["every lowering off", buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"), { col2im: false, blockPool: false })],
  ])("5 training steps with %s from the same state and batches give the same parameters, statistics and optimizer state (relative difference < 1e-5)", async (_name, program) => {
    const { web, node, losses } = await trainBoth(5, 64, program);
    for (const [a, b] of losses) expect(Math.abs(a - b)).toBeLessThan(1e-5 * Math.abs(b) + 1e-6);
    const [sw, sn] = [web.getState(), node.getState()];
    expect(sw.step).toBe(5);
    expect(relDiff(sw.params, sn.params)).toBeLessThan(1e-5);
    expect(relDiff(sw.params, init.params)).toBeGreaterThan(1e-3); // they did train
    expect(relDiff(sw.buffers, sn.buffers)).toBeLessThan(1e-5);
    sw.optimizer.forEach((m, i) => expect(relDiff(m, sn.optimizer[i])).toBeLessThan(1e-5));
  });

  it("model.onnx gives the same logits on 1,000 MNIST test images (max abs difference < 1e-4)", async () => {
    const { node } = await trainBoth(30, 128); // a model that has learned something
    const bytes = node.exportModelForInferencing();
    const [sw, sn] = await Promise.all([ortWeb.InferenceSession.create(bytes, { executionProviders: ["wasm"] }), ortNode.InferenceSession.create(bytes)]);
    const n = data.test.count;
    const x = Float32Array.from(data.test.images, (v) => v / 255);
    const [lw, ln] = await Promise.all([
      sw.run({ input: new ortWeb.Tensor("float32", x, [n, 1, 28, 28]) }),
      sn.run({ input: new ortNode.Tensor("float32", x, [n, 1, 28, 28]) }),
    ]);
    const a = lw.logits.data as Float32Array;
    const b = ln.logits.data as Float32Array;
    expect(a.length).toBe(n * 10);
    let worst = 0;
    let correct = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    for (let i = 0; i < n; i++) {
      const row = Array.from(b.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === data.test.labels[i]) correct++;
    }
    expect(worst).toBeLessThan(1e-4);
    expect(correct / n).toBeGreaterThan(0.3); // learned something (chance is 0.1) after 30 steps
  });
});
