/** Max and average pooling (2-D, NCHW) and the scatter ops their gradients use. */
import { shapeToString, type Value } from "../graph/value.ts";
import { convOutSize } from "./conv.ts";
import { defineOp, one, req, type OutSpec } from "./op.ts";
import type { G } from "./builder.ts";

export interface PoolAttrs {
  kernel: [number, number];
  strides: [number, number];
  pads: [number, number, number, number];
}

function pooled(x: Value, { kernel, strides, pads }: PoolAttrs, what: string): OutSpec {
  const [n, c, h, w] = x.shape;
  if (x.shape.length !== 4 || typeof h !== "number" || typeof w !== "number")
    throw new Error(`${what} expects a 4-D input with static height and width, got ${shapeToString(x.shape)}`);
  const ho = convOutSize(h, kernel[0], strides[0], pads[0], pads[2]);
  const wo = convOutSize(w, kernel[1], strides[1], pads[1], pads[3]);
  if (ho < 1 || wo < 1) throw new Error(`${what} ${kernel[0]}x${kernel[1]} does not fit a ${h}x${w} input`);
  return { shape: [n, c, ho, wo], dtype: "float32" };
}

const poolAttrs = ({ kernel, strides, pads }: PoolAttrs) => ({ kernel_shape: kernel, strides, pads });
const nonOverlapping = ({ kernel, strides, pads }: PoolAttrs) =>
  kernel[0] === strides[0] && kernel[1] === strides[1] && pads.every((p) => p === 0);

/**
 * MaxPool. With `indices`, the node also yields the argmax (flat over N*C*H*W; ties go to the first maximum,
 * as in PyTorch), which the gradient needs; the inference graph uses the plain form.
 */
export const maxPool = defineOp<PoolAttrs & { indices: boolean }>({
  onnx: "MaxPool",
  infer: ([x], a) => {
    const y = pooled(req(x, "x"), a, "MaxPool");
    return a.indices ? [y, { shape: y.shape, dtype: "int64" }] : [y];
  },
  attrs: poolAttrs,
  // d maxpool(x) = dy routed to the argmax of each window (summed where windows overlap)
  vjp: (g, dys, { inputs: [x], outputs: [, indices], attrs }) => {
    if (!indices) throw new Error("internal error: MaxPool gradient needs the Indices output");
    const dy = one(dys);
    if (nonOverlapping(attrs)) return [g.maxUnpool(dy, indices, x!, attrs)];
    return [scatterAddInto(g, x!, indices, dy)];
  },
});

/** Places each dy value at its index in a zero tensor shaped like x (last-writer wins: windows must not overlap). */
export const maxUnpool = defineOp<PoolAttrs>({
  onnx: "MaxUnpool",
  infer: ([, , like]) => [{ shape: req(like, "like").shape, dtype: "float32" }],
  emit: (g, [dy, indices, like], a, [out]) => g.node("MaxUnpool", [dy, indices, g.shape(like!)], poolAttrs(a), [out]),
  vjp: "none",
});

/** zeros_like(x).flat[indices] += dy, for overlapping windows. */
function scatterAddInto(g: G, x: Value, indices: Value, dy: Value): Value {
  const flatX = g.reshape(x, ["numel"]);
  const zeros = g.mul(flatX, 0);
  const flat = g.scatterAdd(zeros, g.reshape(indices, ["numel_y"]), g.reshape(dy, ["numel_y"]));
  return g.reshapeLike(flat, x);
}

export const scatterAdd = defineOp({
  onnx: "ScatterElements",
  infer: ([data]) => [{ shape: req(data, "data").shape, dtype: req(data, "data").dtype }],
  attrs: () => ({ axis: 0, reduction: "add" }),
  vjp: "none",
});

/**
 * AveragePool (count_include_pad=1, as PyTorch's default). Gradient: dy / (kH*kW) spread over each window,
 * which is a depthwise ConvTranspose with a kernel of ones.
 */
export const averagePool = defineOp<PoolAttrs>({
  onnx: "AveragePool",
  infer: ([x], a) => [pooled(req(x, "x"), a, "AveragePool")],
  attrs: (a) => ({ ...poolAttrs(a), count_include_pad: 1 }),
  vjp: (g, dys, { inputs: [x], attrs: { kernel, strides, pads } }) => {
    const dy = one(dys);
    const c = x!.shape[1];
    if (typeof c !== "number") throw new Error("internal error: AveragePool gradient needs static channels");
    const [h, w] = x!.shape.slice(2) as number[];
    const [ho, wo] = dy.shape.slice(2) as number[];
    const ones = g.constant(new Float32Array(c * kernel[0] * kernel[1]).fill(1 / (kernel[0] * kernel[1])), [c, 1, ...kernel]);
    const outputPadding = [h - (strides[0] * (ho - 1) + kernel[0] - pads[0] - pads[2]), w - (strides[1] * (wo - 1) + kernel[1] - pads[1] - pads[3])];
    return [g.convTranspose(dy, ones, { strides, pads, outputPadding, outShape: x!.shape, group: c })];
  },
});
