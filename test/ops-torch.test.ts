/**
 * The ops an imported PyTorch model uses, forward and backward, against PyTorch itself (Debian python3-torch,
 * float64, via helpers/torch_ops.py): the finite-difference table in ops-grad.test.ts proves each VJP matches
 * our forward; this proves the forward and its gradient conventions match what the model was trained with
 * (ceil-mode output sizes, what an average over a window hanging past the padding divides by, clamp passing
 * the gradient at its bounds, hardswish's and hardsigmoid's corners).
 */
import { spawnSync } from "node:child_process";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { hasTorch, PYTHON } from "../bench/harness.ts";
import { gradients } from "../src/autodiff/backward.ts";
import type { Value } from "../src/graph/value.ts";
import { encodeModel } from "../src/onnx/proto.ts";
import { G } from "../src/ops/builder.ts";
import { Rng } from "../src/random.ts";
import { normal } from "./helpers/gradcheck.ts";

interface Input {
  shape: number[];
  values?: number[];
}
interface Case {
  name: string;
  op: string;
  attrs?: Record<string, unknown>;
  inputs: Input[];
  build: (g: G, xs: Value[]) => Value;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
/** Distinct values 0.1 apart, shuffled: no ties for max-pooling to break. */
const distinct = (n: number) => new Rng(3).shuffle(Array.from({ length: n }, (_, i) => 0.1 * (i - n / 2)));
const sq = (k: number): [number, number] => [k, k];
const pads = (p: number): [number, number, number, number] => [p, p, p, p];
/** Exactly on the kinks, plus values on either side. */
const kinks = (...ks: number[]) => ks.flatMap((k) => [k, k - 0.5, k + 0.5, k - 1e-3, k + 1e-3]);

const cases: Case[] = [
  { name: "maxPool 2x2 s2 p1 ceil, 5x5 -> 3x3 (a 4th window would start in the right padding)", op: "maxPool", attrs: { k: 2, s: 2, p: 1, ceil: true }, inputs: [{ shape: [1, 2, 5, 5], values: distinct(50) }], build: (g, [x]) => g.maxPool(x, { kernel: sq(2), strides: sq(2), pads: pads(1), ceilMode: true }) },
  { name: "averagePool 2x2 s2 p1 ceil, 5x5 -> 3x3", op: "averagePool", attrs: { k: 2, s: 2, p: 1, ceil: true, includePad: true }, inputs: [{ shape: [1, 2, 5, 5] }], build: (g, [x]) => g.averagePool(x, { kernel: sq(2), strides: sq(2), pads: pads(1), ceilMode: true }) },
  { name: "maxPool 3x3 s2 p1 ceil, 6x6 -> 4x4", op: "maxPool", attrs: { k: 3, s: 2, p: 1, ceil: true }, inputs: [{ shape: [2, 2, 6, 6], values: distinct(144) }], build: (g, [x]) => g.maxPool(x, { kernel: sq(3), strides: sq(2), pads: pads(1), ceilMode: true }) },
  { name: "maxPool 2x2 s2 ceil, 7x7 -> 4x4", op: "maxPool", attrs: { k: 2, s: 2, p: 0, ceil: true }, inputs: [{ shape: [1, 3, 7, 7], values: distinct(147) }], build: (g, [x]) => g.maxPool(x, { kernel: sq(2), strides: sq(2), pads: pads(0), ceilMode: true }) },
  { name: "maxPool 3x3 s2 ceil, 8x8", op: "maxPool", attrs: { k: 3, s: 2, p: 0, ceil: true }, inputs: [{ shape: [1, 2, 8, 8], values: distinct(128) }], build: (g, [x]) => g.maxPool(x, { kernel: sq(3), strides: sq(2), pads: pads(0), ceilMode: true }) },
  { name: "maxPool 2x2 s1 dilation 2", op: "maxPool", attrs: { k: 2, s: 1, p: 0, d: 2, ceil: false }, inputs: [{ shape: [1, 2, 6, 6], values: distinct(72) }], build: (g, [x]) => g.maxPool(x, { kernel: sq(2), strides: sq(1), pads: pads(0), dilations: sq(2) }) },
  { name: "averagePool 3x3 s2 p1 ceil, padding counted (a window hangs past the padding)", op: "averagePool", attrs: { k: 3, s: 2, p: 1, ceil: true, includePad: true }, inputs: [{ shape: [1, 2, 6, 6] }], build: (g, [x]) => g.averagePool(x, { kernel: sq(3), strides: sq(2), pads: pads(1), ceilMode: true }) },
  { name: "averagePool 3x3 s2 p1, padding not counted", op: "averagePool", attrs: { k: 3, s: 2, p: 1, ceil: false, includePad: false }, inputs: [{ shape: [1, 2, 7, 7] }], build: (g, [x]) => g.averagePool(x, { kernel: sq(3), strides: sq(2), pads: pads(1), countIncludePad: false }) },
  { name: "averagePool 3x3 s2 ceil, padding not counted, 8x8", op: "averagePool", attrs: { k: 3, s: 2, p: 0, ceil: true, includePad: false }, inputs: [{ shape: [2, 1, 8, 8] }], build: (g, [x]) => g.averagePool(x, { kernel: sq(3), strides: sq(2), pads: pads(0), ceilMode: true, countIncludePad: false }) },
  { name: "averagePool 2x2 s2 ceil, 7x7", op: "averagePool", attrs: { k: 2, s: 2, p: 0, ceil: true, includePad: true }, inputs: [{ shape: [1, 2, 7, 7] }], build: (g, [x]) => g.averagePool(x, { kernel: sq(2), strides: sq(2), pads: pads(0), ceilMode: true }) },
  { name: "conv group 2, dilation 2, stride 2, bias", op: "conv", attrs: { s: 2, p: 2, d: 2, group: 2 }, inputs: [{ shape: [2, 4, 9, 9] }, { shape: [6, 2, 3, 3] }, { shape: [6] }], build: (g, [x, w, b]) => g.conv(x, w, b, { strides: sq(2), pads: pads(2), dilations: sq(2), group: 2 }) },
  { name: "conv depthwise 3x3 (MobileNet's)", op: "conv", attrs: { s: 1, p: 1, group: 4 }, inputs: [{ shape: [2, 4, 5, 5] }, { shape: [4, 1, 3, 3] }, { shape: [4] }], build: (g, [x, w, b]) => g.conv(x, w, b, { strides: sq(1), pads: pads(1), group: 4 }) },
  { name: "prelu, one slope per channel", op: "prelu", inputs: [{ shape: [2, 3, 3, 3] }, { shape: [3, 1, 1] }], build: (g, [x, s]) => g.prelu(x, s) },
  { name: "elu 0.5", op: "elu", attrs: { alpha: 0.5 }, inputs: [{ shape: [3, 8] }], build: (g, [x]) => g.elu(x, 0.5) },
  { name: "clip [-0.5, 0.7], exactly at the bounds too", op: "clip", attrs: { min: -0.5, max: 0.7 }, inputs: [{ shape: [10], values: kinks(-0.5, 0.7) }], build: (g, [x]) => g.clip(x, -0.5, 0.7) },
  { name: "clip [0, 6] (ReLU6), at the bounds too", op: "clip", attrs: { min: 0, max: 6 }, inputs: [{ shape: [10], values: kinks(0, 6) }], build: (g, [x]) => g.clip(x, 0, 6) },
  { name: "hardSigmoid (1/6, 1/2), at the corners too", op: "hardSigmoid", inputs: [{ shape: [15], values: [...kinks(-3, 3), -5, 0, 0.3, 1, 4] }], build: (g, [x]) => g.hardSigmoid(x, 1 / 6, 0.5) },
  { name: "hardSwish, at the corners too", op: "hardSwish", inputs: [{ shape: [15], values: [...kinks(-3, 3), -5, 0, 0.3, 1, 4] }], build: (g, [x]) => g.hardSwish(x) },
  { name: "gemm alpha 0.5 beta 2 (Linear as exported with transB)", op: "gemm", attrs: { alpha: 0.5, beta: 2 }, inputs: [{ shape: [4, 6] }, { shape: [3, 6] }, { shape: [3] }], build: (g, [a, b, c]) => g.gemm(a, b, c, { transA: false, transB: true, alpha: 0.5, beta: 2 }) },
  { name: "BatchNorm1d in training mode on [N, C]", op: "batchNorm1d", inputs: [{ shape: [8, 5] }, { shape: [5] }, { shape: [5] }], build: (g, [x, ga, be]) => g.batchNormTrain(x, ga, be, 1e-5)[0] },
  { name: "softmax along axis 1 of [2,4,3]", op: "softmax", attrs: { axis: 1 }, inputs: [{ shape: [2, 4, 3] }], build: (g, [x]) => g.softmax(x, 1) },
  { name: "logSoftmax along axis 1", op: "logSoftmax", attrs: { axis: 1 }, inputs: [{ shape: [3, 7] }], build: (g, [x]) => g.logSoftmax(x, 1) },
];

/** Our forward and every input's gradient for cotangent u, run through onnxruntime-node. */
async function ours(c: Case, xs: number[][], u: number[]): Promise<{ y: Float32Array; shape: readonly number[]; grads: Float32Array[] }> {
  const g = new G(c.op);
  const inputs = c.inputs.map((s, i) => g.input(`x${i}`, s.shape, "float32"));
  g.record();
  inputs.forEach((x) => g.watch(x));
  const y = c.build(g, inputs);
  const uIn = g.input("u", y.shape, "float32");
  const grads = gradients(g, y, inputs, uIn);
  g.output(y, "y");
  inputs.forEach((x, i) => g.output(grads.get(x.name)!, `dx${i}`));
  const s = await ort.InferenceSession.create(encodeModel(g.toModel()));
  const feeds: Record<string, ort.Tensor> = { u: new ort.Tensor("float32", Float32Array.from(u), y.shape as number[]) };
  c.inputs.forEach((s, i) => (feeds[`x${i}`] = new ort.Tensor("float32", Float32Array.from(xs[i]), s.shape)));
  const out = await s.run(feeds);
  return { y: out.y.data as Float32Array, shape: out.y.dims, grads: c.inputs.map((_, i) => out[`dx${i}`].data as Float32Array) };
}

function expectClose(actual: ArrayLike<number>, expected: number[], what: string): void {
  expect(actual.length, what).toBe(expected.length);
  const bad = expected.findIndex((e, i) => !(Math.abs(actual[i] - e) <= 1e-5 + 1e-4 * Math.abs(e)));
  expect(bad, `${what}: element ${bad} is ${actual[bad]}, PyTorch has ${expected[bad]}`).toBe(-1);
}

describe("ops against PyTorch (forward, output size and gradient)", () => {
  const rng = new Rng(11);
  const data = cases.map((c) => {
    const xs = c.inputs.map((s) => s.values ?? Array.from({ length: size(s.shape) }, () => normal(rng)));
    // the output shape our builder infers; PyTorch reports its own, which must agree
    const g = new G("shape");
    const yShape = c.build(g, c.inputs.map((s, i) => g.input(`x${i}`, s.shape, "float32"))).shape as number[];
    return { xs, yShape, u: Array.from({ length: size(yShape) }, () => normal(rng)) };
  });
  let torch: { y: number[]; shape: number[]; grads: number[][] }[];

  beforeAll(() => {
    if (!hasTorch()) throw new Error("/usr/bin/python3 cannot import torch: apt-get install -y python3-torch (as .ci/run does)");
    const input = cases.map((c, k) => ({
      op: c.op,
      attrs: c.attrs ?? {},
      inputs: c.inputs.map((s, i) => ({ shape: s.shape, data: data[k].xs[i].map((v) => Math.fround(v)) })),
      u: { shape: data[k].yShape, data: data[k].u.map((v) => Math.fround(v)) },
    }));
    const r = spawnSync(PYTHON, [new URL("./helpers/torch_ops.py", import.meta.url).pathname], { input: JSON.stringify(input), encoding: "utf8" });
    if (r.status !== 0) throw new Error(`torch_ops.py failed: ${r.stderr}`);
    torch = JSON.parse(r.stdout);
  });

  it.each(cases.map((c, k) => [c.name, k] as const))("%s", async (_name, k) => {
    const c = cases[k];
    const ref = torch[k];
    expect(data[k].yShape, "output shape").toEqual(ref.shape);
    const got = await ours(c, data[k].xs, data[k].u);
    expect([...got.shape]).toEqual(ref.shape);
    expectClose(got.y, ref.y, "forward");
    got.grads.forEach((dx, i) => expectClose(dx, ref.grads[i], `gradient of input ${i}`));
  });
});
