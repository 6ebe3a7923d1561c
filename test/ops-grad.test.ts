/**
 * Every op's VJP against central finite differences, run through onnxruntime-node (see helpers/gradcheck.ts).
 * Inputs are kept away from kinks: positive domains for log/sqrt/div, no ties in max-pooling (continuous
 * random values), no exact zeros at ReLU, nothing within 0.2 of a clip bound or a hard-sigmoid corner.
 */
import { describe, expect, it } from "vitest";
import { close, gradCheck, type InputSpec } from "./helpers/gradcheck.ts";
import type { G, Lowering } from "../src/ops/builder.ts";
import type { Value } from "../src/graph/value.ts";
import { Rng } from "../src/random.ts";

const pos = (z: number) => 0.5 + Math.abs(z);
/** n distinct values 0.1 apart, shuffled: max-pooling windows have a clear winner that a small step cannot flip. */
const separated = (n: number) => new Rng(5).shuffle(Array.from({ length: n }, (_, i) => 0.1 * (i - n / 2)));
const awayFromZero = (z: number) => (z >= 0 ? 0.2 + z : z - 0.2);
/** z scaled by `scale`, then pushed at least 0.2 away from each kink (the points are far apart). */
const awayFrom =
  (scale: number, ...kinks: number[]) =>
  (z: number) =>
    kinks.reduce((v, k) => (Math.abs(v - k) < 0.2 ? k + (v >= k ? 0.2 : -0.2) + (v - k) : v), scale * z);

/** name, inputs, f, and optionally the finite-difference step (small for max-pooling, whose argmax must not flip). */
type Case = [name: string, inputs: InputSpec[], build: (g: G, xs: Value[]) => Value, eps?: number];
const pool = (k: number, s: number, p: number) => ({ kernel: [k, k] as [number, number], strides: [s, s] as [number, number], pads: [p, p, p, p] as [number, number, number, number] });
const pads4 = (p: number): [number, number, number, number] => [p, p, p, p];

const cases: Case[] = [
  ["add (broadcast [2,3] + [3])", [{ shape: [2, 3] }, { shape: [3] }], (g, [a, b]) => g.add(a, b)],
  ["sub (broadcast [2,3] - [2,1])", [{ shape: [2, 3] }, { shape: [2, 1] }], (g, [a, b]) => g.sub(a, b)],
  ["mul (broadcast [4,1,3] * [2,3])", [{ shape: [4, 1, 3] }, { shape: [2, 3] }], (g, [a, b]) => g.mul(a, b)],
  ["div", [{ shape: [3, 4] }, { shape: [3, 4], domain: pos }], (g, [a, b]) => g.div(a, b)],
  ["div (scalar divisor)", [{ shape: [3, 4] }, { shape: [], domain: pos }], (g, [a, b]) => g.div(a, b)],
  ["pow", [{ shape: [5], domain: pos }, { shape: [5] }], (g, [a, b]) => g.pow(a, b)],
  ["neg", [{ shape: [2, 5] }], (g, [x]) => g.neg(x)],
  ["exp", [{ shape: [2, 5] }], (g, [x]) => g.exp(x)],
  ["log", [{ shape: [2, 5], domain: pos }], (g, [x]) => g.log(x)],
  ["sqrt", [{ shape: [2, 5], domain: pos }], (g, [x]) => g.sqrt(x)],
  ["reciprocal", [{ shape: [2, 5], domain: awayFromZero }], (g, [x]) => g.reciprocal(x)],
  ["tanh", [{ shape: [2, 5] }], (g, [x]) => g.tanh(x)],
  ["sigmoid", [{ shape: [2, 5] }], (g, [x]) => g.sigmoid(x)],
  ["relu", [{ shape: [3, 7], domain: awayFromZero }], (g, [x]) => g.relu(x)],
  ["leakyRelu (0.2)", [{ shape: [3, 7], domain: awayFromZero }], (g, [x]) => g.leakyRelu(x, 0.2)],
  ["prelu (slope [C,1,1])", [{ shape: [2, 3, 4, 4], domain: awayFromZero }, { shape: [3, 1, 1] }], (g, [x, s]) => g.prelu(x, s)],
  ["prelu (one slope [1])", [{ shape: [2, 3, 2, 2], domain: awayFromZero }, { shape: [1] }], (g, [x, s]) => g.prelu(x, s)],
  ["prelu ([N,C] with slope [C])", [{ shape: [4, 5], domain: awayFromZero }, { shape: [5] }], (g, [x, s]) => g.prelu(x, s)],
  ["elu (1.0)", [{ shape: [3, 7], domain: awayFromZero }], (g, [x]) => g.elu(x, 1)],
  ["elu (0.5)", [{ shape: [3, 7], domain: awayFromZero }], (g, [x]) => g.elu(x, 0.5)],
  ["clip [-0.5, 0.7]", [{ shape: [4, 6], domain: awayFrom(1, -0.5, 0.7) }], (g, [x]) => g.clip(x, -0.5, 0.7)],
  ["clip to [0, 6] (ReLU6)", [{ shape: [4, 6], domain: awayFrom(4, 0, 6) }], (g, [x]) => g.clip(x, 0, 6)],
  ["clip with only a min", [{ shape: [4, 6], domain: awayFrom(1, 0.3) }], (g, [x]) => g.clip(x, 0.3)],
  ["clip with only a max", [{ shape: [4, 6], domain: awayFrom(1, -0.3) }], (g, [x]) => g.clip(x, undefined, -0.3)],
  ["hardSigmoid (ONNX defaults 0.2, 0.5)", [{ shape: [4, 6], domain: awayFrom(3, -2.5, 2.5) }], (g, [x]) => g.hardSigmoid(x, 0.2, 0.5)],
  ["hardSigmoid (PyTorch's 1/6, 1/2)", [{ shape: [4, 6], domain: awayFrom(3, -3, 3) }], (g, [x]) => g.hardSigmoid(x, 1 / 6, 0.5)],
  ["hardSwish", [{ shape: [4, 6], domain: awayFrom(3, -3, 3) }], (g, [x]) => g.hardSwish(x)],
  ["where", [{ shape: [2, 3], values: [1, -1, 2, -2, 3, -3], diff: false }, { shape: [2, 3] }, { shape: [3] }], (g, [c, a, b]) => g.where(g.greater(c, 0), a, b)],
  ["reshape", [{ shape: [2, 3, 4] }], (g, [x]) => g.reshape(x, [4, 6])],
  ["reshape (symbolic batch)", [{ shape: [3, 2, 4] }], (g, [x]) => g.reshape(x, ["M", 8])],
  ["flatten", [{ shape: [2, 3, 2, 2] }], (g, [x]) => g.flatten(x, 1)],
  ["transpose", [{ shape: [2, 3, 4] }], (g, [x]) => g.transpose(x, [2, 0, 1])],
  ["unsqueeze", [{ shape: [2, 3] }], (g, [x]) => g.unsqueeze(x, [0, 2])],
  ["squeeze", [{ shape: [2, 1, 3, 1] }], (g, [x]) => g.squeeze(x, [1, -1])],
  ["expand", [{ shape: [3, 1] }, { shape: [2, 3, 4], diff: false }], (g, [x, like]) => g.expandLike(x, like)],
  ["concat", [{ shape: [2, 3] }, { shape: [2, 2] }], (g, [a, b]) => g.concat([a, b], 1)],
  ["slice", [{ shape: [4, 5] }], (g, [x]) => g.slice(x, [1, 2], [3, 5], [0, 1])],
  ["pad", [{ shape: [2, 3] }], (g, [x]) => g.pad(x, [1, 0, 0, 2])],
  ["pad with a value", [{ shape: [2, 3, 3] }], (g, [x]) => g.pad(x, [0, 1, 2, 0, 2, 1], -1.5)],
  ["pad with negative pads (crops)", [{ shape: [2, 3, 5] }], (g, [x]) => g.pad(x, [0, -1, 2, 0, 1, -2])],
  ["globalAveragePool", [{ shape: [2, 3, 4, 5] }], (g, [x]) => g.globalAveragePool(x)],
  ["globalAveragePool (symbolic batch)", [{ shape: [2, 3, 2, 3] }], (g, [x]) => g.globalAveragePool(g.reshape(x, ["M", 3, 2, 3]))],
  ["reduceMean over a symbolic axis (count read at run time)", [{ shape: [3, 4] }], (g, [x]) => g.reduceMean(g.reshape(x, ["M", 4]), [0], false)],
  ["reduceSum", [{ shape: [2, 3, 4] }], (g, [x]) => g.reduceSum(x, [1], false)],
  ["reduceSum (keepdims)", [{ shape: [2, 3, 4] }], (g, [x]) => g.reduceSum(x, [0, 2], true)],
  ["reduceMean", [{ shape: [2, 3, 4] }], (g, [x]) => g.reduceMean(x, [0, 2], false)],
  ["matMul 2-D", [{ shape: [3, 4] }, { shape: [4, 5] }], (g, [a, b]) => g.matMul(a, b)],
  ["matMul batched, broadcast", [{ shape: [2, 3, 4] }, { shape: [4, 5] }], (g, [a, b]) => g.matMul(a, b)],
  ["matMul [N,K] @ [B,K,M]", [{ shape: [3, 4] }, { shape: [2, 4, 5] }], (g, [a, b]) => g.matMul(a, b)],
  ["matMul [2,1,3,4] @ [3,4,5] (both broadcast)", [{ shape: [2, 1, 3, 4] }, { shape: [3, 4, 5] }], (g, [a, b]) => g.matMul(a, b)],
  ["gemm (Linear: x W^T + b)", [{ shape: [4, 6] }, { shape: [3, 6] }, { shape: [3] }], (g, [x, w, b]) => g.gemm(x, w, b, { transA: false, transB: true })],
  ["gemm transA", [{ shape: [6, 4] }, { shape: [6, 3] }], (g, [a, b]) => g.gemm(a, b, undefined, { transA: true, transB: false })],
  ["gemm transA transB", [{ shape: [6, 4] }, { shape: [3, 6] }], (g, [a, b]) => g.gemm(a, b, undefined, { transA: true, transB: true })],
  ["gemm alpha 0.5, beta 2, C [1]", [{ shape: [4, 6] }, { shape: [3, 6] }, { shape: [1] }], (g, [x, w, b]) => g.gemm(x, w, b, { transA: false, transB: true, alpha: 0.5, beta: 2 })],
  ["gemm transA, alpha -1.5, beta 0.25, C [4,3]", [{ shape: [6, 4] }, { shape: [6, 3] }, { shape: [4, 3] }], (g, [a, b, c]) => g.gemm(a, b, c, { transA: true, transB: false, alpha: -1.5, beta: 0.25 })],
  ["conv 3x3 pad 1", [{ shape: [2, 3, 6, 6] }, { shape: [4, 3, 3, 3] }, { shape: [4] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [1, 1], pads: [1, 1, 1, 1] })],
  ["conv 3x3 pad 2 (mycnn's first layer)", [{ shape: [2, 1, 7, 7] }, { shape: [3, 1, 3, 3] }, { shape: [3] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [1, 1], pads: [2, 2, 2, 2] })],
  ["conv stride 2, asymmetric pads, no bias", [{ shape: [2, 2, 7, 6] }, { shape: [3, 2, 3, 2] }], (g, [x, w]) => g.conv(x, w, undefined, { strides: [2, 2], pads: [1, 0, 0, 1] })],
  ["conv 3x3 pad 3 (stride 1, padding beyond k-1: the ConvTranspose path)", [{ shape: [1, 2, 5, 5] }, { shape: [2, 2, 3, 3] }, { shape: [2] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [1, 1], pads: [3, 3, 3, 3] })],
  ["conv 5x5", [{ shape: [1, 2, 9, 9] }, { shape: [2, 2, 5, 5] }, { shape: [2] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [1, 1], pads: [0, 0, 0, 0] })],
  ["conv group 2", [{ shape: [2, 4, 6, 6] }, { shape: [6, 2, 3, 3] }, { shape: [6] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [1, 1], pads: pads4(1), group: 2 })],
  ["conv depthwise (group = C = C_out)", [{ shape: [2, 3, 6, 6] }, { shape: [3, 1, 3, 3] }, { shape: [3] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [1, 1], pads: pads4(1), group: 3 })],
  ["conv depthwise, multiplier 2, stride 2", [{ shape: [2, 3, 7, 7] }, { shape: [6, 1, 3, 3] }, { shape: [6] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [2, 2], pads: pads4(1), group: 3 })],
  ["conv group 3, 2 in and 1 out per group", [{ shape: [1, 6, 5, 5] }, { shape: [3, 2, 3, 3] }], (g, [x, w]) => g.conv(x, w, undefined, { strides: [1, 1], pads: pads4(0), group: 3 })],
  ["conv dilation 2 pad 2 (stride 1: the Conv path)", [{ shape: [2, 2, 7, 7] }, { shape: [3, 2, 3, 3] }, { shape: [3] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [1, 1], pads: pads4(2), dilations: [2, 2] })],
  ["conv dilations [2,1], stride 2, asymmetric pads", [{ shape: [2, 2, 9, 8] }, { shape: [3, 2, 3, 2] }, { shape: [3] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [2, 2], pads: [1, 0, 2, 1], dilations: [2, 1] })],
  ["conv group 2, dilation 2, pad 5 (beyond the span: ConvTranspose)", [{ shape: [1, 4, 5, 5] }, { shape: [4, 2, 3, 3] }, { shape: [4] }], (g, [x, w, b]) => g.conv(x, w, b, { strides: [1, 1], pads: pads4(5), dilations: [2, 2], group: 2 })],
  ["conv depthwise, symbolic batch", [{ shape: [2, 3, 5, 5] }, { shape: [3, 1, 3, 3] }, { shape: [3] }], (g, [x, w, b]) => g.conv(g.reshape(x, ["M", 3, 5, 5]), w, b, { strides: [2, 2], pads: pads4(1), group: 3 })],
  ["maxPool 2x2, even size (MaxUnpool; SpaceToDepth with the blockPool lowering)", [{ shape: [2, 3, 6, 6], values: separated(216) }], (g, [x]) => g.maxPool(x, pool(2, 2, 0)), 1e-2],
  ["maxPool 2x2 (odd size, MaxUnpool)", [{ shape: [2, 3, 7, 7], values: separated(294) }], (g, [x]) => g.maxPool(x, pool(2, 2, 0)), 1e-2],
  ["maxPool 3x3 stride 2 pad 1 (overlapping, scatter-add)", [{ shape: [2, 2, 7, 7], values: separated(196) }], (g, [x]) => g.maxPool(x, pool(3, 2, 1)), 1e-2],
  ["maxPool 2x2 ceil mode (7x7 -> 4x4, MaxUnpool)", [{ shape: [2, 2, 7, 7], values: separated(196) }], (g, [x]) => g.maxPool(x, { ...pool(2, 2, 0), ceilMode: true }), 1e-2],
  ["maxPool 3x3 stride 2 ceil mode (overlapping, hanging over)", [{ shape: [1, 2, 8, 8], values: separated(128) }], (g, [x]) => g.maxPool(x, { ...pool(3, 2, 0), ceilMode: true }), 1e-2],
  ["maxPool 3x3 stride 2 pad 1 ceil mode", [{ shape: [1, 2, 6, 6], values: separated(72) }], (g, [x]) => g.maxPool(x, { ...pool(3, 2, 1), ceilMode: true }), 1e-2],
  // ONNX's own shape inference (opset 17) ignores the ceil-mode rule and says 4x4 (onnxruntime warns); the kernel
  // and our shapes say 3x3, and the Gemm after the Flatten checks that nothing downstream saw 4x4
  ["maxPool 2x2 pad 1 ceil mode, 5x5 -> 3x3 (a 4th window would start in the padding), then Flatten and Gemm", [{ shape: [2, 2, 5, 5], values: separated(100) }, { shape: [3, 18] }], (g, [x, w]) => g.gemm(g.flatten(g.maxPool(x, { ...pool(2, 2, 1), ceilMode: true }), 1), w, undefined, { transA: false, transB: true }), 1e-2],
  ["maxPool 2x2 dilation 2", [{ shape: [1, 2, 6, 6], values: separated(72) }], (g, [x]) => g.maxPool(x, { ...pool(2, 1, 0), dilations: [2, 2] }), 1e-2],
  ["averagePool 2x2", [{ shape: [2, 3, 6, 6] }], (g, [x]) => g.averagePool(x, pool(2, 2, 0))],
  ["averagePool 3x3 stride 2 pad 1", [{ shape: [1, 2, 7, 7] }], (g, [x]) => g.averagePool(x, pool(3, 2, 1))],
  ["averagePool 3x3 stride 2 pad 1, count_include_pad=0", [{ shape: [1, 2, 7, 7] }], (g, [x]) => g.averagePool(x, { ...pool(3, 2, 1), countIncludePad: false })],
  ["averagePool 2x2 ceil mode (7x7 -> 4x4)", [{ shape: [2, 2, 7, 7] }], (g, [x]) => g.averagePool(x, { ...pool(2, 2, 0), ceilMode: true })],
  ["averagePool 3x3 stride 2 ceil mode, count_include_pad=0", [{ shape: [1, 2, 8, 8] }], (g, [x]) => g.averagePool(x, { ...pool(3, 2, 0), ceilMode: true, countIncludePad: false })],
  ["averagePool 3x3 stride 2 pad 1 ceil mode, count_include_pad=1", [{ shape: [1, 2, 6, 6] }], (g, [x]) => g.averagePool(x, { ...pool(3, 2, 1), ceilMode: true })],
  ["averagePool 2x2 ceil mode, count_include_pad=0, symbolic batch", [{ shape: [2, 2, 5, 5] }], (g, [x]) => g.averagePool(g.reshape(x, ["M", 2, 5, 5]), { ...pool(2, 2, 1), ceilMode: true, countIncludePad: false })],
  ["batchNorm (training: batch statistics)", [{ shape: [4, 3, 3, 3] }, { shape: [3] }, { shape: [3] }], (g, [x, ga, be]) => g.batchNormTrain(x, ga, be, 1e-5)[0]],
  ["batchNorm (inference: given statistics)", [{ shape: [2, 3, 4, 4] }, { shape: [3] }, { shape: [3] }, { shape: [3], diff: false }, { shape: [3], diff: false, domain: pos }], (g, [x, ga, be, m, v]) => g.batchNormInfer(x, ga, be, m, v, 1e-5)],
  ["batchNorm on [N,C] (training, BatchNorm1d)", [{ shape: [6, 4] }, { shape: [4] }, { shape: [4] }], (g, [x, ga, be]) => g.batchNormTrain(x, ga, be, 1e-5)[0]],
  ["batchNorm on [N,C,L] (training)", [{ shape: [3, 4, 5] }, { shape: [4] }, { shape: [4] }], (g, [x, ga, be]) => g.batchNormTrain(x, ga, be, 1e-5)[0]],
  ["batchNorm on [N,C] (inference, statistics differentiated too)", [{ shape: [5, 3] }, { shape: [3] }, { shape: [3] }, { shape: [3] }, { shape: [3], domain: pos }], (g, [x, ga, be, m, v]) => g.batchNormInfer(x, ga, be, m, v, 1e-5)],
  ["batchNorm NCHW (inference, statistics differentiated too)", [{ shape: [2, 3, 2, 2] }, { shape: [3] }, { shape: [3] }, { shape: [3] }, { shape: [3], domain: pos }], (g, [x, ga, be, m, v]) => g.batchNormInfer(x, ga, be, m, v, 1e-5)],
  ["affine per channel (BatchNormalization with mean 0, variance 1)", [{ shape: [2, 3, 4, 4] }, { shape: [3] }, { shape: [3] }], (g, [x, s, b]) => g.affine(x, s, b)],
  ["softmax", [{ shape: [3, 5] }], (g, [x]) => g.softmax(x, -1)],
  ["logSoftmax", [{ shape: [3, 5] }], (g, [x]) => g.logSoftmax(x, 1)],
  ["softmax along axis 1 of [2,4,3]", [{ shape: [2, 4, 3] }], (g, [x]) => g.softmax(x, 1)],
  ["softmax along axis 0", [{ shape: [4, 3] }], (g, [x]) => g.softmax(x, 0)],
  ["logSoftmax along axis -3 of [2,3,2,2]", [{ shape: [2, 3, 2, 2] }], (g, [x]) => g.logSoftmax(x, -3)],
  ["cross-entropy (mean over int labels)", [{ shape: [4, 10] }, { shape: [4], dtype: "int64", values: [3, 0, 9, 3] }], (g, [x, t]) => g.softmaxCrossEntropy(x, t)[0]],
];

describe("VJP of every op matches central finite differences (onnxruntime-node)", () => {
  it.each(cases)("%s", async (_name, inputs, build, eps) => {
    const r = await gradCheck(inputs, build, 42, eps);
    expect(r.scale).toBeGreaterThan(1e-2); // the check is not vacuous
    expect(close(r.numeric, r.analytic, undefined, undefined, r.scale), `numeric ${r.numeric} vs analytic ${r.analytic} (scale ${r.scale})`).toBe(true);
    for (const p of r.perInput) expect(close(p.numeric, p.analytic, undefined, undefined, p.scale), `per input: numeric ${p.numeric} vs analytic ${p.analytic}`).toBe(true);
  });
});

// The alternative lowerings (src/ops/builder.ts, Lowering) against finite differences too: every conv case with
// the input gradient by MatMul + Col2Im where it applies (stride 1, one group; the others keep their path), every
// max-pool case with the SpaceToDepth/ReduceMax form where it applies (2x2 stride 2, no padding, floor mode).
const lowered: [string, Partial<Lowering>, Case[]][] = [
  ["col2im", { col2im: true }, cases.filter(([name]) => name.startsWith("conv"))],
  ["blockPool", { blockPool: true }, cases.filter(([name]) => name.startsWith("maxPool"))],
];
describe.each(lowered)("VJP with the %s lowering matches central finite differences (onnxruntime-node)", (_lowering, lowering, list) => {
  it.each(list)("%s", async (_name, inputs, build, eps) => {
    const r = await gradCheck(inputs, build, 42, eps, lowering);
    expect(r.scale).toBeGreaterThan(1e-2);
    expect(close(r.numeric, r.analytic, undefined, undefined, r.scale), `numeric ${r.numeric} vs analytic ${r.analytic} (scale ${r.scale})`).toBe(true);
    for (const p of r.perInput) expect(close(p.numeric, p.analytic, undefined, undefined, p.scale), `per input: numeric ${p.numeric} vs analytic ${p.analytic}`).toBe(true);
  });
});

describe("worked by hand", () => {
  it("d/dx sum(u * leakyRelu(x)) = u where x > 0, 0.2 u elsewhere", async () => {
    // x = [-1, 2], u is random; the gradient check already covers it numerically. Here: the exact values.
    const r = await gradCheck([{ shape: [2], values: [-1, 2] }], (g, [x]) => g.leakyRelu(x, 0.2), 7);
    expect(close(r.numeric, r.analytic, 1e-4, 1e-5)).toBe(true);
  });
  it("mean cross-entropy of uniform logits is ln(10) with gradient (1/10 - onehot)/N", async () => {
    const { G } = await import("../src/ops/builder.ts");
    const { encodeModel } = await import("../src/onnx/proto.ts");
    const { gradients } = await import("../src/autodiff/backward.ts");
    const ort = await import("onnxruntime-node");
    const g = new G("ce");
    const x = g.input("x", [2, 10], "float32");
    const t = g.input("t", [2], "int64");
    g.record();
    g.watch(x);
    const [loss] = g.softmaxCrossEntropy(x, t);
    g.output(loss, "loss");
    g.output(gradients(g, loss, [x]).get("x")!, "dx");
    const s = await ort.InferenceSession.create(encodeModel(g.toModel()));
    const out = await s.run({ x: new ort.Tensor("float32", new Float32Array(20), [2, 10]), t: new ort.Tensor("int64", BigInt64Array.of(3n, 7n), [2]) });
    expect(out.loss.data[0]).toBeCloseTo(Math.log(10), 6);
    const dx = out.dx.data as Float32Array;
    // row 0, label 3: (0.1 - 1)/2 = -0.45 at 3, 0.1/2 = 0.05 elsewhere
    expect(dx[3]).toBeCloseTo(-0.45, 6);
    expect(dx[0]).toBeCloseTo(0.05, 6);
    expect(dx[10 + 7]).toBeCloseTo(-0.45, 6);
  });
});
