/** Max and average pooling (2-D, NCHW) and the scatter ops their gradients use. */
import { shapeToString, type Dim, type Value } from "../graph/value.ts";
import { convOutSize, span } from "./conv.ts";
import { defineOp, one, req, type OutSpec } from "./op.ts";
import type { G } from "./builder.ts";

export interface PoolAttrs {
  kernel: [number, number];
  strides: [number, number];
  pads: [number, number, number, number];
  /** MaxPool only; default [1, 1]. */
  dilations?: [number, number];
  /** Output size rounded up (PyTorch's ceil_mode=True): the last window may hang over the bottom/right edge. */
  ceilMode?: boolean;
}

/**
 * Output size along one axis (ONNX spec, as PyTorch): floor or ceil of (in + pads - extent) / stride, plus 1;
 * with ceil mode a last window that would start beyond the input and its left padding is dropped.
 */
export function poolOutSize(inSize: number, k: number, stride: number, padBegin: number, padEnd: number, dilation = 1, ceil = false): number {
  if (!ceil) return convOutSize(inSize, k, stride, padBegin, padEnd, dilation);
  let out = Math.ceil((inSize + padBegin + padEnd - span(k, dilation)) / stride) + 1;
  if ((out - 1) * stride >= inSize + padBegin) out--;
  return out;
}

function pooled(x: Value, { kernel, strides, pads, dilations, ceilMode }: PoolAttrs, what: string): OutSpec {
  const [n, c, h, w] = x.shape;
  if (x.shape.length !== 4 || typeof h !== "number" || typeof w !== "number")
    throw new Error(`${what} expects a 4-D input with static height and width, got ${shapeToString(x.shape)}`);
  const [dh, dw] = dilations ?? [1, 1];
  const ho = poolOutSize(h, kernel[0], strides[0], pads[0], pads[2], dh, ceilMode);
  const wo = poolOutSize(w, kernel[1], strides[1], pads[1], pads[3], dw, ceilMode);
  if (ho < 1 || wo < 1) throw new Error(`${what} ${kernel[0]}x${kernel[1]} does not fit a ${h}x${w} input`);
  return { shape: [n, c, ho, wo], dtype: "float32" };
}

/**
 * ceil_mode only when it adds a window. ONNX's own shape inference at opset 17 does not drop a last window
 * that would start in the right padding, so where that rule applies it infers one row more than the kernel
 * computes, and a Gemm after a Flatten then fails to load. The rule only ever removes the window that ceil
 * mode added, so there the ceil-mode windows are exactly the floor-mode ones: emitted without ceil_mode.
 */
function ceilAttr(x: Value, { kernel, strides, pads, dilations, ceilMode }: PoolAttrs): 1 | undefined {
  if (!ceilMode) return undefined;
  const d = dilations ?? [1, 1];
  const [h, w] = x.shape.slice(2) as number[];
  const adds = (axis: 0 | 1, size: number) =>
    poolOutSize(size, kernel[axis], strides[axis], pads[axis], pads[axis + 2], d[axis], true) >
    poolOutSize(size, kernel[axis], strides[axis], pads[axis], pads[axis + 2], d[axis], false);
  return adds(0, h) || adds(1, w) ? 1 : undefined;
}

// ceil_mode and dilations only when they differ from the defaults, so that existing graphs keep their bytes
const poolAttrs = (x: Value, { kernel, strides, pads, dilations, ceilMode }: PoolAttrs) => ({
  ceil_mode: ceilAttr(x, { kernel, strides, pads, dilations, ceilMode }),
  dilations: dilations && dilations.some((d) => d !== 1) ? dilations : undefined,
  kernel_shape: kernel,
  strides,
  pads,
});
/** Windows that tile the input exactly once: MaxUnpool's last-writer-wins scatter is then exact. */
const nonOverlapping = ({ kernel, strides, pads, dilations }: PoolAttrs) =>
  kernel[0] === strides[0] && kernel[1] === strides[1] && pads.every((p) => p === 0) && (dilations ?? [1, 1]).every((d) => d === 1);

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
  emit: (g, [x], a, outs) => g.node("MaxPool", [x], poolAttrs(x!, a), outs),
  // d maxpool(x) = dy routed to the argmax of each window (summed where windows overlap)
  vjp: (g, dys, { inputs: [x], outputs: [, indices], attrs }) => {
    if (!indices) throw new Error("internal error: MaxPool gradient needs the Indices output");
    const dy = one(dys);
    // MaxUnpool insists on room for every window: a ceil-mode window hanging over the edge needs the scatter
    const [h, w] = x!.shape.slice(2) as number[];
    const fits = dy.shape[2] === convOutSize(h, attrs.kernel[0], attrs.strides[0], 0, 0) && dy.shape[3] === convOutSize(w, attrs.kernel[1], attrs.strides[1], 0, 0);
    if (nonOverlapping(attrs) && fits) return [g.maxUnpool(dy, indices, x!, attrs)];
    return [scatterAddInto(g, x!, indices, dy)];
  },
});

/** A 2x2 stride-2 window without padding or dilation over a static input of even height and width. */
export function isBlockPool(x: Value, { kernel, strides, pads, dilations }: PoolAttrs): boolean {
  const [, c, h, w] = x.shape;
  if (x.shape.length !== 4 || typeof c !== "number" || typeof h !== "number" || typeof w !== "number") return false;
  const two = (p: readonly number[]) => p.every((v) => v === 2);
  return two(kernel) && two(strides) && nonOverlapping({ kernel, strides, pads, dilations }) && h % 2 === 0 && w % 2 === 0;
}

/**
 * The 2x2 stride-2 max pool from differentiable primitives: SpaceToDepth lays each window's four cells out as
 * channels (cell 2i + j, row-major), and ReduceMax takes their maximum, so the forward values are MaxPool's
 * exactly. The gradient comes from the primitives: ReduceMax's goes to the first maximum in that cell order
 * (MaxPool's Indices pick the same cell, ties included), DepthToSpace puts it back in place. Even sizes only:
 * on odd ones (measured on mycnn's 15x15 and 7x7) the Slice that drops floor mode's last row and column and
 * the Pad of its gradient cost more than MaxPool with Indices.
 */
export function blockMaxPool(g: G, x: Value): Value {
  const [n, c, h, w] = x.shape as [Dim, number, number, number];
  const cells = g.reshape(g.spaceToDepth(x, 2), [n, 4, c, h / 2, w / 2]); // [N, cell, C, H/2, W/2]
  return g.reduceMax(cells, 1);
}

/** Places each dy value at its index in a zero tensor shaped like x (last-writer wins: windows must not overlap). */
export const maxUnpool = defineOp<PoolAttrs>({
  onnx: "MaxUnpool",
  infer: ([, , like]) => [{ shape: req(like, "like").shape, dtype: "float32" }],
  // MaxUnpool has no ceil_mode or dilations: with output_shape given, kernel/strides/pads only check its size
  emit: (g, [dy, indices, like], { kernel, strides, pads }, [out]) =>
    g.node("MaxUnpool", [dy, indices, g.shape(like!)], poolAttrs(like!, { kernel, strides, pads }), [out]),
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

export type AveragePoolAttrs = Omit<PoolAttrs, "dilations"> & {
  /** Divide by the whole window, padding included (default, PyTorch's default) or by its input cells only. */
  countIncludePad?: boolean;
};

/**
 * AveragePool: y = sum(window) / count. Gradient: dy / count spread over each window, which is a depthwise
 * ConvTranspose with a kernel of ones. With full windows and count_include_pad every count is kH*kW and
 * folds into the kernel; otherwise (count_include_pad=0, or ceil mode's windows that hang over the edge)
 * the counts are a constant [Ho, Wo] map worked out here, as PyTorch and onnxruntime count them.
 */
export const averagePool = defineOp<AveragePoolAttrs>({
  onnx: "AveragePool",
  infer: ([x], a) => [pooled(req(x, "x"), a, "AveragePool")],
  emit: (g, [x], a, outs) => g.node("AveragePool", [x], { ...poolAttrs(x!, a), count_include_pad: a.countIncludePad === false ? 0 : 1 }, outs),
  vjp: (g, dys, { inputs: [x], attrs }) => {
    const { kernel, strides, pads, ceilMode, countIncludePad } = attrs;
    const dy = one(dys);
    const c = x!.shape[1];
    if (typeof c !== "number") throw new Error("internal error: AveragePool gradient needs static channels");
    const [h, w] = x!.shape.slice(2) as number[];
    const [ho, wo] = dy.shape.slice(2) as number[];
    const uniform = countIncludePad !== false && !ceilMode;
    const weight = uniform ? 1 / (kernel[0] * kernel[1]) : 1;
    const ones = g.constant(new Float32Array(c * kernel[0] * kernel[1]).fill(weight), [c, 1, ...kernel]);
    const scaled = uniform ? dy : g.mul(dy, g.constant(reciprocalCounts([h, w], [ho, wo], attrs), [ho, wo]));
    // ConvTranspose's output is s(o-1) + k - pads + output_padding; a ceil-mode window hanging over the end
    // makes that too long, which a larger end pad (ConvTranspose crops by its pads) takes back.
    const fit = (axis: 0 | 1, size: number, out: number) => {
      const extra = size - (strides[axis] * (out - 1) + kernel[axis] - pads[axis] - pads[axis + 2]);
      return extra >= 0 ? { end: pads[axis + 2], outputPadding: extra } : { end: pads[axis + 2] - extra, outputPadding: 0 };
    };
    const [fh, fw] = [fit(0, h, ho), fit(1, w, wo)];
    return [
      g.convTranspose(scaled, ones, {
        strides,
        pads: [pads[0], pads[1], fh.end, fw.end],
        outputPadding: [fh.outputPadding, fw.outputPadding],
        outShape: x!.shape,
        group: c,
      }),
    ];
  },
});

/**
 * 1/count for each output cell. A window spans [o s - padBegin, o s - padBegin + k) clipped to the padded
 * input [-padBegin, size + padEnd) when padding counts, or to the input [0, size) when it does not.
 */
function reciprocalCounts([h, w]: number[], [ho, wo]: number[], { kernel, strides, pads, countIncludePad }: AveragePoolAttrs): Float32Array {
  const extent = (o: number, axis: 0 | 1, size: number) => {
    const start = o * strides[axis] - pads[axis];
    const [lo, hi] = countIncludePad === false ? [0, size] : [-pads[axis], size + pads[axis + 2]];
    return Math.min(start + kernel[axis], hi) - Math.max(start, lo);
  };
  const out = new Float32Array(ho * wo);
  for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) out[i * wo + j] = 1 / (extent(i, 0, h) * extent(j, 1, w));
  return out;
}
