/** Softmax, log-softmax and the mean cross-entropy over integer class labels. */
import { shapeToString } from "../graph/value.ts";
import { defineOp, one, req, sameAsInput } from "./op.ts";

// d softmax: dx = y * (dy - sum(dy * y))  along the axis
export const softmax = defineOp<{ axis: number }>({
  onnx: "Softmax",
  infer: sameAsInput,
  attrs: ({ axis }) => ({ axis }),
  vjp: (g, dys, { outputs: [y], attrs: { axis } }) => {
    const dy = one(dys);
    return [g.mul(y, g.sub(dy, g.reduceSum(g.mul(dy, y), [axis], true)))];
  },
});

// d logsoftmax: dx = dy - softmax(x) * sum(dy)  along the axis
export const logSoftmax = defineOp<{ axis: number }>({
  onnx: "LogSoftmax",
  infer: sameAsInput,
  attrs: ({ axis }) => ({ axis }),
  vjp: (g, dys, { outputs: [y], attrs: { axis } }) => {
    const dy = one(dys);
    return [g.sub(dy, g.mul(g.exp(y), g.reduceSum(dy, [axis], true)))];
  },
});

/**
 * Mean cross-entropy of logits [N, K] against int64 labels [N] (PyTorch's F.cross_entropy).
 * Outputs the scalar loss and the log-probabilities [N, K] that the gradient reuses.
 * d loss / d logits = (softmax(logits) - onehot(labels)) / N
 */
export const softmaxCrossEntropy = defineOp({
  onnx: "SoftmaxCrossEntropyLoss",
  infer: ([logits, labels]) => {
    const [x, t] = [req(logits, "logits"), req(labels, "labels")];
    if (x.shape.length !== 2 || t.shape.length !== 1 || t.dtype !== "int64")
      throw new Error(`cross-entropy expects logits [N, K] and int64 labels [N], got ${shapeToString(x.shape)} and ${t.dtype}${shapeToString(t.shape)}`);
    return [
      { shape: [], dtype: "float32" },
      { shape: x.shape, dtype: "float32" },
    ];
  },
  attrs: () => ({ reduction: "mean" }),
  nonDifferentiableInputs: [1],
  vjp: (g, dys, { inputs: [logits, labels], outputs: [, logProb] }) => {
    const dy = one(dys);
    const k = logits!.shape[1];
    if (typeof k !== "number") throw new Error("internal error: cross-entropy needs a static class count");
    const target = g.oneHot(labels!, k);
    const scale = g.div(dy, g.countRatio(labels!, dy)); // dy / N
    return [g.mul(g.sub(g.exp(logProb), target), scale), undefined];
  },
});

/** One-hot float rows [N, K] from int64 labels [N]. */
export const oneHot = defineOp<{ depth: number }>({
  onnx: "OneHot",
  infer: ([t], { depth }) => [{ shape: [req(t, "labels").shape[0], depth], dtype: "float32" }],
  emit: (g, [t], { depth }, outs) => g.node("OneHot", [t, g.constant([depth], [], "int64"), g.constant([0, 1], [2])], { axis: -1 }, outs),
  vjp: "none",
});
