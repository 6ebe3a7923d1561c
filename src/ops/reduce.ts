/** Reductions over static axes. Axes are inputs (ReduceSum: opset 13+; ReduceMean, ReduceMax: opset 18+, attribute before). */
import type { Dim, Value } from "../graph/value.ts";
import { defineOp, one, req, type OutSpec } from "./op.ts";

interface ReduceAttrs {
  axes: number[];
  keepdims: boolean;
}

function reduced(x: Value, { axes, keepdims }: ReduceAttrs): Dim[] {
  const r = x.shape.length;
  const norm = axes.map((a) => (a < 0 ? a + r : a));
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!norm.includes(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

/** A ReduceMean/ReduceMax node: axes as an input from opset 18, as an attribute before. */
export function emitReduce(g: import("./builder.ts").G, op: "ReduceMean" | "ReduceMax", x: Value | undefined, { axes, keepdims }: ReduceAttrs, out: OutSpec): Value[] {
  return g.opset >= 18 ? g.node(op, [x, g.ints(axes)], { keepdims: keepdims ? 1 : 0 }, [out]) : g.node(op, [x], { axes, keepdims: keepdims ? 1 : 0 }, [out]);
}

/** The cotangent of a reduction, with the reduced axes put back as size 1, broadcast to x's shape. */
function spread(g: import("./builder.ts").G, dy: Value, x: Value, { axes, keepdims }: ReduceAttrs): Value {
  const kept = keepdims ? dy : g.unsqueeze(dy, axes.map((a) => (a < 0 ? a + x.shape.length : a)).sort((a, b) => a - b));
  return g.expandLike(kept, x);
}

// d sum(x) = dy broadcast back over the summed axes
export const reduceSum = defineOp<ReduceAttrs>({
  onnx: "ReduceSum",
  infer: ([x], a) => [{ shape: reduced(req(x, "x"), a), dtype: req(x, "x").dtype }],
  emit: (g, [x], { axes, keepdims }, [out]) => g.node("ReduceSum", [x, g.ints(axes)], { keepdims: keepdims ? 1 : 0 }, [out]),
  vjp: (g, dys, { inputs: [x], attrs }) => [spread(g, one(dys), x!, attrs)],
});

// d mean(x) = dy / count, broadcast back; count = the product of the reduced axes, or |x| / |y| read at
// run time when one of them is symbolic (a dynamic batch elsewhere, as in GlobalAveragePool, needs no Size)
export const reduceMean = defineOp<ReduceAttrs>({
  onnx: "ReduceMean",
  infer: ([x], a) => [{ shape: reduced(req(x, "x"), a), dtype: req(x, "x").dtype }],
  emit: (g, [x], a, [out]) => emitReduce(g, "ReduceMean", x, a, out),
  vjp: (g, dys, { inputs: [x], outputs: [y], attrs }) => {
    const dims = attrs.axes.map((a) => x!.shape[a < 0 ? a + x!.shape.length : a]);
    const count = dims.every((d) => typeof d === "number") ? g.scalar((dims as number[]).reduce((p, d) => p * d, 1)) : g.countRatio(x!, y);
    return [g.div(spread(g, one(dys), x!, attrs), count)];
  },
});

/**
 * The maximum along one axis. Its gradient goes to the first maximum along that axis (ArgMax's pick, as
 * MaxPool's Indices and PyTorch's max(dim)): dx = dy where the position is ArgMax's, 0 elsewhere.
 */
export const reduceMax = defineOp<ReduceAttrs>({
  onnx: "ReduceMax",
  infer: ([x], a) => {
    if (a.axes.length !== 1) throw new Error(`internal error: ReduceMax over ${a.axes.length} axes (one is supported)`);
    return [{ shape: reduced(req(x, "x"), a), dtype: req(x, "x").dtype }];
  },
  emit: (g, [x], a, [out]) => emitReduce(g, "ReduceMax", x, a, out),
  vjp: (g, dys, { inputs: [x], attrs }) => {
    const rank = x!.shape.length;
    const axis = attrs.axes[0] < 0 ? attrs.axes[0] + rank : attrs.axes[0];
    const k = x!.shape[axis];
    if (typeof k !== "number") throw new Error("internal error: ReduceMax gradient needs a static axis");
    // positions 0..k-1 along the axis, shaped to broadcast against x from that axis on
    const positions = g.constant(Array.from({ length: k }, (_, i) => i), [k, ...new Array(rank - axis - 1).fill(1)], "int64");
    const first = g.equal(g.argMax(x!, axis, true), positions);
    return [g.where(first, attrs.keepdims ? one(dys) : g.unsqueeze(one(dys), [axis]), 0)];
  },
});

export const argMax = defineOp<{ axis: number; keepdims: boolean }>({
  onnx: "ArgMax",
  infer: ([x], { axis, keepdims }) => [{ shape: reduced(req(x, "x"), { axes: [axis], keepdims }), dtype: "int64" }],
  attrs: ({ axis, keepdims }) => ({ axis, keepdims: keepdims ? 1 : 0 }),
  vjp: "none",
});
