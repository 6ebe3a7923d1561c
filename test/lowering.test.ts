/**
 * The alternative lowerings (Lowering in src/ops/builder.ts) compute what the plain ones do, through
 * onnxruntime-node: the SpaceToDepth/ReduceMax max pool equals MaxPool with Indices + MaxUnpool bit for bit,
 * forward and backward, on inputs full of ties (so a whole training step is unchanged bit for bit); the MatMul +
 * Col2Im conv input gradient equals the flipped-weight Conv's up to float rounding; and only the training step
 * moves to opset 18, model.onnx stays at 17.
 * (Their gradients against finite differences: test/ops-grad.test.ts.)
 */
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { G, type Lowering } from "../src/ops/builder.ts";
import { gradients } from "../src/autodiff/backward.ts";
import { decodeModel, encodeModel, toNumber } from "../src/onnx/proto.ts";
import type { Value } from "../src/graph/value.ts";
import type { ConvAttrs } from "../src/ops/conv.ts";
import { buildInferenceModel, buildProgram, initialValues } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Rng } from "../src/random.ts";

/** y = f(x) and dx = vjp(u) for given x and u, in one graph built with `lowering`. */
async function forwardBackward(shapes: number[][], f: (g: G, xs: Value[]) => Value, values: Float32Array[], u: Float32Array, lowering: Partial<Lowering>) {
  const g = new G("fb", lowering);
  const xs = shapes.map((s, i) => g.input(`x${i}`, s, "float32"));
  g.record();
  xs.forEach((x) => g.watch(x));
  const y = f(g, xs);
  const uv = g.input("u", y.shape, "float32");
  const grads = gradients(g, y, xs, uv);
  g.output(y, "y");
  xs.forEach((x, i) => g.output(grads.get(x.name)!, `dx${i}`));
  const model = g.toModel();
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1 });
  const out = await session.run({ ...Object.fromEntries(values.map((v, i) => [`x${i}`, new ort.Tensor("float32", v, shapes[i])])), u: new ort.Tensor("float32", u, y.shape as number[]) });
  return { y: out.y.data as Float32Array, dxs: shapes.map((_, i) => out[`dx${i}`].data as Float32Array), ops: model.graph.node.map((n) => n.op_type), opset: toNumber(model.opset_import[0].version) };
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const pool2 = { kernel: [2, 2] as [number, number], strides: [2, 2] as [number, number], pads: [0, 0, 0, 0] as [number, number, number, number] };

describe("blockPool: 2x2 stride-2 max pool as SpaceToDepth -> ReduceMax, gradient to the first maximum -> DepthToSpace", () => {
  // Values on a coarse grid, most of them 0 (MNIST's background): nearly every window has ties.
  const tied = (n: number, rng: Rng) => Float32Array.from({ length: n }, () => (rng.next() < 0.6 ? 0 : Math.round(rng.next() * 3) / 2));
  it.each([
    ["30x30 (mycnn's first pool)", [4, 3, 30, 30]],
    ["8x6", [2, 5, 8, 6]],
  ])("%s: equals MaxPool and MaxUnpool bit for bit, ties included", async (_name, shape) => {
    const rng = new Rng(3);
    const x = tied(numel(shape), rng);
    const u = Float32Array.from({ length: numel([shape[0], shape[1], shape[2] >> 1, shape[3] >> 1]) }, () => rng.next() - 0.5);
    const f = (g: G, [v]: Value[]) => g.maxPool(v, pool2);
    const plain = await forwardBackward([shape], f, [x], u, {});
    const block = await forwardBackward([shape], f, [x], u, { blockPool: true });
    expect(plain.ops).toContain("MaxPool");
    expect(block.ops).not.toContain("MaxPool");
    expect(block.ops).toEqual(expect.arrayContaining(["SpaceToDepth", "ReduceMax", "ArgMax", "DepthToSpace"]));
    expect(Buffer.from(block.y.buffer)).toEqual(Buffer.from(plain.y.buffer));
    expect(Buffer.from(block.dxs[0].buffer)).toEqual(Buffer.from(plain.dxs[0].buffer));
  });

  it("leaves other pools (odd sizes, 3x3, padded) and gradient-free pools to MaxPool", async () => {
    const g = new G("p", { blockPool: true });
    const x = g.input("x", [1, 2, 8, 8], "float32");
    const odd = g.input("odd", [1, 2, 7, 8], "float32");
    g.maxPool(x, pool2); // not watched: no gradient, plain MaxPool
    g.record();
    g.watch(x);
    g.watch(odd);
    g.maxPool(odd, pool2);
    g.maxPool(odd, { ...pool2, ceilMode: true });
    g.maxPool(x, { ...pool2, pads: [1, 1, 1, 1] });
    g.maxPool(x, { kernel: [3, 3], strides: [2, 2], pads: [0, 0, 0, 0] });
    expect(g.nodes.map((n) => n.op_type)).toEqual(["MaxPool", "MaxPool", "MaxPool", "MaxPool", "MaxPool"]);
  });
});

describe("blockPool in a whole training step", () => {
  it("3 steps of mycnn (its first pool is 30x30) give the same parameters and optimizer state, bit for bit, as MaxPool", async () => {
    const { loadMnist } = await import("../src/data/node.ts");
    const { Trainer } = await import("../src/runtime/trainer.ts");
    const { train } = loadMnist(undefined, { trainLimit: 3 * 32, testLimit: 1 });
    const x = Float32Array.from(train.images, (v) => v / 255);
    const y = BigInt64Array.from(train.labels, (v) => BigInt(v));
    const run = async (blockPool: boolean) => {
      const program = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"), { blockPool, col2im: false });
      expect(program.opTypes.trainStep.includes("SpaceToDepth")).toBe(blockPool);
      const init = initialValues(program.plan, 5);
      const t = await Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads: 1 });
      for (let k = 0; k < 3; k++) await t.trainStep(x.subarray(k * 32 * 784), y.subarray(k * 32), 32);
      const s = t.getState();
      await t.release();
      return Buffer.concat([s.params, s.buffers, ...s.optimizer].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
    };
    expect((await run(true)).equals(await run(false))).toBe(true);
  });
});

describe("col2im: the stride-1 conv input gradient as MatMul + Col2Im (opset 18)", () => {
  const cases: [string, number[], number[], ConvAttrs][] = [
    ["3x3 pad 1, 16 -> 32 channels (mycnn's third conv)", [8, 16, 7, 7], [32, 16, 3, 3], { strides: [1, 1], pads: [1, 1, 1, 1] }],
    ["3x3 pad 2", [4, 3, 12, 12], [16, 3, 3, 3], { strides: [1, 1], pads: [2, 2, 2, 2] }],
    ["5x3 dilations [2,1], asymmetric pads", [3, 4, 11, 9], [6, 4, 5, 3], { strides: [1, 1], pads: [1, 0, 3, 2], dilations: [2, 1] }],
    ["3x3 pad 3 (beyond the kernel)", [2, 2, 5, 5], [3, 2, 3, 3], { strides: [1, 1], pads: [3, 3, 3, 3] }],
  ];
  it.each(cases)("%s: equals the Conv path up to float rounding", async (_name, xs, ws, attrs) => {
    const rng = new Rng(7);
    const rand = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
    const x = rand(numel(xs));
    const w = rand(numel(ws));
    const f = (g: G, [xv, wv]: Value[]) => g.conv(xv, wv, undefined, attrs);
    const g0 = new G("shape");
    const yShape = f(g0, [g0.input("x", xs, "float32"), g0.input("w", ws, "float32")]).shape as number[];
    const u = rand(numel(yShape));
    const plain = await forwardBackward([xs, ws], f, [x, w], u, {});
    const cols = await forwardBackward([xs, ws], f, [x, w], u, { col2im: true });
    expect(cols.ops).toContain("Col2Im");
    expect(plain.ops).not.toContain("Col2Im");
    expect(cols.opset).toBe(18);
    expect(plain.opset).toBe(17);
    expect(Buffer.from(cols.y.buffer)).toEqual(Buffer.from(plain.y.buffer)); // the forward is untouched
    let worst = 0;
    let scale = 0;
    cols.dxs[0].forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - plain.dxs[0][i]));
      scale = Math.max(scale, Math.abs(plain.dxs[0][i]));
    });
    expect(worst).toBeLessThan(1e-6 * scale);
    expect(Buffer.from(cols.dxs[1].buffer)).toEqual(Buffer.from(plain.dxs[1].buffer)); // the weight gradient too
  });

  it("grouped and strided convs keep their paths (Conv, ConvTranspose)", () => {
    const g = new G("c", { col2im: true });
    const x = g.input("x", [2, 4, 8, 8], "float32");
    const w = g.input("w", [4, 2, 3, 3], "float32");
    const w1 = g.input("w1", [4, 4, 3, 3], "float32");
    g.record();
    g.watch(x);
    const a = g.conv(x, w, undefined, { strides: [1, 1], pads: [1, 1, 1, 1], group: 2 });
    const b = g.conv(x, w1, undefined, { strides: [2, 2], pads: [1, 1, 1, 1] });
    const before = g.nodes.length;
    gradients(g, g.add(g.reduceSum(a, [0, 1, 2, 3]), g.reduceSum(b, [0, 1, 2, 3])), [x]);
    const ops = g.nodes.slice(before).map((n) => n.op_type);
    expect(ops).toContain("Conv");
    expect(ops).toContain("ConvTranspose");
    expect(ops).not.toContain("Col2Im");
  });
});

describe("opsets of a program's graphs", () => {
  it("with col2im the training step is at opset 18 and uses Col2Im; the evaluation graph and model.onnx stay at 17", () => {
    const program = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"), { col2im: true });
    const opset = (bytes: Uint8Array) => toNumber(decodeModel(bytes).opset_import[0].version);
    expect(opset(program.trainStep)).toBe(18);
    expect(program.opTypes.trainStep).toContain("Col2Im");
    expect(opset(program.evalStep)).toBe(17);
    const init = initialValues(program.plan, 0);
    expect(opset(buildInferenceModel(program.plan, init.params, init.buffers))).toBe(17);
    const plain = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"), { col2im: false });
    expect(opset(plain.trainStep)).toBe(17);
    expect(plain.opTypes.trainStep).not.toContain("Col2Im");
  });
});
