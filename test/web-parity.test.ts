/**
 * The browser runtime gives the same answers as the Node one: onnxruntime-web (its WASM backend, here in Node)
 * and onnxruntime-node compute the same logits for a model trained by our CLI on 1,000 real MNIST test images.
 * Also: the page's tiny ONNX reader (src/onnx/summary.ts) agrees with a full protobufjs decode.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web/wasm";
import { loadMnist } from "../src/data/node.ts";
import { ModelProto, type ModelMsg } from "../src/onnx/proto.ts";
import { summarizeModel, NotOnnxError } from "../src/onnx/summary.ts";
import { trainedModel } from "./helpers/trained-model.ts";

const N = 1000;
let modelPath: string;
let bytes: Uint8Array;

beforeAll(async () => {
  modelPath = await trainedModel();
  bytes = new Uint8Array(readFileSync(modelPath));
  ortWeb.env.wasm.numThreads = 1; // Node is not cross-origin isolated: single-threaded WASM
});

describe("onnxruntime-web (WASM) and onnxruntime-node", () => {
  it(`give the same logits on ${N} MNIST test images`, async () => {
    const test = loadMnist(undefined, { trainLimit: 1, testLimit: N }).test;
    const x = Float32Array.from(test.images.subarray(0, N * 784), (v) => v / 255);
    const web = await ortWeb.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    const node = await ortNode.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
    const a = (await web.run({ input: new ortWeb.Tensor("float32", x, [N, 1, 28, 28]) })).logits;
    const b = (await node.run({ input: new ortNode.Tensor("float32", x, [N, 1, 28, 28]) })).logits;
    expect(a.dims).toEqual([N, 10]);
    expect(b.dims).toEqual([N, 10]);
    const la = a.data as Float32Array;
    const lb = b.data as Float32Array;
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < la.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(la[i] - lb[i]));
      maxAbs = Math.max(maxAbs, Math.abs(lb[i]));
    }
    expect(maxDiff).toBeLessThan(1e-4);
    // A real trained model, not a constant one: logits of some size, and most images classified right.
    expect(maxAbs).toBeGreaterThan(1);
    let right = 0;
    for (let k = 0; k < N; k++) {
      const row = Array.from(la.subarray(10 * k, 10 * k + 10));
      if (row.indexOf(Math.max(...row)) === test.labels[k]) right++;
    }
    expect(right / N).toBeGreaterThan(0.9);
    await web.release();
    await node.release();
  });
});

describe("summarizeModel (the page's ONNX reader)", () => {
  it("agrees with a full protobufjs decode on opsets and parameter count", () => {
    const full = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, defaults: true }) as unknown as ModelMsg;
    const s = summarizeModel(bytes);
    expect(s.irVersion).toBe(Number(full.ir_version));
    expect(s.opsets).toEqual(full.opset_import.map((o) => ({ domain: o.domain, version: Number(o.version) })));
    expect(s.opsets).toContainEqual({ domain: "", version: 17 });
    const floats = full.graph.initializer.filter((t) => t.data_type === 1);
    const expected = floats.reduce((sum, t) => sum + t.dims.reduce<number>((p, d) => p * Number(d), 1), 0);
    expect(expected).toBeGreaterThan(1000);
    expect(s.parameters).toBe(expected);
    expect(s.initializers).toBe(full.graph.initializer.length);
  });

  it("rejects files that are not ONNX models with a reason", () => {
    expect(() => summarizeModel(new Uint8Array())).toThrow(/empty/);
    expect(() => summarizeModel(new TextEncoder().encode("hello, this is a text file\n"))).toThrow(NotOnnxError);
    expect(() => summarizeModel(bytes.subarray(0, Math.floor(bytes.length / 2)))).toThrow(/truncated/);
    expect(() => summarizeModel(readFileSync(new URL("../package.json", import.meta.url)))).toThrow(NotOnnxError);
  });
});
